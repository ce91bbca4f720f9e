"""Helpers for the tuning tests: small bars with a learnable signal and a study mapping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from tests.conftest import ar1_bars

TINY_MODEL = {
    "model.rf_n_estimators": 8,
    "model.xgb_n_estimators": 8,
    "model.quantile_n_estimators": 8,
    "model.svm_max_samples": 150,
}


def trending_bars(n: int = 700, symbol: str = "AAA", seed: int = 1) -> pd.DataFrame:
    """Hourly bars whose returns are autocorrelated (AR(1), phi=0.4): momentum features
    predict the next bars, so the models trade and thresholds matter."""
    return ar1_bars(n, 0.4, seed=seed, symbol=symbol)


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
