"""The service's feed clock: the newest applied bar, read from the stream's Redis."""

from __future__ import annotations

from datetime import UTC, datetime

import redis

from augur.config import Settings
from augur.serving._clock import FeedClock, make_clock
from augur.serving._ports import system_clock
from augur.stream import StreamKeys

EARLY = datetime(2001, 1, 1, tzinfo=UTC)


class _Redis:
    def __init__(self) -> None:
        self.value: bytes | None = None
        self.down = False
        self.keys: list[str] = []

    def get(self, key: str) -> bytes | None:
        self.keys.append(key)
        if self.down:
            raise redis.exceptions.ConnectionError("down")
        return self.value


def test_the_feed_clock_is_the_newest_bar_and_the_system_clock_before_the_first() -> None:
    client = _Redis()
    clock = FeedClock(client, StreamKeys(stream="bars"), fallback=lambda: EARLY)
    assert clock() == EARLY
    client.value = b"1483228800000"  # 2017-01-01
    assert clock() == datetime(2017, 1, 1, tzinfo=UTC)
    assert client.keys[-1] == "bars:clock"


def test_while_redis_is_down_the_last_time_read_answers() -> None:
    client = _Redis()
    clock = FeedClock(client, StreamKeys(), fallback=lambda: EARLY)
    client.value = b"1483228800000"
    first = clock()
    client.down = True
    assert clock() == first


def test_the_setting_names_the_clock() -> None:
    assert make_clock(Settings(clock="system")) is system_clock
    assert isinstance(make_clock(Settings(clock="feed", redis_url="127.0.0.1:1")), FeedClock)
