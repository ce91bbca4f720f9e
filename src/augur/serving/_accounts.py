"""The accounts the service keeps: equity, peak, loss streak and open positions per
``account_id``, in a store every worker and replica shares.

Accounting (one rule, :func:`settle_state`; the Redis script repeats it in Lua):

- an entry decision (``enter_long``/``enter_short``) for an account opens a position under
  its request id: the symbol and the signed size (direction × size, a fraction of equity);
- an outcome for that request id realises it: ``equity *= 1 + size × realized_return``
  (``realized_return`` is the decision's own return, so its sign already says whether the
  trade won), ``peak = max(peak, equity)``; a return below 0 is a loss (the streak grows
  and the loss time is kept), any other return ends the streak; the position closes. An
  outcome for a request id the account has no open position under changes nothing, so
  a repeated outcome is not counted twice.

``bars_since_last_loss`` is not stored: it is the whole bars (``AUGUR_BAR_SECONDS``)
between the last loss and the decision time, so a decision needs no write.

Every update is one atomic step on the shared store, never a read-modify-write by the
worker: SQLite ``BEGIN IMMEDIATE`` transactions (the writer lock is taken before the
read), Redis one Lua script (``EVAL`` runs alone on the server).
"""

from __future__ import annotations

import math
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from augur.decision import RiskState
from augur.serving._errors import AccountStoreUnavailableError
from augur.serving._schemas import ACCOUNT_ID_PATTERN


@dataclass(frozen=True, slots=True)
class AccountState:
    """One account as the store keeps it. ``positions`` maps the request id of each open
    entry to its symbol and signed size (fraction of equity; negative is short)."""

    equity: float = 1.0
    peak_equity: float = 1.0
    consecutive_losses: int = 0
    last_loss_at: datetime | None = None
    positions: Mapping[str, tuple[str, float]] = field(default_factory=dict)

    @property
    def open_exposure(self) -> dict[str, float]:
        """Signed exposure per symbol: the sum of its open positions."""
        exposure: dict[str, float] = {}
        for symbol, size in self.positions.values():
            exposure[symbol] = exposure.get(symbol, 0.0) + size
        return exposure

    def risk(self, now: datetime, bar_seconds: float) -> RiskState:
        """The account as the decision engine reads it at ``now``."""
        since = RiskState().bars_since_last_loss  # no loss yet: "long ago"
        if self.last_loss_at is not None:
            since = max(0, math.floor((now - self.last_loss_at).total_seconds() / bar_seconds))
        return RiskState(
            self.equity, self.peak_equity, self.consecutive_losses, since, self.open_exposure
        )

    def opened(self, request_id: str, symbol: str, size: float) -> AccountState:
        return replace(self, positions={**self.positions, request_id: (symbol, size)})


def settle_state(
    state: AccountState, request_id: str, realized_return: float, at: datetime
) -> AccountState | None:
    """The account after the outcome of ``request_id``; None when no position is open
    under it (see the module docstring)."""
    if request_id not in state.positions:
        return None
    _, size = state.positions[request_id]
    equity = max(0.0, state.equity * (1.0 + abs(size) * realized_return))
    loss = realized_return < 0
    return AccountState(
        equity=equity,
        peak_equity=max(state.peak_equity, equity),
        consecutive_losses=state.consecutive_losses + 1 if loss else 0,
        last_loss_at=at if loss else state.last_loss_at,
        positions={k: v for k, v in state.positions.items() if k != request_id},
    )


