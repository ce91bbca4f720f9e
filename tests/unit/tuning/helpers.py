"""Helpers for the tuning tests: small bars with a learnable signal and a study mapping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

TINY_MODEL = {
    "model.rf_n_estimators": 8,
    "model.xgb_n_estimators": 8,
    "model.quantile_n_estimators": 8,
    "model.svm_max_samples": 150,
}


def trending_bars(n: int = 700, symbol: str = "AAA", seed: int = 1) -> pd.DataFrame:
    """Hourly bars whose returns are autocorrelated (AR(1), phi=0.4): momentum features
    predict the next bars, so the models trade and thresholds matter."""
    rng = np.random.default_rng(seed)
    eps = rng.normal(0, 0.004, n)
    r = np.zeros(n)
    for i in range(1, n):
        r[i] = 0.4 * r[i - 1] + eps[i]
    close = 100 * np.exp(np.cumsum(r))
    open_ = np.r_[close[0], close[:-1]]
    spread = np.abs(rng.normal(0, 0.001, n)) * close
    return pd.DataFrame(
        {
            "timestamp": pd.date_range("2021-01-04", periods=n, freq="h", tz="UTC"),
            "symbol": symbol,
            "open": open_,
            "high": np.maximum(open_, close) + spread,
            "low": np.minimum(open_, close) - spread,
            "close": close,
            "volume": rng.integers(100, 1000, n).astype(float),
        }
    )


def make_study(bars_root: Path, tmp: Path, **overrides: Any) -> dict[str, Any]:
    study: dict[str, Any] = {
        "name": "unit",
        "trials": 4,
        "concurrency": 2,
        "seed": 3,
        "storage": str(tmp / "store"),
        "data": {"symbols": ["AAA"], "root": str(bars_root), "n_folds": 2},
        "fixed": dict(TINY_MODEL),
        "search_space": {
            "decision.confidence_threshold": {"type": "float", "low": 0.0, "high": 0.6},
            "decision.kelly_fraction": {"type": "float", "low": 0.05, "high": 1.0},
        },
    }
    study.update(overrides)
    return study
