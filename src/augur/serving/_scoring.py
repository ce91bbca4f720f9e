"""Scoring feature rows with one model version: ensemble output → decision signal.

Rows of one version are scored together (one batched ``predict``: the ensemble's cost
barely grows with the rows). With ``memo_size`` > 0 the outputs are remembered per
version and feature row (by the row's digest): the ensemble is a pure function of them
and a symbol's row changes once per bar, so the requests between two bars are looked
up, not rescored.

Two things keep the memo honest about member weights that outcomes move
(:mod:`augur.serving._weights`): ``on_scored`` is told what each member said about every
row actually scored (a memo miss), so the prediction log keeps it for the outcome; and
``generation`` (a counter the weights raise when they change) clears the memo, so no
output computed with earlier weights is served after a change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from augur.decision import MarketContext, Signal
from augur.serving._registry import LoadedModel


@dataclass(frozen=True, slots=True)
class Scored:
    """A row's signal for the decision engine, and the flat-class probability the log keeps."""

    signal: Signal
    p_flat: float


# (version, the rows' digests, the member names, (rows, members, 3) probabilities down,
# flat, up, the rows' market contexts): what the members said about rows just scored.
OnScored = Callable[[LoadedModel, Sequence[str], Sequence[str], np.ndarray, Sequence[MarketContext]], None]  # fmt: skip


class Scorer:
    """``score(model, rows)``: one :class:`Scored` per (feature row, market context)."""

    def __init__(
        self,
        memo_size: int = 0,
        on_scored: OnScored | None = None,
        generation: Callable[[], int] | None = None,
    ) -> None:
        self.memo_size = memo_size
        self._memo: dict[tuple[str, str], Scored] = {}
        self.hits = 0
        self.misses = 0
        self.on_scored = on_scored
        self.generation = generation
        self._generation = generation() if generation is not None else 0

    def score(
        self,
        loaded: LoadedModel,
        rows: Sequence[tuple[np.ndarray, MarketContext]],
        digests: Sequence[str],
    ) -> list[Scored]:
        """Score ``rows``; ``digests`` are the rows' :func:`~augur.monitoring.features_digest`
        (the memo's key: 128 bits of the exact values)."""
        if self.generation is not None:
            generation = self.generation()
            if generation != self._generation:  # the weights moved: forget older outputs
                self._generation = generation
                self._memo.clear()
        if not self.memo_size:
            return self._scored(loaded, rows, digests)
        keys = [(loaded.tag, digest) for digest in digests]
        todo = {key: i for i, key in enumerate(keys) if key not in self._memo}
        self.hits += len(rows) - len(todo)
        self.misses += len(todo)
        if todo:
            scored = self._scored(
                loaded, [rows[i] for i in todo.values()], [digests[i] for i in todo.values()]
            )
            if len(self._memo) + len(todo) > self.memo_size:
                self._memo.clear()  # a new bar for every symbol: start over
            self._memo.update(zip(todo, scored, strict=True))
        return [self._memo[key] for key in keys]

    def _scored(
        self,
        loaded: LoadedModel,
        rows: Sequence[tuple[np.ndarray, MarketContext]],
        digests: Sequence[str],
    ) -> list[Scored]:
        scored, members = _score(loaded, rows, self.on_scored is not None)
        if self.on_scored is not None and members is not None:
            names, per_row = members
            self.on_scored(loaded, digests, names, per_row, [market for _, market in rows])
        return scored


# The member names and the (rows, members, 3) probabilities, when the model gives them.
Members = tuple[Sequence[str], np.ndarray] | None


def _score(
    loaded: LoadedModel, rows: Sequence[tuple[np.ndarray, MarketContext]], want_members: bool
) -> tuple[list[Scored], Members]:
    model = loaded.model
    ref = getattr(model, "volatility_ref", None)
    vols = [market.volatility for _, market in rows]
    # One row, or a model without a batch form, or a volatility ratio that cannot be
    # formed (zero volatility against a reference): row by row.
    if len(rows) == 1 or not hasattr(model, "predict") or (ref and 0.0 in vols):
        outs = [_score_one(loaded, x, market) for x, market in rows]
        scored = [Scored(out.to_signal(loaded.tag), float(out.p_flat)) for out in outs]
        if not want_members:
            return scored, None
        given = [getattr(out, "per_model", None) for out in outs]
        dicts = [p for p in given if isinstance(p, dict)]
        if not dicts or len(dicts) != len(given):
            return scored, None
        names = list(dicts[0])
        return scored, (names, np.array([[p[n] for n in names] for p in dicts]))
    pred = model.predict(
        np.stack([x[loaded.columns] for x, _ in rows]),
        volatility_ratio=np.array(vols) / ref if ref else None,
        trend_strength=np.array([market.trend_strength for _, market in rows]),
    )
    out = []
    for i in range(len(rows)):
        p_down, p_flat, p_up = (float(v) for v in pred.proba[i])
        q05, q50, q95 = (float(v) for v in pred.quantiles[i])
        signal = Signal(
            direction=int(pred.direction[i]),
            probability=float(pred.probability[i]),
            p_up=p_up,
            p_down=p_down,
            confidence=float(pred.confidence[i]),
            agreement=float(pred.agreement[i]),
            q05=q05,
            q50=q50,
            q95=q95,
            model_version=loaded.tag,
        )
        out.append(Scored(signal, p_flat))
    batch_members = getattr(pred, "per_model", None), getattr(pred, "members", None)
    if not want_members or batch_members[0] is None or batch_members[1] is None:
        return out, None
    return out, (list(batch_members[1]), np.asarray(batch_members[0]).transpose(1, 0, 2))


def _score_one(loaded: LoadedModel, x: np.ndarray, market: MarketContext) -> Any:
    return loaded.model.predict_one(
        x[loaded.columns],
        volatility=market.volatility or None,
        trend_strength=market.trend_strength,
        explain=False,
    )


__all__ = ["Scored", "Scorer"]
