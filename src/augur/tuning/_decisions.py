"""Score a grid of DecisionConfigs over the same out-of-sample predictions.

Uses the backtest's vectorised sweep (:func:`augur.backtest.sweep.sweep`) when it is
available — one compiled pass over all combinations. Without it, the decision rules are
replayed here one trade per label horizon with the decision engine's own sizing
functions (confidence gate → drawdown stop and scaling → cool-down after losses →
fractional Kelly), which is what the composite score of the evaluation is defined on.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["score_decision_grid"]


def score_decision_grid(
    preds: pd.DataFrame, decisions: list[Any], horizon: int, commission_bps: float
) -> list[dict[str, float]]:
    """One metrics dict per DecisionConfig (same order): score (composite), total_return,
    max_drawdown_pct, sharpe, win_rate, avg_profit_pct, n_trades."""
    return [_replay(preds, cfg, horizon, commission_bps) for cfg in decisions]


def _decision_steps(preds: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """Every ``horizon``-th prediction of each symbol: trades do not overlap."""
    order = preds.groupby("symbol", sort=False).cumcount().to_numpy()
    return preds.loc[order % horizon == 0]


def _replay(preds: pd.DataFrame, cfg: Any, horizon: int, commission_bps: float) -> dict[str, float]:
    from augur.backtest.metrics import composite_score
    from augur.decision import drawdown_scale, kelly_size, payoff_ratio

    steps = _decision_steps(preds, horizon)
    direction = steps["direction"].to_numpy()
    prob = steps["probability"].to_numpy()
    conf = steps["confidence"].to_numpy()
    q05 = steps["q05"].to_numpy()
    q95 = steps["q95"].to_numpy()
    fwd = np.expm1(steps["forward_return"].to_numpy())  # label returns are log returns
    cost = 2.0 * commission_bps / 1e4  # round trip
    n = len(steps)
    step_ret = np.zeros(n)
    trades: list[float] = []
    equity = peak = 1.0
    losses_in_row = 0
    cooldown_left = 0
    cooldown_steps = int(np.ceil(cfg.cooldown_bars / horizon))
    for i in range(n):
        d = int(direction[i])
        if cooldown_left > 0:
            cooldown_left -= 1
            continue
        if d == 0 or conf[i] < cfg.confidence_threshold:
            continue
        dd = 1.0 - equity / peak
        scale = drawdown_scale(dd, cfg.drawdown_scale_start, cfg.max_drawdown)
        if scale <= 0.0:
            continue
        b = payoff_ratio(d, float(q05[i]), float(q95[i]), cfg.max_payoff_ratio)
        size = kelly_size(float(prob[i]), b, cfg.kelly_fraction, cfg.max_position_size) * scale
        if size <= 0.0:
            continue
        r = size * (d * fwd[i] - cost)
        step_ret[i] = r
        trades.append(r)
        equity *= 1.0 + r
        peak = max(peak, equity)
        if r < 0:
            losses_in_row += 1
            if cfg.cooldown_losses and losses_in_row >= cfg.cooldown_losses:
                cooldown_left = cooldown_steps
                losses_in_row = 0
        else:
            losses_in_row = 0
    curve = np.concatenate([[1.0], np.cumprod(1.0 + step_ret)])
    mdd_pct = float(np.max(1.0 - curve / np.maximum.accumulate(curve))) * 100
    periods = _steps_per_year(steps, horizon)
    sd = step_ret.std()
    sharpe = float(step_ret.mean() / sd * np.sqrt(periods)) if sd > 0 else 0.0
    t = np.asarray(trades)
    win_rate = float(np.mean(t > 0)) if len(t) else float("nan")
    avg_profit_pct = float(t.mean() * 100) if len(t) else 0.0
    return {
        "score": composite_score(avg_profit_pct, sharpe, win_rate, mdd_pct),
        "total_return": float(curve[-1] - 1.0),
        "max_drawdown_pct": mdd_pct,
        "sharpe": sharpe,
        "win_rate": 0.0 if np.isnan(win_rate) else win_rate,
        "avg_profit_pct": avg_profit_pct,
        "n_trades": float(len(t)),
    }


def _steps_per_year(steps: pd.DataFrame, horizon: int) -> float:
    ts = pd.DatetimeIndex(steps["timestamp"])
    if len(ts) < 2:
        return 252.0
    years = (ts.max() - ts.min()).total_seconds() / (365.25 * 86400)
    return float(len(ts) / years) if years > 0 else 252.0
