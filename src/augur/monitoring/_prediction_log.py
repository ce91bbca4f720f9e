"""The prediction/outcome log: every scored request (primary, canary and shadow) and the
realised outcome reported later, joined on the request id.

SQLAlchemy 2 Core, so the same code and schema run on SQLite (one machine; WAL mode so
readers never block the writer) and PostgreSQL (a cluster). Writes never sit on the
request path: :meth:`PredictionLog.log_row` only appends to a bounded buffer that a
background thread drains in batches; when the buffer is full the row is dropped and
counted rather than delaying the caller.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import logging
import math
import numbers
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import sqlalchemy as sa

from augur._cpu import set_thread_idle

if TYPE_CHECKING:
    import pandas as pd

    from augur.config import Settings

log = logging.getLogger(__name__)

Role = Literal["primary", "canary", "shadow"]
ROLES: tuple[str, ...] = ("primary", "canary", "shadow")

MAX_REQUEST_ID = 128

metadata = sa.MetaData()

predictions_table = sa.Table(
    "predictions",
    metadata,
    sa.Column("request_id", sa.String(MAX_REQUEST_ID), primary_key=True),
    # A request is scored by one serving version (primary or canary) and maybe a shadow:
    # the role is part of the key so both rows share the request id.
    sa.Column("role", sa.String(16), primary_key=True),
    sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
    sa.Column("symbol", sa.String(64), nullable=False),
    sa.Column("model_version", sa.String(128), nullable=False),
    sa.Column("model_tag", sa.String(256), nullable=False, default=""),
    sa.Column("features_digest", sa.String(64), nullable=False, default=""),
    sa.Column("p_up", sa.Float, nullable=False),
    sa.Column("p_down", sa.Float, nullable=False),
    sa.Column("p_flat", sa.Float, nullable=False),
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("agreement", sa.Float, nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("size", sa.Float, nullable=False),
    sa.Column("direction", sa.Integer, nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("feature_timestamp", sa.DateTime(timezone=True), nullable=True),
    sa.Column("routing_key", sa.String(256), nullable=False, default=""),
    # The log's own reads: by request id (the key: outcomes) and by time (reports since
    # a time, retention).
    sa.Index("ix_predictions_ts", "ts"),
    # Analysts' per-version and per-symbol windows, on PostgreSQL only: there the log is a
    # database on its own node. On one machine SQLite's writer shares the service's cores,
    # and these two indexes were a fifth of its CPU per row (measured: 12.7 -> 10.1 us).
    sa.Index("ix_predictions_version_ts", "model_version", "ts").ddl_if(dialect="postgresql"),
    sa.Index("ix_predictions_symbol_ts", "symbol", "ts").ddl_if(dialect="postgresql"),
)

outcomes_table = sa.Table(
    "outcomes",
    metadata,
    sa.Column("request_id", sa.String(MAX_REQUEST_ID), primary_key=True),
    sa.Column("realized_return", sa.Float, nullable=False),
    sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
    sa.Column("caller", sa.String(256), nullable=False, default=""),
)

# The drift monitor's latest statistics, so the offline report can show them.
drift_table = sa.Table(
    "drift",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
    sa.Column("model_version", sa.String(128), nullable=False),
    sa.Column("feature", sa.String(128), nullable=False),
    sa.Column("n_reference", sa.Integer, nullable=False),
    sa.Column("n_current", sa.Integer, nullable=False),
    sa.Column("ks_statistic", sa.Float, nullable=False),
    sa.Column("ks_pvalue", sa.Float, nullable=False),
    sa.Column("mw_pvalue", sa.Float, nullable=False),
    sa.Column("psi", sa.Float, nullable=False),
    sa.Column("drifted", sa.Boolean, nullable=False),
    sa.Column("model_drifted", sa.Boolean, nullable=False),
    sa.Index("ix_drift_version_ts", "model_version", "ts"),
)


# pg_advisory_xact_lock key held while creating the tables ("augurlog" in ASCII).
_SCHEMA_LOCK = int.from_bytes(b"augurlog", "big") & 0x7FFF_FFFF_FFFF_FFFF


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _to_utc(value: Any) -> Any:
    """Every stored timestamp is UTC: SQLite keeps no zone (an aware time would lose its
    offset), so aware times are converted and naive ones are taken to be UTC already."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


