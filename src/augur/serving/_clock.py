"""The clock decisions are made at: the machine's (``AUGUR_CLOCK=system``) or the feed's
(``AUGUR_CLOCK=feed``).

The feed clock is the time of the newest bar the stream consumers have applied
(:mod:`augur.stream`): they keep it in one Redis key next to the stream, moved forward in
the round that writes the bar's features, and this clock reads that key on every call.
Staleness is then measured against the feed, so a replay of old bars is decided as if
live, and a feed that stops makes the features stale by market time, not wall time.
One plain key, not a row in the online store: the consumers write it atomically with a
compare (it only moves forward) and the service reads it with one GET, whichever online
store (SQLite or Redis) holds the features.

Before the first bar there is no feed time, and the system clock answers; while the
stream's Redis cannot be reached the last time read answers.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from augur.config import Settings
from augur.serving._ports import Clock, system_clock

log = logging.getLogger(__name__)


class FeedClock:
    """The newest applied bar's time, read from the stream's Redis on each call."""

    def __init__(self, client: Any, keys: Any, fallback: Clock = system_clock) -> None:
        import redis

        self._client = client
        self._keys = keys
        self._fallback = fallback
        self._errors = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
        self._last: datetime | None = None
        self._failing = False

    def __call__(self) -> datetime:
        from augur.stream import read_feed_clock

        try:
            now = read_feed_clock(self._client, self._keys)
            if self._failing:
                log.warning("feed clock: the stream's Redis answers again")
                self._failing = False
        except self._errors as exc:
            if not self._failing:
                log.warning("feed clock: the stream's Redis is unreachable (%s)", exc)
                self._failing = True
            now = self._last
        if now is None:
            return self._fallback()
        self._last = now
        return now


def make_clock(settings: Settings) -> Clock:
    """The clock ``settings.clock`` names."""
    if settings.clock == "system":
        return system_clock
    from augur.stream import StreamKeys, redis_client

    return FeedClock(redis_client(settings.stream_redis_url), StreamKeys.from_settings(settings))


__all__ = ["FeedClock", "make_clock"]
