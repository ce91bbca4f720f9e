"""Each symbol's recent bars, shared by the consumers of a group through Redis.

A symbol's tail (its last ``length`` bars, enough for the feature engine's longest
window) is one Redis string of packed records, written in the same transaction as the
acknowledgement of the bars that made it, next to the time of its last bar in one hash.
A consumer keeps its own copy and reloads a symbol only when that time moved under it
(another consumer applied a bar); a symbol Redis has never seen starts from the parquet
bars dataset.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from augur.data._validate import VALUE_COLUMNS
from augur.stream._keys import StreamKeys

TAIL_DTYPE = np.dtype([("ts", "<i8"), *((c, "<f8") for c in VALUE_COLUMNS)])


def empty_tail() -> np.ndarray:
    return np.zeros(0, dtype=TAIL_DTYPE)


def tail_of(bars: pd.DataFrame) -> np.ndarray:
    """Packed records of a Bars-contract frame (one symbol, time order)."""
    out = np.zeros(len(bars), dtype=TAIL_DTYPE)
    ts = pd.to_datetime(bars["timestamp"], utc=True)
    out["ts"] = ts.to_numpy(dtype="datetime64[ns]").view(np.int64)
    for col in VALUE_COLUMNS:
        out[col] = bars[col].to_numpy(dtype=np.float64)
    return out


def tail_frame(symbol: str, tail: np.ndarray) -> pd.DataFrame:
    """The Bars-contract frame of packed records."""
    frame = pd.DataFrame({c: tail[c] for c in VALUE_COLUMNS})
    frame.insert(0, "symbol", symbol)
    frame.insert(0, "timestamp", pd.DatetimeIndex(tail["ts"].view("M8[ns]")).tz_localize("UTC"))
    return frame


def bars_frame(tails: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """One Bars-contract frame of several symbols' packed records."""
    if not tails:
        return tail_frame("", empty_tail())
    packed = np.concatenate(list(tails.values()))
    return bars_frame_of(list(tails), [t.size for t in tails.values()], packed)


def bars_frame_of(symbols: list[str], counts: list[int], packed: np.ndarray) -> pd.DataFrame:
    """The Bars-contract frame of packed records, ``counts[i]`` of them ``symbols[i]``'s."""
    frame = pd.DataFrame({c: packed[c] for c in VALUE_COLUMNS})
    frame.insert(0, "symbol", np.repeat(np.array(symbols, dtype=object), counts))
    frame.insert(0, "timestamp", pd.DatetimeIndex(packed["ts"].view("M8[ns]")).tz_localize("UTC"))
    return frame


class Histories:
    """Recent bars per symbol: the local copy, checked against Redis once per batch."""

    def __init__(self, client: Any, keys: StreamKeys, length: int, bars_dir: Path) -> None:
        self._client = client
        self._keys = keys
        self.length = length
        self._bars_dir = bars_dir
        self._tails: dict[str, np.ndarray] = {}

    def load(self, symbols: Iterable[str]) -> dict[str, np.ndarray]:
        """The current tail of each symbol (one round trip when the copies are current)."""
        wanted = list(dict.fromkeys(symbols))
        if not wanted:
            return {}
        lasts = self._client.hmget(self._keys.last, wanted)
        stale, unseen = [], []
        for symbol, raw in zip(wanted, lasts, strict=True):
            mine = self._tails.get(symbol)
            if raw is None:
                if mine is None:
                    unseen.append(symbol)
            elif mine is None or mine.size == 0 or int(mine["ts"][-1]) != int(raw):
                stale.append(symbol)
        if stale:
            blobs = self._client.mget([self._keys.tail(s) for s in stale])
            for symbol, blob in zip(stale, blobs, strict=True):
                self._tails[symbol] = (
                    np.frombuffer(blob, dtype=TAIL_DTYPE).copy() if blob else empty_tail()
                )
        if unseen:
            self._tails.update(self._from_parquet(unseen))
        return {s: self._tails[s] for s in wanted}

    def _from_parquet(self, symbols: list[str]) -> dict[str, np.ndarray]:
        """The symbols' last bars in the bars dataset (none for a symbol it lacks)."""
        from augur.data import list_symbols, read_bars

        present = set(list_symbols(self._bars_dir))
        out = {s: empty_tail() for s in symbols}
        known = [s for s in symbols if s in present]
        if known:
            bars = read_bars(known, self._bars_dir)
            for symbol, part in bars.groupby("symbol", sort=False):
                out[str(symbol)] = tail_of(part.tail(self.length))
        return out

    def stage(self, pipe: Any, tails: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Queue the symbols' new tails on a transaction; returns them cut to length."""
        cut = {s: t[-self.length :] for s, t in tails.items()}
        if cut:
            pipe.mset({self._keys.tail(s): t.tobytes() for s, t in cut.items()})
            pipe.hset(self._keys.last, mapping={s: int(t["ts"][-1]) for s, t in cut.items()})
        return cut

    def keep(self, tails: Mapping[str, np.ndarray]) -> None:
        """The local copies, once the transaction that wrote ``tails`` has run."""
        self._tails.update(tails)

    def forget(self) -> None:
        """Drop every local copy (after a failed write: Redis is the truth)."""
        self._tails.clear()


__all__ = [
    "TAIL_DTYPE",
    "Histories",
    "bars_frame",
    "bars_frame_of",
    "empty_tail",
    "tail_frame",
    "tail_of",
]
