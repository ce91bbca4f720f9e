"""A round's bars judged by the import rules and the symbol's history."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from augur.stream._admit import admit
from augur.stream._history import empty_tail, tail_of
from augur.stream._message import Message

T0 = pd.Timestamp("2024-01-02T10:00:00Z")


def _entry(hours: float, symbol: str = "EURUSD", **fields: str) -> dict[str, str]:
    when = (T0 + pd.Timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")
    base = {"symbol": symbol, "timestamp": when, "open": "1.0", "high": "1.2", "low": "0.9"}
    return base | {"close": "1.1", "volume": "10"} | fields


def _round(*entries: dict[str, str]) -> dict[str, list[Message]]:
    out: dict[str, list[Message]] = {}
    for i, fields in enumerate(entries):
        out.setdefault(fields["symbol"], []).append(Message(f"1-{i}", fields))
    return out


def _history(symbol: str, hours: list[float]) -> np.ndarray:
    return tail_of(
        pd.DataFrame(
            {
                "timestamp": [T0 + pd.Timedelta(hours=h) for h in hours],
                "symbol": symbol,
                "open": 1.0,
                "high": 1.2,
                "low": 0.9,
                "close": 1.1,
                "volume": 10.0,
            }
        )
    )


def _admit(entries: list[dict[str, str]], tails: dict[str, np.ndarray] | None = None):  # type: ignore[no-untyped-def]
    by_symbol = _round(*entries)
    tails = {s: (tails or {}).get(s, empty_tail()) for s in by_symbol}
    return {v.symbol: v for v in admit(by_symbol, tails)}


@pytest.mark.parametrize(
    ("rule", "fields"),
    [
        ("no_missing_values", {"close": ""}),
        ("numeric", {"volume": "lots"}),
        ("parseable_timestamp", {"timestamp": "yesterday"}),
        ("positive_price", {"open": "-1", "low": "-2"}),
        ("non_negative_volume", {"volume": "-5"}),
        ("high_ge_open_close", {"high": "1.05"}),
        ("low_le_open_close", {"low": "1.05"}),
    ],
)
def test_a_bar_breaking_a_rule_is_a_dead_letter_and_its_neighbours_apply(
    rule: str, fields: dict[str, str]
) -> None:
    got = _admit([_entry(1), _entry(1.5, **fields), _entry(2), _entry(1, symbol="AAPL")])
    eurusd = got["EURUSD"]
    assert [(d.rule, d.message.id) for d in eurusd.dead] == [(rule, "1-1")]
    assert eurusd.dead[0].reason.startswith(f"rule '{rule}' broken")
    assert "row(s)" not in eurusd.dead[0].reason  # rows of a round mean nothing here
    assert [m.id for m in eurusd.messages] == ["1-0", "1-2"]
    assert len(got["AAPL"].bars) == 1


def test_a_bad_symbol_refuses_its_bars_only() -> None:
    got = _admit([_entry(1, symbol="no good!"), _entry(1)])
    assert [d.rule for d in got["no good!"].dead] == ["symbol"]
    assert len(got["EURUSD"].bars) == 1


def test_bars_out_of_time_order_within_a_round_break_increasing_time() -> None:
    got = _admit([_entry(2), _entry(1), _entry(3)])["EURUSD"]
    assert [(d.rule, d.message.id) for d in got.dead] == [("increasing_time", "1-1")]
    assert [m.id for m in got.messages] == ["1-0", "1-2"]


def test_the_same_bar_twice_is_a_duplicate_other_values_at_one_time_are_not() -> None:
    got = _admit([_entry(1), _entry(1), _entry(1, close="1.15")])["EURUSD"]
    assert [m.id for m in got.duplicates] == ["1-1"]
    assert [(d.rule, d.message.id) for d in got.dead] == [("no_duplicate_timestamps", "1-2")]


def test_against_the_history_a_held_bar_is_a_duplicate_an_earlier_one_is_refused() -> None:
    history = {"EURUSD": _history("EURUSD", [0, 1, 2])}
    got = _admit([_entry(1), _entry(1.5), _entry(2, close="1.15"), _entry(3)], history)["EURUSD"]
    assert [m.id for m in got.duplicates] == ["1-0"]
    assert sorted((d.rule, d.message.id) for d in got.dead) == [
        ("increasing_time", "1-1"),
        ("no_duplicate_timestamps", "1-2"),
    ]
    assert [m.id for m in got.messages] == ["1-3"]
    assert int(got.bars["ts"][0]) == (T0 + pd.Timedelta(hours=3)).value


def test_times_written_in_other_iso_forms_are_read_as_the_same_instants() -> None:
    got = _admit(
        [
            _entry(1),
            _entry(2, timestamp="2024-01-02T12:00:00.000000Z"),
            _entry(3, timestamp="2024-01-02 13:00:00+00:00"),
            _entry(4, timestamp="2024-01-02T15:00:00+01:00"),
        ]
    )["EURUSD"]
    assert not got.dead
    hours = (got.bars["ts"] - T0.value) / 3.6e12
    assert hours.tolist() == [1, 2, 3, 4]


def test_values_are_read_exactly() -> None:
    got = _admit([_entry(1, open="1.0000001", high="1.25", low="0.75", close="1.2")])
    bar = got["EURUSD"].bars[0]
    assert (bar["open"], bar["high"], bar["low"], bar["close"]) == (1.0000001, 1.25, 0.75, 1.2)
