"""Honest evaluation: purged walk-forward folds, out-of-sample metrics, baselines, reports.

Heavy work (model fitting, plotting) happens only when the functions are called.
"""

from augur.backtest.metrics import (
    BootstrapCI,
    ClassificationMetrics,
    TradingMetrics,
    block_bootstrap_ci,
    calibration_table,
    classification_metrics,
    periods_per_year,
    trading_metrics,
)
from augur.backtest.simulation import OutOfSampleOutcomes, SimulationResult, simulate
from augur.backtest.sweep import sweep
from augur.backtest.walkforward import Fold, WalkForward

__all__ = [
    "BootstrapCI",
    "ClassificationMetrics",
    "Fold",
    "OutOfSampleOutcomes",
    "SimulationResult",
    "TradingMetrics",
    "WalkForward",
    "block_bootstrap_ci",
    "calibration_table",
    "classification_metrics",
    "periods_per_year",
    "simulate",
    "sweep",
    "trading_metrics",
]
