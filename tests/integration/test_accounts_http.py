"""The service keeps an account's risk state, over real HTTP: a real ``augur serve`` with
two worker processes, a real Redis (online features and the accounts), one tiny ensemble
that enters on the last bar of its symbol.

Decisions and outcomes name an ``account_id`` and never an account body; after
``cooldown_losses`` losing outcomes, whichever worker answers refuses the next entry with
the cool-down.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from augur.decision import DecisionConfig
from tests.conftest import RedisServer
from tests.integration._one_symbol import Served, client_of, one_version_served
from tests.integration.test_service_http import (
    AUTH,
)

pytestmark = pytest.mark.integration

REDIS_DB = 10  # a database of its own on the session's Redis
# As in test_versions_http: the tiny ensemble's confidence on AAPL's last daily bar passes
# the default gate and its Kelly size is positive, so a fresh account enters.
SYMBOL = "AAPL"
N_BARS = 400


@pytest.fixture(scope="module")
def served(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("accounts-home")
    with one_version_served(home, f"{redis_server.url},db={REDIS_DB}", SYMBOL, N_BARS) as s:
        yield s


@pytest.fixture(scope="module")
def client(served: Served) -> Iterator[httpx.Client]:
    with client_of(served, AUTH) as c:
        yield c


def _codes(decision: dict[str, Any]) -> list[str]:
    return [r["code"] for r in decision["reasons"]]


def test_after_a_losing_streak_the_cooldown_engages_without_the_client_saying_so(
    served: Served, client: httpx.Client
) -> None:
    from augur.serving._accounts import RedisAccounts

    account = f"desk-{uuid.uuid4().hex[:8]}"
    config = DecisionConfig()
    equity = 1.0
    for i in range(config.cooldown_losses):
        r = client.post("/decide", json={"symbol": SYMBOL, "account_id": account})
        assert r.status_code == 200, r.text
        decision = r.json()
        assert decision["action"] in ("enter_long", "enter_short"), decision
        assert decision["size"] > 0
        r = client.post(
            "/outcome",
            json={
                "request_id": decision["request_id"],
                "realized_return": -0.01,
                "account_id": account,
            },
        )
        assert r.status_code == 200, r.text
        equity *= 1 - decision["size"] * 0.01
        body = r.json()
        assert body["position_closed"] is True
        assert body["account"]["consecutive_losses"] == i + 1
        assert body["account"]["equity"] == pytest.approx(equity, rel=1e-12)

    r = client.post("/decide", json={"symbol": SYMBOL, "account_id": account})
    assert r.status_code == 200, r.text
    refused = r.json()
    assert refused["action"] == "risk_rejected" and "cooldown" in _codes(refused), refused
    # the same question without the account, and for another account, still enters
    fresh = client.post("/decide", json={"symbol": SYMBOL, "account_id": f"{account}-b"}).json()
    assert fresh["action"] in ("enter_long", "enter_short"), fresh
    plain = client.post("/decide", json={"symbol": SYMBOL}).json()
    assert plain["action"] in ("enter_long", "enter_short"), plain

    # what the workers wrote is in Redis, where every replica reads it
    store = RedisAccounts.from_url(served.settings.redis_url)
    state = store.get(account)
    store.close()
    assert state.consecutive_losses == config.cooldown_losses
    assert state.equity == pytest.approx(equity, rel=1e-12) and state.positions == {}


def test_an_account_id_with_an_account_body_is_422(client: httpx.Client) -> None:
    r = client.post(
        "/decide",
        json={"symbol": SYMBOL, "account_id": "desk", "account": {"equity": 0.5}},
    )
    assert r.status_code == 422 and r.json()["error"] == "validation_error"
    assert "either account_id" in r.json()["detail"]
