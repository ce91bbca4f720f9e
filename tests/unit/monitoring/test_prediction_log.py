"""The prediction/outcome log: round trip, unknown ids, the buffered writer's limits."""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from augur.config import Settings
from augur.monitoring import (
    LogStats,
    PredictionLog,
    PredictionRecord,
    UnknownRequestError,
    default_log_url,
    features_digest,
)
from augur.monitoring._prediction_log import ROW_FIELDS, predictions_table


def record(
    request_id: str, role: str = "primary", version: str = "v1", **kw: object
) -> PredictionRecord:
    base: dict[str, object] = dict(
        request_id=request_id,
        symbol="AAA",
        model_version=version,
        role=role,
        action="enter_long",
        p_up=0.6,
        p_down=0.25,
        p_flat=0.15,
        confidence=0.4,
        agreement=0.75,
        size=0.05,
        direction=1,
        latency_ms=1.5,
    )
    base.update(kw)
    return PredictionRecord(**base)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The log's URL on each backend: a SQLite file, and an empty database on a real
    PostgreSQL server (tests/conftest.py starts a throwaway one)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'log.db'}"
    return str(request.getfixturevalue("postgres_db"))


@pytest.fixture
def log(url: str) -> Iterator[PredictionLog]:
    plog = PredictionLog(url)
    yield plog
    plog.close()


def test_round_trip_prediction_outcome_join(log: PredictionLog) -> None:
    feature_ts = datetime(2026, 1, 2, 3, 0, tzinfo=UTC)
    log.log_prediction(
        record(
            "r1",
            features_digest="abc",
            feature_timestamp=feature_ts,
            routing_key="AAA",
            model_tag="augur-ensemble:v1",
        )
    )
    log.log_prediction(record("r1", role="shadow", version="v2", action="no_action", direction=0))
    log.log_prediction(record("r2", role="canary", version="v3"))
    assert log.flush()
    assert log.log_outcome("r1", -0.012, caller="alice") is True

    df = log.frame()
    assert len(df) == 3
    r1 = df[df["request_id"] == "r1"].set_index("role")
    # The outcome belongs to the request: both the served and the shadow row see it.
    assert r1.loc["primary", "realized_return"] == pytest.approx(-0.012)
    assert r1.loc["shadow", "realized_return"] == pytest.approx(-0.012)
    assert r1.loc["primary", "caller"] == "alice"
    assert r1.loc["primary", "features_digest"] == "abc"
    assert r1.loc["primary", "feature_timestamp"] == feature_ts
    assert r1.loc["primary", "model_tag"] == "augur-ensemble:v1"
    assert r1.loc["shadow", "direction"] == 0
    assert df.loc[df["request_id"] == "r2", "realized_return"].isna().all()
    assert str(df["ts"].dt.tz) == "UTC"
    assert log.count() == 3


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
    with pytest.raises(UnknownRequestError, match="unknown request_id 'nope'"):
        log.record_outcome("nope", 0.01)
    log.record_outcome("known", 0.01)


def test_outcome_right_after_prediction_finds_it(log: PredictionLog) -> None:
    # The prediction may still sit in the writer's queue: the outcome must still join.
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
    from augur.monitoring import _prediction_log

    holder = PredictionLog(url, start=False)  # its writer runs when the test says
    asked = PredictionLog(url, linger=0.6, start=False)  # looks for up to 4 lingers: 2.4 s
    clock = VirtualTime()
    try:
        with monkeypatch.context() as virtual:
            virtual.setattr(_prediction_log, "time", clock)
            holder.log_prediction(record("elsewhere"))
            clock.at(0.3, holder.flush)  # the holder's writer writes it within its linger
            assert asked.log_outcome("elsewhere", 0.01)
            assert holder.count() == 1
            assert 0.3 <= clock.now <= 0.3 + _prediction_log._OUTCOME_POLL_SECONDS + 1e-9
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
    with pytest.raises(ValueError, match="realized_return"):
        log.log_outcome("r1", float("nan"))


