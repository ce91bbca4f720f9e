"""A full disk under a SQLite prediction log: the batch is kept for a retry
(LogUnavailable), not failed and lost (found by the chaos scenario 'prediction log
(SQLite) disk full')."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy as sa

from augur.monitoring.log._log import _unreachable_as_unavailable
from augur.monitoring.log._writer import LogUnavailable


def _error(message: str, code: int) -> sa.exc.OperationalError:
    orig = sqlite3.OperationalError(message)
    orig.sqlite_errorcode = code  # type: ignore[attr-defined]
    return sa.exc.OperationalError("INSERT ...", {}, orig)


def test_sqlite_disk_full_is_unavailable_and_other_sqlite_errors_stay_errors() -> None:
    engine = sa.create_engine("sqlite://")
    with (
        pytest.raises(LogUnavailable, match="disk is full"),
        _unreachable_as_unavailable(engine),
    ):
        raise _error("database or disk is full", sqlite3.SQLITE_FULL)
    with pytest.raises(sa.exc.OperationalError), _unreachable_as_unavailable(engine):
        raise _error("no such table: x", sqlite3.SQLITE_ERROR)


def test_a_kept_batch_is_reported_and_written_once_the_database_takes_it() -> None:
    from augur.monitoring.log._writer import BatchWriter
    from tests.unit.monitoring.log.conftest import record

    full = [True]
    written: list[str] = []
    kept: list[int] = []

    def write(batch: list) -> tuple[int, int]:  # type: ignore[type-arg]
        if full[0]:
            full[0] = False
            raise LogUnavailable("database or disk is full")
        written.extend(r.request_id for r in batch)
        return len(batch), 0

    writer = BatchWriter(write, linger=0.0, on_unavailable=lambda: kept.append(1))
    writer.start()
    writer.put(record("a"))
    assert writer.flush(timeout=10)
    writer.stop()
    assert kept == [1] and written == ["a"]
