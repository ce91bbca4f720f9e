"""Labels (forward-return direction with a volatility-scaled dead zone) and the training set."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pandas as pd
import pytest

from augur.features import FeatureSpec, compute_features, make_labels, training_frame
from tests.conftest import synthetic_bars

CLOSES = [100.0, 101.0, 100.0, 102.0, 103.0, 101.0, 104.0, 104.0]


def _bars(closes: list[float], symbol: str = "X") -> pd.DataFrame:
    ts = pd.date_range("2024-03-01", periods=len(closes), freq="h", tz="UTC")
    c = np.asarray(closes)
    return pd.DataFrame(
        {
            "timestamp": ts,
            "symbol": symbol,
            "open": c,
            "high": c * 1.001,
            "low": c * 0.999,
            "close": c,
            "volume": 1.0,
        }
    )


def _by_hand(t: int, horizon: int, dead_zone: float, vol_window: int) -> tuple[float, int]:
    """The docstring's definition, written out for one bar."""
    rets = [math.log(CLOSES[i] / CLOSES[i - 1]) for i in range(t - vol_window + 1, t + 1)]
    sigma = statistics.stdev(rets)
    fwd = math.log(CLOSES[t + horizon] / CLOSES[t])
    threshold = dead_zone * sigma * math.sqrt(horizon)
    return fwd, (1 if fwd > threshold else -1 if fwd < -threshold else 0)


@pytest.mark.parametrize(("dead_zone", "expected"), [(0.0, [-1, 1, 1]), (0.5, [0, 0, 1])])
def test_labels_follow_the_definition(dead_zone: float, expected: list[int]) -> None:
    bars = _bars(CLOSES)
    labels = make_labels(bars, horizon=2, dead_zone=dead_zone, vol_window=3)
    # sigma needs bars 0..3 (3 returns), the horizon bar t+2 <= 7: rows t = 3, 4, 5
    assert list(labels["timestamp"]) == list(bars["timestamp"].iloc[3:6])
    assert list(labels["label_time"]) == list(bars["timestamp"].iloc[5:8])
    assert labels["label"].tolist() == expected
    assert labels["label"].dtype == np.int8
    for row, t in zip(labels.itertuples(), (3, 4, 5), strict=True):
        fwd, label = _by_hand(t, 2, dead_zone, 3)
        assert row.forward_return == pytest.approx(fwd, rel=1e-12)
        assert row.label == label


def test_a_wide_dead_zone_makes_everything_flat_and_zero_makes_none() -> None:
    bars = synthetic_bars(300)
    assert (make_labels(bars, 5, dead_zone=100.0)["label"] == 0).all()
    signs = make_labels(bars, 5, dead_zone=0.0)
    np.testing.assert_array_equal(signs["label"], np.sign(signs["forward_return"]))


def test_rows_without_horizon_or_sigma_are_dropped_per_symbol() -> None:
    bars = pd.concat([_bars(CLOSES, "A"), _bars(CLOSES[::-1], "B")], ignore_index=True)
    labels = make_labels(bars.iloc[::-1], horizon=1, dead_zone=0.25, vol_window=4)
    # per symbol: 8 bars - 4 (sigma warm-up) - 1 (horizon) = 3, never across symbols
    assert labels.groupby("symbol").size().to_dict() == {"A": 3, "B": 3}
    assert (labels["label_time"] > labels["timestamp"]).all()
    assert list(labels.columns) == ["symbol", "timestamp", "label_time", "forward_return", "label"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"horizon": 0}, "horizon must be an integer >= 1"),
        ({"horizon": 2.5}, "horizon must be an integer >= 1"),
        ({"dead_zone": -0.1}, "dead_zone must be a finite number >= 0"),
        ({"dead_zone": float("nan")}, "dead_zone must be a finite number >= 0"),
        ({"vol_window": 1}, "vol_window must be an integer >= 2"),
        ({"vol_window": "20"}, "vol_window must be an integer >= 2"),
    ],
)
def test_bad_label_parameters_are_refused(kwargs: dict[str, object], message: str) -> None:
    params: dict[str, object] = {"horizon": 5, "dead_zone": 0.25, **kwargs}
    with pytest.raises(ValueError, match=message):
        make_labels(synthetic_bars(50), **params)  # type: ignore[arg-type]


def test_training_frame_joins_features_and_labels() -> None:
    spec = FeatureSpec(windows=(5, 20))
    bars = synthetic_bars(200)
    frame = training_frame(bars, spec, horizon=3, dead_zone=0.25)
    assert list(frame.columns) == [
        "symbol",
        "timestamp",
        "label_time",
        *spec.names,
        "forward_return",
        "label",
    ]
    assert not frame.isna().any().any()
    expected = (
        compute_features(bars, spec)
        .merge(make_labels(bars, 3, 0.25), on=["symbol", "timestamp"])
        .dropna()
        .reset_index(drop=True)
    )
    pd.testing.assert_frame_equal(frame, expected[frame.columns])
    # first usable row per symbol: the longest feature warm-up (vol_cluster_20: 21 bars)
    assert frame.groupby("symbol").size().to_dict() == {"AAA": 200 - 21 - 3, "BBB": 176}


def test_labels_need_only_timestamp_symbol_and_close() -> None:
    bars = _bars(CLOSES)[["timestamp", "symbol", "close"]]
    labels = make_labels(bars, horizon=2, dead_zone=0.0, vol_window=2)
    # vol_window=2 is allowed: sigma from the 2 returns ending at t (rows from t = 2)
    assert list(labels["timestamp"]) == list(bars["timestamp"].iloc[2:6])


def test_a_return_on_the_threshold_is_flat() -> None:
    # dead_zone 0: the threshold is 0, and a forward return of exactly 0 is flat
    closes = [100.0, 101.0, 100.0, 102.0, 102.0, 102.0, 99.0, 104.0]
    labels = make_labels(_bars(closes), horizon=1, dead_zone=0.0, vol_window=2)
    # t = 2..6: 100->102 up, 102->102 flat, 102->102 flat, 102->99 down, 99->104 up
    assert labels["label"].tolist() == [1, 0, 0, -1, 1]
