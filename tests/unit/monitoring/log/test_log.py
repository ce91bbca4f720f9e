"""PredictionLog as the service uses it: predictions through the writer to the
database, outcomes joined to them (also when another worker still holds the
prediction), failures counted rather than raised, and the writer's settings."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from augur.monitoring.log import LogStats, PredictionLog, UnknownRequestIdError
from augur.monitoring.log import _log as log_module
from augur.monitoring.log._schema import predictions_table
from tests.unit.monitoring.log.conftest import record


def test_outcome_replaces_earlier_outcome(log: PredictionLog) -> None:
    log.log_prediction(record("r1"))
    assert log.log_outcome("r1", 0.01)
    assert log.log_outcome("r1", 0.02)
    df = log.frame()
    assert len(df) == 1
    assert df["realized_return"].iloc[0] == pytest.approx(0.02)


def test_unknown_request_id(log: PredictionLog) -> None:
    log.log_prediction(record("known"))
    assert log.log_outcome("nope", 0.01) is False
    with pytest.raises(UnknownRequestIdError, match="unknown request_id 'nope'") as unknown:
        log.record_outcome("nope", 0.01)
    assert unknown.value.request_id == "nope"
    assert "use the request_id returned by /decide" in str(unknown.value)
    assert isinstance(unknown.value, LookupError)
    log.record_outcome("known", 0.01)


def test_outcome_right_after_prediction_finds_it(log: PredictionLog) -> None:
    # The prediction may still sit in the writer's buffer: the outcome must still join.
    for i in range(50):
        log.log_prediction(record(f"r{i}"))
        assert log.log_outcome(f"r{i}", 0.001 * i)
    assert log.frame()["realized_return"].notna().sum() == 50


class VirtualTime:
    """The log module's ``time`` for log_outcome's wait: ``sleep`` moves a virtual clock
    and runs what was scheduled for the instants it passes, so when the outcome was found
    is checked in virtual seconds, whatever the machine's load."""

    def __init__(self) -> None:
        self.now = 0.0
        self._due: list[tuple[float, object]] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        for when, action in [d for d in self._due if d[0] <= self.now]:
            self._due.remove((when, action))
            action()  # type: ignore[operator]

    def at(self, when: float, action: object) -> None:
        self._due.append((when, action))


def test_outcome_for_another_workers_row_joins_at_the_first_look_after_it_is_written(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two logs on one database, as two serving workers: the outcome reaches the one that
    did not log the prediction while the other still holds it in its buffer. The asking
    log looks again every 50 ms for up to four lingers: it joins the outcome at its first
    look after the holder's writer wrote the row (not at the end of its wait), and gives
    up on an id nobody logged only after the whole wait."""
    holder = PredictionLog(url, start=False)  # its writer runs when the test says
    asked = PredictionLog(url, linger=0.6, start=False)  # looks for up to 4 lingers: 2.4 s
    clock = VirtualTime()
    try:
        with monkeypatch.context() as virtual:
            virtual.setattr(log_module, "time", clock)
            holder.log_prediction(record("elsewhere"))
            clock.at(0.3, holder.flush)  # the holder's writer writes it within its linger
            assert asked.log_outcome("elsewhere", 0.01)
            assert holder.count() == 1
            assert 0.3 <= clock.now <= 0.3 + log_module._OUTCOME_POLL_SECONDS + 1e-9
            start = clock.now
            assert not asked.log_outcome("never-logged", 0.01)
            assert clock.now - start == pytest.approx(4 * 0.6)
    finally:
        holder.close()
        asked.close()
    with PredictionLog(url) as log:
        assert log.frame()["realized_return"].tolist() == [0.01]


def test_bad_outcome_value(log: PredictionLog) -> None:
    log.log_prediction(record("r1"))
    for bad in (float("nan"), float("inf"), "0.1"):
        with pytest.raises(ValueError, match="realized_return must be a finite number"):
            log.log_outcome("r1", bad)  # type: ignore[arg-type]


def test_concurrent_outcomes_for_one_request(log: PredictionLog) -> None:
    # Retries of one outcome may race (several service workers): last write wins, no error.
    log.log_prediction(record("r1"))
    assert log.flush()
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def post(k: int) -> None:
        barrier.wait()
        try:
            for j in range(20):
                assert log.log_outcome("r1", 0.001 * k + 1e-6 * j, caller=f"c{k}")
        except BaseException as exc:  # collected: a thread's exception would be lost
            errors.append(exc)

    threads = [threading.Thread(target=post, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with log.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM outcomes")).scalar() == 1
    assert len(log.frame()) == 1


def test_only_records_are_logged(log: PredictionLog) -> None:
    row = ("r1", "AAA", "v1", "primary")
    with pytest.raises(TypeError, match="log_prediction takes a PredictionRecord, got tuple"):
        log.log_prediction(row)  # type: ignore[arg-type]


def test_a_full_buffer_drops_and_the_log_closes_once(url: str) -> None:
    drops: list[int] = []
    plog = PredictionLog(url, max_queue=10, start=False, on_drop=lambda: drops.append(1))
    assert plog.log_predictions(record(f"r{i}") for i in range(15)) == 10
    assert plog.stats.dropped == 5 and len(drops) == 5
    plog.start()
    assert plog.flush(timeout=10)
    assert plog.stats == LogStats(enqueued=10, written=10, dropped=5, failed=0, pending=0)
    assert plog.count() == 10
    plog.close()
    with pytest.raises(RuntimeError, match="closed"):
        plog.log_prediction(record("late"))
    plog.close()  # idempotent


def test_flush_without_writer_thread_writes_inline(url: str) -> None:
    plog = PredictionLog(url, start=False)
    assert plog.log_predictions(record(f"r{i}") for i in range(5)) == 5
    assert plog.flush()
    assert plog.count() == 5
    plog.close()


def test_concurrent_writers_lose_nothing(log: PredictionLog) -> None:
    def write(worker: int) -> None:
        for i in range(300):
            assert log.log_prediction(record(f"w{worker}-{i}"))

    threads = [threading.Thread(target=write, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert log.flush()
    assert log.count() == 8 * 300
    assert log.stats.written == 8 * 300
    assert log.stats.failed == 0


def test_duplicate_row_is_skipped_not_the_batch(url: str) -> None:
    plog = PredictionLog(url, start=False)
    for rid in ("a", "b", "a", "c"):
        plog.log_prediction(record(rid))
    plog.flush()
    assert plog.count() == 3
    assert plog.stats.failed == 1
    assert plog.stats.written == 3
    plog.close()


def test_database_failure_is_counted_not_raised(url: str) -> None:
    plog = PredictionLog(url)
    predictions_table.drop(plog.engine)  # the table vanishes under the running writer
    plog.log_prediction(record("r1"))
    assert plog.flush()
    assert plog.stats.failed == 1
    assert plog.stats.written == 0
    plog.close()


def test_writer_settings_are_checked_before_the_database_is_opened(tmp_path: Path) -> None:
    db = tmp_path / "never.db"
    with pytest.raises(ValueError, match="max_queue and batch_size"):
        PredictionLog(f"sqlite:///{db}", batch_size=0)
    assert not db.exists()
