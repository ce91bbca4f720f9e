"""Out-of-sample metrics: classification, calibration, trading, and block-bootstrap CIs.

Conventions (kept in one place so every report agrees):

* Classes are ``-1`` (down), ``0`` (flat), ``+1`` (up); probability matrices have the
  columns in that order.
* ``positions[t]`` is the signed exposure (fraction of equity) held from bar ``t``'s close
  to bar ``t+1``'s close and ``asset_returns[t] = close[t+1] / close[t] - 1``; the
  strategy's return for that step is ``positions[t] * asset_returns[t]`` minus costs of
  ``(commission_bps + slippage_bps) / 1e4`` per unit of position traded at bar ``t``.
* Ratios are annualised with ``periods_per_year`` — derived from the data's own bar
  frequency by :func:`periods_per_year` and stated in every report.
* Sharpe uses the sample standard deviation (ddof=1) and Sortino the root mean square of
  the negative returns, as empyrical does (the tests cross-check both).
* The composite score the platform optimises is
  ``avg_profit + 0.1 * sharpe + 10 * (win_rate - 0.5) - 0.05 * max_drawdown_pct`` where
  ``avg_profit`` is the mean per-trade return **in percent** (a trade's contribution to
  equity, net of costs), ``win_rate`` the share of trades with a positive return (a
  fraction) and ``max_drawdown_pct`` the maximum drawdown **in percent** (positive). With
  no trades the win-rate term is left out (it is undefined, not 0).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

__all__ = [
    "CLASSES",
    "BootstrapCI",
    "ClassificationMetrics",
    "TradingMetrics",
    "block_bootstrap_ci",
    "brier_score",
    "calibration_table",
    "classification_metrics",
    "composite_score",
    "max_drawdown",
    "periods_per_year",
    "sharpe_ratio",
    "sortino_ratio",
    "strategy_returns",
    "total_return",
    "trade_returns",
    "trading_metrics",
]

CLASSES = (-1, 0, 1)
_CLASS_NAMES = {-1: "down", 0: "flat", 1: "up"}


# --- classification -------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassificationMetrics:
    """Out-of-sample classification quality over ``n`` rows."""

    n: int
    accuracy: float
    precision: dict[str, float]
    recall: dict[str, float]
    brier: float
    log_loss: float

    def as_dict(self) -> dict[str, object]:
        """Flat dict for tables: ``precision_up``, ``recall_down``, …"""
        out: dict[str, object] = {
            "n": self.n,
            "accuracy": self.accuracy,
            "brier": self.brier,
            "log_loss": self.log_loss,
        }
        for name in ("down", "flat", "up"):
            out[f"precision_{name}"] = self.precision[name]
            out[f"recall_{name}"] = self.recall[name]
        return out


def _check_proba(y_true: np.ndarray, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    p = np.asarray(proba, dtype=float)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"proba must have 3 columns (down, flat, up), got shape {p.shape}")
    if len(y) != len(p):
        raise ValueError(f"y_true has {len(y)} rows but proba has {len(p)}")
    # checked before the cast to int, which would turn 0.5 into a silent 0 (flat)
    bad = ~np.isin(y, CLASSES)
    if bad.any():
        raise ValueError(f"row {int(np.flatnonzero(bad)[0])}: label must be -1, 0 or 1")
    return y.astype(int), p


def brier_score(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Multi-class Brier score: mean over rows of sum_k (p_k - 1[y = k])^2 (0 best, 2 worst)."""
    y, p = _check_proba(y_true, proba)
    onehot = (y[:, None] == np.asarray(CLASSES)[None, :]).astype(float)
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


