"""The log's INSERTs: a batch of predictions (one executemany in one transaction, the
rows the database refuses skipped and named), an outcome that replaces an earlier one
for the same request, and drift statistics."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import fields
from datetime import datetime
from itertools import chain
from operator import attrgetter
from typing import Any

import sqlalchemy as sa

from augur.monitoring.log._schema import (
    PredictionRecord,
    drift_table,
    outcomes_table,
    predictions_table,
    to_utc,
    utcnow,
)

log = logging.getLogger(__name__)

_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(PredictionRecord))
_values_of = attrgetter(*_FIELDS)


def prediction_row(record: PredictionRecord) -> dict[str, Any]:
    """A record as the insert takes it: by column name, plain ints, times in UTC."""
    row = dict(zip(_FIELDS, _values_of(record), strict=True))
    row["direction"] = int(record.direction)  # e.g. a numpy integer
    row["ts"] = to_utc(record.ts)
    row["feature_timestamp"] = to_utc(record.feature_timestamp)
    return row


def insert_predictions(engine: sa.Engine, records: Sequence[PredictionRecord]) -> tuple[int, int]:
    """Write ``records``; returns (written, refused).

    One transaction for the batch. When the database refuses a row (a request id and
    role logged before, a value it will not store), that transaction is rolled back and
    the batch written again a row per transaction, so the other rows are kept and each
    refused one is named in the log. Any other database error (the server is down, the
    table is gone) is raised: the batch was not written.
    """
    if not records:
        return 0, 0
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                _insert_sqlite(conn, records)
            else:
                conn.execute(predictions_table.insert(), [prediction_row(r) for r in records])
    except (sa.exc.IntegrityError, sa.exc.DataError):
        return _insert_one_by_one(engine, [prediction_row(r) for r in records])
    return len(records), 0


# Rows per multi-row statement, at most: 18 parameters a row stays far below SQLite's
# limit on a statement's parameters (32,766).
_MOST_ROWS = 256


def _insert_sqlite(conn: sa.Connection, records: Sequence[PredictionRecord]) -> None:
    """The batch as multi-row INSERTs of a power of two rows each (300 rows: 256 + 32 +
    8 + 4).

    SQLite's writer shares the service's cores and its GIL. ``executemany`` steps the
    statement once per row and the driver releases and retakes the GIL around every
    step, so a busy request path starves the writer (its buffer fills and rows are
    dropped); a multi-row statement is one step. Powers of two: a statement of a size not
    seen before is parsed afresh, and at most nine sizes exist. The driver takes plain
    tuples, where SQLAlchemy's executemany converts every value in Python first.
    """
    _, values = _sqlite_insert()
    texts: dict[Any, str] = {}  # a batch's rows share a few times: each is written once
    rows = [values(r, texts) for r in records]
    at = 0
    while at < len(rows):
        n = min(_MOST_ROWS, 1 << ((len(rows) - at).bit_length() - 1))
        params = tuple(chain.from_iterable(rows[at : at + n]))
        conn.exec_driver_sql(_sqlite_insert_rows(n), params)
        at += n


@functools.lru_cache(maxsize=16)
def _sqlite_insert_rows(n: int) -> str:
    """The predictions INSERT with ``n`` rows of parameters."""
    sql, _ = _sqlite_insert()
    head, _, row = sql.partition(" VALUES ")
    return head + " VALUES " + ", ".join([row] * n)


@functools.cache
def _sqlite_insert() -> tuple[str, Any]:
    """The predictions INSERT as SQLite's driver takes it, and a function giving a
    record's values in its parameters' order, as SQLAlchemy stores them on SQLite: times
    as UTC text in its DATETIME format (which its reads parse back)."""
    from sqlalchemy.dialects import sqlite

    compiled = predictions_table.insert().compile(dialect=sqlite.dialect())
    order = list(compiled.positiontup or ())  # SQLite's paramstyle is positional
    values_of = attrgetter(*order)
    times = [order.index("ts"), order.index("feature_timestamp")]
    direction = order.index("direction")

    def values(record: PredictionRecord, texts: dict[Any, str]) -> tuple[Any, ...]:
        """``texts``: times already written as text (filled in here)."""
        row = list(values_of(record))
        for i in times:
            when = row[i]
            if when is not None:
                text = texts.get(when)
                if text is None:
                    text = texts[when] = _sqlite_time(when)
                row[i] = text
        row[direction] = int(row[direction])  # e.g. a numpy integer
        return tuple(row)

    return str(compiled), values


def _sqlite_time(when: datetime) -> str:
    """``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC, without a zone: SQLAlchemy's SQLite DATETIME
    text. Formatted naive (an aware time's isoformat also formats its offset)."""
    return to_utc(when).replace(tzinfo=None).isoformat(" ", "microseconds")


def _insert_one_by_one(engine: sa.Engine, rows: list[dict[str, Any]]) -> tuple[int, int]:
    # Every error is counted against its own row here: rows before it are already written.
    written = refused = 0
    for row in rows:
        try:
            with engine.begin() as conn:
                conn.execute(predictions_table.insert(), row)
        except Exception as exc:
            cause = getattr(exc, "orig", None) or exc
            log.warning(
                "prediction log: request %s role %s not written: %s",
                row["request_id"],
                row["role"],
                type(cause).__name__,
            )
            refused += 1
        else:
            written += 1
    return written, refused


def insert_outcome(engine: sa.Engine, request_id: str, realized_return: float, caller: str) -> bool:
    """Store the outcome of a logged request, replacing an earlier one; False (nothing
    stored) when no prediction carries ``request_id``."""
    known = sa.select(predictions_table.c.request_id).where(
        predictions_table.c.request_id == request_id
    )
    row = {
        "request_id": request_id,
        "realized_return": realized_return,
        "ts": utcnow(),
        "caller": caller,
    }
    with engine.begin() as conn:
        if conn.execute(known.limit(1)).first() is None:
            return False
        upsert = _upsert_outcome(conn.dialect.name)
        if upsert is None:  # neither SQLite nor PostgreSQL (untested): replace in two steps
            conn.execute(outcomes_table.delete().where(outcomes_table.c.request_id == request_id))
            upsert = outcomes_table.insert()
        conn.execute(upsert, [row])
    return True


@functools.cache
def _upsert_outcome(dialect: str) -> sa.Executable | None:
    """INSERT of an outcome that replaces an earlier one for the same request in one
    statement: concurrent retries of one outcome (several service workers) must not
    fail on the primary key, as a DELETE then INSERT does on PostgreSQL."""
    insert: Any
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        return None
    stmt = insert(outcomes_table)
    return stmt.on_conflict_do_update(
        index_elements=[outcomes_table.c.request_id],
        set_={name: stmt.excluded[name] for name in ("realized_return", "ts", "caller")},
    )


def insert_drift(engine: sa.Engine, rows: Iterable[Mapping[str, Any]]) -> int:
    """Store drift statistics (one row per model version and feature, the columns of the
    drift table); returns how many."""
    stored = [{**r, "ts": to_utc(r["ts"])} if "ts" in r else dict(r) for r in rows]
    if not stored:
        return 0
    with engine.begin() as conn:
        conn.execute(drift_table.insert(), stored)
    return len(stored)
