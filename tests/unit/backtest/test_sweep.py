"""Parameter sweep: each combination agrees with a bar-by-bar loop through decide()."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from augur.backtest.metrics import composite_score, max_drawdown, sharpe_ratio
from augur.backtest.sweep import PREDICTION_COLUMNS, RESULT_COLUMNS, sweep
from augur.decision import (
    Action,
    DecisionConfig,
    MarketContext,
    PositionContext,
    RiskState,
    Signal,
    decide,
)

COST = 2.0 / 1e4  # commission 1 bp + slippage 1 bp, per side


def make_predictions(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    price = 1.1 * np.exp(np.cumsum(rng.normal(0, 0.004, n)))
    nxt = np.r_[np.diff(np.log(price)), 0.0]
    p_up = np.clip(0.45 + 20 * nxt + rng.normal(0, 0.1, n), 0.01, 0.98)  # a weak real edge
    p_down = np.clip(1 - p_up - rng.uniform(0, 0.1, n), 0.01, 0.98)
    return pd.DataFrame(
        {
            "p_up": p_up,
            "p_down": p_down,
            "confidence": rng.uniform(0, 1, n),
            "q05": -rng.uniform(0.001, 0.01, n),
            "q95": rng.uniform(0.001, 0.01, n),
            "price": price,
            "volatility": np.full(n, 0.004),
        }
    )


def reference(pred: pd.DataFrame, cfg: DecisionConfig) -> dict[str, float]:
    """The sweep's rules in plain Python through decide(), bar by bar."""
    eq, peak, prev = 1.0, 1.0, 1.0
    side, size, entry_price, start_eq, entry_eq, held = "flat", 0.0, 0.0, 0.0, 0.0, 0
    streak, since_loss = 0, 10**9
    rets, trade_rets = [], []
    for row in pred.itertuples():
        sign = {"long": 1, "short": -1, "flat": 0}[side]
        if sign:
            eq = entry_eq * (1 + size * sign * (row.price / entry_price - 1))
            held += 1
        peak = max(peak, eq)
        d = int(np.sign(row.p_up - row.p_down))
        prob = row.p_up if d > 0 else row.p_down if d < 0 else max(row.p_up, row.p_down)
        sig = Signal(
            direction=d,
            probability=prob,
            p_up=row.p_up,
            p_down=row.p_down,
            confidence=row.confidence,
            agreement=1.0,
            q05=row.q05,
            q95=row.q95,
        )
        dec = decide(
            sig,
            PositionContext(side=side, size=size, entry_price=entry_price, bars_held=held),
            RiskState(
                equity=eq,
                peak_equity=peak,
                consecutive_losses=streak,
                bars_since_last_loss=since_loss,
            ),
            MarketContext("X", price=row.price, volatility=row.volatility),
            cfg,
        )
        if dec.action is Action.EXIT_POSITION:
            eq -= entry_eq * size * COST * (row.price / entry_price)
            trade_rets.append(eq / start_eq - 1)
            if trade_rets[-1] > 0:
                streak = 0
            elif trade_rets[-1] < 0:
                streak, since_loss = streak + 1, -1
            side = "flat"
        elif dec.action in (Action.ENTER_LONG, Action.ENTER_SHORT):
            side = "long" if dec.action is Action.ENTER_LONG else "short"
            size, entry_price, start_eq, held = dec.size, row.price, eq, 0
            eq -= eq * size * COST
            entry_eq = eq
        since_loss += 1
        rets.append(eq / prev - 1)
        prev = eq
    r = np.array(rets)
    wins = np.array(trade_rets) > 0
    win_rate = wins.mean() if trade_rets else np.nan
    avg = 100 * np.mean(trade_rets) if trade_rets else 0.0
    return {
        "total_return": eq - 1,
        "sharpe": sharpe_ratio(r, 252.0),
        "max_drawdown_pct": 100 * max_drawdown(r),
        "win_rate": win_rate,
        "n_trades": len(trade_rets),
        "avg_profit": avg,
        "score": composite_score(avg, sharpe_ratio(r, 252.0), win_rate, 100 * max_drawdown(r)),
    }


BASE = DecisionConfig(
    volatility_scaling=False,
    max_position_size=0.9,
    max_symbol_exposure=0.9,
    max_portfolio_heat=1.0,
    max_correlated_exposure=1.0,
    stop_loss=1.5,
    take_profit=2.0,
    max_holding_bars=6,
)


def test_each_combination_agrees_with_decide_loop():
    pred = make_predictions()
    grid = {
        "confidence_threshold": [0.2, 0.6],
        "kelly_fraction": [0.5, 1.0],
        "max_drawdown": [0.03, 0.3],
        "cooldown_losses": [0, 2],
        "exit_units": ["volatility", "return"],
    }
    result = sweep(pred, grid, BASE)
    assert len(result) == 32
    assert list(result.columns) == [*grid, *RESULT_COLUMNS]
    assert (result["n_trades"] > 0).all()
    for row in result.to_dict(orient="records"):
        params = {k: row[k] for k in grid}
        cfg = DecisionConfig.from_dict(
            {
                **BASE.to_dict(),
                **params,
                "drawdown_scale_start": params["max_drawdown"]
                * BASE.drawdown_scale_start
                / BASE.max_drawdown,
            }
        )
        ref = reference(pred, cfg)
        for metric, value in ref.items():
            assert row[metric] == pytest.approx(value, rel=1e-9, abs=1e-12, nan_ok=True), (
                params,
                metric,
            )


def test_costs_reduce_returns_and_grid_frame_works():
    pred = make_predictions(seed=1)
    grid = pd.DataFrame({"confidence_threshold": [0.3, 0.5], "kelly_fraction": [0.5, 0.5]})
    cheap = sweep(pred, grid, BASE, commission_bps=0.0, slippage_bps=0.0)
    dear = sweep(pred, grid, BASE, commission_bps=5.0, slippage_bps=5.0)
    assert (dear["total_return"] < cheap["total_return"]).all()


def test_no_trades_leaves_win_rate_undefined():
    pred = make_predictions().assign(confidence=0.0)
    result = sweep(pred, {"confidence_threshold": [0.5]})
    assert result.loc[0, "n_trades"] == 0 and np.isnan(result.loc[0, "win_rate"])
    assert result.loc[0, "total_return"] == 0.0 and result.loc[0, "score"] == 0.0


def test_explicit_direction_column_is_used():
    pred = make_predictions()
    longs = sweep(pred.assign(direction=1), {"confidence_threshold": [0.0]}, BASE)
    shorts = sweep(pred.assign(direction=-1), {"confidence_threshold": [0.0]}, BASE)
    assert longs.loc[0, "total_return"] != shorts.loc[0, "total_return"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p.drop(columns="q95"), "q95"),
        (lambda p: p.assign(price=-1.0), "price"),
        (lambda p: p.assign(confidence=np.nan), "confidence"),
        (lambda p: p.iloc[:1], "at least 2"),
    ],
)
def test_bad_predictions_are_clear_errors(mutate, message):
    with pytest.raises(ValueError, match=message):
        sweep(mutate(make_predictions(20)), {"kelly_fraction": [0.5]})


def test_bad_grid_is_a_clear_error():
    pred = make_predictions(20)
    with pytest.raises(ValueError, match="grid row 0"):
        sweep(pred, {"kelly_fraction": [2.0]})
    with pytest.raises(ValueError, match="empty"):
        sweep(pred, {"kelly_fraction": []})
    with pytest.raises(ValueError, match="non-empty mapping"):
        sweep(pred, {})
    assert set(PREDICTION_COLUMNS) <= set(pred.columns)
