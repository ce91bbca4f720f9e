"""The account store: the accounting of entries and outcomes, the same on every adapter
(in memory, SQLite, Redis), and no update lost when several processes settle outcomes of
one account at once."""

from __future__ import annotations

import math
import multiprocessing
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from augur.decision import RiskState
from augur.serving._accounts import (
    AccountState,
    RedisAccounts,
    SqliteAccounts,
    open_accounts,
    redis_client,
)
from augur.serving._errors import AccountStoreUnavailableError
from augur.serving._memory import MemoryAccounts

T0 = datetime(2024, 1, 2, 12, tzinfo=UTC)
REDIS_DB = 9  # a database of its own on the session's Redis


@pytest.fixture(params=["memory", "sqlite", pytest.param("redis", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "memory":
        yield MemoryAccounts()
    elif request.param == "sqlite":
        s = SqliteAccounts(tmp_path / "accounts.db")
        yield s
        s.close()
    else:
        server = request.getfixturevalue("redis_server")
        # a prefix of its own per test: the session's Redis is shared
        r = RedisAccounts(
            redis_client(f"{server.url},db={REDIS_DB}"), prefix=f"t{uuid.uuid4().hex}:"
        )
        yield r
        r.close()


def test_a_new_account_is_fresh(store: Any) -> None:
    state = store.get("acct")
    assert state == AccountState()
    assert state.risk(T0, 3600.0) == RiskState()


def test_an_entry_opens_a_position_and_its_outcome_moves_equity_and_closes_it(
    store: Any,
) -> None:
    store.open("acct", "r1", "AAA", 0.1)
    store.open("acct", "r2", "BBB", -0.05)
    store.open("acct", "r3", "AAA", 0.02)
    assert store.get("acct").open_exposure == pytest.approx({"AAA": 0.12, "BBB": -0.05})

    won = store.settle("acct", "r1", 0.02, T0)
    assert won is not None
    assert won.equity == pytest.approx(1.0 * (1 + 0.1 * 0.02))
    assert won.peak_equity == pytest.approx(won.equity)
    assert won.consecutive_losses == 0 and won.last_loss_at is None

    lost = store.settle("acct", "r2", -0.04, T0 + timedelta(hours=1))
    assert lost is not None
    assert lost.equity == pytest.approx(won.equity * (1 - 0.05 * 0.04))
    assert lost.peak_equity == pytest.approx(won.equity)
    assert lost.consecutive_losses == 1
    assert lost.last_loss_at == T0 + timedelta(hours=1)
    assert store.get("acct").open_exposure == pytest.approx({"AAA": 0.02})

    risk = store.get("acct").risk(T0 + timedelta(hours=3, minutes=30), 3600.0)
    assert risk.consecutive_losses == 1
    assert risk.bars_since_last_loss == 2  # whole bars since the loss
    assert risk.drawdown == pytest.approx(1 - lost.equity / won.equity)
    assert risk.open_exposure == pytest.approx({"AAA": 0.02})


def test_a_win_ends_the_losing_streak(store: Any) -> None:
    for i in range(3):
        store.open("acct", f"l{i}", "AAA", 0.1)
        store.settle("acct", f"l{i}", -0.01, T0)
    assert store.get("acct").consecutive_losses == 3
    store.open("acct", "w", "AAA", 0.1)
    after = store.settle("acct", "w", 0.01, T0 + timedelta(hours=1))
    assert after is not None and after.consecutive_losses == 0
    assert after.last_loss_at == T0  # the last loss is still when it was


def test_an_outcome_without_an_open_position_changes_nothing(store: Any) -> None:
    store.open("acct", "r1", "AAA", 0.1)
    assert store.settle("acct", "r1", -0.5, T0) is not None
    before = store.get("acct")
    assert store.settle("acct", "r1", -0.5, T0) is None  # repeated: not counted twice
    assert store.settle("acct", "never-entered", -0.5, T0) is None
    assert store.settle("other", "r1", -0.5, T0) is None  # another account's request
    assert store.get("acct") == before
    assert store.get("other") == AccountState()


def test_accounts_are_kept_apart(store: Any) -> None:
    store.open("a", "r", "AAA", 0.1)
    store.open("b", "r", "AAA", 0.3)
    store.settle("a", "r", -0.1, T0)
    assert store.get("a").consecutive_losses == 1
    assert store.get("b").consecutive_losses == 0
    assert store.get("b").open_exposure == {"AAA": 0.3}


def test_the_sqlite_store_outlives_its_process(tmp_path: Path) -> None:
    first = SqliteAccounts(tmp_path / "a.db")
    first.open("acct", "r1", "AAA", 0.1)
    first.settle("acct", "r1", -0.1, T0)
    first.open("acct", "r2", "BBB", 0.2)
    first.close()
    again = SqliteAccounts(tmp_path / "a.db")
    state = again.get("acct")
    again.close()
    assert state.consecutive_losses == 1 and state.last_loss_at == T0
    assert state.equity == pytest.approx(0.99) and state.open_exposure == {"BBB": 0.2}


def test_the_settings_pick_sqlite_under_the_home_or_redis(tmp_path: Path) -> None:
    local = open_accounts("sqlite", "unused:1", tmp_path)
    assert isinstance(local, SqliteAccounts)
    assert local.path == tmp_path / "serving" / "accounts.db"
    local.close()
    cluster = open_accounts("redis", "127.0.0.1:1,db=3", tmp_path)
    assert isinstance(cluster, RedisAccounts)
    kwargs = cluster._client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("127.0.0.1", 1, 3)
    # nothing listens on port 1: the store is unavailable (HTTP 503), named as such
    with pytest.raises(AccountStoreUnavailableError, match="account store"):
        cluster.get("acct")
    cluster.close()


# --- several processes, one account ----------------------------------------------------
PROCESSES = 4
OUTCOMES = 40


def _size(worker: int, i: int) -> float:
    return 0.01 + 0.001 * ((worker * 7 + i) % 13)


def _loss(worker: int, i: int) -> float:
    return -0.001 * (1 + (worker * 3 + i) % 11)


def _settle_many(kind: str, where: str, prefix: str, worker: int, start: Any) -> None:
    """One worker: opens and settles OUTCOMES positions of the shared account, all losses."""
    if kind == "sqlite":
        store: Any = SqliteAccounts(where)
    else:
        store = RedisAccounts(redis_client(where), prefix=prefix)
    start.wait()  # every worker starts together, so their updates interleave
    for i in range(OUTCOMES):
        rid = f"w{worker}-{i}"
        store.open("shared", rid, "AAA", _size(worker, i))
        assert store.settle("shared", rid, _loss(worker, i), T0) is not None
    store.close()


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("redis", marks=pytest.mark.integration)])
def test_concurrent_outcomes_for_one_account_from_several_processes_lose_no_update(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex}:"
    if kind == "sqlite":
        where = str(tmp_path / "accounts.db")
        SqliteAccounts(where).close()  # the tables exist before the race
    else:
        where = f"{request.getfixturevalue('redis_server').url},db={REDIS_DB}"
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    workers = [
        ctx.Process(target=_settle_many, args=(kind, where, prefix, w, start))
        for w in range(PROCESSES)
    ]
    for p in workers:
        p.start()
    start.set()
    for p in workers:
        p.join(timeout=120)
    assert [p.exitcode for p in workers] == [0] * PROCESSES

    store: Any = (
        SqliteAccounts(where)
        if kind == "sqlite"
        else RedisAccounts(redis_client(where), prefix=prefix)
    )
    final = store.get("shared")
    store.close()
    expected = math.prod(
        1 + _size(w, i) * _loss(w, i) for w in range(PROCESSES) for i in range(OUTCOMES)
    )
    assert final.consecutive_losses == PROCESSES * OUTCOMES  # every loss counted, once
    assert final.equity == pytest.approx(expected, rel=1e-12)
    assert final.peak_equity == 1.0
    assert final.positions == {}
