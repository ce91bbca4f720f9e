"""`augur data import-dir`: a directory of one bar file per symbol, imported all or nothing
(what the chart's feature job runs on the claim your bar files land on)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from augur.cli import app
from augur.config import get_settings
from augur.data import list_symbols, read_bars


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    monkeypatch.setenv("AUGUR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "160")
    get_settings.cache_clear()
    yield tmp_path / "home"
    get_settings.cache_clear()


def bars(start: str, n: int) -> pd.DataFrame:
    close = [1.0 + i / 1000 for i in range(n)]
    return pd.DataFrame(
        {
            "timestamp": pd.date_range(start, periods=n, freq="1h", tz="UTC"),
            "open": close,
            "high": [c + 0.01 for c in close],
            "low": [c - 0.01 for c in close],
            "close": close,
            "volume": [100.0] * n,
        }
    )


def import_dir(path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["data", "import-dir", str(path)])
    return result.exit_code, result.output


def test_every_file_becomes_its_symbol(home: Path, tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    bars("2024-01-01", 30).to_csv(drop / "EURUSD.csv", index=False)
    bars("2024-02-01", 20).to_parquet(drop / "GBPUSD.parquet")
    (drop / "README").write_text("not bars: ignored")

    code, out = import_dir(drop)

    assert code == 0, out
    assert list_symbols() == ["EURUSD", "GBPUSD"]
    assert len(read_bars(["GBPUSD"])) == 20
    assert "EURUSD" in out and "30" in out and "2024-02-01 00:00" in out


def test_one_bad_file_writes_nothing_and_names_the_file(home: Path, tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    bars("2024-01-01", 30).to_csv(drop / "EURUSD.csv", index=False)
    code, _ = import_dir(drop)
    assert code == 0
    bars("2024-03-01", 30).to_csv(drop / "EURUSD.csv", index=False)  # newer, valid
    broken = bars("2024-01-01", 30)
    broken.loc[3, "high"] = 0.5  # below its low
    broken.to_csv(drop / "GBPUSD.csv", index=False)

    code, out = import_dir(drop)

    assert code == 1
    assert "GBPUSD.csv" in out and "nothing was written" in out
    assert list_symbols() == ["EURUSD"]
    assert read_bars(["EURUSD"])["timestamp"].iloc[0] == pd.Timestamp("2024-01-01", tz="UTC")


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ([], "no bar files"),
        (["EURUSD.csv", "EURUSD.parquet"], "more than one file for EURUSD"),
    ],
)
def test_a_directory_it_cannot_read_as_symbols_is_refused(
    home: Path, tmp_path: Path, files: list[str], message: str
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    for name in files:
        frame = bars("2024-01-01", 10)
        if name.endswith(".csv"):
            frame.to_csv(drop / name, index=False)
        else:
            frame.to_parquet(drop / name)

    code, out = import_dir(drop)

    assert code == 2 and message in out and "nothing was written" in out
    assert list_symbols() == []


def test_a_missing_directory_is_refused(home: Path, tmp_path: Path) -> None:
    code, out = import_dir(tmp_path / "nowhere")
    assert code == 2 and "is not a directory" in out
