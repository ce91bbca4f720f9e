"""The stream entry of a bar: text that reads back to the same bar."""

from __future__ import annotations

import numpy as np
import pandas as pd

from augur.stream import FIELDS, bar_fields, frame_entries
from augur.stream._message import decode, field_text, id_key


def test_a_bar_entry_has_every_field_as_text() -> None:
    row = {
        "timestamp": pd.Timestamp("2024-01-31 15:00", tz="Europe/Paris"),
        "open": 1.1,
        "high": 1.2,
        "low": 1.0,
        "close": 1.15,
        "volume": 1000,
    }
    fields = bar_fields("EURUSD", row)
    assert list(fields) == list(FIELDS)
    assert fields["timestamp"] == "2024-01-31T14:00:00.000000Z"
    assert fields["volume"] == "1000.0"


def test_numbers_read_back_exactly_and_missing_values_are_empty() -> None:
    for v in (0.1 + 0.2, 1e-300, 123456789.123456789):
        assert float(field_text(v)) == v
    assert field_text(np.nan) == "" and field_text(None) == "" and field_text(pd.NaT) == ""
    assert field_text("as given") == "as given"


def test_a_frame_without_a_symbol_column_takes_the_symbol_given() -> None:
    frame = pd.DataFrame(
        {"timestamp": ["2024-01-02"], "open": ["1"], "high": ["2"], "low": ["1"], "close": ["2"]}
    )
    (entry,) = list(frame_entries(frame, "AAPL"))
    assert entry["symbol"] == "AAPL" and entry["timestamp"] == "2024-01-02"
    assert entry["volume"] == ""  # the consumer's rules name what is missing


def test_stream_ids_sort_as_numbers_and_decode_from_bytes() -> None:
    assert sorted(["10-0", "9-1", "9-0"], key=id_key) == ["9-0", "9-1", "10-0"]
    msg = decode(b"1700000000000-3", {b"symbol": b"EURUSD"})
    assert (msg.id, msg.symbol, msg.entry_ms) == ("1700000000000-3", "EURUSD", 1700000000000)
