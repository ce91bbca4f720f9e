"""Training on bars: purged held-out tail, context recorded, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from augur.config import Settings
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
    # the last training row's label is realised before the held-out period starts
    assert res.n_train + res.n_holdout <= 240


def test_no_holdout_and_errors() -> None:
    bars = synthetic_bars(n=200, symbols=("AAA",))
    res = train_on_bars(bars, params=small_params(), settings=Settings(), holdout_fraction=0.0)
    assert res.n_holdout == 0 and res.holdout == {}
    assert np.isfinite(res.ensemble.volatility_ref)
    with pytest.raises(ValueError, match="holdout_fraction"):
        train_on_bars(bars, settings=Settings(), holdout_fraction=0.95)
    with pytest.raises(ValueError, match="no training rows"):
        train_on_bars(synthetic_bars(n=30, symbols=("AAA",)), settings=Settings())
