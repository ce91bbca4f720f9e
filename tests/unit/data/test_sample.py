"""The real sample data: present, valid, documented."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from augur.cli import app
from augur.data import SOURCES, load_sample, read_bars, sample_splits, validate_bars


@pytest.fixture(scope="module")
def sample() -> dict:
    return load_sample()


def test_every_source_loads_valid_real_bars(sample: dict) -> None:
    assert set(sample) == {s.symbol for s in SOURCES}
    sizes = {sym: len(df) for sym, df in sample.items()}
    assert sizes == {
        "EURUSD": 6225,
        "SP500": 5031,
        "NASDAQ": 5031,
        "AAPL": 3270,
        "GOOG": 2148,
        "IBM": 3270,
        "MSFT": 3270,
    }
    for sym, df in sample.items():
        validate_bars(df, sym)  # raises if any rule breaks
        assert str(df["timestamp"].dt.tz) == "UTC"


def test_eurusd_is_hourly_and_stamped_at_bar_close(sample: dict) -> None:
    eur = sample["EURUSD"]
    # The source's first bar opens 01.01.2017 22:00 (day-first); it is known at 23:00.
    assert str(eur["timestamp"].iloc[0]) == "2017-01-01 23:00:00+00:00"
    assert eur["close"].iloc[0] == pytest.approx(1.05227)
    assert eur["timestamp"].diff().median().total_seconds() == 3600


def test_index_sets_use_close_not_adjusted_close(sample: dict) -> None:
    sp = sample["SP500"]
    assert sp["close"].iloc[0] == pytest.approx(1228.099976, rel=1e-9)
    assert str(sp["timestamp"].iloc[0]) == "1999-01-04 21:00:00+00:00"  # 16:00 New York


def test_splits_are_undone_so_no_fake_crash(sample: dict) -> None:
    splits = {(s.symbol, str(s.date.date()), s.ratio) for s in sample_splits()}
    assert splits == {
        ("AAPL", "2000-06-21", 2.0),
        ("AAPL", "2005-02-28", 2.0),
        ("MSFT", "2003-02-18", 2.0),
    }
    for sym in ("AAPL", "MSFT"):
        r = np.log(sample[sym]["close"]).diff().abs()
        dates = sample[sym]["timestamp"].dt.strftime("%Y-%m-%d")
        for _, day, _ in (s for s in splits if s[0] == sym):
            assert r[dates == day].iloc[0] < 0.2
    # The last (post-split) prices are as supplied.
    assert sample["AAPL"]["close"].iloc[-1] == pytest.approx(430.47)


def test_unknown_sample_symbol() -> None:
    with pytest.raises(KeyError, match="ZZZ"):
        load_sample(["ZZZ"])


def test_cli_sample_writes_the_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUGUR_HOME", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "80")  # tables must still show every cell whole
    from augur.config import get_settings

    get_settings.cache_clear()
    runner = CliRunner()
    result = runner.invoke(app, ["data", "sample", "-s", "EURUSD", "-s", "MSFT"])
    assert result.exit_code == 0, result.output
    assert "6,225" in result.output and "MSFT 2003-02-18 2:1" in " ".join(result.output.split())
    assert "BSD-3-Clause" in result.output and "…" not in result.output
    assert read_bars(root=tmp_path / "data" / "bars")["symbol"].value_counts().to_dict() == {
        "EURUSD": 6225,
        "MSFT": 3270,
    }
    recorded = json.loads((tmp_path / "data" / "bars" / "SOURCES.json").read_text())
    assert set(recorded) == {"EURUSD", "MSFT"} and recorded["EURUSD"]["licence"] == "MIT"
    assert runner.invoke(app, ["data", "sample", "-s", "NOPE"]).exit_code == 2
    sources = runner.invoke(app, ["data", "sources"]).output
    assert "NCSA" in sources and "…" not in sources
    get_settings.cache_clear()
