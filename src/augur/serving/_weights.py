"""Member weights that outcomes move, shared by every worker and replica.

The rule is :class:`~augur.models.DynamicWeights` (the EWMA log score with its decay,
floor and bounded step, from the version), the one training and the walk-forward
backtest use. What serving adds is where the state lives and how it travels:

1. **Member probabilities.** When the scorer actually scores a feature row (a miss of its
   prediction memo), :meth:`SharedWeights.record_scored` hands what each member said
   about it to the prediction log (its own background writer, keyed by (version,
   features digest)): once per row and version, not per request.
2. **An outcome** (``POST /outcome``, :meth:`SharedWeights.apply_outcome`) finds its
   request's logged predictions (version and features digest per role), their member
   probabilities, labels the realised return with training's rule (up above
   ``dead_zone * sigma * sqrt(horizon)``, down below minus it, flat between —
   :mod:`augur.features.labels`; ``sigma`` is the row's volatility feature, ``vol_20``
   as the labels use, the dead zone and horizon from the version's training context;
   a version without them is labelled by the sign alone) and folds it into the
   version's row of the log's ``ensemble_weights`` table, atomically. The realised
   return is read as the symbol's forward return over the label horizon, as the
   outcome metrics and the serving report read it.
   A worker that loads a version seeds its row with the trained weights, so a worker
   that has not loaded it (the shadow scored in its own process) can still update it.
3. **Every worker** re-reads that table every ``interval`` seconds (a background thread;
   the answering worker at once), sets each loaded version's ``dynamic_weights`` and
   raises :attr:`SharedWeights.generation`, which clears the prediction memo: no output
   computed with earlier weights is served after the change. The state is in the
   database, so a restarted worker starts with it.
4. **Frozen** versions (``augur weights freeze <tag>``) ignore outcomes.

A version's first outcome starts from the weights it was trained with (those saved with
it, learnt on its validation tail).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from augur.decision import MarketContext
from augur.serving._registry import LoadedModel, ModelRegistry

log = logging.getLogger(__name__)

# Feature rows whose member probabilities were handed to the log lately, per worker: a
# scorer without a memo must not enqueue the same row for every request.
_RECENT = 8192


class SharedWeights:
    """The loaded versions' member weights, kept in step with the log's shared state.

    ``prediction_log``: a :class:`~augur.monitoring.PredictionLog` (its database holds the
    state). ``on_change(tag, weights)``: told each version's weights (member → weight)
    when this worker sets them (the service's gauges).
    """

    def __init__(
        self,
        prediction_log: Any,
        models: ModelRegistry,
        interval: float = 1.0,
        on_change: Callable[[str, dict[str, float]], None] | None = None,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be > 0 seconds, got {interval!r}")
        self.log = prediction_log
        self.models = models
        self.interval = float(interval)
        self.on_change = on_change
        self.generation = 0  # raised after every change of a version's weights
        self._base: dict[str, Any] = {}  # tag -> the DynamicWeights it was trained with
        self._revision: dict[str, int] = {}  # tag -> the shared row's revision in force
        self._factor: dict[str, float | None] = {}  # tag -> dead_zone * sqrt(horizon)
        self._recent: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- the request path -----------------------------------------------------------
    def record_scored(
        self,
        loaded: LoadedModel,
        digests: Sequence[str],
        names: Sequence[str],
        per_row: np.ndarray,
        markets: Sequence[MarketContext],
    ) -> None:
        """The scorer's ``on_scored``: each row's member probabilities into the log.
        Never raises (a row not kept only means its outcome moves no weights)."""
        try:
            factor = self._label_factor(loaded)
            recent = self._recent
            for digest, probs, market in zip(digests, per_row, markets, strict=True):
                key = (loaded.tag, digest)
                if key in recent:
                    continue
                if len(recent) >= _RECENT:
                    recent.clear()
                recent.add(key)
                threshold = (
                    factor * market.volatility
                    if factor is not None and market.volatility > 0
                    else None
                )
                self.log.log_member_probs(
                    loaded.tag, digest, dict(zip(names, probs.tolist(), strict=True)), threshold
                )
        except Exception:
            log.exception("member probabilities of %s not logged", loaded.tag)

    def _label_factor(self, loaded: LoadedModel) -> float | None:
        """``dead_zone * sqrt(horizon)`` of the version's labels (None: unknown)."""
        if loaded.tag not in self._factor:
            context = getattr(loaded.model, "context", None) or {}
            dead_zone, horizon = context.get("label_dead_zone"), context.get("label_horizon")
            factor = None
            if dead_zone is not None and horizon:
                factor = float(dead_zone) * math.sqrt(float(horizon))
            self._factor[loaded.tag] = factor
        return self._factor[loaded.tag]

    # --- outcomes ---------------------------------------------------------------------
    def apply_outcome(self, request_id: str, realized_return: float) -> list[str]:
        """Fold a realised return into the weights of each version that predicted
        ``request_id`` (its serving version, and its shadow when loaded here); returns
        the versions whose shared weights it moved. A version without member
        probabilities logged for the row, or not loaded here, is skipped (logged)."""
        from augur.monitoring.log._weights import realised_label

        moved: list[str] = []
        seen: set[tuple[str, str]] = set()
        for version, _role, digest in self.log.prediction_inputs(request_id):
            if (version, digest) in seen or not digest:
                continue
            seen.add((version, digest))
            base = self._base_of(version)
            if base is not None:
                names = base.names
            else:  # scored elsewhere (a shadow's own process): the row says who is who
                row = self.log.weights().get(version)
                if row is None:
                    log.warning("outcome %s: version %s has no shared weights yet; they stay",
                                request_id, version)  # fmt: skip
                    continue
                names = row.names
            probs = self.log.member_probs(version, digest)
            if probs is None:
                log.warning(
                    "outcome %s: no member probabilities logged for version %s and its "
                    "feature row; its weights stay",
                    request_id,
                    version,
                )
                continue
            label = realised_label(realized_return, probs.label_threshold)
            after = self.log.update_weights(
                version, base, [(probs.matrix(names), label)], outcome_id=request_id
            )
            if not after.frozen:
                moved.append(version)
        if moved:
            self.refresh()  # this worker at once; the others within their interval
        return moved

    # --- keeping in step ------------------------------------------------------------------
    def _base_of(self, tag: str) -> Any:
        """The version's trained weights (captured before this worker first changes
        them); None when it is not loaded or has no dynamic weights."""
        with self._lock:
            if tag not in self._base:
                if tag not in self.models:
                    return None
                dw = getattr(self.models[tag].model, "dynamic_weights", None)
                if dw is None:
                    return None
                from augur.models import DynamicWeights

                self._base[tag] = DynamicWeights.from_state(dw.state())
            return self._base[tag]

    def refresh(self) -> bool:
        """Read the shared state and set every loaded version's weights that changed;
        True when one did."""
        rows = self.log.weights()
        changed = False
        for tag in self.models.tags:
            base = self._base_of(tag)
            if base is None:
                continue
            row = rows.get(tag)
            if row is None and self.log.seed_weights(tag, base):
                # the row holds the trained weights this worker scores with already
                with self._lock:
                    self._revision[tag] = 1
                continue
            revision = row.revision if row is not None else 0
            with self._lock:
                if self._revision.get(tag, 0) == revision:
                    continue
                try:
                    from augur.models import DynamicWeights

                    weights = (
                        row.applied_to(base)
                        if row is not None
                        else DynamicWeights.from_state(base.state())
                    )
                except ValueError:
                    log.exception("the shared weights of %s cannot be used", tag)
                    self._revision[tag] = revision
                    continue
                # the weights first, then the generation: a scorer that sees the new
                # generation scores with the new weights
                self.models[tag].model.dynamic_weights = weights
                self._revision[tag] = revision
                self.generation += 1
                changed = True
            if self.on_change is not None:
                self.on_change(tag, weights.as_dict())
        return changed

    def publish(self) -> None:
        """Tell ``on_change`` every loaded version's weights now (at start)."""
        if self.on_change is None:
            return
        for tag in self.models.tags:
            dw = getattr(self.models[tag].model, "dynamic_weights", None)
            if dw is not None:
                self.on_change(tag, dw.as_dict())

    def view(self, tag: str) -> dict[str, Any] | None:
        """A loaded version's weights as ``GET /models`` shows them (None: none)."""
        if tag not in self.models:
            return None
        dw = getattr(self.models[tag].model, "dynamic_weights", None)
        if dw is None:
            return None
        return {"weights": dw.as_dict(), "frozen": dw.frozen, "n_updates": dw.n_updates}

    def start(self) -> None:
        """Take the shared state now, then re-read it every ``interval`` seconds."""
        try:
            self.refresh()
        except Exception:
            log.exception("the shared member weights could not be read; retrying")
        self.publish()
        self._thread = threading.Thread(target=self._run, name="augur-weights", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.refresh()
            except Exception:
                log.warning("the shared member weights could not be read", exc_info=True)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


__all__ = ["SharedWeights"]
