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


def test_keep_newer_keeps_the_bars_a_stream_appended_after_the_files(
    home: Path, tmp_path: Path
) -> None:
    from augur.data import append_bar

    drop = tmp_path / "drop"
    drop.mkdir()
    bars("2024-01-01", 30).to_csv(drop / "EURUSD.csv", index=False)
    assert import_dir(drop)[0] == 0
    late = bars("2024-01-02 06:00", 1).iloc[0].to_dict()  # the bar after the file's last
    append_bar("EURUSD", late)  # as the stream consumer's offline flush appends it
    assert len(read_bars(["EURUSD"])) == 31

    code, out = import_dir(drop)  # replace: the appended bar is gone
    assert code == 0, out
    assert len(read_bars(["EURUSD"])) == 30
    append_bar("EURUSD", late)
    corrected = bars("2024-01-01", 30)
    corrected.loc[0, "close"] = corrected.loc[0, "open"] = 1.0005  # a vendor correction
    corrected.to_csv(drop / "EURUSD.csv", index=False)
    result = CliRunner().invoke(app, ["data", "import-dir", str(drop), "--keep-newer"])
    assert result.exit_code == 0, result.output
    kept = read_bars(["EURUSD"])
    assert len(kept) == 31
    assert kept["timestamp"].iloc[-1] == pd.Timestamp("2024-01-02 06:00", tz="UTC")
    assert kept["close"].iloc[0] == pytest.approx(1.0005)  # the file wins where it has bars
