"""A rule set on trial: the walk-forward's out-of-sample predictions, split in time into a
search part (what proposals are judged on) and a final hold-out (reported, never searched),
replayed bar by bar with the rules and scored by the backtest's composite. The replay is
the compiled sweep kernel's (:func:`augur.backtest.sweep.replay_decisions`): the decision
engine's step and the rule program's ``run`` under numba, on the account of
``run_decisions`` (``decide()`` bar by bar), whose positions it gives.

:func:`composite_rows` is the same composite over many resampled series at once (numpy),
so the gate's block bootstrap re-scores thousands of replicates without a Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from augur.backtest.evaluation import DECISION_COLUMNS
from augur.backtest.metrics import TradingMetrics, periods_per_year, trading_metrics
from augur.backtest.sweep import replay_decisions

#: Columns ``decide()`` reads per bar, plus those the summary and the split need.
REQUIRED_COLUMNS: tuple[str, ...] = (
    "symbol",
    "timestamp",
    *DECISION_COLUMNS,
    "volatility_ref",
    "label",
)


@dataclass(frozen=True)
class Costs:
    """Commission and slippage per unit of position traded, in basis points."""

    commission_bps: float = 1.0
    slippage_bps: float = 1.0

    @property
    def rate(self) -> float:
        return (self.commission_bps + self.slippage_bps) / 1e4


@dataclass(frozen=True)
class OutOfSample:
    """Per symbol, its out-of-sample bars in time order and where its hold-out starts."""

    frames: dict[str, pd.DataFrame]
    split: dict[str, int]  # row of the first hold-out bar
    periods_per_year: dict[str, float]
    holdout_fraction: float

    @property
    def symbols(self) -> list[str]:
        return list(self.frames)

    def search_frames(self) -> dict[str, pd.DataFrame]:
        """The part the search may look at (the hold-out cut off)."""
        return {s: f.iloc[: self.split[s]] for s, f in self.frames.items()}


def split_out_of_sample(predictions: pd.DataFrame, holdout_fraction: float) -> OutOfSample:
    """Split each symbol's out-of-sample bars in time: the last ``holdout_fraction`` of
    them is the final hold-out. Raises ``ValueError`` naming a missing column or a symbol
    too short to split."""
    missing = [c for c in REQUIRED_COLUMNS if c not in predictions.columns]
    if missing:
        raise ValueError(
            f"the out-of-sample predictions lack {missing}: run `augur backtest` to write them"
        )
    if not 0.0 < holdout_fraction < 1.0:
        raise ValueError(f"holdout fraction {holdout_fraction}: use a share in (0, 1)")
    frames, split, ppy = {}, {}, {}
    for symbol, frame in predictions.groupby("symbol", sort=True):
        frame = frame.sort_values("timestamp").reset_index(drop=True)
        n = len(frame)
        cut = n - round(n * holdout_fraction)
        if cut < 20 or n - cut < 20:
            raise ValueError(
                f"{symbol}: {n} out-of-sample bars leave fewer than 20 for the search or the "
                f"hold-out at a hold-out fraction of {holdout_fraction}"
            )
        frames[str(symbol)] = frame
        split[str(symbol)] = cut
        ppy[str(symbol)] = periods_per_year(frame["timestamp"])
    if not frames:
        raise ValueError("the out-of-sample predictions are empty: run `augur backtest` first")
    return OutOfSample(frames, split, ppy, holdout_fraction)


def load_out_of_sample(path: Path, features_path: Path | None = None) -> pd.DataFrame:
    """``oos_predictions.parquet`` as ``augur backtest`` wrote it. That file has no
    ``regime`` column; it is joined from the offline features (by symbol and bar time)
    when they are there, so rules can read the bar's regime."""
    if not Path(path).exists():
        raise ValueError(f"{path} does not exist: run `augur backtest` first")
    preds = pd.read_parquet(path)
    if "regime" not in preds.columns and features_path is not None and features_path.exists():
        regimes = pd.read_parquet(features_path, columns=["symbol", "timestamp", "regime"])
        regimes = regimes.drop_duplicates(["symbol", "timestamp"], keep="last")
        preds = preds.merge(regimes, on=["symbol", "timestamp"], how="left")
    return preds


# --- one rule set, replayed -------------------------------------------------------------


@dataclass(frozen=True)
class SymbolTrial:
    """One symbol's replay: the position after each bar's decision and its entries."""

    positions: np.ndarray
    entries: np.ndarray
    asset: np.ndarray  # next-bar returns
    split: int
    periods_per_year: float

    def part(self, which: str) -> slice:
        return slice(None, self.split) if which == "search" else slice(self.split, None)

    def metrics(self, which: str, costs: Costs) -> TradingMetrics:
        s = self.part(which)
        return trading_metrics(
            self.positions[s],
            self.asset[s],
            self.periods_per_year,
            costs.commission_bps,
            costs.slippage_bps,
        )

    def equity(self, costs: Costs) -> np.ndarray:
        """The equity curve over the whole out-of-sample period, net of costs."""
        traded = np.abs(np.diff(self.positions, prepend=0.0))
        return np.cumprod(1.0 + self.positions * self.asset - traded * costs.rate)