def features_digest(features: Mapping[str, float] | Sequence[float]) -> str:
    """A short, stable fingerprint of a feature vector (32 hex characters).

    Two predictions with the same digest saw the same features (names and float64
    values, in order), so a shadow and a primary row can be checked to have scored
    the same input without logging the features themselves.
    """
    h = hashlib.blake2b(digest_size=16)
    if isinstance(features, Mapping):
        for name, value in features.items():
            h.update(str(name).encode())
            h.update(struct.pack("<d", float(value)))
    else:
        for value in features:
            h.update(struct.pack("<d", float(value)))
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    """One scored request as logged (one row per request id and role).

    ``p_up``/``p_down``/``p_flat`` are the ensemble's class probabilities; ``direction``
    is +1/-1/0; ``action`` is the ``Decision.action`` value; ``latency_ms`` is the time
    spent scoring (for a shadow: its own scoring time, off the request path).
    """

    request_id: str
    symbol: str
    model_version: str
    role: str
    action: str
    p_up: float
    p_down: float
    p_flat: float
    confidence: float
    agreement: float
    size: float
    direction: int
    latency_ms: float
    model_tag: str = ""
    features_digest: str = ""
    feature_timestamp: datetime | None = None
    routing_key: str = ""
    ts: datetime = field(default_factory=_utcnow)

    def __post_init__(self) -> None:
        problem = row_problem(self.row())
        if problem is not None:
            raise ValueError(f"PredictionRecord.{problem}")

    def row(self) -> Row:
        """The record as a log row: its fields as a tuple, in declaration order."""
        return tuple(getattr(self, name) for name in ROW_FIELDS)

    def to_row(self) -> dict[str, Any]:
        """The row as inserted (plain Python types)."""
        return _insert_values(self.row())


# A log row: a PredictionRecord's fields as a plain tuple, in this order. The service
# builds rows straight from a decision (no record object on the request path); every
# writer checks them with ``row_problem`` before they reach the database.
Row = tuple[Any, ...]
ROW_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(PredictionRecord))
_NUMBER = (int, float)
_INTEGER = numbers.Integral  # int, bool, numpy integers
_NUMERIC_FIELDS = ("p_up", "p_down", "p_flat", "confidence", "agreement", "size", "latency_ms")
_REQUEST_ID = ROW_FIELDS.index("request_id")
_ROLE = ROW_FIELDS.index("role")
_NUMERIC = tuple((name, ROW_FIELDS.index(name)) for name in _NUMERIC_FIELDS)
_DIRECTION = ROW_FIELDS.index("direction")
_TS = ROW_FIELDS.index("ts")
_FEATURE_TS = ROW_FIELDS.index("feature_timestamp")
_TIMES = (_TS, _FEATURE_TS)
_TEXT = tuple(
    (name, ROW_FIELDS.index(name))
    for name in ("symbol", "model_version", "action", "model_tag", "features_digest", "routing_key")
)


def row_problem(row: Row) -> str | None:
    """What is wrong with a log row, naming the field (``None``: nothing)."""
    if len(row) != len(ROW_FIELDS):
        return f"row has {len(row)} values, a prediction has {len(ROW_FIELDS)} fields"
    request_id = row[_REQUEST_ID]
    if not request_id or not isinstance(request_id, str) or len(request_id) > MAX_REQUEST_ID:
        return f"request_id must be 1..{MAX_REQUEST_ID} characters, got {request_id!r:.40}"
    if row[_ROLE] not in ROLES:
        return f"role must be one of {ROLES}, got {row[_ROLE]!r}"
    for name, i in _NUMERIC:
        value = row[i]
        if not isinstance(value, _NUMBER) or value != value:  # NaN != NaN
            return f"{name} must be a number, got {value!r}"
    if not isinstance(row[_DIRECTION], _INTEGER):
        return f"direction must be an integer, got {row[_DIRECTION]!r}"
    for name, i in _TEXT:
        if not isinstance(row[i], str):
            return f"{name} must be a string, got {row[i]!r:.40}"
    if not isinstance(row[_TS], datetime):
        return f"ts must be a datetime, got {row[_TS]!r:.40}"
    if row[_FEATURE_TS] is not None and not isinstance(row[_FEATURE_TS], datetime):
        return f"feature_timestamp must be a datetime or None, got {row[_FEATURE_TS]!r:.40}"
    return None


# The types of each field of a row as the service builds it (ROW_FIELDS order): a chunk of
# such rows needs only the checks its types leave open.
_NOT_TEXT: dict[str, type] = {
    **dict.fromkeys(_NUMERIC_FIELDS, float),
    "direction": int,
    "ts": datetime,
    "feature_timestamp": datetime,
}
_SERVICE_ROW_TYPES: tuple[type, ...] = tuple(_NOT_TEXT.get(name, str) for name in ROW_FIELDS)
_ROLE_SET = frozenset(ROLES)


def _clean_chunk(rows: Sequence[Row]) -> bool:
    """True when every row of a chunk is typed as the service builds it and passes
    :func:`row_problem` — checked a column at a time (``zip(*rows)``), so the per-row work
    is done by C loops (``map``, ``set``, ``sum``), not by Python code per row. False says
    only that the rows need the row-by-row check: a numpy float, a bool direction, a row
    without a feature time or ``inf - inf`` are fine but take that path."""
    if set(map(len, rows)) != {len(ROW_FIELDS)}:
        return False
    columns = list(zip(*rows, strict=True))
    for column, kind in zip(columns, _SERVICE_ROW_TYPES, strict=True):
        if set(map(type, column)) != {kind}:
            return False
    lengths = set(map(len, columns[_REQUEST_ID]))
    if min(lengths) < 1 or max(lengths) > MAX_REQUEST_ID:
        return False
    if not _ROLE_SET.issuperset(columns[_ROLE]):
        return False
    total = sum(sum(columns[i]) for _, i in _NUMERIC)
    return bool(total == total)  # no NaN among them (inf - inf also takes the long way)