def test_record_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match="role"):
        record("r", role="boss")
    with pytest.raises(ValueError, match="request_id"):
        record("")
    with pytest.raises(ValueError, match="p_up"):
        record("r", p_up=float("nan"))


def test_buffered_writer_counts_drops_when_full(url: str, caplog: pytest.LogCaptureFixture) -> None:
    drops: list[int] = []
    plog = PredictionLog(url, max_queue=10, start=False, on_drop=lambda: drops.append(1))
    accepted = [plog.log_prediction(record(f"r{i}")) for i in range(15)]
    assert accepted == [True] * 10 + [False] * 5
    assert plog.stats.dropped == 5 and len(drops) == 5  # each drop reported (the metric)
    with caplog.at_level("WARNING", logger="augur.monitoring._prediction_log"):
        plog.mind_backlog()  # the writer's look after a write
    assert "5 rows dropped so far" in caplog.text and "(10 rows) was full" in caplog.text
    assert plog.stats.pending == 10
    plog.start()
    assert plog.flush(timeout=10)
    stats = plog.stats
    assert (stats.enqueued, stats.written, stats.dropped, stats.pending) == (10, 10, 5, 0)
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


def _variants() -> list[tuple[str, tuple[object, ...]]]:
    """Log rows as the service builds them, with a field or two changed each."""
    import math

    import numpy as np

    good = record("v", feature_timestamp=datetime(2024, 1, 2, 11, tzinfo=UTC)).row()

    def with_(**changes: object) -> tuple[object, ...]:
        return tuple(changes.get(name, value) for name, value in zip(ROW_FIELDS, good, strict=True))

    return [
        ("good", good),
        ("numpy float", with_(p_up=np.float64(0.6))),
        ("integer size", with_(size=0)),
        ("infinite latency", with_(latency_ms=math.inf)),
        ("inf - inf", with_(p_up=math.inf, p_down=-math.inf)),
        ("bool direction", with_(direction=True)),
        ("no feature time", with_(feature_timestamp=None)),
        ("NaN", with_(confidence=math.nan)),
        ("text size", with_(size="0.1")),
        ("bad role", with_(role="boss")),
        ("empty id", with_(request_id="")),
        ("long id", with_(request_id="x" * 129)),
        ("float direction", with_(direction=1.0)),
        ("number symbol", with_(symbol=7)),
        ("text ts", with_(ts="2024-01-01")),
        ("short row", good[:-1]),
    ]


def test_writers_chunk_check_passes_only_rows_the_full_check_passes() -> None:
    from augur.monitoring._prediction_log import (
        _SERVICE_ROW_TYPES,
        _clean_chunk,
        row_problem,
    )

    def clean(*rows: tuple[object, ...]) -> bool:
        return _clean_chunk(rows)

    variants = _variants()
    good = variants[0][1]
    assert tuple(map(type, good)) == _SERVICE_ROW_TYPES
    assert clean(good, good, good)  # the service's rows take the column-wise path
    for label, row in variants:
        if clean(good, row, good):  # never passes a row the full check refuses
            assert row_problem(row) is None, label
        if row_problem(row) is not None:
            assert not clean(good, row, good), label
            assert not clean(row), label
    # which rows the column-wise check sends the long way although they are fine
    assert {label for label, row in variants if row_problem(row) is None and not clean(row)} == {
        "numpy float",
        "integer size",
        "inf - inf",
        "bool direction",
        "no feature time",
    }


