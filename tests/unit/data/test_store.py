"""The bars dataset: round trip, atomic writes, append_bar."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from augur.data import BarsValidationError, append_bar, list_symbols, read_bars, write_bars
from tests.conftest import synthetic_bars


def test_round_trip_keeps_the_bars_contract(tmp_path: Path) -> None:
    bars = synthetic_bars(50)
    reports = write_bars(bars, tmp_path)
    assert set(reports) == {"AAA", "BBB"}
    back = read_bars(root=tmp_path)
    pd.testing.assert_frame_equal(
        back, bars.sort_values(["symbol", "timestamp"], ignore_index=True)
    )
    assert list_symbols(tmp_path) == ["AAA", "BBB"]
    assert read_bars(["BBB"], tmp_path)["symbol"].unique().tolist() == ["BBB"]


def test_a_bad_symbol_leaves_the_dataset_untouched(tmp_path: Path) -> None:
    good = synthetic_bars(30)
    write_bars(good, tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*.parquet")}
    update = synthetic_bars(40, seed=1)
    update.loc[update.index[-1], "high"] = 0.5 * update["low"].iloc[-1]  # BBB's last row is bad
    with pytest.raises(BarsValidationError):
        write_bars(update, tmp_path)
    after = {p: p.read_bytes() for p in tmp_path.rglob("*.parquet")}
    assert after == before  # AAA (valid) was not written either
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".staging")]


def test_unknown_symbols_and_empty_dataset(tmp_path: Path) -> None:
    assert read_bars(root=tmp_path / "none").empty
    assert list_symbols(tmp_path / "none") == []
    write_bars(synthetic_bars(10), tmp_path)
    with pytest.raises(KeyError, match="ZZZ"):
        read_bars(["ZZZ"], tmp_path)
    with pytest.raises(ValueError, match="symbol"):
        write_bars(synthetic_bars(10).drop(columns="symbol"), tmp_path)


def test_append_bar_adds_one_newer_bar(tmp_path: Path) -> None:
    write_bars(synthetic_bars(20), tmp_path)
    last = read_bars(["AAA"], tmp_path).iloc[-1]
    bar = {
        "timestamp": (last.timestamp + pd.Timedelta(hours=1)).isoformat(),
        "open": 1.0,
        "high": 1.2,
        "low": 0.9,
        "close": 1.1,
        "volume": 10,
    }
    history = append_bar("AAA", bar, tmp_path)
    assert len(history) == 21
    assert read_bars(["AAA"], tmp_path).iloc[-1]["close"] == 1.1
    with pytest.raises(BarsValidationError) as err:
        append_bar("AAA", bar, tmp_path)  # same time again
    assert err.value.rule == "increasing_time"
    with pytest.raises(BarsValidationError) as err:
        append_bar("AAA", {**bar, "timestamp": "2030-01-01", "high": 0.5}, tmp_path)
    assert err.value.rule == "high_ge_open_close"
    assert len(read_bars(["AAA"], tmp_path)) == 21
