"""Return correlations from the offline feature table: the last window of bars, pairs
with enough common bars, either order, and none at all without a table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from augur.serving._correlations import CorrelationMatrix


def _returns(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    times = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")
    common = rng.normal(size=n)
    series = {
        "AAA": common + 0.3 * rng.normal(size=n),
        "BBB": common + 0.3 * rng.normal(size=n),  # moves with AAA
        "CCC": rng.normal(size=n),  # its own way
    }
    return pd.concat(
        pd.DataFrame({"timestamp": times, "symbol": s, "ret_1": r}) for s, r in series.items()
    )


def test_pairs_are_the_pearson_correlation_of_the_last_window_of_returns() -> None:
    frame = _returns()
    matrix = CorrelationMatrix.from_returns(frame, window=100, min_bars=30)
    wide = frame.pivot(index="timestamp", columns="symbol", values="ret_1").tail(100)
    expected = np.corrcoef(wide["AAA"], wide["BBB"])[0, 1]
    got = matrix.among("AAA", ["BBB", "CCC", "AAA"])
    assert set(got) == {("AAA", "BBB"), ("AAA", "CCC")}  # never a symbol with itself
    assert got[("AAA", "BBB")] == pytest.approx(expected) and expected > 0.8
    assert abs(got[("AAA", "CCC")]) < 0.3
    assert matrix.among("BBB", ["AAA"]) == {("BBB", "AAA"): got[("AAA", "BBB")]}  # symmetric
    assert len(matrix) == 3


def test_a_pair_with_too_few_common_bars_has_no_correlation() -> None:
    frame = _returns()
    late = frame[
        (frame.symbol != "CCC") | (frame.timestamp >= frame.timestamp.max() - pd.Timedelta(hours=9))
    ]
    matrix = CorrelationMatrix.from_returns(late, window=100, min_bars=30)
    assert matrix.among("AAA", ["CCC"]) == {} and matrix.among("AAA", ["BBB"])


def test_no_offline_table_means_every_pair_uncorrelated(tmp_path: Path) -> None:
    assert len(CorrelationMatrix.load(tmp_path / "missing.parquet", 100, 30)) == 0
    path = tmp_path / "bar_features.parquet"
    _returns().assign(other=1.0).to_parquet(path)
    assert CorrelationMatrix.load(path, 100, 30).among("AAA", ["BBB"])
