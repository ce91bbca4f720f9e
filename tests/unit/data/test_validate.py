"""Every import rule, with a bad CSV and a bad Parquet file, through the real CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from augur.cli import app
from augur.data import BarsValidationError, read_bars, read_bars_file, validate_bars
from tests.conftest import synthetic_bars


def _user_file(n: int = 20) -> pd.DataFrame:
    """Bars as a user exports them: capitalised columns, 'Date', no symbol column."""
    bars = synthetic_bars(n, symbols=("X",)).drop(columns="symbol")
    bars["timestamp"] = bars["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S")
    return bars.rename(
        columns={
            "timestamp": "Date",
            "open": "Open",
            "high": "High",
            "low": "Low",
            "close": "Close",
            "volume": "Volume",
        }
    )


def _break(rule: str) -> tuple[pd.DataFrame, str, list[int]]:
    """A file that breaks ``rule``: (frame, expected column, expected 1-based rows)."""
    df = _user_file()
    if rule == "required_columns":
        return df.drop(columns="Volume"), "volume", []
    if rule == "no_missing_values":
        df.loc[3, "Close"] = np.nan
        return df, "close", [4]
    if rule == "numeric":
        df["Open"] = df["Open"].astype(object)
        df.loc[5, "Open"] = "abc"
        return df, "open", [6]
    if rule == "parseable_timestamp":
        df.loc[2, "Date"] = "not a time"
        return df, "timestamp", [3]
    if rule == "positive_price":
        df.loc[7, ["Open", "Low"]] = [-1.0, -2.0]
        return df, "open", [8]
    if rule == "non_negative_volume":
        df.loc[9, "Volume"] = -5.0
        return df, "volume", [10]
    if rule == "high_ge_open_close":
        df.loc[4, "High"] = df.loc[4, ["Open", "Close"]].min() - 0.01
        return df, "high", [5]
    if rule == "low_le_open_close":
        df.loc[6, "Low"] = df.loc[6, ["Open", "Close"]].max() + 0.01
        return df, "low", [7]
    if rule == "no_duplicate_timestamps":
        df.loc[11, "Date"] = df.loc[10, "Date"]
        return df, "timestamp", [12]
    if rule == "increasing_time":
        df.loc[[13, 14], "Date"] = df.loc[[14, 13], "Date"].to_numpy()
        return df, "timestamp", [15]
    raise AssertionError(rule)


RULES = [
    "required_columns",
    "no_missing_values",
    "numeric",
    "parseable_timestamp",
    "positive_price",
    "non_negative_volume",
    "high_ge_open_close",
    "low_le_open_close",
    "no_duplicate_timestamps",
    "increasing_time",
]


def _write(df: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path, index=False)
    return path


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("rule", RULES)
def test_each_rule_rejects_a_bad_file_and_writes_nothing(
    rule: str, fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUGUR_HOME", str(tmp_path / "home"))
    from augur.config import get_settings

    get_settings.cache_clear()
    df, column, rows = _break(rule)
    if fmt == "parquet" and rule == "numeric":
        df["Open"] = df["Open"].astype(str)  # parquet needs one type per column
    path = _write(df, tmp_path / f"bad.{fmt}")

    with pytest.raises(BarsValidationError) as err:
        validate_bars(read_bars_file(path), "X")
    assert err.value.rule == rule
    assert err.value.column == column
    assert err.value.rows[: len(rows)] == rows

    result = CliRunner().invoke(app, ["data", "import", str(path), "--symbol", "X"])
    assert result.exit_code == 1
    assert rule in result.output and column in result.output
    assert "nothing was written" in result.output
    assert not (tmp_path / "home" / "data" / "bars" / "symbol=X").exists()
    get_settings.cache_clear()


def test_valid_file_is_imported_with_gaps_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUGUR_HOME", str(tmp_path / "home"))
    from augur.config import get_settings

    get_settings.cache_clear()
    df = _user_file(48).drop(index=range(10, 16)).reset_index(drop=True)  # a 7-hour hole
    path = _write(df, tmp_path / "ok.csv")
    result = CliRunner().invoke(app, ["data", "import", str(path), "--symbol", "X"])
    assert result.exit_code == 0, result.output
    assert "1 gaps (largest 0 days 07:00:00)" in result.output
    stored = read_bars(["X"])
    assert len(stored) == 42
    assert str(stored["timestamp"].dt.tz) == "UTC"
    assert list(stored.columns) == ["timestamp", "symbol", "open", "high", "low", "close", "volume"]
    get_settings.cache_clear()


def test_offsets_are_converted_to_utc() -> None:
    df = _user_file(3)
    df["Date"] = [
        "2024-01-02 10:00:00+02:00",
        "2024-01-02 11:00:00+02:00",
        "2024-01-02 12:00:00+02:00",
    ]
    report = validate_bars(df, "X")
    assert report.start == pd.Timestamp("2024-01-02 08:00", tz="UTC")
    assert report.gaps == 0 and report.largest_gap is None


def test_numeric_timestamps_are_refused_not_guessed() -> None:
    df = _user_file(3)
    df["Date"] = [1, 2, 3]
    with pytest.raises(BarsValidationError, match="ISO 8601") as err:
        validate_bars(df, "X")
    assert err.value.rule == "parseable_timestamp"


@pytest.mark.parametrize("symbol", ["", "../etc", "a b", "x" * 40])
def test_bad_symbols_are_refused(symbol: str) -> None:
    with pytest.raises(BarsValidationError) as err:
        validate_bars(_user_file(3), symbol)
    assert err.value.rule == "symbol"


def test_rows_for_another_symbol_are_refused() -> None:
    df = _user_file(3)
    df["Symbol"] = ["X", "Y", "X"]
    with pytest.raises(BarsValidationError) as err:
        validate_bars(df, "X")
    assert (err.value.rule, err.value.rows) == ("symbol", [2])


def test_empty_file_is_refused() -> None:
    with pytest.raises(BarsValidationError) as err:
        validate_bars(_user_file(3).iloc[0:0], "X")
    assert err.value.rule == "not_empty"


def test_unsupported_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "bars.xlsx").write_text("x")
    with pytest.raises(ValueError, match="unsupported"):
        read_bars_file(tmp_path / "bars.xlsx")
    with pytest.raises(FileNotFoundError):
        read_bars_file(tmp_path / "none.csv")
    result = CliRunner().invoke(app, ["data", "import", str(tmp_path / "none.csv"), "-s", "X"])
    assert result.exit_code == 2 and "no such file" in result.output
