"""The bar stream's message: one bar per entry, every field text.

An entry carries ``symbol``, ``timestamp`` (ISO 8601, UTC) and ``open``, ``high``,
``low``, ``close``, ``volume`` (decimal text). The consumer reads the fields back into a
row of the Bars contract and lets :func:`~augur.data.validate_bars` judge it, so a
message is held to exactly the rules of ``augur data import``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from augur.data._validate import VALUE_COLUMNS

FIELDS: tuple[str, ...] = ("symbol", "timestamp", *VALUE_COLUMNS)


@dataclass(frozen=True)
class Message:
    """One stream entry as read: its id and its fields (text; unknown fields kept)."""

    id: str
    fields: dict[str, str]

    @property
    def symbol(self) -> str:
        return self.fields.get("symbol", "")

    @property
    def entry_ms(self) -> int:
        """When the entry was added (the id's milliseconds part)."""
        return entry_ms(self.id)


def entry_ms(entry_id: str) -> int:
    """The milliseconds part of a stream id (``1700000000000-0`` → 1700000000000)."""
    return int(entry_id.split("-", 1)[0])


def id_key(entry_id: str) -> tuple[int, int]:
    """A stream id as a sortable pair (ids do not sort as text)."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def decode(entry_id: bytes | str, raw: Mapping[bytes | str, bytes | str]) -> Message:
    """A Message from what redis-py returns for one entry."""
    text = {_text(k): _text(v) for k, v in raw.items()}
    return Message(_text(entry_id), text)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def field_text(value: Any) -> str:
    """A bar's value as entry text: times as ISO 8601 UTC, numbers as the shortest text
    that reads back exactly, text as given, a missing value as empty."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, pd.Timestamp | datetime | np.datetime64):
        ts = pd.Timestamp(value)
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, int | float | np.integer | np.floating):
        return repr(float(value))
    return str(value)


def bar_fields(symbol: str, row: Mapping[str, Any]) -> dict[str, str]:
    """The entry of one bar (``row`` holds ``timestamp`` and the five values)."""
    return {"symbol": symbol, **{f: field_text(row.get(f)) for f in FIELDS[1:]}}


def frame_entries(bars: pd.DataFrame, symbol: str | None = None) -> Iterator[dict[str, str]]:
    """The entries of a bars frame, in its row order (``symbol`` for a frame without a
    symbol column)."""
    columns = [f for f in FIELDS if f in bars.columns]
    for values in bars[columns].itertuples(index=False, name=None):
        fields = {f: field_text(v) for f, v in zip(columns, values, strict=True)}
        if symbol is not None:
            fields["symbol"] = symbol
        yield {f: fields.get(f, "") for f in FIELDS}


__all__ = [
    "FIELDS",
    "Message",
    "bar_fields",
    "decode",
    "entry_ms",
    "field_text",
    "frame_entries",
    "id_key",
]
