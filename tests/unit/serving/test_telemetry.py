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
