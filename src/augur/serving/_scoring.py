"""Scoring feature rows with one model version: ensemble output → decision signal.

Rows of one version are scored together (one batched ``predict``: the ensemble's cost
barely grows with the rows). With ``memo_size`` > 0 the outputs are remembered per
version and feature row (by the row's digest): the ensemble is a pure function of them
and a symbol's row changes once per bar, so the requests between two bars are looked
up, not rescored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from augur.decision import MarketContext, Signal
from augur.serving._registry import LoadedModel


@dataclass(frozen=True, slots=True)
class Scored:
    """A row's signal for the decision engine, and the flat-class probability the log keeps."""

    signal: Signal
    p_flat: float


class Scorer:
    """``score(model, rows)``: one :class:`Scored` per (feature row, market context)."""

    def __init__(self, memo_size: int = 0) -> None:
        self.memo_size = memo_size
        self._memo: dict[tuple[str, str], Scored] = {}
        self.hits = 0
        self.misses = 0

    def score(
        self,
        loaded: LoadedModel,
        rows: Sequence[tuple[np.ndarray, MarketContext]],
        digests: Sequence[str],
    ) -> list[Scored]:
        """Score ``rows``; ``digests`` are the rows' :func:`~augur.monitoring.features_digest`
        (the memo's key: 128 bits of the exact values)."""
        if not self.memo_size:
            return _score(loaded, rows)
        keys = [(loaded.tag, digest) for digest in digests]
        todo = {key: i for i, key in enumerate(keys) if key not in self._memo}
        self.hits += len(rows) - len(todo)
        self.misses += len(todo)
        if todo:
            scored = _score(loaded, [rows[i] for i in todo.values()])
            if len(self._memo) + len(todo) > self.memo_size:
                self._memo.clear()  # a new bar for every symbol: start over
            self._memo.update(zip(todo, scored, strict=True))
        return [self._memo[key] for key in keys]


def _score(loaded: LoadedModel, rows: Sequence[tuple[np.ndarray, MarketContext]]) -> list[Scored]:
    model = loaded.model
    ref = getattr(model, "volatility_ref", None)
    vols = [market.volatility for _, market in rows]
    # One row, or a model without a batch form, or a volatility ratio that cannot be
    # formed (zero volatility against a reference): row by row.
    if len(rows) == 1 or not hasattr(model, "predict") or (ref and 0.0 in vols):
        return [_score_one(loaded, x, market) for x, market in rows]
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
    return out


def _score_one(loaded: LoadedModel, x: np.ndarray, market: MarketContext) -> Scored:
    out = loaded.model.predict_one(
        x[loaded.columns],
        volatility=market.volatility or None,
        trend_strength=market.trend_strength,
        explain=False,
    )
    return Scored(out.to_signal(loaded.tag), float(out.p_flat))


__all__ = ["Scored", "Scorer"]
