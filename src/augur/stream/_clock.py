"""The feed clock as the consumers keep it: epoch milliseconds of the newest bar applied,
in one Redis key (``<stream>:clock``) next to the stream."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from augur.stream._keys import StreamKeys


def read_feed_clock(client: Any, keys: StreamKeys) -> datetime | None:
    """The newest bar time the consumers have applied; None before the first bar."""
    raw = client.get(keys.clock)
    if raw is None:
        return None
    return datetime.fromtimestamp(int(raw) / 1000.0, tz=UTC)


__all__ = ["read_feed_clock"]
