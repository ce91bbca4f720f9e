"""The request path's Redis feature read under a budget (AUGUR_FEATURE_TIMEOUT_SECONDS):
a read that misses it fails naming the setting, and reads fail at once for a while
after, then try Redis again (found by the chaos scenario 'online store (Redis) 200 ms
slower')."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from augur.features._redis_online import RedisFeatureReader


class _SlowClient:
    def __init__(self) -> None:
        self.calls = 0
        self.slow = True

    def hmget(self, key: bytes, fields: Any) -> list[Any]:
        self.calls += 1
        if self.slow:
            raise redis.exceptions.TimeoutError("Timeout reading from socket")
        return [None] * len(fields)


def _reader(client: _SlowClient, open_seconds: float) -> RedisFeatureReader:
    return RedisFeatureReader(
        client,
        project="p",
        feature_view="fv",
        entity="symbol",
        names=["a", "b"],
        key_version=3,
        cache=False,
        timeout=0.1,
        open_seconds=open_seconds,
    )


def test_a_read_over_budget_fails_then_reads_fail_at_once_then_redis_is_tried_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    client = _SlowClient()
    reader = _reader(client, open_seconds=1.0)
    with pytest.raises(redis.exceptions.TimeoutError, match="AUGUR_FEATURE_TIMEOUT_SECONDS"):
        reader.read(["EURUSD"])
    assert client.calls == 1
    now[0] += 0.5
    with pytest.raises(redis.exceptions.TimeoutError, match="failing at once"):
        reader.read(["EURUSD"])
    assert client.calls == 1  # Redis was not asked
    client.slow = False
    now[0] += 0.6
    assert reader.read(["EURUSD"]) == [None]
    assert client.calls == 2


def test_fail_fast_gives_the_pool_the_budget_and_no_retry_on_a_timeout() -> None:
    from augur.features._redis_online import fail_fast

    client = redis.Redis(host="127.0.0.1", port=1)
    fail_fast(client, 0.1)
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == 0.1
    retry = client.get_retry()
    assert redis.exceptions.TimeoutError not in retry._supported_errors