def _sift(rows: Sequence[Row]) -> tuple[list[Row], int]:
    """The rows :func:`row_problem` passes, and how many it refused (each named in the
    log with its request id)."""
    good = []
    for row in rows:
        problem = row_problem(row)
        if problem is None:
            good.append(row)
            continue
        log.warning(
            "prediction log: request %s not written: %s",
            row[_REQUEST_ID] if len(row) > _REQUEST_ID else "?",
            problem,
        )
    return good, len(rows) - len(good)


def _insert_values(row: Row) -> dict[str, Any]:
    """A row as the Core insert takes it: by column name, times in UTC."""
    values = dict(zip(ROW_FIELDS, row, strict=True))
    values["direction"] = int(row[_DIRECTION])
    for i in _TIMES:
        values[ROW_FIELDS[i]] = _to_utc(row[i])
    return values


class _PositionalInsert:
    """A batch of predictions as one multi-row INSERT in driver SQL, for drivers with
    positional parameters (SQLite's ``?``).

    The same stored values as ``conn.execute(table.insert(), [_insert_values(r) ...])`` (times
    to UTC, then the columns' own bind processors, e.g. SQLite's DATETIME → text), minus
    SQLAlchemy's per-row parameter handling — measured on SQLite, that handling cost as
    much CPU as the insert itself, in the serving worker's writer thread, which holds the
    GIL the request path needs. Drivers with named parameters (psycopg) keep the Core
    path.
    """

    def __init__(self, sql: str, names: Sequence[str], fixes: list[tuple[int, Any]]) -> None:
        self._head, self._one = sql.split(" VALUES ")
        # The statement's columns as positions in ROW_FIELDS (SQLite's compiled insert has
        # them in that order already).
        self._order = [ROW_FIELDS.index(n) for n in names]
        self._fixes = fixes
        self._width = len(names)
        # SQLite allows 32,766 parameters per statement (since 3.32): the largest power of
        # two of rows that fits.
        self.max_rows = 1 << ((32_766 // len(names)).bit_length() - 1)
        self._sql: dict[int, str] = {}

    @classmethod
    def for_engine(cls, engine: sa.Engine) -> _PositionalInsert | None:
        dialect = engine.dialect
        compiled = predictions_table.insert().compile(dialect=dialect, column_keys=list(ROW_FIELDS))
        if not compiled.positional or not compiled.positiontup:
            return None
        names = list(compiled.positiontup)
        fixes: list[tuple[int, Any]] = []
        for i, name in enumerate(names):
            kind = predictions_table.c[name].type
            impl = kind.dialect_impl(dialect)
            process = impl.bind_processor(dialect)
            if isinstance(kind, sa.DateTime):
                if getattr(impl, "_storage_format", None) == _SQLITE_DATETIME:
                    # the same text as SQLAlchemy's processor, at half its cost,
                    # remembered: a feature time repeats across a bar's requests, and
                    # the requests of one natural batch share their ``ts``
                    fixes.append((i, functools.lru_cache(maxsize=1024)(_sqlite_datetime_text)))
                else:
                    fixes.append((i, _utc_then(process)))
            elif isinstance(kind, sa.Integer):
                fixes.append((i, int))  # e.g. a numpy integer direction
            elif process is not None:
                fixes.append((i, process))
        return cls(compiled.string, names, fixes)

    def rows(self, batch: Sequence[Row]) -> list[Any]:
        """The batch's parameters, flat, in the statement's order: built a column at a
        time (transpose, convert the columns that need it with ``map``, transpose back),
        so no Python code runs per row — the writer shares the worker's GIL and cores."""
        columns: list[Iterable[Any]] = list(zip(*batch, strict=True))
        columns = [columns[i] for i in self._order]
        for i, fix in self._fixes:
            columns[i] = map(fix, columns[i])
        return list(itertools.chain.from_iterable(zip(*columns, strict=True)))

    def statement(self, rows: int) -> str:
        """The ``INSERT`` of ``rows`` rows (the same text every time: the driver caches
        the prepared statement by its text)."""
        sql = self._sql.get(rows)
        if sql is None:
            sql = self._sql[rows] = f"{self._head} VALUES {', '.join([self._one] * rows)}"
        return sql

    def write(self, conn: sa.Connection, batch: Sequence[Row]) -> None:
        """Insert the batch with multi-row ``INSERT``s of a power of two rows each (487
        rows: 256 + 128 + 64 + 32 + 4 + 2 + 1).

        Multi-row: one statement step, where ``executemany`` steps once per row — and the
        sqlite3 driver releases and retakes the GIL around every step, each time making
        the request path wait for it (measured: +50 to +100 us of the event loop's CPU
        per request while the writer ran). Powers of two: a batch's size varies with the
        traffic, and a statement of a size not seen before is parsed and planned afresh —
        measured on SQLite, 3 us per row more than a cached one (5.3 against 2.3 us per
        row executed); at most 11 sizes ever exist, each prepared once per connection.
        """
        params = self.rows(batch)
        width = self._width
        start, n = 0, len(batch)
        while start < n:
            size = min(self.max_rows, 1 << ((n - start).bit_length() - 1))
            conn.exec_driver_sql(
                self.statement(size), tuple(params[start * width : (start + size) * width])
            )
            start += size


# How often log_outcome looks again for a prediction another worker has yet to write.
_OUTCOME_POLL_SECONDS = 0.05

# Rows per INSERT statement under load (see PredictionLog._write_buffered).
_CHUNK = 128

# SQLAlchemy's storage format for SQLite DATETIME (``sqlite.DATETIME._storage_format``).
_SQLITE_DATETIME = (
    "%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d.%(microsecond)06d"
)


def _sqlite_datetime_text(value: Any, _format: str = "%04d-%02d-%02d %02d:%02d:%02d.%06d") -> Any:
    """A time as SQLAlchemy stores it in SQLite (UTC, no zone), positional ``%`` rather
    than the processor's dict: 0.7 against 1.5 us."""
    if value is None:
        return None
    if value.tzinfo is not None and value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return _format % (
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
    )


def _utc_then(process: Any) -> Any:
    if process is None:
        return _to_utc
    return lambda value: process(_to_utc(value))


WriterPriority = Literal["normal", "idle"]
WRITER_PRIORITIES: tuple[str, ...] = get_args(WriterPriority)


class UnknownRequestError(KeyError):
    """An outcome named a request id that was never logged (the service answers 404)."""

    def __init__(self, request_id: str) -> None:
        super().__init__(request_id)
        self.request_id = request_id

    def __str__(self) -> str:
        return (
            f"unknown request_id {self.request_id!r}: no prediction was logged under it "
            "(use the request_id returned by /decide)"
        )


@dataclass(frozen=True, slots=True)
class LogStats:
    """Counters of the buffered writer."""

    enqueued: int
    written: int
    dropped: int
    failed: int
    pending: int


def default_log_url(settings: Settings | None = None) -> str:
    """``AUGUR_PREDICTION_LOG_URL`` when set, else SQLite under ``<home>/serving/``."""
    if settings is None:
        from augur.config import get_settings

        settings = get_settings()
    if settings.prediction_log_url:
        return settings.prediction_log_url
    path = Path(settings.home).resolve() / "serving" / "predictions.db"
    return f"sqlite:///{path}"


_URL_EXAMPLES = (
    "'sqlite:///path/predictions.db' or 'postgresql+psycopg://user:password@host:5432/db'"
)


def _shown(url: sa.URL) -> str:
    return url.render_as_string(hide_password=True)


# The page cache of a log connection, in KiB (SQLite's default is 2 MiB). The writer
# appends, so only the right edge of each B-tree is hot; a cache twice a core's L2 (1 MiB
# per core here) only keeps recycling pages through it, evicting the serving worker's own
# working set. Measured at 8 clients on two workers (interleaved, 10 rounds): /decide
# 7,822 -> 8,567 req/s with 256 KiB; 1 MiB did as well (8,554 against 8,451).
_SQLITE_CACHE_KIB = 1024


def _make_engine(url: str) -> sa.Engine:
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        raise ValueError(
            f"prediction log URL {url!r} is not a SQLAlchemy URL; set AUGUR_PREDICTION_LOG_URL "
            f"like {_URL_EXAMPLES}"
        ) from None
    if parsed.get_backend_name() != "sqlite":
        return _make_server_engine(parsed)
    database = parsed.database or ""
    if database in ("", ":memory:"):
        # One shared connection, otherwise every thread would see its own empty database.
        engine = sa.create_engine(
            url, connect_args={"check_same_thread": False}, poolclass=sa.pool.StaticPool
        )
    else:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        # timeout: wait for another process's write lock instead of failing at once.
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @sa.event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        if database not in ("", ":memory:"):
            # WAL: the report (a reader) never blocks the service (the writer).
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA cache_size=-{_SQLITE_CACHE_KIB}")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    return engine


def _make_server_engine(parsed: sa.URL) -> sa.Engine:
    """A database server (PostgreSQL is the one tested): pooled connections, checked
    before use (pool_pre_ping), so a restarted server or a dropped idle connection costs
    a reconnect, not a failed batch."""
    connect_args: dict[str, Any] = {}
    backend = parsed.get_backend_name()
    if backend == "postgresql" and "connect_timeout" not in parsed.query:
        # An unreachable host fails the start within seconds, not after the OS's TCP timeout.
        connect_args["connect_timeout"] = 10
    try:
        engine = sa.create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
    except sa.exc.NoSuchModuleError:
        raise ValueError(
            f"AUGUR_PREDICTION_LOG_URL {_shown(parsed)!r}: unknown database dialect "
            f"{parsed.drivername!r}; use a URL like {_URL_EXAMPLES}"
        ) from None
    except ImportError as exc:
        hint = (
            "use 'postgresql+psycopg://' (psycopg 3, which Augur pins: "
            "pip install 'psycopg[binary]', part of `make setup`)"
            if backend == "postgresql"
            else f"install the Python package for {parsed.drivername!r}"
        )
        raise ValueError(
            f"AUGUR_PREDICTION_LOG_URL {_shown(parsed)!r} needs the database driver "
            f"{exc.name!r}, which is not installed: {hint}"
        ) from None
    if backend == "postgresql":

        @sa.event.listens_for(engine, "connect")
        def _utc_session(dbapi_conn: Any, _record: Any) -> None:
            # Naive datetimes mean UTC here, as on SQLite, and reads come back in UTC,
            # whatever the server's or the database's TimeZone setting.
            cur = dbapi_conn.cursor()
            cur.execute("SET TIME ZONE 'UTC'")
            cur.close()
            dbapi_conn.commit()  # a SET rolled back with its transaction would not stick

    return engine


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


def _as_utc(value: Any) -> Any:
    # SQLite hands back naive datetimes; every timestamp we store is UTC.
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class PredictionLog:
    """Prediction and outcome log behind a non-blocking buffered writer.

    ``url`` is a SQLAlchemy URL (``sqlite:///path.db``, ``postgresql+psycopg://…``).
    Tables are created when missing. ``log_prediction`` / ``log_row`` enqueue (never
    block); ``flush`` waits until everything enqueued so far is written; ``close``
    flushes and stops the writer thread. Safe to share between threads.

    ``writer_priority="idle"`` (the service's default) runs the writer thread in Linux's
    ``SCHED_IDLE`` class: its inserts use CPU time the request path leaves, and a waking
    request path preempts it at once. At ``"normal"`` a 50 ms batch is a ~2.5 ms burst of
    SQLite work that took a core from a worker mid-request (measured at 8 clients on two
    workers, interleaved 8 x 5 s: /decide 12,863 -> 13,615 req/s, p99 2.6 -> 2.0 ms; with
    no log at all 15,143 — a writer process at idle priority did no better, so the cost is
    the CPU, not the GIL). If the buffer fills to a quarter (the machine has no
    idle CPU), the writer goes back to normal priority until it has caught up — when the
    system lets it (``CAP_SYS_NICE``); otherwise it warns, and a full buffer drops rows,
    counted (``on_drop``, ``stats.dropped``).
    """

    def __init__(
        self,
        url: str,
        *,
        max_queue: int = 10_000,
        batch_size: int = 512,
        linger: float = 0.05,
        start: bool = True,
        writer_priority: WriterPriority = "normal",
        on_drop: Callable[[], None] | None = None,
    ) -> None:
        if max_queue < 1 or batch_size < 1:
            raise ValueError("max_queue and batch_size must be >= 1")
        if writer_priority not in WRITER_PRIORITIES:
            raise ValueError(
                f"writer_priority must be one of {WRITER_PRIORITIES}, got {writer_priority!r}"
            )
        self.url = url
        self.engine = _make_engine(url)
        self._create_tables()
        self._insert = _PositionalInsert.for_engine(self.engine)
        # The request path appends, the writer pops from the other end: both are atomic on
        # a deque, so enqueueing takes no lock (a queue.Queue put is a Condition, a lock
        # and a notify, ~1.5 us, on every request).
        self._rows: deque[Row] = deque()
        self._max_queue = max_queue
        self._batch_size = batch_size
        self._linger = linger
        self._lock = threading.Lock()  # the counters, and taking rows off the buffer
        # Set by a row that finds the writer idle (an idle writer sleeps on it: an idle log
        # costs nothing), and by flush and close (write now, do not linger).
        self._wake = threading.Event()
        self._idle = False
        self._hurry = False  # flush: write everything at the next look, no tail kept
        self._carried = 0  # rows the last look left in the buffer (a tail, see _run)
        self._stopping = False
        self._taken = 0  # rows the writer has taken off the buffer
        self._settled = 0  # ... and written or failed
        self._written = 0
        self._dropped = 0
        self._failed = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        self._priority = writer_priority
        self._on_drop = on_drop
        self.writer_tid: int | None = None  # the writer thread's native id, once it runs
        self.writer_boosted = False  # an idle writer back at normal priority, catching up
        self._warned_at = -math.inf
        self._warned_drops = 0
        if start:
            self.start()

    def _create_tables(self) -> None:
        try:
            conn = self.engine.connect()
        except sa.exc.DBAPIError as exc:
            self.engine.dispose()
            first_line = str(exc.orig or exc).strip().splitlines()[0]
            raise ValueError(
                f"cannot open the prediction log {_shown(self.engine.url)!r} "
                f"(AUGUR_PREDICTION_LOG_URL): {first_line}"
            ) from exc
        with conn:
            # Several worker processes start at once and each creates what is missing.
            # PostgreSQL: one at a time, under a transaction-scoped advisory lock (DDL is
            # transactional, so the next one finds the tables). SQLite: two may both find
            # a table missing and one CREATE then fails; the second try sees the tables.
            for attempt in range(5):
                try:
                    with conn.begin():
                        if conn.dialect.name == "postgresql":
                            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_SCHEMA_LOCK)))
                        metadata.create_all(conn)
                    return
                except (sa.exc.OperationalError, sa.exc.ProgrammingError, sa.exc.IntegrityError):
                    if attempt == 4:
                        raise
                    time.sleep(0.05 * (attempt + 1))

    # --- writer -------------------------------------------------------------------------
    def start(self) -> None:
        """Start the background writer (done by the constructor unless ``start=False``)."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._run, name="augur-prediction-log", daemon=True
            )
            self._thread.start()

    def log_prediction(self, record: PredictionRecord) -> bool:
        """Enqueue one prediction; never blocks. False (and counted) when the queue is full."""
        return self.log_row(record.row())

    def log_row(self, row: Row) -> bool:
        """Enqueue one prediction as a row (``ROW_FIELDS`` order; the writer checks it
        with :func:`row_problem` and counts a bad row as failed). Never blocks; False
        (and counted) when the queue is full."""
        if self._closed:
            raise RuntimeError("PredictionLog is closed")
        rows = self._rows
        if len(rows) >= self._max_queue:
            with self._lock:
                self._dropped += 1
            if self._on_drop is not None:
                self._on_drop()
            return False
        rows.append(row)
        # Append, then look: the writer marks itself idle, then looks at the buffer, then
        # sleeps — one of the two always sees the other.
        if self._idle:
            self._wake.set()
        return True

    def log_predictions(self, records: Iterable[PredictionRecord]) -> int:
        """Enqueue many predictions; returns how many were accepted."""
        return sum(self.log_prediction(r) for r in records)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything enqueued so far is written (or failed). False on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if not self._rows and self._taken == self._settled:
                    return True
            if time.monotonic() > deadline:
                return False
            if self._thread is None or not self._thread.is_alive():
                self._drain_inline()
                continue
            self._hurry = True
            self._wake.set()
            time.sleep(0.002)

    def close(self, timeout: float = 30.0) -> None:
        """Flush, stop the writer thread and release the connections. Idempotent."""
        if self._closed:
            return
        self.flush(timeout)
        self._closed = True
        self._stopping = True
        self._wake.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout)
        self.engine.dispose()

    def __enter__(self) -> PredictionLog:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def stats(self) -> LogStats:
        """Writer counters: enqueued, written, dropped (queue full), failed (DB errors)."""
        with self._lock:
            return LogStats(
                enqueued=self._taken + len(self._rows),
                written=self._written,
                dropped=self._dropped,
                failed=self._failed,
                pending=len(self._rows),
            )

    def _run(self) -> None:
        # Batching: once a row arrives, sleep ``linger`` seconds, then write what is
        # buffered (one transaction per batch is what keeps SQLite fast; a commit per
        # request took a third of a busy worker). Only a row that finds the writer idle
        # wakes it: a writer woken by every append is a thread switch per request on the
        # request path. 50 ms, not 20: bigger batches rewrite the indexes' last pages less
        # often (measured in a serving worker at 8 clients: ~22 us of writer CPU per row
        # against ~28). Longer did not pay: with 10 s loads (interleaved, 6 rounds) 50, 200
        # and 500 ms served 10,511, 10,660 and 10,645 req/s — a 3 s load had shown +7 % and
        # +20 %, because up to two lingers of rows are written after it ends. A row is
        # written within two lingers (see _write_buffered).
        wake = self._wake
        self.writer_tid = threading.get_native_id()
        if self._priority == "idle" and not set_thread_idle(self.writer_tid, True):
            log.info("prediction log: no SCHED_IDLE here; the writer runs at normal priority")
        while not (self._stopping and not self._rows):
            self._idle = True
            if not self._rows and not self._stopping:
                wake.wait()  # idle until a row arrives (or flush/close)
            self._idle = False
            wake.clear()
            # let the batch fill (unless a flush or close is waiting)
            if not (self._stopping or self._hurry) and wake.wait(self._linger):
                wake.clear()
            self._write_buffered()
            self.mind_backlog()

    def mind_backlog(self) -> None:
        """An idle-priority writer that falls behind (a quarter of the buffer waiting: no
        CPU is left idle) goes back to normal priority until the buffer is nearly empty;
        drops and a refused priority are warned about, at most once a minute."""
        backlog = len(self._rows)
        tid = self.writer_tid
        if self._priority == "idle" and tid is not None:
            if not self.writer_boosted and backlog >= self._max_queue // 4:
                if set_thread_idle(tid, False):
                    self.writer_boosted = True
                    log.info("prediction log: %d rows waiting, writer at normal priority", backlog)
                else:
                    self._warn(
                        f"{backlog} rows waiting and the writer may not leave idle priority "
                        "(no CAP_SYS_NICE): add CPU, or set "
                        "AUGUR_PREDICTION_LOG_WRITER_PRIORITY=normal"
                    )
            elif self.writer_boosted and backlog <= self._max_queue // 64:
                self.writer_boosted = not set_thread_idle(tid, True)
        dropped = self._dropped
        if dropped > self._warned_drops and self._warn(
            f"{dropped} rows dropped so far: the buffer ({self._max_queue} rows) was full"
        ):
            self._warned_drops = dropped

    def _warn(self, message: str) -> bool:
        now = time.monotonic()
        if now - self._warned_at < 60:
            return False
        self._warned_at = now
        log.warning("prediction log: %s", message)
        return True

    def _write_buffered(self, everything: bool = False) -> None:
        """Write the rows buffered now in whole chunks of ``_CHUNK`` rows, ``batch_size``
        at a time; the tail waits for the next look, once.

        Rows that arrive meanwhile wait for the next look: draining until empty would
        write a row or two per transaction while requests keep coming. Whole chunks keep
        the INSERTs to a few cached statement texts (see ``_PositionalInsert.write``) and
        few statements — each is two more GIL hand-offs with the request path (measured
        on SQLite with a busy thread: 4.4 us per row executed in chunks of one size, 7.9
        in varying batches split into powers of two). A tail left once is written at the
        next look whatever its size (it is the front of the buffer: in the first chunk,
        or with everything when fewer than a chunk wait); a flush, close or a writer-less
        drain writes everything.
        """
        n = seen = len(self._rows)
        hurry, self._hurry = self._hurry, False
        if not (everything or hurry or self._stopping):
            tail = n % _CHUNK
            if n - tail >= self._carried:  # the rows left last time go out now either way
                n -= tail
        self._carried = seen - n
        while n > 0:
            batch = self._take(min(n, self._batch_size))
            n -= len(batch)
            self._write(batch)

    def _take(self, n: int) -> list[Row]:
        """``n`` rows off the buffer, counted as taken in the same step (so ``flush`` never
        sees a row in neither place)."""
        rows = self._rows
        with self._lock:
            batch = [rows.popleft() for _ in range(min(n, len(rows)))]
            self._taken += len(batch)
        return batch

    def _drain_inline(self) -> None:
        while self._rows:
            self._write_buffered(everything=True)

    def _write(self, batch: list[Row]) -> None:
        written, failed = 0, len(batch)
        try:
            written, failed = self._insert_rows(batch)
        finally:
            with self._lock:  # one step: flush returns only once the counters are in
                self._written += written
                self._failed += failed
                self._settled += len(batch)

    def _insert_rows(self, batch: list[Row]) -> tuple[int, int]:
        """(written, failed). A bad row is named in the log and skipped (it was checked
        here, off the request path, not when it was enqueued); a duplicate (request id,
        role) costs a row-by-row retry; a database error fails the batch. Never raises:
        the log must not take the service down."""
        good, rejected = (batch, 0) if _clean_chunk(batch) else _sift(batch)
        if not good:
            return 0, rejected
        try:
            with self.engine.begin() as conn:
                if self._insert is not None:
                    self._insert.write(conn, good)
                else:
                    conn.execute(predictions_table.insert(), [_insert_values(r) for r in good])
            written, failed = len(good), 0
        except sa.exc.IntegrityError:
            # A duplicate (request_id, role) spoils the batch: write row by row, skip it.
            written, failed = self._write_rows([_insert_values(r) for r in good])
        except Exception:
            # The log must never take the service down; count and carry on.
            log.exception("prediction log: writing %d rows failed", len(good))
            written, failed = 0, len(good)
        return written, failed + rejected

    def _write_rows(self, rows: list[dict[str, Any]]) -> tuple[int, int]:
        written = failed = 0
        for row in rows:
            try:
                with self.engine.begin() as conn:
                    conn.execute(predictions_table.insert(), [row])
                written += 1
            except Exception as exc:
                log.warning(
                    "prediction log: request %s role %s not written: %s",
                    row.get("request_id"),
                    row.get("role"),
                    type(exc).__name__,
                )
                failed += 1
        return written, failed

    # --- outcomes -----------------------------------------------------------------------
    def log_outcome(self, request_id: str, realized_return: float, caller: str = "") -> bool:
        """Join a realised return to a logged prediction (synchronous).

        Returns False when no prediction carries ``request_id`` (the service answers 404);
        :meth:`record_outcome` raises :class:`UnknownRequestError` instead. Posting again
        for the same request replaces the earlier outcome (idempotent retries).
        """
        if not isinstance(realized_return, int | float) or not math.isfinite(realized_return):
            raise ValueError(f"realized_return must be a finite number, got {realized_return!r}")
        if self._insert_outcome(request_id, float(realized_return), caller):
            return True
        # The prediction may still be in the writer's buffer (or be written just now):
        # flush once and look again before calling the id unknown.
        self.flush(timeout=5.0)
        if self._insert_outcome(request_id, float(realized_return), caller):
            return True
        # Another worker process's writer may hold it for up to two lingers: look again
        # every 50 ms until then (and a little longer: its insert takes time too).
        deadline = time.monotonic() + 4 * self._linger
        while time.monotonic() < deadline:
            time.sleep(min(_OUTCOME_POLL_SECONDS, max(0.0, deadline - time.monotonic())))
            if self._insert_outcome(request_id, float(realized_return), caller):
                return True
        return False

    def record_outcome(self, request_id: str, realized_return: float, caller: str = "") -> None:
        """Like :meth:`log_outcome` but raises :class:`UnknownRequestError`."""
        if not self.log_outcome(request_id, realized_return, caller):
            raise UnknownRequestError(request_id)

    def _insert_outcome(self, request_id: str, realized_return: float, caller: str) -> bool:
        known = sa.select(predictions_table.c.request_id).where(
            predictions_table.c.request_id == request_id
        )
        row = {
            "request_id": request_id,
            "realized_return": realized_return,
            "ts": _utcnow(),
            "caller": caller,
        }
        with self.engine.begin() as conn:
            if conn.execute(known.limit(1)).first() is None:
                return False
            upsert = _upsert_outcome(conn.dialect.name)
            if upsert is None:  # neither SQLite nor PostgreSQL (untested): replace in two steps
                conn.execute(
                    outcomes_table.delete().where(outcomes_table.c.request_id == request_id)
                )
                upsert = outcomes_table.insert()
            conn.execute(upsert, [row])
        return True

    # --- drift snapshots ----------------------------------------------------------------
    def log_drift(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Store drift statistics (one row per model version and feature); synchronous."""
        rows = [{**r, "ts": _to_utc(r["ts"])} if "ts" in r else dict(r) for r in rows]
        if not rows:
            return 0
        with self.engine.begin() as conn:
            conn.execute(drift_table.insert(), rows)
        return len(rows)

    def drift_frame(self) -> pd.DataFrame:
        """The latest drift statistics per model version (empty frame when none)."""
        import pandas as pd

        latest = (
            sa.select(drift_table.c.model_version, sa.func.max(drift_table.c.ts).label("ts"))
            .group_by(drift_table.c.model_version)
            .subquery()
        )
        query = (
            sa.select(*[c for c in drift_table.c if c.name != "id"])
            .join(
                latest,
                sa.and_(
                    drift_table.c.model_version == latest.c.model_version,
                    drift_table.c.ts == latest.c.ts,
                ),
            )
            .order_by(drift_table.c.model_version, drift_table.c.feature)
        )
        with self.engine.connect() as conn:
            result = conn.execute(query)
            df = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
        if not df.empty:
            df["ts"] = pd.to_datetime(df["ts"].map(_as_utc), utc=True)
        return df

    # --- reads --------------------------------------------------------------------------
    def frame(self, since: datetime | None = None) -> pd.DataFrame:
        """Every logged prediction (since ``since``) with its outcome, if any.

        Columns: the prediction fields, plus ``realized_return``, ``outcome_ts`` and
        ``caller`` (NaN/None where no outcome was reported). Sorted by ``ts``.
        """
        import pandas as pd

        p, o = predictions_table, outcomes_table
        query = sa.select(
            *p.c,
            o.c.realized_return,
            o.c.ts.label("outcome_ts"),
            o.c.caller,
        ).select_from(p.outerjoin(o, p.c.request_id == o.c.request_id))
        if since is not None:
            if since.tzinfo is None:
                raise ValueError("since must be timezone-aware (UTC)")
            query = query.where(p.c.ts >= since.astimezone(UTC))
        query = query.order_by(p.c.ts, p.c.request_id, p.c.role)
        with self.engine.connect() as conn:
            result = conn.execute(query)
            df = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
        for col in ("ts", "feature_timestamp", "outcome_ts"):
            df[col] = pd.to_datetime(df[col].map(_as_utc), utc=True)
        df["realized_return"] = df["realized_return"].astype(float)
        df["direction"] = df["direction"].astype(int)
        return df

    def prune(self, before: datetime) -> int:
        """Delete predictions (and their outcomes, and drift rows) older than ``before``.

        The log otherwise grows forever; run this from a periodic job. Returns the
        number of predictions deleted.
        """
        if before.tzinfo is None:
            raise ValueError("before must be timezone-aware (UTC)")
        cutoff = before.astimezone(UTC)
        p, o = predictions_table, outcomes_table
        with self.engine.begin() as conn:
            deleted = conn.execute(p.delete().where(p.c.ts < cutoff)).rowcount
            orphans = ~sa.exists().where(p.c.request_id == o.c.request_id)
            conn.execute(o.delete().where(orphans))
            conn.execute(drift_table.delete().where(drift_table.c.ts < cutoff))
        return int(deleted or 0)

    def count(self) -> int:
        """Number of logged predictions (all roles)."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(sa.select(sa.func.count()).select_from(predictions_table)).scalar_one()
            )


__all__ = [
    "ROLES",
    "LogStats",
    "PredictionLog",
    "PredictionRecord",
    "UnknownRequestError",
    "default_log_url",
    "features_digest",
]