def test_writer_names_a_bad_rows_field_and_writes_the_rest(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from augur.monitoring._prediction_log import row_problem

    plog = PredictionLog(url, start=False)
    rows = [(label, row) for label, row in _variants() if label != "good"]
    for i, (_, row) in enumerate(rows):  # a request id of its own each (the key)
        if row_problem(row) is None:
            row = (f"ok{i}", *row[1:])
        assert plog.log_row(row)
    bad = sum(row_problem(row) is not None for _, row in rows)
    with caplog.at_level("WARNING", logger="augur.monitoring._prediction_log"):
        assert plog.flush()
    assert plog.stats.failed == bad and plog.stats.written == len(rows) - bad == plog.count()
    assert "confidence must be a number" in caplog.text and "role must be one of" in caplog.text
    plog.close()


def test_frame_since_filters_and_requires_tz(log: PredictionLog) -> None:
    old = datetime(2026, 1, 1, tzinfo=UTC)
    new = datetime(2026, 1, 5, 12, tzinfo=timezone(timedelta(hours=2)))  # 10:00 UTC
    log.log_prediction(record("old", ts=old))
    log.log_prediction(record("new", ts=new))
    log.flush()
    df = log.frame(since=datetime(2026, 1, 5, 9, 30, tzinfo=UTC))
    assert df["request_id"].tolist() == ["new"]
    assert df["ts"].iloc[0] == datetime(2026, 1, 5, 10, tzinfo=UTC)
    with pytest.raises(ValueError, match="timezone"):
        log.frame(since=datetime(2026, 1, 1))


def test_in_memory_sqlite_is_shared_between_threads() -> None:
    with PredictionLog("sqlite://") as plog:
        plog.log_prediction(record("r1"))
        assert plog.log_outcome("r1", 0.5)
        assert len(plog.frame()) == 1


def test_sqlite_file_uses_wal_and_a_small_cache(tmp_path: Path) -> None:
    with (
        PredictionLog(f"sqlite:///{tmp_path / 'log.db'}") as log,
        log.engine.connect() as conn,
    ):
        assert conn.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
        # a small page cache (negative: KiB), not SQLite's 2 MiB default
        assert conn.execute(sa.text("PRAGMA cache_size")).scalar() == -1024


def test_default_log_url(tmp_path: Path) -> None:
    assert default_log_url(Settings(home=tmp_path)) == (
        f"sqlite:///{tmp_path.resolve() / 'serving' / 'predictions.db'}"
    )
    assert default_log_url(Settings(prediction_log_url="postgresql://u@h/db")) == (
        "postgresql://u@h/db"
    )


def test_empty_frames(log: PredictionLog) -> None:
    df = log.frame()
    assert df.empty
    assert "realized_return" in df.columns
    assert log.drift_frame().empty


def test_features_digest_is_stable_and_sensitive() -> None:
    a = features_digest({"ret_5": 0.1, "vol_20": 0.02})
    assert a == features_digest({"ret_5": 0.1, "vol_20": 0.02})
    assert len(a) == 32
    assert a != features_digest({"ret_5": 0.1, "vol_20": 0.0200001})
    assert a != features_digest({"vol_20": 0.02, "ret_5": 0.1})  # order is part of it
    assert features_digest([0.1, 0.02]) == features_digest((0.1, 0.02))


def test_long_request_id_is_refused() -> None:
    with pytest.raises(ValueError, match=r"request_id must be 1\.\.128"):
        record("x" * 129)


def test_prune_drops_old_predictions_with_their_outcomes(log: PredictionLog) -> None:
    old = datetime(2026, 1, 1, tzinfo=UTC)
    log.log_prediction(record("old", ts=old))
    log.log_prediction(record("old", role="shadow", ts=old))
    log.log_prediction(record("new"))
    assert log.log_outcome("old", 0.1)
    assert log.log_outcome("new", 0.2)
    log.log_drift(
        [
            {
                "ts": old,
                "model_version": "v1",
                "feature": "a",
                "n_reference": 1,
                "n_current": 1,
                "ks_statistic": 0.0,
                "ks_pvalue": 1.0,
                "mw_pvalue": 1.0,
                "psi": 0.0,
                "drifted": False,
                "model_drifted": False,
            }
        ]
    )
    assert log.prune(datetime(2026, 1, 2, tzinfo=UTC)) == 2
    df = log.frame()
    assert df["request_id"].tolist() == ["new"]
    assert df["realized_return"].tolist() == [0.2]
    assert log.drift_frame().empty
    with log.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM outcomes")).scalar() == 1
    with pytest.raises(ValueError, match="timezone"):
        log.prune(datetime(2026, 1, 2))


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


def drift_row(ts: datetime, version: str, feature: str, psi: float) -> dict[str, object]:
    return {
        "ts": ts,
        "model_version": version,
        "feature": feature,
        "n_reference": 100,
        "n_current": 50,
        "ks_statistic": 0.2,
        "ks_pvalue": 0.01,
        "mw_pvalue": 0.02,
        "psi": psi,
        "drifted": psi > 0.2,
        "model_drifted": psi > 0.2,
    }


def test_drift_frame_keeps_the_latest_snapshot_per_version(log: PredictionLog) -> None:
    t0 = datetime(2026, 2, 1, 12, tzinfo=UTC)
    t1 = datetime(2026, 2, 1, 13, 30, tzinfo=timezone(timedelta(hours=1)))  # 12:30 UTC
    assert log.log_drift(drift_row(t0, "v1", f, 0.1) for f in ("a", "b")) == 2
    assert log.log_drift(drift_row(t1, "v1", f, 0.3) for f in ("a", "b")) == 2
    # Naive means UTC, as everywhere in the log.
    assert log.log_drift([drift_row(datetime(2026, 2, 1, 11), "v2", "a", 0.05)]) == 1
    assert log.log_drift([]) == 0
    df = log.drift_frame()
    assert list(zip(df["model_version"], df["feature"], df["psi"], strict=True)) == [
        ("v1", "a", 0.3),
        ("v1", "b", 0.3),
        ("v2", "a", 0.05),
    ]
    assert df["ts"].tolist() == [
        datetime(2026, 2, 1, 12, 30, tzinfo=UTC),
        datetime(2026, 2, 1, 12, 30, tzinfo=UTC),
        datetime(2026, 2, 1, 11, tzinfo=UTC),
    ]
    assert df["drifted"].tolist() == [True, True, False]


def test_log_url_errors_name_the_setting_and_the_fix() -> None:
    with pytest.raises(ValueError, match=r"AUGUR_PREDICTION_LOG_URL.*postgresql\+psycopg://"):
        PredictionLog("not a url")
    with pytest.raises(ValueError, match=r"AUGUR_PREDICTION_LOG_URL.*unknown database dialect"):
        PredictionLog("nosuchdb://u@h/db")
    # psycopg2 is not what Augur pins: the message says which URL form works.
    with pytest.raises(ValueError, match="AUGUR_PREDICTION_LOG_URL") as missing:
        PredictionLog("postgresql+psycopg2://u:secret@127.0.0.1/db")
    assert "'psycopg2', which is not installed" in str(missing.value)
    assert "postgresql+psycopg://" in str(missing.value)
    assert "psycopg[binary]" in str(missing.value)
    assert "secret" not in str(missing.value)


def test_unreachable_server_fails_fast_naming_the_setting() -> None:
    from tests.conftest import free_port

    url = f"postgresql+psycopg://augur:secret@127.0.0.1:{free_port()}/augur"  # nobody listens
    with pytest.raises(ValueError, match="cannot open the prediction log") as refused:
        PredictionLog(url)
    assert "AUGUR_PREDICTION_LOG_URL" in str(refused.value)
    assert "127.0.0.1" in str(refused.value)
    assert "secret" not in str(refused.value)


def test_sqlite_multi_row_insert_stores_what_the_core_insert_stores(tmp_path: Path) -> None:
    """SQLite's writer builds one multi-row INSERT per batch by hand (the positional
    path); it must store byte-for-byte what SQLAlchemy's Core insert stores."""
    import numpy as np

    fast = PredictionLog(f"sqlite:///{tmp_path / 'fast.db'}", start=False)
    core = PredictionLog(f"sqlite:///{tmp_path / 'core.db'}", start=False)
    assert fast._insert is not None
    core._insert = None
    fast._insert.max_rows = 4  # a batch of 10 takes three statements: 4 + 4 + 2
    when = datetime(2024, 3, 1, 12, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    records = [
        record(
            f"r{i}",
            direction=np.int64(-1) if i % 2 else 1,
            feature_timestamp=when if i % 3 else None,
            ts=when + timedelta(seconds=i),
        )
        for i in range(10)
    ]
    for plog in (fast, core):
        assert plog.log_predictions(records) == 10
        assert plog.flush()
        assert plog.stats.written == 10

    def stored(plog: PredictionLog) -> list[tuple[object, ...]]:
        with plog.engine.connect() as conn:
            return list(conn.exec_driver_sql("SELECT * FROM predictions ORDER BY request_id"))

    assert len(stored(fast)) == 10
    assert stored(fast) == stored(core)
    assert fast.frame().equals(core.frame())
    fast.close()
    core.close()


def test_sqlite_writer_reuses_a_few_statement_sizes(tmp_path: Path) -> None:
    """Batches of every size from 1 to 40 rows are written as INSERTs of a power of two
    rows each: six statement texts in all, each prepared once (a statement of a new size
    is parsed afresh, which cost more than executing it), and every row stored."""
    plog = PredictionLog(f"sqlite:///{tmp_path / 'p.db'}", start=False)
    sizes: list[int] = []

    @sa.event.listens_for(plog.engine, "before_cursor_execute")
    def _seen(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.startswith("INSERT INTO predictions"):
            sizes.append(len(parameters) // len(ROW_FIELDS))

    n = 0
    for size in range(1, 41):
        assert plog.log_predictions([record(f"r{n + i}") for i in range(size)]) == size
        n += size
        assert plog.flush()
    assert set(sizes) == {1, 2, 4, 8, 16, 32}
    assert sum(sizes) == n == plog.count() == plog.stats.written
    assert len(sizes) == sum(bin(size).count("1") for size in range(1, 41))
    plog.close()


def test_sqlite_time_text_is_sqlalchemys() -> None:
    import functools

    from sqlalchemy.dialects import sqlite

    from augur.monitoring._prediction_log import _sqlite_datetime_text, _to_utc

    dialect = sqlite.dialect()
    process = sa.DateTime(timezone=True).dialect_impl(dialect).bind_processor(dialect)
    times = [
        datetime(2024, 3, 1, 12, 30, 15, 123456, tzinfo=UTC),
        datetime(2024, 3, 1, 12, 30, 15, tzinfo=UTC),  # no microseconds: still printed
        datetime(2024, 3, 1, 0, 30, 15, 7, tzinfo=timezone(timedelta(hours=2))),  # day before
        datetime(2024, 3, 1, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-5))),
        datetime(2024, 3, 1, 12, 0),  # naive: already UTC
        datetime(999, 1, 2, 3, 4, 5, 6),
        None,
    ]
    remembered = functools.lru_cache(maxsize=2)(_sqlite_datetime_text)  # as the writer uses it
    for value in times:
        assert _sqlite_datetime_text(value) == process(_to_utc(value))
        assert remembered(value) == process(_to_utc(value))
        assert remembered(value) == process(_to_utc(value))  # and from memory


def test_sqlite_log_keeps_only_the_indexes_its_reads_use(tmp_path: Path) -> None:
    plog = PredictionLog(f"sqlite:///{tmp_path / 'p.db'}", start=False)
    with plog.engine.connect() as conn:
        indexes = {i["name"] for i in sa.inspect(conn).get_indexes("predictions")}
    assert indexes == {"ix_predictions_ts"}  # plus the primary key's own
    plog.close()


def test_writer_batches_a_steady_trickle(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows arriving while the writer writes wait for its next look: a request every
    couple of milliseconds gives at most one transaction per linger (a few large ones),
    not one per row or two. The bound is counted in lingers of the time the trickle took,
    so a loaded machine that stretches it loosens the bound in step."""
    linger = 0.05
    plog = PredictionLog(url, linger=linger)
    sizes: list[int] = []
    insert = plog._insert_rows

    def counted(batch: list[tuple[object, ...]]) -> tuple[int, int]:
        sizes.append(len(batch))
        time.sleep(0.005)  # a slow disk: rows keep arriving meanwhile
        return insert(batch)

    monkeypatch.setattr(plog, "_insert_rows", counted)
    started = time.monotonic()
    for i in range(120):
        assert plog.log_prediction(record(f"t{i}"))
        time.sleep(0.002)  # the trickle's pace; nothing is asserted about time
    assert plog.flush()
    lingers = (time.monotonic() - started) / linger
    assert sum(sizes) == 120 and plog.count() == 120
    assert len(sizes) <= lingers + 1, (sizes, lingers)  # + 1: the flush's own write
    assert plog.stats == LogStats(enqueued=120, written=120, dropped=0, failed=0, pending=0)
    plog.close()


class WatchedWake(threading.Event):
    """The writer's wake-up event, counting the waits without a timeout (an idle writer
    asleep until a row arrives) and whether the writer is in one now."""

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


def _until(condition: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.005)


def test_idle_writer_sleeps_until_a_row_arrives(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With nothing logged the writer sleeps on its event without a timeout (no polling);
    a row wakes it, is left once as a tail (less than a chunk) and written at the next
    look, and the writer goes back to sleep without looking again."""
    plog = PredictionLog(url, linger=0.01, start=False)
    wake = plog._wake = WatchedWake()
    looks: list[int] = []
    write_buffered = plog._write_buffered

    def counted() -> None:
        looks.append(len(plog._rows))
        write_buffered()

    monkeypatch.setattr(plog, "_write_buffered", counted)
    plog.start()
    _until(lambda: wake.asleep, "the idle writer asleep")
    assert (wake.untimed, looks) == (1, [])  # asleep at once, without a look
    assert plog.log_prediction(record("first"))
    _until(lambda: plog.stats.written == 1, "the row written without a flush")
    _until(lambda: wake.untimed == 2 and wake.asleep, "the writer asleep again")
    assert looks == [1, 1]  # left once as a tail, written at the next look, then asleep
    plog.close()


def test_sqlite_writer_under_load_writes_whole_chunks(tmp_path: Path) -> None:
    """Rows arriving faster than a chunk per linger go out in INSERTs of whole chunks
    (a few statement texts, each prepared once); a look's tail waits for the next look,
    so only the final flush writes a statement smaller than a chunk. The load is paced
    by the writer's looks (two bursts of 97 rows arrive after each), not by the clock:
    a loaded machine cannot stretch it to fewer rows per look."""
    from augur.monitoring._prediction_log import _CHUNK

    plog = PredictionLog(f"sqlite:///{tmp_path / 'p.db'}", linger=0.05, start=False)
    sizes: list[int] = []

    @sa.event.listens_for(plog.engine, "before_cursor_execute")
    def _seen(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.startswith("INSERT INTO predictions"):
            sizes.append(len(parameters) // len(ROW_FIELDS))

    bursts = iter(range(1, 31))
    arrived = threading.Event()
    write_buffered = plog._write_buffered

    def look() -> None:
        write_buffered()
        for burst in itertools.islice(bursts, 2):  # arrive before the writer's next look
            assert plog.log_predictions([record(f"b{burst}-{i}") for i in range(97)]) == 97
            if burst == 30:
                arrived.set()

    plog._write_buffered = look  # type: ignore[method-assign]
    plog.start()
    assert plog.log_predictions([record(f"b0-{i}") for i in range(97)]) == 97
    assert arrived.wait(60), "the writer did not take every burst"
    assert plog.flush()
    assert sum(sizes) == 3007 == plog.count() == plog.stats.written
    assert all(size & (size - 1) == 0 for size in sizes), sizes  # powers of two
    assert sum(size for size in sizes if size < _CHUNK) < _CHUNK, sizes
    plog.close()


def test_no_row_is_stranded_while_the_writer_goes_idle(url: str) -> None:
    """Rows from several threads, thread switches as often as the interpreter allows, a
    writer that goes idle between tiny batches: every row is written without a flush (a
    row appended just as the writer fell asleep must wake it)."""
    import sys

    plog = PredictionLog(url, linger=0.0005)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:

        def write(worker: int) -> None:
            for i in range(1500):
                plog.log_prediction(record(f"s{worker}-{i}"))
                if i % 50 == 0:
                    time.sleep(0.001)  # let the writer catch up and go idle

        threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    _until(lambda: plog.stats.written == 6000, "all 6000 rows written", timeout=60)
    plog.close()


def test_postgresql_keeps_the_core_insert() -> None:
    engine = sa.create_engine("postgresql+psycopg://u@localhost/db")  # never connected
    from augur.monitoring._prediction_log import _PositionalInsert

    assert _PositionalInsert.for_engine(engine) is None


needs_sched_idle = pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")


def _writer_tid(plog: PredictionLog) -> int:
    _until(lambda: plog.writer_tid is not None, "the writer thread running")
    assert plog.writer_tid is not None
    return plog.writer_tid


@needs_sched_idle
def test_idle_priority_writer_runs_in_sched_idle_and_writes(tmp_path: Path) -> None:
    idle = PredictionLog(f"sqlite:///{tmp_path / 'idle.db'}", writer_priority="idle")
    normal = PredictionLog(f"sqlite:///{tmp_path / 'normal.db'}")
    try:
        assert os.sched_getscheduler(_writer_tid(idle)) == os.SCHED_IDLE
        assert os.sched_getscheduler(_writer_tid(normal)) == os.SCHED_OTHER
        assert idle.log_predictions(record(f"r{i}") for i in range(50)) == 50
        assert idle.flush(timeout=10) and idle.count() == 50
    finally:
        idle.close()
        normal.close()


@needs_sched_idle
@pytest.mark.skipif(os.geteuid() != 0, reason="leaving SCHED_IDLE needs CAP_SYS_NICE")
def test_idle_writer_behind_goes_back_to_normal_priority_until_caught_up(
    tmp_path: Path,
) -> None:
    plog = PredictionLog(f"sqlite:///{tmp_path / 'log.db'}", writer_priority="idle", max_queue=64)
    try:
        tid = _writer_tid(plog)
        plog.mind_backlog()  # nothing waiting: stays idle
        assert os.sched_getscheduler(tid) == os.SCHED_IDLE and not plog.writer_boosted
        # A quarter of the buffer waiting (appended behind the sleeping writer's back).
        plog._rows.extend(record(f"b{i}").row() for i in range(16))
        plog.mind_backlog()
        assert os.sched_getscheduler(tid) == os.SCHED_OTHER and plog.writer_boosted
        assert plog.flush(timeout=10) and plog.count() == 16
        # the writer looks again after its write
        _until(lambda: not plog.writer_boosted, "the writer back at idle priority")
        assert os.sched_getscheduler(tid) == os.SCHED_IDLE and not plog.writer_boosted
    finally:
        plog.close()


def test_idle_writer_refused_normal_priority_warns_once_a_minute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Without CAP_SYS_NICE an idle thread may not raise its priority: the writer says
    so, naming the setting, instead of falling behind silently."""
    from augur.monitoring import _prediction_log

    plog = PredictionLog(f"sqlite:///{tmp_path / 'log.db'}", max_queue=64, start=False)
    plog._priority = "idle"
    plog.writer_tid = threading.get_native_id()
    monkeypatch.setattr(_prediction_log, "set_thread_idle", lambda tid, idle: False)
    plog._rows.extend(record(f"b{i}").row() for i in range(16))
    with caplog.at_level("WARNING", logger="augur.monitoring._prediction_log"):
        plog.mind_backlog()
        plog.mind_backlog()
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "AUGUR_PREDICTION_LOG_WRITER_PRIORITY=normal" in warnings[0]
    assert not plog.writer_boosted
    plog.close()


def test_writer_priority_is_checked() -> None:
    with pytest.raises(ValueError, match="writer_priority must be one of"):
        PredictionLog("sqlite://", writer_priority="low")  # type: ignore[arg-type]
