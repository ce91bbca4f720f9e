"""POST /outcome's per-version metrics: calls, hits and signed returns of each logged
prediction of the request, on /metrics as Prometheus shows them — with the real SQLite
prediction log, and the outcome path unchanged when no prediction row can be read."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from augur.monitoring import PredictionLog, UnknownRequestIdError
from augur.serving._memory import MemoryMetrics, MemoryPredictionLog
from augur.serving._outcomes import logged_calls, outcome_known, record_outcome
from augur.serving._schemas import OutcomeRequest
from augur.serving._telemetry import ServingMetrics
from tests.unit.monitoring.log.conftest import record

NOW = datetime(2026, 1, 5, tzinfo=UTC)


@pytest.fixture
def plog(tmp_path: Path) -> Iterator[PredictionLog]:
    log = PredictionLog(f"sqlite:///{tmp_path / 'log.db'}")
    yield log
    log.close()


def post(plog: Any, metrics: Any, request_id: str, realized: float) -> Any:
    req = OutcomeRequest(request_id=request_id, realized_return=realized)
    return record_outcome(req, "desk", plog, None, metrics, lambda: NOW)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_hits_calls_and_signed_returns_per_version_and_role(plog: PredictionLog) -> None:
    registry = CollectorRegistry()
    metrics = ServingMetrics(registry)
    plog.log_prediction(record("long-up", version="m:1", direction=1))
    plog.log_prediction(record("long-up", role="shadow", version="m:3", direction=-1,
                               action="enter_short"))  # fmt: skip
    plog.log_prediction(record("short-up", version="m:1", direction=-1, action="enter_short"))
    plog.log_prediction(record("flat", version="m:1", direction=0, action="no_action", size=0.0))
    plog.log_prediction(record("canary", role="canary", version="m:2", direction=1))
    plog.flush()

    post(plog, metrics, "long-up", 0.02)  # m:1 long, up: a hit; the shadow's short: a miss
    post(plog, metrics, "short-up", 0.01)  # short, up: a miss, signed -0.01
    post(plog, metrics, "flat", 0.03)  # no direction: no call
    post(plog, metrics, "canary", -0.005)  # canary long, down: a miss

    m1 = {"version": "m:1", "role": "primary"}
    assert sample(registry, "augur_outcome_calls_total", **m1) == 2
    assert sample(registry, "augur_outcome_hits_total", **m1) == 1
    assert sample(registry, "augur_outcome_return_gain_total", **m1) == pytest.approx(0.02)
    assert sample(registry, "augur_outcome_return_loss_total", **m1) == pytest.approx(0.01)
    shadow = {"version": "m:3", "role": "shadow"}
    assert sample(registry, "augur_outcome_calls_total", **shadow) == 1
    assert sample(registry, "augur_outcome_hits_total", **shadow) == 0
    assert sample(registry, "augur_outcome_return_loss_total", **shadow) == pytest.approx(0.02)
    canary = {"version": "m:2", "role": "canary"}
    assert sample(registry, "augur_outcome_calls_total", **canary) == 1
    assert sample(registry, "augur_outcome_return_loss_total", **canary) == pytest.approx(0.005)
    assert sample(registry, "augur_outcomes_total", matched="true") == 4
    text = generate_latest(registry).decode()
    assert 'augur_outcome_hits_total{role="primary",version="m:1"} 1.0' in text
    # a version's four series exist from its first call: a rate of 0, never "no data"
    assert 'augur_outcome_hits_total{role="canary",version="m:2"} 0.0' in text
    assert 'augur_outcome_return_gain_total{role="canary",version="m:2"} 0.0' in text


def test_a_retried_outcome_is_stored_again_but_counted_once(plog: PredictionLog) -> None:
    registry = CollectorRegistry()
    metrics = ServingMetrics(registry)
    plog.log_prediction(record("r1", version="m:1", direction=1))
    plog.flush()
    assert not outcome_known(plog, "r1")
    post(plog, metrics, "r1", 0.01)
    assert outcome_known(plog, "r1")
    post(plog, metrics, "r1", 0.01)
    assert sample(registry, "augur_outcome_calls_total", version="m:1", role="primary") == 1
    assert sample(registry, "augur_outcomes_total", matched="true") == 2
    assert plog.frame().set_index("request_id").loc["r1", "realized_return"] == 0.01


def test_an_unknown_request_counts_no_call(plog: PredictionLog) -> None:
    registry = CollectorRegistry()
    metrics = ServingMetrics(registry)
    with pytest.raises(UnknownRequestIdError):
        post(plog, metrics, "nope", 0.01)
    assert sample(registry, "augur_outcomes_total", matched="false") == 1
    assert (
        registry.get_sample_value("augur_outcome_calls_total", {"version": "v1", "role": "primary"})
        is None
    )


def test_no_readable_prediction_row_leaves_the_outcome_recorded(
    plog: PredictionLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The metrics' read fails after the outcome is stored: the request still succeeds and
    nothing is counted per version."""
    registry = CollectorRegistry()
    metrics = ServingMetrics(registry)
    plog.log_prediction(record("r1", version="m:1", direction=1))
    plog.flush()

    def broken(*_a: object) -> list[Any]:
        raise RuntimeError("database went away")

    monkeypatch.setattr("augur.serving._outcomes.logged_calls", broken)
    out = post(plog, metrics, "r1", 0.01)
    assert out.recorded
    assert sample(registry, "augur_outcomes_total", matched="true") == 1
    assert sample(registry, "augur_outcome_calls_total", version="m:1", role="primary") == 0


def test_a_sink_that_cannot_name_its_predictions_counts_nothing_per_version() -> None:
    class BareSink:
        def log_prediction(self, _record: Any) -> bool:
            return True

        def log_outcome(self, _request_id: str, _r: float, _caller: str = "") -> bool:
            return True

    metrics = MemoryMetrics()
    assert logged_calls(BareSink(), "r") == [] and not outcome_known(BareSink(), "r")
    assert post(BareSink(), metrics, "r", 0.01).recorded
    assert metrics.counts[("outcome", True)] == 1
    assert not [k for k in metrics.counts if k[0] == "outcome_realised"]


def test_the_memory_log_names_its_predictions_like_the_sql_log(plog: PredictionLog) -> None:
    memory = MemoryPredictionLog()
    for sink in (memory, plog):
        sink.log_prediction(record("r1", version="m:1", direction=-1))
        sink.log_prediction(record("r1", role="shadow", version="m:3", direction=1))
    plog.flush()
    assert (
        sorted(logged_calls(memory, "r1"))
        == sorted(logged_calls(plog, "r1"))
        == [
            ("m:1", "primary", -1),
            ("m:3", "shadow", 1),
        ]
    )
    metrics = MemoryMetrics()
    post(memory, metrics, "r1", 0.02)
    assert metrics.counts[("outcome_realised", "m:1", "primary", -1, 0.02)] == 1
    assert metrics.counts[("outcome_realised", "m:3", "shadow", 1, 0.02)] == 1