def classification_metrics(
    y_true: np.ndarray, proba: np.ndarray, y_pred: np.ndarray | None = None
) -> ClassificationMetrics:
    """Accuracy, per-class precision/recall, Brier score and log loss.

    ``y_pred`` defaults to the arg-max class of ``proba``; pass it when the model's
    direction is decided otherwise (e.g. a flat dead zone). A class never predicted has
    precision NaN (undefined), not 0.
    """
    from sklearn.metrics import log_loss, precision_recall_fscore_support

    y, p = _check_proba(y_true, proba)
    if len(y) == 0:
        raise ValueError("no rows to score")
    pred = np.asarray(CLASSES)[np.argmax(p, axis=1)] if y_pred is None else np.asarray(y_pred)
    prec, rec, _, _ = precision_recall_fscore_support(
        y, pred, labels=list(CLASSES), zero_division=np.nan
    )
    clipped = np.clip(p, 1e-15, 1.0)
    clipped = clipped / clipped.sum(axis=1, keepdims=True)
    return ClassificationMetrics(
        n=len(y),
        accuracy=float(np.mean(pred == y)),
        precision={_CLASS_NAMES[c]: float(v) for c, v in zip(CLASSES, prec, strict=True)},
        recall={_CLASS_NAMES[c]: float(v) for c, v in zip(CLASSES, rec, strict=True)},
        brier=brier_score(y, p),
        log_loss=float(log_loss(y, clipped, labels=list(CLASSES))),
    )


