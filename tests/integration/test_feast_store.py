"""Feast end to end on real stores: SQLite and a real redis-server.

apply → materialize → the online row equals the offline last row for each symbol; push
changes the online value; incremental materialisation picks up new offline rows; the
training set is point-in-time correct.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from augur.config import Settings
from augur.data import load_sample, read_bars, write_bars
from augur.features import FeatureSpec, compute_features, latest_features, training_frame
from augur.features import store as fs
from tests.conftest import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2] / "feature_repo"
N_BARS = 300
# A Redis database of its own, so other suites sharing the session's server are untouched.
REDIS_DB = 5


@pytest.fixture(scope="module")
def real_bars() -> pd.DataFrame:
    """The last few hundred real bars of an hourly and a daily symbol."""
    sample = load_sample(["EURUSD", "AAPL"])
    return pd.concat([df.tail(N_BARS) for df in sample.values()], ignore_index=True)


def _home(tmp: Path, bars: pd.DataFrame, kind: str, redis_url: str) -> Settings:
    settings = Settings(home=tmp, feature_repo=REPO, online_store=kind, redis_url=redis_url)
    write_bars(bars, settings.bars_dir)
    fs.build_offline_features(settings)
    fs.apply(settings)
    fs.materialize(settings)
    return settings


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def applied(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    real_bars: pd.DataFrame,
) -> Iterator[Settings]:
    url = "unused:0"
    if request.param == "redis":
        server = request.getfixturevalue("redis_server")
        url = f"{server.url},db={REDIS_DB}"
    yield _home(tmp_path_factory.mktemp(f"home-{request.param}"), real_bars, request.param, url)


def _offline_last(settings: Settings) -> pd.DataFrame:
    offline = pd.read_parquet(fs.offline_features_path(settings))
    return offline.groupby("symbol").tail(1).set_index("symbol")


def test_online_row_equals_offline_last_row(applied: Settings) -> None:
    spec = FeatureSpec.from_settings(applied)
    last = _offline_last(applied)
    online = fs.OnlineFeatures(applied).get(["EURUSD", "AAPL"])
    for symbol, (vec, ts) in online.items():
        assert ts == last.loc[symbol, "timestamp"]
        np.testing.assert_allclose(vec, last.loc[symbol, spec.names].to_numpy(float), rtol=1e-12)
        assert not np.isnan(vec).any()
    # Feast's own read path (the versioned feature service) agrees.
    store = fs.feature_store(applied)
    response = store.get_online_features(
        features=store.get_feature_service(fs.FEATURE_SERVICE),
        entity_rows=[{"symbol": "EURUSD"}],
    ).to_dict()
    assert [response[n][0] for n in spec.names] == pytest.approx(list(online["EURUSD"][0]))


def test_unknown_symbol_is_a_clear_error(applied: Settings) -> None:
    with pytest.raises(fs.UnknownSymbolError, match="NOPE"):
        fs.OnlineFeatures(applied).get(["EURUSD", "NOPE"])


def test_push_changes_the_online_value(applied: Settings) -> None:
    spec = FeatureSpec.from_settings(applied)
    reader = fs.OnlineFeatures(applied)
    before, before_ts = reader.get(["EURUSD"])["EURUSD"]
    last_bar = read_bars(["EURUSD"], applied.bars_dir).iloc[-1]
    new_ts = last_bar["timestamp"] + pd.Timedelta(hours=1)
    bar = {
        "timestamp": new_ts.isoformat(),
        "open": last_bar["close"],
        "high": last_bar["close"] * 1.004,
        "low": last_bar["close"] * 0.999,
        "close": last_bar["close"] * 1.003,
        "volume": 1234.0,
    }
    pushed = fs.push_bar("EURUSD", bar, applied)
    after, after_ts = reader.get(["EURUSD"])["EURUSD"]
    assert after_ts == new_ts > before_ts
    assert not np.allclose(after, before)
    history = read_bars(["EURUSD"], applied.bars_dir)
    assert history["timestamp"].iloc[-1] == new_ts  # the bar was appended
    expected = latest_features(history, spec)[spec.names].to_numpy(float)[0]
    np.testing.assert_allclose(after, expected, rtol=1e-12)
    np.testing.assert_allclose(pushed[spec.names].to_numpy(float)[0], expected, rtol=1e-12)
    # The other symbol is untouched.
    aapl_vec, _ = reader.get(["AAPL"])["AAPL"]
    np.testing.assert_allclose(
        aapl_vec, _offline_last(applied).loc["AAPL", spec.names].to_numpy(float)
    )


def test_incremental_materialisation_picks_up_new_offline_rows(applied: Settings) -> None:
    # Feast's watermark is per feature view (the end of the last run), so new rows must be
    # newer than every symbol's last materialised bar: EURUSD is the most recent here.
    bars = read_bars(["EURUSD"], applied.bars_dir)
    last = bars.iloc[-1]
    extra = pd.DataFrame(
        [
            {
                **last.to_dict(),
                "timestamp": last["timestamp"] + pd.Timedelta(hours=1),
                "close": last["close"] * 1.001,
                "high": last["high"] * 1.001,
            }
        ]
    )
    write_bars(pd.concat([bars, extra], ignore_index=True), applied.bars_dir)
    fs.build_offline_features(applied)
    result = fs.materialize(applied, incremental=True)
    assert result.incremental and result.symbols == 1
    vec, ts = fs.OnlineFeatures(applied).get(["EURUSD"])["EURUSD"]
    assert ts == extra["timestamp"].iloc[0]
    spec = FeatureSpec.from_settings(applied)
    np.testing.assert_allclose(
        vec, _offline_last(applied).loc["EURUSD", spec.names].to_numpy(float)
    )


@pytest.mark.parametrize("applied", ["redis"], indirect=True)
def test_unreachable_redis_is_a_distinct_error(applied: Settings) -> None:
    dead = applied.model_copy(update={"redis_url": f"127.0.0.1:{free_port()}"})
    reader = fs.OnlineFeatures(dead)
    with pytest.raises(fs.OnlineStoreUnavailable, match="unreachable"):
        reader.get(["EURUSD"])


def test_training_set_is_point_in_time_correct(tmp_path: Path, real_bars: pd.DataFrame) -> None:
    settings = _home(tmp_path, real_bars, "sqlite", "unused:0")
    spec = FeatureSpec.from_settings(settings)
    got = fs.training_set(settings, horizon=5, dead_zone=0.25, last=80)
    assert set(got["symbol"]) == {"EURUSD", "AAPL"}
    assert (got.groupby("symbol").size() <= 80).all() and len(got) > 100
    # Identical to the direct offline computation on the same rows.
    expected = training_frame(real_bars, spec, 5, 0.25).merge(
        got[["symbol", "timestamp"]], on=["symbol", "timestamp"]
    )
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, atol=1e-12)
    assert (got["label_time"] > got["timestamp"]).all()

    # Between two bars, Feast must return the earlier bar's features, never the next one's.
    features = compute_features(real_bars, spec).dropna()
    eur = features[features["symbol"] == "EURUSD"].tail(40)
    asked = eur[["symbol"]].assign(event_timestamp=eur["timestamp"] + pd.Timedelta(minutes=59))
    store = fs.feature_store(settings)
    joined = (
        store.get_historical_features(
            entity_df=asked.reset_index(drop=True), features=fs.feature_refs(spec)
        )
        .to_df()
        .sort_values("event_timestamp", ignore_index=True)
    )
    np.testing.assert_allclose(
        joined[spec.names].to_numpy(float), eur[spec.names].to_numpy(float), rtol=1e-12
    )


def _eventually(predicate, seconds: float = 3.0) -> bool:
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


@pytest.mark.parametrize("applied", ["redis"], indirect=True)
def test_cached_reader_serves_repeats_and_sees_every_write(applied: Settings) -> None:
    cached = fs.OnlineFeatures(applied, cache=True)
    try:
        assert _eventually(lambda: cached.caching), "Redis invalidation tracking never started"
        _, first_ts = cached.get(["EURUSD"])["EURUSD"]
        cached.get(["EURUSD"])
        assert cached._redis.hits >= 1  # the repeat came from the worker's memory
        last_bar = read_bars(["EURUSD"], applied.bars_dir).iloc[-1]
        bar = {
            "timestamp": (last_bar["timestamp"] + pd.Timedelta(hours=1)).isoformat(),
            "open": last_bar["close"],
            "high": last_bar["close"] * 1.01,
            "low": last_bar["close"] * 0.99,
            "close": last_bar["close"] * 1.005,
            "volume": 99.0,
        }
        fs.push_bar("EURUSD", bar, applied)
        fresh, fresh_ts = fs.OnlineFeatures(applied).get(["EURUSD"])["EURUSD"]
        assert fresh_ts > first_ts
        # Redis announces the write; the cached reader drops the row and reads it again.
        assert _eventually(lambda: cached.get(["EURUSD"])["EURUSD"][1] == fresh_ts)
        np.testing.assert_array_equal(cached.get(["EURUSD"])["EURUSD"][0], fresh)
        with pytest.raises(fs.UnknownSymbolError, match="NOPE"):
            cached.get(["NOPE"])
    finally:
        cached.close()
    assert not cached.caching
