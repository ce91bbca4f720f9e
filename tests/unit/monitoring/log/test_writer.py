"""The background writer, on a stand-in for the database: enqueueing never blocks, a
full buffer drops, counts and warns, batches are taken per look, and nothing is
stranded."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from augur.monitoring.log import LogStats, PredictionRecord
from augur.monitoring.log._writer import BatchWriter
from tests.unit.monitoring.log.conftest import record, until


class Database:
    """Stands in for the insert: keeps each batch; ``slow`` seconds per batch; ``fail``
    raises instead of writing."""

    def __init__(self, slow: float = 0.0) -> None:
        self.batches: list[list[PredictionRecord]] = []
        self.slow = slow
        self.fail = False
        self._lock = threading.Lock()

    def write(self, batch: list[PredictionRecord]) -> tuple[int, int]:
        if self.fail:
            raise ConnectionError("the database is down")
        time.sleep(self.slow)
        with self._lock:
            self.batches.append(batch)
        return len(batch), 0

    @property
    def sizes(self) -> list[int]:
        return [len(b) for b in self.batches]

    @property
    def ids(self) -> list[str]:
        return [r.request_id for b in self.batches for r in b]


@pytest.fixture
def db() -> Database:
    return Database()


def test_a_full_buffer_drops_and_counts(db: Database, caplog: pytest.LogCaptureFixture) -> None:
    drops: list[int] = []
    writer = BatchWriter(db.write, max_queue=10, on_drop=lambda: drops.append(1))
    accepted = [writer.put(record(f"r{i}")) for i in range(15)]
    assert accepted == [True] * 10 + [False] * 5
    assert writer.stats == LogStats(enqueued=10, written=0, dropped=5, failed=0, pending=10)
    assert len(drops) == 5  # each drop reported (the metric)
    with caplog.at_level("WARNING", logger="augur.monitoring.log"):
        writer.warn_drops()  # the writer's look after a write
        writer.warn_drops()  # ... warns once a minute
    assert [r.getMessage() for r in caplog.records] == [
        "prediction log: 5 rows dropped so far: the buffer (10 rows) was full"
    ]
    writer.start()
    assert writer.flush(timeout=10)
    assert writer.stats == LogStats(enqueued=10, written=10, dropped=5, failed=0, pending=0)
    assert db.ids == [f"r{i}" for i in range(10)]  # in order
    writer.stop()
    with pytest.raises(RuntimeError, match="closed"):
        writer.put(record("late"))


def test_flush_without_a_thread_writes_on_the_caller_in_batches(db: Database) -> None:
    writer = BatchWriter(db.write, batch_size=4)
    assert all(writer.put(record(f"r{i}")) for i in range(10))
    assert writer.flush()
    assert db.sizes == [4, 4, 2]
    assert writer.stats.written == 10 and writer.stats.pending == 0


def test_a_failing_write_is_counted_and_the_writer_goes_on(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    writer = BatchWriter(db.write, linger=0.0)
    writer.start()
    db.fail = True
    with caplog.at_level("ERROR", logger="augur.monitoring.log"):
        writer.put(record("lost"))
        assert writer.flush(timeout=10)
    assert "writing 1 rows failed" in caplog.text and "the database is down" in caplog.text
    db.fail = False
    writer.put(record("kept"))
    assert writer.flush(timeout=10)
    assert writer.stats == LogStats(enqueued=2, written=1, dropped=0, failed=1, pending=0)
    assert db.ids == ["kept"]
    writer.stop()


def test_flush_gives_up_after_its_timeout() -> None:
    release = threading.Event()

    def stuck(batch: list[PredictionRecord]) -> tuple[int, int]:
        release.wait(30)
        return len(batch), 0

    writer = BatchWriter(stuck, linger=0.0)
    writer.start()
    writer.put(record("r1"))
    assert not writer.flush(timeout=0.05)
    release.set()
    assert writer.flush(timeout=10)
    writer.stop()


def test_concurrent_producers_lose_nothing(db: Database) -> None:
    writer = BatchWriter(db.write, linger=0.001)
    writer.start()

    def produce(worker: int) -> None:
        for i in range(300):
            assert writer.put(record(f"w{worker}-{i}"))

    threads = [threading.Thread(target=produce, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert writer.flush(timeout=30)
    assert sorted(db.ids) == sorted(f"w{w}-{i}" for w in range(8) for i in range(300))
    assert writer.stats.written == 8 * 300
    writer.stop()


def test_writer_batches_a_steady_trickle() -> None:
    """Records arriving while the writer writes wait for its next look: a record every
    couple of milliseconds gives at most one batch per linger (a few large ones), not one
    per record or two. The bound is counted in lingers of the time the trickle took, so a
    loaded machine that stretches it loosens the bound in step."""
    linger = 0.05
    db = Database(slow=0.005)  # a slow disk: records keep arriving meanwhile
    writer = BatchWriter(db.write, linger=linger)
    writer.start()
    started = time.monotonic()
    for i in range(120):
        assert writer.put(record(f"t{i}"))
        time.sleep(0.002)  # the trickle's pace; nothing is asserted about time
    assert writer.flush()
    lingers = (time.monotonic() - started) / linger
    assert sum(db.sizes) == 120
    assert len(db.sizes) <= lingers + 1, (db.sizes, lingers)  # + 1: the flush's own write
    assert writer.stats == LogStats(enqueued=120, written=120, dropped=0, failed=0, pending=0)
    writer.stop()


class WatchedWake(threading.Event):
    """The writer's wake-up event, counting the waits without a timeout (an idle writer
    asleep until a record arrives) and whether the writer is in one now."""

    def __init__(self) -> None:
        super().__init__()
        self.untimed = 0
        self.asleep = False

    def wait(self, timeout: float | None = None) -> bool:
        if timeout is not None:
            return super().wait(timeout)
        self.untimed += 1
        self.asleep = True
        try:
            return super().wait()
        finally:
            self.asleep = False


def test_idle_writer_sleeps_until_a_record_arrives(db: Database) -> None:
    """With nothing enqueued the writer sleeps on its event without a timeout (no
    polling); a record wakes it and is written at its next look, without a flush, and
    the writer goes back to sleep."""
    writer = BatchWriter(db.write, linger=0.01)
    wake = writer._wake = WatchedWake()
    writer.start()
    until(lambda: wake.asleep, "the idle writer asleep")
    assert (wake.untimed, db.sizes) == (1, [])  # asleep at once, without a look
    assert writer.put(record("first"))
    until(lambda: writer.stats.written == 1, "the record written without a flush")
    until(lambda: wake.untimed == 2 and wake.asleep, "the writer asleep again")
    assert db.sizes == [1]
    writer.stop()


def test_no_record_is_stranded_while_the_writer_goes_idle(db: Database) -> None:
    """Records from several threads, thread switches as often as the interpreter allows,
    a writer that goes idle between tiny batches: every record is written without a
    flush (a record appended just as the writer fell asleep must wake it)."""
    writer = BatchWriter(db.write, linger=0.0005)
    writer.start()
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:

        def produce(worker: int) -> None:
            for i in range(1500):
                writer.put(record(f"s{worker}-{i}"))
                if i % 50 == 0:
                    time.sleep(0.001)  # let the writer catch up and go idle

        threads = [threading.Thread(target=produce, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    until(lambda: writer.stats.written == 6000, "all 6000 records written", timeout=60)
    writer.stop()


def test_stop_writes_what_is_buffered(db: Database) -> None:
    writer = BatchWriter(db.write, linger=30.0)  # would wait half a minute for more
    wake = writer._wake = WatchedWake()
    writer.start()
    until(lambda: wake.asleep, "the writer running, asleep")
    writer.put(record("r1"))
    started = time.monotonic()
    writer.stop(timeout=10)
    assert db.ids == ["r1"] and time.monotonic() - started < 10


def test_settings_are_checked(db: Database) -> None:
    with pytest.raises(ValueError, match="max_queue and batch_size must be >= 1"):
        BatchWriter(db.write, max_queue=0)
    with pytest.raises(ValueError, match="max_queue and batch_size must be >= 1"):
        BatchWriter(db.write, batch_size=0)


class PolicySpy(Database):
    """Records the scheduling class the writer thread writes each batch in."""

    def __init__(self, slow: float = 0.0) -> None:
        super().__init__(slow)
        self.policies: list[int] = []

    def write(self, batch: list[PredictionRecord]) -> tuple[int, int]:
        import os

        self.policies.append(os.sched_getscheduler(0))
        return super().write(batch)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SCHED_IDLE is Linux's")
def test_an_idle_priority_writer_writes_in_sched_idle() -> None:
    import os

    spy = PolicySpy()
    writer = BatchWriter(spy.write, linger=0.001, priority="idle")
    writer.start()
    writer.put(record("r0"))
    assert writer.flush(5)
    writer.stop()
    assert spy.policies == [os.SCHED_IDLE]
    normal = PolicySpy()
    writer = BatchWriter(normal.write, linger=0.001)
    writer.start()
    writer.put(record("r0"))
    assert writer.flush(5)
    writer.stop()
    assert normal.policies == [os.SCHED_OTHER]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SCHED_IDLE is Linux's")
def test_an_idle_writer_behind_returns_to_normal_priority_until_caught_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import os

    spy = PolicySpy(slow=0.02)
    writer = BatchWriter(spy.write, max_queue=400, batch_size=10, linger=0.001, priority="idle")
    writer.start()
    writer.put(record("first"))
    assert writer.flush(5)
    assert spy.policies == [os.SCHED_IDLE]  # not behind: idle
    for i in range(300):  # three quarters of the buffer: the writer falls behind
        writer.put(record(f"r{i}"))
    assert writer.flush(30)
    writer.put(record("last"))
    assert writer.flush(5)
    writer.stop()
    assert spy.ids == ["first", *(f"r{i}" for i in range(300)), "last"]  # nothing lost
    try:  # may this process leave SCHED_IDLE (CAP_SYS_NICE)?
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        may_boost = True
    except OSError:
        may_boost = False
    if may_boost:
        assert os.SCHED_OTHER in spy.policies  # boosted while behind
        assert spy.policies[-1] == os.SCHED_IDLE  # and back to idle once caught up
    else:
        assert "may not leave idle priority" in caplog.text


def test_an_unknown_priority_is_refused(db: Database) -> None:
    with pytest.raises(ValueError, match="priority must be 'normal' or 'idle'"):
        BatchWriter(db.write, priority="low")  # type: ignore[arg-type]
