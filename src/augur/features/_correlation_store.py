"""Where the return correlations live online, next to the features: the matrix (one JSON
document) and each symbol's recent returns (one JSON document per symbol).

- SQLite (one machine): two tables in the online store's own file, ``online.db``;
- Redis (a cluster): the string ``augur:correlations`` and the hash
  ``augur:correlations:returns`` (field: symbol), in the database the features use.

The stores move text only; :mod:`augur.features.correlations` says what it means.
Replacing everything (a materialisation) is one transaction: SQLite ``BEGIN IMMEDIATE``,
Redis ``MULTI``/``EXEC``, so a reader sees the old matrix or the new one, never a mix.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

MATRIX_KEY = "augur:correlations"
RETURNS_KEY = "augur:correlations:returns"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS augur_correlations (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    matrix TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS augur_recent_returns (
    symbol TEXT PRIMARY KEY,
    returns TEXT NOT NULL
);
"""


class SqliteCorrelationStore:
    """The correlations in the SQLite online store's file (made on the first write)."""

    def __init__(self, path: Path | str, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self._timeout = timeout

    def _connect(self, write: bool) -> sqlite3.Connection | None:
        if write:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None)
            db.executescript(_SCHEMA)
            return db
        if not self.path.exists():
            return None
        # Read-only: a reader never creates the file or the tables.
        return sqlite3.connect(
            f"{self.path.resolve().as_uri()}?mode=ro",
            uri=True,
            timeout=self._timeout,
            isolation_level=None,
        )

    def _query(self, sql: str) -> list[Any]:
        db = self._connect(write=False)
        if db is None:
            return []
        try:
            return db.execute(sql).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise
        finally:
            db.close()

    def read_matrix(self) -> str | None:
        rows = self._query("SELECT matrix FROM augur_correlations WHERE id = 1")
        return rows[0][0] if rows else None

    def read_returns(self) -> dict[str, str]:
        return dict(self._query("SELECT symbol, returns FROM augur_recent_returns"))

    def write(self, matrix: str, returns: Mapping[str, str], replace: bool = False) -> None:
        """Write the matrix and these symbols' returns; ``replace``: drop every other
        symbol's returns too."""
        db = self._connect(write=True)
        assert db is not None
        try:
            db.execute("BEGIN IMMEDIATE")
            if replace:
                db.execute("DELETE FROM augur_recent_returns")
            db.executemany(
                "INSERT OR REPLACE INTO augur_recent_returns VALUES (?, ?)", returns.items()
            )
            db.execute("INSERT OR REPLACE INTO augur_correlations VALUES (1, ?)", (matrix,))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            db.close()


class RedisCorrelationStore:
    """The correlations in Redis, through a redis-py client the caller made."""

    def __init__(self, client: Any, matrix_key: str = MATRIX_KEY, returns_key: str = RETURNS_KEY):
        self._client = client
        self._matrix_key = matrix_key
        self._returns_key = returns_key

    def read_matrix(self) -> str | None:
        raw = self._client.get(self._matrix_key)
        return raw.decode() if isinstance(raw, bytes) else raw

    def read_returns(self) -> dict[str, str]:
        return {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in self._client.hgetall(self._returns_key).items()
        }

    def write(self, matrix: str, returns: Mapping[str, str], replace: bool = False) -> None:
        """As :meth:`SqliteCorrelationStore.write`, in one ``MULTI``/``EXEC``."""
        pipe = self._client.pipeline(transaction=True)
        if replace:
            pipe.delete(self._returns_key)
        if returns:
            pipe.hset(self._returns_key, mapping=dict(returns))
        pipe.set(self._matrix_key, matrix)
        pipe.execute()


__all__ = ["MATRIX_KEY", "RETURNS_KEY", "RedisCorrelationStore", "SqliteCorrelationStore"]
