"""Scoring a mirrored request with the shadow version, off the request path: decide, log
the shadow's row under the request's id, and count whether it agreed with the primary.

With shared member weights (``weights``, a :class:`~augur.serving._weights.SharedWeights`
of the shadow's own process) the shadow version scores with the weights outcomes have
moved, taken when it is first loaded and then as the workers take them, and what its
members said is logged for its outcomes (through the ``scorer``'s hooks)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from augur.decision import Decision
from augur.serving._ports import Clock, Metrics, PredictionSink, system_clock
from augur.serving._records import record_prediction
from augur.serving._registry import ModelRegistry
from augur.serving._scoring import Scorer
from augur.serving._shadow_codec import ShadowTask


class ShadowScorer:
    """``score(task)`` for each mirrored request (in the shadow process, or a thread)."""

    def __init__(
        self,
        models: ModelRegistry,
        decide: Callable[..., Decision],
        prediction_log: PredictionSink | None = None,
        metrics: Metrics | None = None,
        scorer: Scorer | None = None,
        clock: Clock = system_clock,
        weights: Any = None,
    ) -> None:
        self.models = models
        self._decide = decide
        self.log = prediction_log
        self.metrics = metrics
        self.scorer = scorer or Scorer()
        self.clock = clock
        self.weights = weights
        self._synced: set[str] = set()

    def score(self, task: ShadowTask) -> Decision:
        t0 = time.perf_counter()
        route = task.route
        self.models.ensure([route.model_tag])  # a table reload may bring a new shadow
        if self.weights is not None and route.model_tag not in self._synced:
            self._synced.add(route.model_tag)
            self.weights.refresh()  # a version just loaded: the shared weights at once
        loaded = self.models[route.model_tag]
        (scored,) = self.scorer.score(loaded, [(task.x, task.market)], [task.digest])
        decision = self._decide(
            scored.signal, task.pos, task.risk, task.market, loaded.config, task.request_id
        )
        if self.log is not None:
            latency_ms = (time.perf_counter() - t0) * 1e3
            record_prediction(self.log, route, task, decision, scored, latency_ms, self.clock())
        if self.metrics is not None:
            action = decision.action.value
            self.metrics.shadow_compared(route.model_tag, action == task.primary_action)
            self.metrics.decided(action, route.model_tag, route.role)
        return decision

    def close(self) -> None:
        if self.weights is not None:
            self.weights.stop()
        close: Any = getattr(self.log, "close", None)
        if close is not None:
            close()


__all__ = ["ShadowScorer"]
