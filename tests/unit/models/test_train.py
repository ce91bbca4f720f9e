"""Training on bars: purged held-out tail, context recorded, clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from augur.config import Settings
from augur.features import FeatureSpec, training_frame
from augur.models._train import train_on_bars
from tests.conftest import synthetic_bars
from tests.unit.models._ensemble_fixtures import small_params


def test_holdout_is_after_training_labels() -> None:
    bars = synthetic_bars(n=240, symbols=("AAA",))
    settings = Settings(label_horizon=3)
    res = train_on_bars(bars, params=small_params(), settings=settings, holdout_fraction=0.25)
    ctx = res.context
    assert res.n_holdout > 0 and res.n_train > 0
    assert ctx["data_end"] < ctx["holdout_start"]
    assert ctx["volatility_feature"] == "vol_20" and ctx["trend_feature"] == "eff_ratio_20"
    assert 0 <= res.holdout["ensemble"]["accuracy"] <= 1
    assert res.ensemble.metrics["holdout"] is res.holdout


def test_training_rows_whose_label_reaches_the_holdout_are_purged() -> None:
    """Rows before the held-out start whose label window straddles it are not trained on.

    With hourly bars and horizon h, the rows at ``start - h .. start - 1`` hours have
    features before the held-out period but labels formed from prices inside it; the
    purge (``label_time < start``) must drop exactly those ``h`` rows per symbol.
    """
    horizon = 4
    symbols = ("AAA", "BBB")
    bars = synthetic_bars(n=240, symbols=symbols)
    settings = Settings(label_horizon=horizon)
    res = train_on_bars(bars, params=small_params(), settings=settings, holdout_fraction=0.25)
    start = res.context["holdout_start"]

    # the same rows train_on_bars starts from, rebuilt independently
    spec = FeatureSpec.from_settings(settings)
    names = list(spec.model_names)
    frame = training_frame(bars, spec, horizon, settings.label_dead_zone)
    before = frame[frame["timestamp"] < start]
    straddling = before[before["label_time"] >= start]
    # the boundary really is straddled: h rows per symbol, at start - h .. start - 1 hours
    assert len(straddling) == horizon * len(symbols)
    expected_straddling = {start - pd.Timedelta(hours=k) for k in range(1, horizon + 1)}
    assert set(straddling["timestamp"]) == expected_straddling

    # by count: the training set is the rows before start minus the straddling ones
    n_train, n_before, n_straddling = res.n_train, len(before), len(straddling)
    assert n_train == n_before - n_straddling, (
        f"trained on {n_train} rows; {n_before} precede the holdout, of which "
        f"{n_straddling} have labels realised at or after it and must be purged"
    )
    # by timestamps: the training rows (recovered from the saved reference features)
    trained = res.reference.merge(frame, on=names, how="left", validate="one_to_one")
    assert trained["timestamp"].notna().all() and len(trained) == res.n_train
    assert trained["label_time"].max() < start, (
        f"a training row's label is realised at {trained['label_time'].max()}, "
        f"not before the holdout start {start}"
    )
    assert not set(trained["timestamp"]) & expected_straddling
    assert res.context["data_end"] == start - pd.Timedelta(hours=horizon + 1)


def test_no_holdout_and_errors() -> None:
    bars = synthetic_bars(n=200, symbols=("AAA",))
    res = train_on_bars(bars, params=small_params(), settings=Settings(), holdout_fraction=0.0)
    assert res.n_holdout == 0 and res.holdout == {}
    assert np.isfinite(res.ensemble.volatility_ref)
    with pytest.raises(ValueError, match="holdout_fraction"):
        train_on_bars(bars, settings=Settings(), holdout_fraction=0.95)
    with pytest.raises(ValueError, match="no training rows"):
        train_on_bars(synthetic_bars(n=30, symbols=("AAA",)), settings=Settings())
