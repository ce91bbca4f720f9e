"""Opening the log's database: an engine for a SQLite file (WAL, a small page cache) or a
database server (pooled connections checked before use, UTC sessions), with the tables
created when missing. A bad URL, a missing driver or an unreachable server fails here,
at start, naming AUGUR_PREDICTION_LOG_URL and what to do."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from augur.monitoring.log._schema import metadata

if TYPE_CHECKING:
    from augur.config import Settings

_URL_EXAMPLES = (
    "'sqlite:///path/predictions.db' or 'postgresql+psycopg://user:password@host:5432/db'"
)

# The page cache of a SQLite log connection, in KiB (SQLite's default is 2 MiB). The
# writer appends, so only the right edge of each B-tree is hot: a bigger cache only cycles
# pages through the CPU caches the serving worker shares.
_SQLITE_CACHE_KIB = 1024

# pg_advisory_xact_lock key held while creating the tables ("augurlog" in ASCII).
_SCHEMA_LOCK = int.from_bytes(b"augurlog", "big") & 0x7FFF_FFFF_FFFF_FFFF


def default_log_url(settings: Settings | None = None) -> str:
    """``AUGUR_PREDICTION_LOG_URL`` when set, else SQLite under ``<home>/serving/``."""
    if settings is None:
        from augur.config import get_settings

        settings = get_settings()
    if settings.prediction_log_url:
        return settings.prediction_log_url
    path = Path(settings.home).resolve() / "serving" / "predictions.db"
    return f"sqlite:///{path}"


def open_engine(url: str) -> sa.Engine:
    """An engine on the log at ``url``, its tables created when missing."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        raise ValueError(
            f"prediction log URL {url!r} is not a SQLAlchemy URL; set AUGUR_PREDICTION_LOG_URL "
            f"like {_URL_EXAMPLES}"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        engine = _sqlite_engine(parsed)
    else:
        engine = _server_engine(parsed)
    _create_tables(engine)
    return engine


def shown(url: sa.URL) -> str:
    """A URL as it may appear in a message: without its password."""
    return url.render_as_string(hide_password=True)


def _sqlite_engine(parsed: sa.URL) -> sa.Engine:
    database = parsed.database or ""
    in_memory = database in ("", ":memory:")
    if in_memory:
        # One shared connection, otherwise every thread would see its own empty database.
        engine = sa.create_engine(
            parsed, connect_args={"check_same_thread": False}, poolclass=sa.pool.StaticPool
        )
    else:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        # timeout: wait for another process's write lock instead of failing at once.
        engine = sa.create_engine(parsed, connect_args={"timeout": 30, "check_same_thread": False})

    @sa.event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        if not in_memory:
            # WAL: the report (a reader) never blocks the service (the writer).
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA cache_size=-{_SQLITE_CACHE_KIB}")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    return engine


def _server_engine(parsed: sa.URL) -> sa.Engine:
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
            f"AUGUR_PREDICTION_LOG_URL {shown(parsed)!r}: unknown database dialect "
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
            f"AUGUR_PREDICTION_LOG_URL {shown(parsed)!r} needs the database driver "
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


def _create_tables(engine: sa.Engine) -> None:
    try:
        conn = engine.connect()
    except sa.exc.DBAPIError as exc:
        engine.dispose()
        first_line = str(exc.orig or exc).strip().splitlines()[0]
        raise ValueError(
            f"cannot open the prediction log {shown(engine.url)!r} "
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
