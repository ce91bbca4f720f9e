"""Tracing is off without an endpoint (no-op tracer) and real with one; metrics register once."""

from __future__ import annotations

from opentelemetry import trace

from augur.serving._telemetry import default_metrics, make_tracer


def test_no_endpoint_means_the_no_op_tracer() -> None:
    tracer = make_tracer("")
    assert isinstance(tracer, trace.NoOpTracer)
    with tracer.start_as_current_span("routing") as span:
        assert not span.is_recording()


def test_an_endpoint_gives_recording_spans() -> None:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tracer = make_tracer("http://collector:4318/v1/traces", exporter=exporter)
    with tracer.start_as_current_span("features") as span:
        assert span.is_recording()
        assert span.get_span_context().trace_id != 0


def test_default_metrics_are_one_set_per_process() -> None:
    assert default_metrics() is default_metrics()


def test_prediction_log_drops_are_exposed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Rows a full log buffer drops show on /metrics (the service wires on_drop)."""
    from prometheus_client import CollectorRegistry, generate_latest

    from augur.monitoring import PredictionLog
    from augur.serving._telemetry import ServingMetrics
    from tests.unit.monitoring.log.conftest import record

    registry = CollectorRegistry()
    metrics = ServingMetrics(registry)
    plog = PredictionLog(
        f"sqlite:///{tmp_path / 'log.db'}",
        max_queue=1,
        start=False,
        on_drop=metrics.log_dropped.inc,
    )
    assert [plog.log_prediction(record("r")) for _ in range(3)] == [True, False, False]
    assert "augur_prediction_log_dropped_total 2.0" in generate_latest(registry).decode()
    plog.close()


def test_the_request_paths_counts_reach_prometheus() -> None:
    """The Metrics port's calls, as /metrics shows them."""
    from prometheus_client import CollectorRegistry, generate_latest

    from augur.serving._telemetry import ServingMetrics

    registry = CollectorRegistry()
    m = ServingMetrics(registry)
    m.decided("enter_long", "m:1", "primary", 3)
    m.shadow_compared("m:3", agreed=False)
    m.outcome_posted(matched=True)
    m.store_failed()
    m.request_served("/decide", "m:1", 200, 0.004)
    text = generate_latest(registry).decode()
    for line in (
        'augur_decisions_total{action="enter_long",role="primary",version="m:1"} 3.0',
        'augur_shadow_comparisons_total{agreed="false",shadow_version="m:3"} 1.0',
        'augur_shadow_comparisons_total{agreed="true",shadow_version="m:3"} 0.0',
        'augur_outcomes_total{matched="true"} 1.0',
        "augur_online_store_errors_total 1.0",
        'augur_requests_total{route="/decide",status="200"} 1.0',
        'augur_request_latency_seconds_count{route="/decide",version="m:1"} 1.0',
    ):
        assert line in text, line
