"""The account store's Redis calls under the budget (AUGUR_FEATURE_TIMEOUT_SECONDS): a
call that misses it is a 503 naming the setting, calls fail at once for a while after,
then Redis is tried again (found by the chaos scenario 'account store (Redis) 200 ms
slower, feature cache on')."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from augur.serving._accounts import RedisAccounts, redis_client
from augur.serving._errors import AccountStoreUnavailableError


class _SlowClient:
    def __init__(self) -> None:
        self.calls = 0
        self.slow = True

    def register_script(self, script: str) -> Any:
        return lambda **kw: 1

    def hsetnx(self, *args: Any) -> int:
        self.calls += 1
        if self.slow:
            raise redis.exceptions.TimeoutError("Timeout reading from socket")
        return 1


def test_a_call_over_budget_fails_then_calls_fail_at_once_then_redis_is_tried_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    client = _SlowClient()
    accounts = RedisAccounts(client, timeout=0.1, open_seconds=1.0)  # type: ignore[arg-type]
    with pytest.raises(AccountStoreUnavailableError, match="AUGUR_FEATURE_TIMEOUT_SECONDS"):
        accounts.open("a", "r1", "EURUSD", 0.1)
    now[0] += 0.5
    with pytest.raises(AccountStoreUnavailableError, match="failing at once"):
        accounts.open("a", "r2", "EURUSD", 0.1)
    assert client.calls == 1
    client.slow = False
    now[0] += 0.6
    accounts.open("a", "r3", "EURUSD", 0.1)
    assert client.calls == 2


def test_the_client_has_the_budget_and_retries_only_a_lost_connection() -> None:
    client = redis_client("127.0.0.1:1", timeout=0.1)
    assert client.connection_pool.connection_kwargs["socket_timeout"] == 0.1
    assert redis.exceptions.TimeoutError not in client.get_retry()._supported_errors