class SqliteAccounts:
    """Accounts in a SQLite file (one machine: every worker opens the same file)."""

    def __init__(self, path: Path | str, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # autocommit; each update is an explicit BEGIN IMMEDIATE transaction
        self._db = sqlite3.connect(
            self.path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        self._lock = threading.Lock()  # one connection, shared by the worker's threads
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(
                """
                CREATE TABLE IF NOT EXISTS accounts (
                    account_id TEXT PRIMARY KEY,
                    equity REAL NOT NULL,
                    peak_equity REAL NOT NULL,
                    consecutive_losses INTEGER NOT NULL,
                    last_loss_at REAL
                );
                CREATE TABLE IF NOT EXISTS account_positions (
                    account_id TEXT NOT NULL,
                    request_id TEXT NOT NULL,
                    symbol TEXT NOT NULL,
                    size REAL NOT NULL,
                    PRIMARY KEY (account_id, request_id)
                );
                """
            )

    def _read(self, account_id: str) -> AccountState:
        row = self._db.execute(
            "SELECT equity, peak_equity, consecutive_losses, last_loss_at FROM accounts "
            "WHERE account_id = ?",
            (account_id,),
        ).fetchone()
        positions = {
            rid: (symbol, size)
            for rid, symbol, size in self._db.execute(
                "SELECT request_id, symbol, size FROM account_positions WHERE account_id = ?",
                (account_id,),
            )
        }
        if row is None:
            return AccountState(positions=positions)
        equity, peak, losses, last = row
        at = None if last is None else datetime.fromtimestamp(last, UTC)
        return AccountState(equity, peak, losses, at, positions)

    def get(self, account_id: str) -> AccountState:
        with self._lock, _unavailable("sqlite"):
            self._db.execute("BEGIN")  # one snapshot for the account and its positions
            try:
                return self._read(account_id)
            finally:
                self._db.execute("COMMIT")

    def open(self, account_id: str, request_id: str, symbol: str, size: float) -> None:
        with self._lock, _unavailable("sqlite"):
            self._db.execute(
                "INSERT OR IGNORE INTO account_positions VALUES (?, ?, ?, ?)",
                (account_id, request_id, symbol, size),
            )

    def settle(
        self, account_id: str, request_id: str, realized_return: float, at: datetime
    ) -> AccountState | None:
        with self._lock, _unavailable("sqlite"):
            # The writer lock before the read: no other worker can settle in between.
            self._db.execute("BEGIN IMMEDIATE")
            try:
                after = settle_state(self._read(account_id), request_id, realized_return, at)
                if after is not None:
                    self._db.execute(
                        "DELETE FROM account_positions WHERE account_id = ? AND request_id = ?",
                        (account_id, request_id),
                    )
                    last = None if after.last_loss_at is None else after.last_loss_at.timestamp()
                    self._db.execute(
                        "INSERT OR REPLACE INTO accounts VALUES (?, ?, ?, ?, ?)",
                        (
                            account_id,
                            after.equity,
                            after.peak_equity,
                            after.consecutive_losses,
                            last,
                        ),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return after

    def close(self) -> None:
        with self._lock:
            self._db.close()


# KEYS: the account hash, its positions hash. ARGV: request id, realized return, time (epoch
# seconds). The same rule as settle_state; floats go through '%.17g' so none is rounded.
_SETTLE = """
local pos = redis.call('HGET', KEYS[2], ARGV[1])
if not pos then return false end
redis.call('HDEL', KEYS[2], ARGV[1])
local size = math.abs(tonumber(string.match(pos, '\\t(.*)$')))
local r = tonumber(ARGV[2])
local s = redis.call('HMGET', KEYS[1], 'equity', 'peak_equity', 'consecutive_losses', 'last_loss_at')
local equity = tonumber(s[1]) or 1.0
local peak = tonumber(s[2]) or 1.0
local losses = tonumber(s[3]) or 0
local last = s[4] or ''
equity = equity * (1.0 + size * r)
if equity < 0 then equity = 0.0 end
if equity > peak then peak = equity end
if r < 0 then losses = losses + 1; last = ARGV[3] else losses = 0 end
redis.call('HSET', KEYS[1], 'equity', string.format('%.17g', equity),
           'peak_equity', string.format('%.17g', peak), 'consecutive_losses', losses,
           'last_loss_at', last)
return 1
"""


def redis_client(url: str, timeout: float = 5.0) -> Any:
    """A redis-py client from a Feast-style connection string (``host:port[,db=N][,password=…]
    [,ssl=true]``, as ``AUGUR_REDIS_URL`` is written); a command that gets no answer
    within ``timeout`` seconds fails and is not retried (a retry would wait as long)."""
    import redis

    from augur.features.redis_url import redis_options

    kwargs = redis_options(url)
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # On the request path: one immediate retry of a lost connection, no backoff (redis-py's
    # default backs off 1-10 s three times, holding the worker's every request while Redis
    # is down).
    retry = Retry(NoBackoff(), 1, supported_errors=(redis.exceptions.ConnectionError,))
    return redis.Redis(
        **kwargs,
        socket_timeout=timeout,
        socket_connect_timeout=max(timeout, 1.0),
        retry=retry,
    )


class RedisAccounts:
    """Accounts in Redis (a cluster: every pod of every replica shares them)."""

    def __init__(
        self,
        client: Any,
        prefix: str = "augur:account:",
        timeout: float | None = None,
        open_seconds: float = 1.0,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._settle = client.register_script(_SETTLE)
        # After a command missed ``timeout`` (the client's socket timeout), commands fail
        # at once until this time (monotonic): a worker answers one batch at a time, so
        # each slow read would hold every request behind it. Then one tries Redis again.
        self._timeout = timeout
        self._open_seconds = open_seconds
        self._open_until = 0.0

    @classmethod
    def from_url(cls, url: str, timeout: float | None = None) -> RedisAccounts:
        if timeout is None:
            return cls(redis_client(url))
        return cls(redis_client(url, timeout), timeout=timeout)

    @contextmanager
    def _call(self) -> Iterator[None]:
        """One Redis call: errors as :class:`AccountStoreUnavailableError` (HTTP 503); one
        that misses the budget also makes the next ``open_seconds`` fail at once."""
        import time

        import redis

        budget = f"{self._timeout or 0:g} s budget (AUGUR_FEATURE_TIMEOUT_SECONDS)"
        now = time.monotonic()
        if now < self._open_until:
            raise AccountStoreUnavailableError(
                f"the account store (redis) missed the {budget} just before: failing at once "
                f"for {self._open_until - now:.1f} s more"
            )
        try:
            with _unavailable("redis"):
                yield
        except AccountStoreUnavailableError as exc:
            if self._timeout is not None and isinstance(
                exc.__cause__, redis.exceptions.TimeoutError
            ):
                self._open_until = time.monotonic() + self._open_seconds
                raise AccountStoreUnavailableError(
                    f"the account store (redis) did not answer within the {budget}; calls "
                    f"fail at once for the next {self._open_seconds:g} s"
                ) from exc.__cause__
            raise
        self._open_until = 0.0

    def _keys(self, account_id: str) -> tuple[str, str]:
        # One hash tag per account: both keys live on one cluster slot, as EVAL needs.
        key = f"{self._prefix}{{{account_id}}}"
        return key, f"{key}:positions"

    def get(self, account_id: str) -> AccountState:
        account, positions = self._keys(account_id)
        with self._call():
            pipe = self._client.pipeline(transaction=True)  # MULTI/EXEC: one snapshot
            pipe.hgetall(account)
            pipe.hgetall(positions)
            fields, open_ = pipe.execute()
        pos = {}
        for rid, value in open_.items():
            symbol, _, size = value.decode().partition("\t")
            pos[rid.decode()] = (symbol, float(size))
        if not fields:
            return AccountState(positions=pos)
        last = fields.get(b"last_loss_at", b"")
        return AccountState(
            float(fields[b"equity"]),
            float(fields[b"peak_equity"]),
            int(fields[b"consecutive_losses"]),
            datetime.fromtimestamp(float(last), UTC) if last else None,
            pos,
        )

    def open(self, account_id: str, request_id: str, symbol: str, size: float) -> None:
        _, positions = self._keys(account_id)
        with self._call():
            self._client.hsetnx(positions, request_id, f"{symbol}\t{size!r}")

    def settle(
        self, account_id: str, request_id: str, realized_return: float, at: datetime
    ) -> AccountState | None:
        """Settled in one script; the account returned is read just after it, so another
        worker's update may already be in it."""
        keys = self._keys(account_id)
        with self._call():
            done = self._settle(keys=keys, args=[request_id, repr(realized_return), at.timestamp()])
        return self.get(account_id) if done else None

    def close(self) -> None:
        self._client.close()


@contextmanager
def _unavailable(kind: str) -> Iterator[None]:
    """Store errors become :class:`AccountStoreUnavailableError` (HTTP 503)."""
    errors: tuple[type[BaseException], ...] = (sqlite3.OperationalError,)
    if kind == "redis":
        import redis

        errors = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
    try:
        yield
    except errors as exc:
        raise AccountStoreUnavailableError(f"the account store ({kind}) failed: {exc}") from exc


def open_accounts(
    online_store: str, redis_url: str, home: Path, timeout: float | None = None
) -> SqliteAccounts | RedisAccounts:
    """The account store the settings ask for: Redis when the online store is Redis (a
    cluster; each command within ``timeout`` seconds), else SQLite at
    ``<home>/serving/accounts.db``."""
    if online_store == "redis":
        return RedisAccounts.from_url(redis_url, timeout)
    return SqliteAccounts(home / "serving" / "accounts.db")


__all__ = [
    "ACCOUNT_ID_PATTERN",
    "AccountState",
    "RedisAccounts",
    "SqliteAccounts",
    "open_accounts",
    "redis_client",
    "settle_state",
]
