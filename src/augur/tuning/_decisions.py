"""Score a grid of DecisionConfigs over the same out-of-sample predictions.

One call of the backtest's vectorised sweep (:func:`augur.backtest.sweep.sweep`: one
compiled chronological pass per combination, parallel over combinations) per symbol.
With several symbols the per-symbol figures are averaged (trades are summed): each
symbol is its own account, as the sweep backtests one symbol at a time.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["score_decision_grid"]

_AVERAGED = ("score", "total_return", "max_drawdown_pct", "sharpe", "win_rate", "avg_profit_pct")


def score_decision_grid(
    preds: pd.DataFrame, grid: list[dict[str, Any]], commission_bps: float
) -> list[dict[str, float]]:
    """One metrics dict per grid row (same order): score (composite), total_return,
    max_drawdown_pct, sharpe, win_rate, avg_profit_pct, n_trades."""
    from augur.backtest.metrics import periods_per_year
    from augur.backtest.sweep import sweep
    from augur.decision import DecisionConfig

    frame = pd.DataFrame(grid)
    if frame.empty or len(frame.columns) == 0:  # nothing searched: the default thresholds
        frame = pd.DataFrame({"kelly_fraction": [DecisionConfig().kelly_fraction]})
    per_symbol = []
    for _, part in preds.groupby("symbol", sort=True):
        part = part.sort_values("timestamp", kind="stable")
        if len(part) < 2:
            continue
        res = sweep(
            part.rename(columns={"close": "price"}),
            frame,
            commission_bps=commission_bps,
            slippage_bps=0.0,
            periods_per_year=periods_per_year(part["timestamp"]),
        )
        per_symbol.append(res.rename(columns={"avg_profit": "avg_profit_pct"}))
    if not per_symbol:
        raise ValueError("no out-of-sample predictions to score (each symbol needs >= 2 bars)")
    rows = []
    for i in range(len(frame)):
        row = {m: _mean([float(r[m].iloc[i]) for r in per_symbol]) for m in _AVERAGED}
        row["n_trades"] = float(sum(int(r["n_trades"].iloc[i]) for r in per_symbol))
        # no trade at all: the composite is not defined; rank such a trial last
        row = {k: (0.0 if np.isnan(v) else v) for k, v in row.items()}
        rows.append(row)
    return rows


def _mean(values: list[float]) -> float:
    finite = [v for v in values if not np.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")