def calibration_table(probability: np.ndarray, hit: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Predicted probability vs realised frequency in equal-width bins of ``probability``.

    ``probability`` is the model's probability of the direction it chose and ``hit`` whether
    that direction was realised. Empty bins are left out. A calibrated model has
    ``realised ≈ mean_predicted`` in every bin.
    """
    prob = np.asarray(probability, dtype=float)
    h = np.asarray(hit, dtype=float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(prob, edges[1:-1]), 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        m = which == b
        if m.any():
            rows.append(
                {
                    "bin_low": edges[b],
                    "bin_high": edges[b + 1],
                    "mean_predicted": float(prob[m].mean()),
                    "realised": float(h[m].mean()),
                    "count": int(m.sum()),
                }
            )
    return pd.DataFrame(
        rows, columns=["bin_low", "bin_high", "mean_predicted", "realised", "count"]
    )


# --- trading --------------------------------------------------------------------------------


def periods_per_year(timestamps: pd.Series | pd.DatetimeIndex) -> float:
    """Bars per year, measured from the data: (bars - 1) / years spanned.

    Measured rather than assumed so it fits any calendar: ~252 for daily equities,
    ~6,200 for hourly FX (24 h x 5 days, holidays out). Falls back to the median bar spacing
    (x 252 trading days for intraday bars) when the span is under 60 days.
    """
    idx = pd.DatetimeIndex(timestamps).sort_values().unique()
    if len(idx) < 3:
        raise ValueError("need at least 3 distinct timestamps to measure the bar frequency")
    span_days = (idx[-1] - idx[0]) / pd.Timedelta(days=1)
    if span_days >= 60:
        return float((len(idx) - 1) / (span_days / 365.25))
    step = pd.Series(idx).diff().median() / pd.Timedelta(days=1)
    return 252.0 if step >= 0.5 else float(252.0 / step)


def strategy_returns(
    positions: np.ndarray,
    asset_returns: np.ndarray,
    commission_bps: float = 0.0,
    slippage_bps: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Net per-step strategy returns and the costs paid at each step.

    Costs are charged on every change of position (entries, exits, resizing), starting
    from flat before the first bar.
    """
    pos = np.asarray(positions, dtype=float)
    ret = np.asarray(asset_returns, dtype=float)
    if pos.shape != ret.shape:
        raise ValueError(f"positions {pos.shape} and asset_returns {ret.shape} differ in shape")
    if not np.isfinite(ret).all():
        raise ValueError("asset_returns has missing or infinite values (drop the last bar?)")
    rate = (commission_bps + slippage_bps) / 1e4
    traded = np.abs(np.diff(pos, prepend=0.0))
    costs = traded * rate
    return pos * ret - costs, costs


def trade_returns(
    positions: np.ndarray, asset_returns: np.ndarray, cost_rate: float = 0.0
) -> np.ndarray:
    """Per-trade returns: a trade is a run of non-zero position of one sign.

    A trade's return is its compounded gross contribution to equity over the bars it is
    open, minus ``cost_rate`` (commission + slippage as a fraction) times the position it
    traded: the entry, any resizing while open, and the exit (a flip closes one trade and
    opens the next, each paying its own half). A trade still open at the end pays no exit,
    as in :func:`strategy_returns`.
    """
    size = np.asarray(positions, dtype=float)
    ret = np.asarray(asset_returns, dtype=float)
    side = np.sign(size)
    gross = size * ret
    n = len(size)
    out = []
    t = 0
    while t < n:
        if side[t] == 0:
            t += 1
            continue
        s = t
        while t + 1 < n and side[t + 1] == side[s]:
            t += 1
        traded = abs(size[s]) + np.abs(np.diff(size[s : t + 1])).sum()
        if t + 1 < n:
            traded += abs(size[t])
        out.append(float(np.prod(1.0 + gross[s : t + 1]) - 1.0 - cost_rate * traded))
        t += 1
    return np.asarray(out, dtype=float)


def total_return(returns: np.ndarray) -> float:
    """Compounded return of a per-step return series (0.1 = +10%)."""
    return float(np.prod(1.0 + np.asarray(returns, dtype=float)) - 1.0)


def sharpe_ratio(returns: np.ndarray, periods_per_year: float) -> float:
    """Annualised Sharpe ratio (risk-free 0): mean / std(ddof=1) * sqrt(periods_per_year)."""
    r = np.asarray(returns, dtype=float)
    if len(r) < 2:
        return 0.0
    sd = r.std(ddof=1)
    return 0.0 if sd == 0 else float(r.mean() / sd * np.sqrt(periods_per_year))


def sortino_ratio(returns: np.ndarray, periods_per_year: float) -> float:
    """Annualised Sortino ratio: mean * ppy / (sqrt(mean(min(r, 0)^2)) * sqrt(ppy))."""
    r = np.asarray(returns, dtype=float)
    if len(r) < 2:
        return 0.0
    downside = np.sqrt(np.mean(np.minimum(r, 0.0) ** 2)) * np.sqrt(periods_per_year)
    return 0.0 if downside == 0 else float(r.mean() * periods_per_year / downside)


def max_drawdown(returns: np.ndarray) -> float:
    """Largest peak-to-trough fall of the equity curve, as a positive fraction (0.2 = 20%).

    The curve starts at 1 before the first return, so a loss on the first step counts.
    """
    r = np.asarray(returns, dtype=float)
    if len(r) == 0:
        return 0.0
    equity = np.concatenate([[1.0], np.cumprod(1.0 + r)])
    peak = np.maximum.accumulate(equity)
    return float(np.max(1.0 - equity / peak))


def composite_score(
    avg_profit_pct: float, sharpe: float, win_rate: float, max_drawdown_pct: float
) -> float:
    """``avg_profit + 0.1*sharpe + 10*(win_rate - 0.5) - 0.05*max_drawdown_pct`` (see module doc)."""
    win_term = 0.0 if np.isnan(win_rate) else 10.0 * (win_rate - 0.5)
    return float(avg_profit_pct + 0.1 * sharpe + win_term - 0.05 * max_drawdown_pct)


@dataclass(frozen=True)
class TradingMetrics:
    """Trading quality of one position series over ``n_bars`` steps."""

    n_bars: int
    periods_per_year: float
    total_return: float
    sharpe: float
    sortino: float
    max_drawdown_pct: float
    n_trades: int
    win_rate: float
    avg_profit_pct: float
    profit_factor: float
    turnover: float
    costs_pct: float
    exposure: float
    composite: float

    def as_dict(self) -> dict[str, float]:
        """Plain dict (for tables and parquet)."""
        return asdict(self)


def trading_metrics(
    positions: np.ndarray,
    asset_returns: np.ndarray,
    periods_per_year: float,
    commission_bps: float = 0.0,
    slippage_bps: float = 0.0,
) -> TradingMetrics:
    """All trading metrics of a position series (see the module doc for conventions).

    ``turnover`` is annualised: position traded per year as a multiple of equity;
    ``costs_pct`` the total costs paid in percent of starting equity (summed, simple);
    ``exposure`` the share of bars with a position.
    """
    pos = np.asarray(positions, dtype=float)
    net, costs = strategy_returns(pos, asset_returns, commission_bps, slippage_bps)
    trades = trade_returns(pos, asset_returns, (commission_bps + slippage_bps) / 1e4)
    n = len(pos)
    wins = trades[trades > 0].sum()
    losses = -trades[trades < 0].sum()
    if len(trades) == 0:
        pf = float("nan")
    elif losses == 0:
        pf = float("inf")
    else:
        pf = float(wins / losses)
    win_rate = float(np.mean(trades > 0)) if len(trades) else float("nan")
    avg_profit_pct = float(trades.mean() * 100) if len(trades) else 0.0
    sharpe = sharpe_ratio(net, periods_per_year)
    mdd_pct = max_drawdown(net) * 100
    traded = np.abs(np.diff(pos, prepend=0.0)).sum()
    return TradingMetrics(
        n_bars=n,
        periods_per_year=float(periods_per_year),
        total_return=total_return(net),
        sharpe=sharpe,
        sortino=sortino_ratio(net, periods_per_year),
        max_drawdown_pct=mdd_pct,
        n_trades=len(trades),
        win_rate=win_rate,
        avg_profit_pct=avg_profit_pct,
        profit_factor=pf,
        turnover=float(traded / n * periods_per_year) if n else 0.0,
        costs_pct=float(costs.sum() * 100),
        exposure=float(np.mean(pos != 0)) if n else 0.0,
        composite=composite_score(avg_profit_pct, sharpe, win_rate, mdd_pct),
    )


# --- bootstrap ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BootstrapCI:
    """A point estimate with a percentile confidence interval from a block bootstrap."""

    estimate: float
    low: float
    high: float
    level: float
    block: int
    reps: int

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies in [low, high]."""
        return self.low <= value <= self.high

    def __str__(self) -> str:
        return f"{self.estimate:+.4g} [{self.low:+.4g}, {self.high:+.4g}]"


def block_bootstrap_ci(
    statistic: Callable[..., np.ndarray],
    *arrays: np.ndarray,
    level: float = 0.90,
    reps: int = 1000,
    block: int | None = None,
    min_block: int = 1,
    seed: int = 0,
) -> BootstrapCI:
    """Circular block bootstrap percentile CI of ``statistic(*arrays)`` over time.

    ``arrays`` are per-bar series of equal length in time order; ``statistic`` receives
    them resampled with shape ``(reps_chunk, n)`` and returns one value per row (it must
    work along ``axis=1``, e.g. ``lambda x: x.mean(axis=1)``). Whole blocks of consecutive
    bars are drawn (wrapping around), which keeps the autocorrelation that overlapping
    labels and volatility clustering create — an i.i.d. bootstrap would give too-narrow
    intervals. ``block`` defaults to the Politis–White optimal length of the first array
    (``arch.bootstrap.optimal_block_length``), at least ``min_block`` (pass the label horizon).
    """
    data = [np.asarray(a, dtype=float) for a in arrays]
    if not data:
        raise ValueError("block_bootstrap_ci needs at least one array")
    n = len(data[0])
    if any(len(a) != n for a in data):
        raise ValueError("all arrays must have the same length")
    if n < 2:
        raise ValueError("need at least 2 observations to bootstrap")
    if block is None:
        block = _optimal_block(data[0])
    block = int(max(min_block, min(block, n)))
    estimate = float(np.asarray(statistic(*[a[None, :] for a in data])).reshape(-1)[0])
    rng = np.random.default_rng(seed)
    n_blocks = int(np.ceil(n / block))
    offsets = np.arange(block)
    values = []
    chunk = max(1, int(2_000_000 // max(n, 1)))
    for start in range(0, reps, chunk):
        k = min(chunk, reps - start)
        starts = rng.integers(0, n, size=(k, n_blocks))
        idx = ((starts[:, :, None] + offsets[None, None, :]) % n).reshape(k, -1)[:, :n]
        values.append(np.asarray(statistic(*[a[idx] for a in data]), dtype=float).reshape(k))
    dist = np.concatenate(values)
    dist = dist[np.isfinite(dist)]
    if len(dist) == 0:
        return BootstrapCI(estimate, float("nan"), float("nan"), level, block, reps)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(dist, [alpha, 1.0 - alpha])
    return BootstrapCI(estimate, float(low), float(high), level, block, reps)


def _optimal_block(x: np.ndarray) -> int:
    """Politis–White (2004) circular-bootstrap block length, via the arch package."""
    if np.std(x) == 0:
        return 1
    from arch.bootstrap import optimal_block_length

    b = float(optimal_block_length(x)["circular"].iloc[0])
    return max(1, round(b)) if np.isfinite(b) else 1
