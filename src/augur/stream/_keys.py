"""The Redis keys of the live-bar machinery, all named after the bar stream's key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from augur.config import Settings


@dataclass(frozen=True)
class StreamKeys:
    """Where the stream, its group, its dead letters and the consumers' shared state live.

    ``stream:tail:<symbol>`` holds each symbol's recent bars and ``stream:last`` its last
    applied bar time (the consumers of a group share the symbols); ``stream:applied`` is
    the journal of applied bars the offline dataset is appended from; ``stream:clock`` is
    the feed clock (epoch milliseconds of the newest bar seen).
    """

    stream: str = "augur:bars"
    group: str = "augur-features"
    dead_letters: str = "augur:bars:dead"

    @classmethod
    def from_settings(cls, settings: Settings) -> StreamKeys:
        return cls(settings.stream_key, settings.stream_group, settings.stream_dead_letter_key)

    def tail(self, symbol: str) -> str:
        return f"{self.stream}:tail:{symbol}"

    @property
    def last(self) -> str:
        return f"{self.stream}:last"

    @property
    def journal(self) -> str:
        return f"{self.stream}:applied"

    @property
    def clock(self) -> str:
        return f"{self.stream}:clock"

    @property
    def flush_lock(self) -> str:
        return f"{self.stream}:flush-lock"


def redis_client(url: str) -> Any:
    """A redis-py client from a Feast-style connection string (``host:port[,db=N]
    [,password=…][,ssl=true]``, as ``AUGUR_REDIS_URL`` is written)."""
    import redis

    from augur.features.redis_url import redis_options

    kwargs = redis_options(url)
    return redis.Redis(**kwargs, socket_timeout=10.0, socket_connect_timeout=5.0)


__all__ = ["StreamKeys", "redis_client"]
