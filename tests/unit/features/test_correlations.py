"""Return correlations of the feature pipeline: the last window of returns, pairs with
enough common bars, either order; kept in the online store (SQLite, a real Redis) and
read back the same; a pushed bar's return moves the matrix exactly as the offline table
would."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from augur.features.correlations import (
    CorrelationMatrix,
    RedisCorrelationStore,
    SqliteCorrelationStore,
    add_returns,
    keep_correlations,
    read_correlations,
)

REDIS_DB = 16  # a database of its own on the session's Redis


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
        [pd.DataFrame({"timestamp": times, "symbol": s, "ret_1": r}) for s, r in series.items()],
        ignore_index=True,
    )


def _pairs(matrix: CorrelationMatrix) -> dict[tuple[str, str], float]:
    symbols = ["AAA", "BBB", "CCC", "DDD"]
    return {k: v for s in symbols for k, v in matrix.among(s, symbols).items()}


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
    assert matrix.as_of == frame["timestamp"].max() and matrix.window == 100


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


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "sqlite":
        yield SqliteCorrelationStore(tmp_path / "feast" / "sqlite" / "online.db")
        return
    from augur.serving._accounts import redis_client

    server = request.getfixturevalue("redis_server")
    client = redis_client(f"{server.url},db={REDIS_DB}")
    key = f"t{uuid.uuid4().hex}:correlations"  # keys of its own: the Redis is shared
    yield RedisCorrelationStore(client, matrix_key=key, returns_key=f"{key}:returns")
    client.close()


def test_the_kept_matrix_reads_back_the_same(store: Any) -> None:
    assert read_correlations(store) is None  # nothing kept yet
    frame = _returns()
    kept = keep_correlations(store, frame, window=100, min_bars=30)
    read = read_correlations(store)
    assert read is not None
    assert _pairs(read) == pytest.approx(_pairs(kept)) and len(read) == 3
    assert (read.as_of, read.window, read.min_bars) == (frame["timestamp"].max(), 100, 30)
    # a new materialisation replaces what was kept, symbols gone included
    keep_correlations(store, frame[frame.symbol != "CCC"], window=100, min_bars=30)
    again = read_correlations(store)
    assert again is not None and len(again) == 1
    assert set(store.read_returns()) == {"AAA", "BBB"}


def test_pushed_returns_move_the_matrix_as_the_offline_table_would(store: Any) -> None:
    frame = _returns(n=160)
    last = frame["timestamp"].max()
    keep_correlations(store, frame[frame.timestamp < last], window=50, min_bars=20)
    for symbol in ("AAA", "BBB", "CCC"):  # one push per symbol, as bars arrive
        add_returns(store, frame[(frame.timestamp == last) & (frame.symbol == symbol)], 50, 20)
    read = read_correlations(store)
    offline = CorrelationMatrix.from_returns(frame, window=50, min_bars=20)
    assert read is not None and read.as_of == last
    assert _pairs(read) == pytest.approx(_pairs(offline), abs=1e-12)
    # each symbol keeps only its last window of returns
    kept = [json.loads(text)["returns"] for text in store.read_returns().values()]
    assert [len(r) for r in kept] == [50, 50, 50]


def test_a_new_symbols_first_bar_has_no_return_and_changes_nothing(store: Any) -> None:
    frame = _returns(n=120)
    before = keep_correlations(store, frame, window=100, min_bars=30)
    first = pd.DataFrame(
        {"timestamp": [frame["timestamp"].max()], "symbol": ["DDD"], "ret_1": [np.nan]}
    )
    after = add_returns(store, first, 100, 30)
    assert _pairs(after) == pytest.approx(_pairs(before)) and "DDD" not in store.read_returns()


def test_a_reader_never_creates_the_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "online.db"
    assert read_correlations(SqliteCorrelationStore(path)) is None
    assert not path.exists()


def test_materialize_and_push_keep_the_matrix_in_the_online_store(tmp_path: Path) -> None:
    """The pipeline itself: ``materialize`` writes the offline table's matrix next to the
    SQLite features; ``push_bar`` moves it to the pushed bar."""
    from augur.config import Settings
    from augur.data import write_bars
    from augur.features import store as fs
    from tests.conftest import synthetic_bars

    repo = Path(__file__).resolve().parents[3] / "feature_repo"
    settings = Settings(
        home=tmp_path / "home",
        feature_repo=repo,
        windows=[5, 10],
        correlation_window=200,
        correlation_min_bars=30,
    )
    bars = synthetic_bars(n=300, symbols=("AAA", "BBB", "CCC"))
    last = bars[bars.timestamp == bars.timestamp.max()]
    write_bars(bars[bars.timestamp < bars.timestamp.max()], settings.bars_dir)
    fs.build_offline_features(settings)
    fs.apply(settings)
    result = fs.materialize(settings)
    online = SqliteCorrelationStore(fs.sqlite_online_path(settings))
    kept = read_correlations(online)
    offline = CorrelationMatrix.load(fs.offline_features_path(settings), 200, 30)
    assert kept is not None and result.correlation_pairs == len(kept) == 3
    assert _pairs(kept) == pytest.approx(_pairs(offline)) and kept.as_of == offline.as_of

    for _, bar in last.iterrows():
        fs.push_bar(str(bar["symbol"]), bar.drop("symbol").to_dict(), settings)
    pushed = read_correlations(online)
    fs.build_offline_features(settings)  # the offline table with the pushed bars
    rebuilt = CorrelationMatrix.load(fs.offline_features_path(settings), 200, 30)
    assert pushed is not None and pushed.as_of == bars.timestamp.max()
    assert _pairs(pushed) == pytest.approx(_pairs(rebuilt), abs=1e-12)
