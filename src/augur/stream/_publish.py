"""Writing bars to the stream: a file or the sample data at once, or a replay that
publishes them in time order on a simulated clock.

Publishing does not validate: the consumer applies the import rules and sends what
breaks one to the dead-letter stream, whoever published it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pandas as pd

from augur.stream._keys import StreamKeys
from augur.stream._message import frame_entries

_CHUNK = 1000  # entries per pipelined round trip


def publish(
    client: Any,
    keys: StreamKeys,
    entries: Iterable[Mapping[str, str]],
    maxlen: int | None = None,
) -> list[str]:
    """XADD every entry (pipelined, in order); returns their stream ids."""
    ids: list[str] = []
    batch: list[Mapping[str, str]] = []

    def send() -> None:
        with client.pipeline(transaction=False) as pipe:
            for fields in batch:
                pipe.xadd(keys.stream, dict(fields), maxlen=maxlen, approximate=True)
            ids.extend(i.decode() if isinstance(i, bytes) else str(i) for i in pipe.execute())
        batch.clear()

    for fields in entries:
        batch.append(fields)
        if len(batch) >= _CHUNK:
            send()
    if batch:
        send()
    return ids


def in_time_order(bars: pd.DataFrame) -> pd.DataFrame:
    """Bars of any symbols ordered by time (then symbol): the order a feed delivers them."""
    out = bars.assign(timestamp=pd.to_datetime(bars["timestamp"], utc=True))
    return out.sort_values(["timestamp", "symbol"], kind="stable", ignore_index=True)


def replay(
    client: Any,
    keys: StreamKeys,
    bars: pd.DataFrame,
    speed: float,
    maxlen: int | None = None,
    on_step: Callable[[pd.Timestamp, int], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Publish ``bars`` in time order, the bars of one timestamp together, each
    timestamp when the simulated clock reaches it: ``speed`` market seconds pass per
    wall-clock second (3600: an hour a second). Returns the bars published."""
    if speed <= 0:
        raise ValueError(f"speed must be > 0 (market seconds per second), not {speed}")
    ordered = in_time_order(bars)
    if ordered.empty:
        return 0
    first = ordered["timestamp"].iloc[0]
    start = time.monotonic()
    sent = 0
    for ts, group in ordered.groupby("timestamp", sort=True):
        due = start + (ts - first).total_seconds() / speed
        wait = due - time.monotonic()
        if wait > 0:
            sleep(wait)
        publish(client, keys, frame_entries(group), maxlen)
        sent += len(group)
        if on_step is not None:
            on_step(ts, sent)
    return sent


__all__ = ["in_time_order", "publish", "replay"]
