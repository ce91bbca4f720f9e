"""Small fitted ensembles shared by the model tests (kept small: the suite must be fast)."""

from __future__ import annotations

import pytest

from augur.models import Ensemble
from tests.unit.models._ensemble_fixtures import small_params, synthetic_xy


@pytest.fixture(scope="session")
def xy():
    return synthetic_xy()


@pytest.fixture(scope="session")
def fitted(xy) -> Ensemble:
    X, y, r = xy
    names = [f"f{i}" for i in range(X.shape[1])]
    return Ensemble(small_params()).fit(
        X,
        y,
        r,
        names,
        feature_spec_hash="testhash",
        purge=2,
        volatility_ref=1.0,
        context={"label_horizon": 2, "label_dead_zone": 0.25, "symbols": ["AAA"]},
    )
