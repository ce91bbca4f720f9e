"""The offline side of live bars: the journal of applied bars appended to the parquet
bars dataset in batches, so training later sees what serving saw.

A round's applied bars enter the journal (a Redis stream, one entry a round) in the
transaction that acknowledges them. A flush — one consumer at a time, under a lock with
an expiry — reads the journal, appends each symbol's new bars to its partition (:func:`~augur.data.
write_bars`: validated, one atomic file replace per symbol), adds the bars' returns to
the correlation store, and only then deletes the entries it wrote. A flush cut short
leaves its entries in the journal; the next one skips bars the partition already holds,
so no bar is written twice.
"""

from __future__ import annotations

import logging
import os
import signal
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from augur.data._validate import BAR_COLUMNS
from augur.stream._history import TAIL_DTYPE, bars_frame_of
from augur.stream._keys import StreamKeys

log = logging.getLogger(__name__)

RETURN_FIELD = "ret"
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def journal_entry(applied: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, bytes]:
    """The journal entry of a round: per symbol its applied bars (packed records, time
    order) and their returns (NaN in warm-up)."""
    symbols = list(applied)
    return {
        "symbols": "\n".join(symbols).encode(),
        "counts": ",".join(str(len(applied[s][0])) for s in symbols).encode(),
        "bars": b"".join(applied[s][0].tobytes() for s in symbols),
        RETURN_FIELD: b"".join(
            np.ascontiguousarray(applied[s][1], dtype="<f8").tobytes() for s in symbols
        ),
    }


def _journal_frame(entries: list[tuple[Any, dict[bytes, bytes]]]) -> pd.DataFrame:
    """The bars (Bars contract) and returns of journal entries, in journal order."""
    frames = []
    for _id, raw in entries:
        symbols = raw[b"symbols"].decode().split("\n")
        counts = [int(c) for c in raw[b"counts"].decode().split(",")]
        bars = np.frombuffer(raw[b"bars"], dtype=TAIL_DTYPE)
        frame = bars_frame_of(symbols, counts, bars)
        frame[RETURN_FIELD] = np.frombuffer(raw[RETURN_FIELD.encode()], dtype="<f8")
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


class OfflineAppender:
    """Appends the journal to the bars dataset; ``add_returns`` gets each flush's rows
    (``symbol``, ``timestamp``, ``ret_1``)."""

    def __init__(
        self,
        client: Any,
        keys: StreamKeys,
        bars_dir: Path,
        add_returns: Callable[[pd.DataFrame], None] | None = None,
        return_feature: str = "ret_1",
        lock_seconds: float = 120.0,
        most: int = 200_000,
    ) -> None:
        self._client = client
        self._keys = keys
        self._bars_dir = bars_dir
        self._add_returns = add_returns
        self._return_feature = return_feature
        self._lock_ms = int(lock_seconds * 1000)
        self._most = most
        self._release = client.register_script(_RELEASE)

    def flush(self) -> int:
        """Append what the journal holds; the number of bars written (0 when another
        consumer is flushing or there is nothing)."""
        token = uuid.uuid4().hex
        if not self._client.set(self._keys.flush_lock, token, nx=True, px=self._lock_ms):
            return 0
        try:
            entries = self._client.xrange(self._keys.journal, count=self._most)
            if not entries:
                return 0
            ids = [entry_id for entry_id, _ in entries]
            frame = _journal_frame(entries)
            written = self._append(frame)
            if self._add_returns is not None:
                rows = frame.loc[frame[RETURN_FIELD].notna(), ["symbol", "timestamp"]].copy()
                rows[self._return_feature] = frame.loc[rows.index, RETURN_FIELD]
                self._add_returns(rows.reset_index(drop=True))
            self._client.xdel(self._keys.journal, *ids)
            return written
        finally:
            self._release(keys=[self._keys.flush_lock], args=[token])

    def _append(self, journal: pd.DataFrame) -> int:
        from augur.data import list_symbols, read_bars, write_bars

        present = set(list_symbols(self._bars_dir))
        parts = []
        written = 0
        for symbol, new in journal.groupby("symbol", sort=True):
            new = new.drop_duplicates("timestamp").sort_values("timestamp")
            if symbol in present:
                history = read_bars([str(symbol)], self._bars_dir)
                new = new[new["timestamp"] > history["timestamp"].iloc[-1]]
                if new.empty:
                    continue  # a flush cut short had written them
                parts.append(history)
            parts.append(new[list(BAR_COLUMNS)])
            written += len(new)
        if written:
            write_bars(pd.concat(parts, ignore_index=True), self._bars_dir)
        return written


class FlushProcess:
    """Flushes in a process of its own, every ``interval`` seconds and once more at
    :meth:`stop`: rewriting parquet files holds the interpreter for long stretches, which
    in the consumer's process would stall its rounds."""

    def __init__(self, settings: Any, interval: float) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")  # a fork would inherit redis-py's and Feast's state
        self._stop = ctx.Event()
        self._ready = ctx.Event()
        self._process = ctx.Process(
            target=_flush_loop,
            args=(settings, interval, self._ready, self._stop, os.getpid()),
            name="augur-stream-flush",
            daemon=True,
        )

    def start(self, wait_seconds: float = 120.0) -> FlushProcess:
        """Start it and wait until it is ready (its imports done)."""
        self._process.start()
        self._ready.wait(wait_seconds)
        return self

    def stop(self, timeout: float = 120.0) -> None:
        """The last flush, then the process ends."""
        self._stop.set()
        self._process.join(timeout)
        if self._process.is_alive():
            self._process.terminate()


def _flush_loop(settings: Any, interval: float, ready: Any, stop: Any, parent: int) -> None:
    from augur.features.correlations import RETURN_FEATURE
    from augur.features.stream_online import OnlineWriter
    from augur.stream._keys import redis_client

    # Ctrl-C or a TERM to the process group reaches the consumer, which stops this process
    # after its last round: the last flush must not be cut short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    online = OnlineWriter(settings)
    client = redis_client(settings.stream_redis_url)
    appender = OfflineAppender(
        client, StreamKeys.from_settings(settings), settings.bars_dir, online.add_returns,
        RETURN_FEATURE,
    )  # fmt: skip
    ready.set()
    due = time.monotonic() + interval
    while True:
        stopping = stop.wait(min(1.0, max(0.0, due - time.monotonic())))
        if os.getppid() != parent:  # the consumer died (SIGKILL): the journal keeps the bars
            return
        if not stopping and time.monotonic() < due:
            continue
        try:
            appender.flush()
        except Exception:
            log.exception("stream flush failed (the journal keeps the bars)")
        if stopping:
            return
        due = time.monotonic() + interval


__all__ = ["RETURN_FIELD", "FlushProcess", "OfflineAppender", "journal_entry"]
