"""Traces and metrics of the decision service.

Tracing: OpenTelemetry spans (routing, feature fetch, ensemble, decision, shadow). With an
OTLP endpoint configured, spans go to it through a batching exporter; without one the
no-op tracer is used, so tracing costs nothing on the request path.

Metrics: prometheus_client objects, created on first use — after BentoML has set
``PROMETHEUS_MULTIPROC_DIR`` in the worker, so every worker's values show up on one
``/metrics``.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

log = logging.getLogger(__name__)

# Latency buckets (seconds) around the service's targets: sub-ms to a second.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.02,
    0.03,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)


def make_tracer(
    otlp_endpoint: str = "", service_name: str = "augur-decision", exporter: Any = None
) -> Any:
    """An OpenTelemetry tracer: exporting to ``otlp_endpoint`` when set, else a no-op one.

    ``exporter`` replaces the OTLP exporter (e.g. an in-memory one in tests)."""
    from opentelemetry import trace

    if not otlp_endpoint:
        return trace.NoOpTracer()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(
        BatchSpanProcessor(exporter or OTLPSpanExporter(endpoint=otlp_endpoint))
    )
    log.info("tracing: exporting spans to %s", otlp_endpoint)
    return provider.get_tracer("augur.serving")


class ServingMetrics:
    """The service's Prometheus metrics (names prefixed ``augur_``)."""

    def __init__(self, registry: Any = None) -> None:
        from prometheus_client import REGISTRY, Counter, Gauge, Histogram

        reg = registry if registry is not None else REGISTRY
        self.latency = Histogram(
            "augur_request_latency_seconds",
            "Request latency by route and serving version (model tag).",
            ["route", "version"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.requests = Counter(
            "augur_requests",
            "Requests by route and HTTP status.",
            ["route", "status"],
            registry=reg,
        )
        self.decisions = Counter(
            "augur_decisions",
            "Decisions by action and serving version.",
            ["action", "version", "role"],
            registry=reg,
        )
        self.shadow_comparisons = Counter(
            "augur_shadow_comparisons",
            "Shadow scorings, by whether the shadow's action agreed with the primary's.",
            ["shadow_version", "agreed"],
            registry=reg,
        )
        self.shadow_dropped = Counter(
            "augur_shadow_queue_dropped",
            "Shadow scoring jobs dropped because the bounded queue was full.",
            registry=reg,
        )
        self.log_dropped = Counter(
            "augur_prediction_log_dropped",
            "Predictions not logged because the log's buffer was full (its writer was behind).",
            registry=reg,
        )
        self.log_unavailable = Counter(
            "augur_prediction_log_unavailable",
            "Prediction log batch writes the database could not take (unreachable, or its "
            "disk full); the rows stay in the buffer and are written once it can.",
            registry=reg,
        )
        self.routing_rejected = Counter(
            "augur_routing_table_rejected",
            "Routing table files refused (unreadable, invalid, or naming a version that "
            "cannot be loaded); the last good table stays in force.",
            registry=reg,
        )
        self.store_errors = Counter(
            "augur_online_store_errors",
            "Online feature store reads that failed (answered 503).",
            registry=reg,
        )
        self.outcomes = Counter(
            "augur_outcomes",
            "Outcomes posted, by whether they matched a logged request.",
            ["matched"],
            registry=reg,
        )
        # Outcomes of calls (logged predictions with a direction), per version and role:
        # PromQL divides hits by calls for the hit rate. A signed return (direction x
        # realised return) can be negative and a counter only goes up, so gains and losses
        # are two counters: mean signed return = (gain - loss) / calls.
        self.outcome_calls = Counter(
            "augur_outcome_calls",
            "Outcomes of calls (logged predictions with direction +1 or -1) by serving version.",
            ["version", "role"],
            registry=reg,
        )
        self.outcome_hits = Counter(
            "augur_outcome_hits",
            "Outcomes of calls whose realised return had the sign of the call's direction.",
            ["version", "role"],
            registry=reg,
        )
        self.outcome_gain = Counter(
            "augur_outcome_return_gain",
            "Sum of the positive signed returns (direction x realised return) of calls.",
            ["version", "role"],
            registry=reg,
        )
        self.outcome_loss = Counter(
            "augur_outcome_return_loss",
            "Sum of the magnitudes of the negative signed returns of calls.",
            ["version", "role"],
            registry=reg,
        )
        # Each worker sets it when it takes a version's weights; with several workers the
        # most recent value of the live ones is shown (they converge within a second).
        self.member_weight = Gauge(
            "augur_member_weight",
            "The ensemble member weights each version scores with now (outcomes move them).",
            ["version", "member"],
            registry=reg,
            multiprocess_mode="livemostrecent",
        )
        self._decisions = functools.cache(self.decisions.labels)
        # Both series of a shadow version appear with its first comparison (agreement 0,
        # not "no data", before the first agreement).
        self._comparisons = functools.cache(
            lambda version: (
                self.shadow_comparisons.labels(version, "false"),
                self.shadow_comparisons.labels(version, "true"),
            )
        )
        # All four series of a version appear with its first call (at 0), so PromQL's
        # hits / calls is 0, not "no data", before the first hit.
        self._outcome = functools.cache(
            lambda version, role: tuple(
                c.labels(version, role)
                for c in (
                    self.outcome_calls,
                    self.outcome_hits,
                    self.outcome_gain,
                    self.outcome_loss,
                )
            )
        )
        self._latency = functools.cache(self.latency.labels)
        self._requests = functools.cache(
            lambda route, status: self.requests.labels(route, str(status))
        )

    # --- the request path's Metrics port -----------------------------------------------
    # Each label combination's child is looked up once (``functools.cache`` over
    # ``.labels``): the hot path then only observes or increments.
    def decided(self, action: str, version: str, role: str, n: int = 1) -> None:
        self._decisions(action, version, role).inc(n)

    def shadow_compared(self, version: str, agreed: bool) -> None:
        disagreed, agreed_ = self._comparisons(version)
        (agreed_ if agreed else disagreed).inc()

    def outcome_posted(self, matched: bool) -> None:
        self.outcomes.labels("true" if matched else "false").inc()

    def outcome_realised(
        self, version: str, role: str, direction: int, realized_return: float
    ) -> None:
        """A realised return joined to one logged call of ``version``; a prediction without
        a direction (0) is no call and counts nowhere here."""
        if direction == 0:
            return
        signed = (1.0 if direction > 0 else -1.0) * realized_return
        calls, hits, gain, loss = self._outcome(version, role)
        calls.inc()
        if signed > 0:
            hits.inc()
            gain.inc(signed)
        elif signed < 0:
            loss.inc(-signed)

    def member_weights(self, version: str, weights: dict[str, float]) -> None:
        """The member weights ``version`` scores with now in this worker."""
        for member, weight in weights.items():
            self.member_weight.labels(version, member).set(weight)

    def store_failed(self) -> None:
        self.store_errors.inc()

    def request_served(self, route: str, version: str, status: int, seconds: float) -> None:
        self._latency(route, version).observe(seconds)
        self._requests(route, status).inc()


_default: ServingMetrics | None = None


def default_metrics() -> ServingMetrics:
    """The process-wide metrics (one set per process: Prometheus forbids duplicates)."""
    global _default
    if _default is None:
        _default = ServingMetrics()
    return _default


__all__ = ["LATENCY_BUCKETS", "ServingMetrics", "default_metrics", "make_tracer"]
