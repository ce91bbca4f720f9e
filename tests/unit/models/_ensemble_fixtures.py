"""Helpers for the model tests: small hyper-parameters and synthetic labelled rows."""

from __future__ import annotations

import numpy as np

from augur.models import EnsembleParams

SMALL = {
    "rf_n_estimators": 15,
    "rf_max_depth": 5,
    "rf_min_samples_leaf": 5,
    "xgb_n_estimators": 15,
    "quantile_n_estimators": 15,
    "svm_max_samples": 250,
    "calibration_folds": 2,
    "top_k": 3,
}


def small_params(**overrides: object) -> EnsembleParams:
    return EnsembleParams(**{**SMALL, **overrides})  # type: ignore[arg-type]


def synthetic_xy(n: int = 400, k: int = 6, seed: int = 0, classes: tuple[int, ...] = (-1, 0, 1)):
    """Features with a weak signal in the first two columns; labels as make_labels does."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, k))
    signal = 0.8 * X[:, 0] - 0.5 * X[:, 1] + rng.normal(0.0, 1.0, n)
    r = 0.01 * signal
    if classes == (-1, 1):
        y = np.where(signal > 0, 1, -1)
    else:
        y = np.where(signal > 0.4, 1, np.where(signal < -0.4, -1, 0))
    return X, y, r