@dataclass(frozen=True)
class Trial:
    """A rule set's replay over every symbol, with its figures on each part."""

    label: str
    symbols: dict[str, SymbolTrial]
    search: dict[str, TradingMetrics]
    holdout: dict[str, TradingMetrics]

    @property
    def score(self) -> float:
        """The search part's composite, averaged over symbols."""
        return float(np.mean([m.composite for m in self.search.values()]))

    @property
    def holdout_score(self) -> float:
        return float(np.mean([m.composite for m in self.holdout.values()]))

    @property
    def max_drawdown_pct(self) -> float:
        """The search part's worst maximum drawdown over symbols, in percent."""
        return float(max(m.max_drawdown_pct for m in self.search.values()))

    @property
    def holdout_max_drawdown_pct(self) -> float:
        return float(max(m.max_drawdown_pct for m in self.holdout.values()))


def run_trial(
    data: OutOfSample, program: Any, decision_config: Any, costs: Costs, label: str
) -> Trial:
    """Replay every symbol's decisions with ``program`` (None: no rules) on the compiled
    kernel: the positions ``run_decisions`` (``decide()`` bar by bar) would hold."""
    symbols: dict[str, SymbolTrial] = {}
    for symbol, frame in data.frames.items():
        positions, entries = replay_decisions(
            frame,
            decision_config,
            volatility_ref=frame["volatility_ref"].to_numpy(dtype=float),
            rules=program,
        )
        symbols[symbol] = SymbolTrial(
            positions=positions,
            entries=entries,
            asset=frame["next_return"].to_numpy(dtype=float),
            split=data.split[symbol],
            periods_per_year=data.periods_per_year[symbol],
        )
    return Trial(
        label=label,
        symbols=symbols,
        search={s: t.metrics("search", costs) for s, t in symbols.items()},
        holdout={s: t.metrics("holdout", costs) for s, t in symbols.items()},
    )


# --- the composite over many series at once ------------------------------------------------


def composite_rows(
    positions: np.ndarray, asset: np.ndarray, cost_rate: float, periods_per_year: float
) -> np.ndarray:
    """The backtest's composite (:func:`augur.backtest.metrics.composite_score` of
    :func:`~augur.backtest.metrics.trading_metrics`) of each row of ``positions`` against
    the same row of ``asset``, both shaped ``(k, n)``. Trades are runs of one sign, costed
    as :func:`~augur.backtest.metrics.trade_returns` costs them."""
    pos = np.atleast_2d(np.asarray(positions, dtype=float))
    ret = np.atleast_2d(np.asarray(asset, dtype=float))
    k, n = pos.shape
    gross = pos * ret
    step = np.abs(np.diff(pos, axis=1, prepend=0.0))
    net = gross - step * cost_rate

    sd = net.std(axis=1, ddof=1) if n > 1 else np.zeros(k)
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpe = np.where(sd > 0, net.mean(axis=1) / sd * np.sqrt(periods_per_year), 0.0)
    equity = np.concatenate([np.ones((k, 1)), np.cumprod(1.0 + net, axis=1)], axis=1)
    mdd_pct = np.max(1.0 - equity / np.maximum.accumulate(equity, axis=1), axis=1) * 100

    side = np.sign(pos)
    before = np.concatenate([np.zeros((k, 1)), side[:, :-1]], axis=1)
    after = np.concatenate([side[:, 1:], np.zeros((k, 1))], axis=1)
    held = side != 0
    start = held & (side != before)
    end = held & (side != after)
    end[:, -1] = False  # a trade still open at the end pays no exit
    traded = np.where(start, np.abs(pos), step) + np.where(end, np.abs(pos), 0.0)
    trade = np.cumsum(start, axis=1) - 1 + np.arange(k)[:, None] * n  # a global trade id
    ids = trade[held]
    log_growth = np.bincount(ids, np.log1p(gross[held]), minlength=k * n)
    cost = np.bincount(ids, traded[held], minlength=k * n)
    first = trade[start]  # one id per trade
    returns = np.expm1(log_growth[first]) - cost_rate * cost[first]
    row = first // n
    count = np.bincount(row, minlength=k)
    wins = np.bincount(row, returns > 0, minlength=k)
    total = np.bincount(row, returns, minlength=k)
    with np.errstate(divide="ignore", invalid="ignore"):
        avg_profit_pct = np.where(count > 0, total / count * 100, 0.0)
        win_term = np.where(count > 0, 10.0 * (wins / count - 0.5), 0.0)
    return avg_profit_pct + 0.1 * sharpe + win_term - 0.05 * mdd_pct


__all__ = [
    "Costs",
    "OutOfSample",
    "SymbolTrial",
    "Trial",
    "composite_rows",
    "load_out_of_sample",
    "run_trial",
    "split_out_of_sample",
]
