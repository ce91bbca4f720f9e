"""Metrics against independent implementations (empyrical-reloaded, quantstats, sklearn)."""

from __future__ import annotations

import empyrical
import numpy as np
import pandas as pd
import pytest
from scipy.signal import lfilter
from sklearn.metrics import accuracy_score, log_loss, precision_score, recall_score

from augur.backtest import metrics as m


@pytest.fixture
def returns() -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.normal(0.0004, 0.01, 1500) + 0.004 * rng.standard_t(3, 1500) * 0.2


@pytest.mark.parametrize("ppy", [252.0, 6048.0])
def test_trading_ratios_match_empyrical(returns, ppy):
    assert m.sharpe_ratio(returns, ppy) == pytest.approx(
        empyrical.sharpe_ratio(returns, annualization=ppy), rel=1e-9
    )
    assert m.sortino_ratio(returns, ppy) == pytest.approx(
        empyrical.sortino_ratio(returns, annualization=ppy), rel=1e-9
    )
    assert m.max_drawdown(returns) == pytest.approx(-empyrical.max_drawdown(returns), rel=1e-9)
    assert m.total_return(returns) == pytest.approx(empyrical.cum_returns_final(returns), rel=1e-9)


def test_trading_ratios_match_quantstats(returns):
    import quantstats as qs

    idx = pd.date_range("2015-01-01", periods=len(returns), freq="B")
    s = pd.Series(returns, index=idx)
    assert m.sharpe_ratio(returns, 252) == pytest.approx(
        qs.stats.sharpe(s, periods=252, annualize=True), rel=1e-6
    )
    assert m.max_drawdown(returns) == pytest.approx(-qs.stats.max_drawdown(s), rel=1e-6)
    assert m.total_return(returns) == pytest.approx(qs.stats.comp(s), rel=1e-9)
    # quantstats' win rate and profit factor over non-zero returns (each bar a "trade")
    alternating = np.where(np.arange(len(returns)) % 2 == 0, 1.0, -1.0)
    tm = m.trading_metrics(alternating, returns * alternating, 252)
    # each bar is one trade of size +1/-1 on returns*side -> per-trade return == returns
    assert tm.win_rate == pytest.approx(qs.stats.win_rate(s), rel=1e-6)
    assert tm.profit_factor == pytest.approx(qs.stats.profit_factor(s), rel=1e-6)


def test_trading_metrics_costs_trades_and_composite():
    asset = np.array([0.01, -0.02, 0.03, 0.01, -0.01, 0.02])
    pos = np.array([1.0, 1.0, 0.0, -0.5, -0.5, 0.0])
    tm = m.trading_metrics(pos, asset, periods_per_year=252, commission_bps=5, slippage_bps=5)
    rate = 10 / 1e4
    net, costs = m.strategy_returns(pos, asset, 5, 5)
    assert costs.sum() == pytest.approx(rate * (1 + 1 + 0.5 + 0.5))
    trades = m.trade_returns(pos, asset, rate)
    assert trades == pytest.approx([1.01 * 0.98 - 1 - 2 * rate, 1.005 * 0.995 - 1 - rate])
    assert tm.n_trades == 2 and tm.win_rate == 0.0
    assert tm.profit_factor == 0.0
    assert tm.avg_profit_pct == pytest.approx(trades.mean() * 100)
    assert tm.exposure == pytest.approx(4 / 6)
    assert tm.turnover == pytest.approx(3.0 / 6 * 252)
    assert tm.total_return == pytest.approx(np.prod(1 + net) - 1)
    expected = tm.avg_profit_pct + 0.1 * tm.sharpe + 10 * (0.0 - 0.5) - 0.05 * tm.max_drawdown_pct
    assert tm.composite == pytest.approx(expected)
    # a flip closes one trade and opens another, each paying its own side
    flip = m.trade_returns(np.array([1.0, -1.0]), np.array([0.0, 0.0]), rate)
    assert flip == pytest.approx([-2 * rate, -rate])


def test_flat_has_no_trades_and_zero_score():
    tm = m.trading_metrics(np.zeros(50), np.full(50, 0.001), 252)
    assert tm.n_trades == 0 and np.isnan(tm.win_rate) and np.isnan(tm.profit_factor)
    assert tm.composite == 0.0 and tm.total_return == 0.0 and tm.max_drawdown_pct == 0.0
    with pytest.raises(ValueError, match="shape"):
        m.strategy_returns(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="missing"):
        m.strategy_returns(np.zeros(2), np.array([0.0, np.nan]))


def test_classification_metrics_match_sklearn():
    rng = np.random.default_rng(1)
    y = rng.choice([-1, 0, 1], 400)
    p = rng.dirichlet([2, 1, 2], 400)
    p[np.arange(400), y + 1] += 0.3
    p /= p.sum(axis=1, keepdims=True)
    cm = m.classification_metrics(y, p)
    pred = np.array([-1, 0, 1])[p.argmax(axis=1)]
    assert cm.accuracy == pytest.approx(accuracy_score(y, pred))
    assert cm.log_loss == pytest.approx(log_loss(y, p, labels=[-1, 0, 1]))
    prec = precision_score(y, pred, labels=[-1, 0, 1], average=None)
    rec = recall_score(y, pred, labels=[-1, 0, 1], average=None)
    assert [cm.precision[k] for k in ("down", "flat", "up")] == pytest.approx(prec)
    assert [cm.recall[k] for k in ("down", "flat", "up")] == pytest.approx(rec)
    onehot = np.eye(3)[y + 1]
    assert cm.brier == pytest.approx(np.mean(np.sum((p - onehot) ** 2, axis=1)))
    assert m.brier_score(y, np.eye(3)[y + 1]) == 0.0
    assert set(cm.as_dict()) >= {"accuracy", "precision_up", "recall_down", "brier", "log_loss"}
    with pytest.raises(ValueError, match="3 columns"):
        m.classification_metrics(y, p[:, :2])
    with pytest.raises(ValueError, match="row 0"):
        m.classification_metrics(np.full(400, 2), p)


def test_calibration_table_recovers_a_calibrated_model():
    rng = np.random.default_rng(2)
    prob = rng.uniform(0.3, 1.0, 20000)
    hit = rng.uniform(size=prob.size) < prob
    table = m.calibration_table(prob, hit, n_bins=10)
    assert table["count"].sum() == prob.size
    assert np.allclose(table["realised"], table["mean_predicted"], atol=0.03)
    assert (table["bin_low"] >= 0.3 - 0.1).all()


def test_periods_per_year_from_the_data():
    daily = pd.bdate_range("2018-01-01", "2021-12-31", tz="UTC")
    assert m.periods_per_year(daily) == pytest.approx(261, abs=2)
    hourly_fx = pd.date_range("2020-01-01", periods=24 * 300, freq="h", tz="UTC")
    hourly_fx = hourly_fx[hourly_fx.dayofweek < 5]
    assert m.periods_per_year(hourly_fx) == pytest.approx(24 * 261, rel=0.02)
    assert m.periods_per_year(pd.date_range("2020-01-01", periods=10, freq="h")) == 252 * 24
    assert m.periods_per_year(pd.date_range("2020-01-01", periods=10, freq="D")) == 252
    with pytest.raises(ValueError, match="3 distinct"):
        m.periods_per_year(pd.date_range("2020-01-01", periods=2, freq="D"))


def test_block_bootstrap_ci_covers_the_true_mean():
    """AR(1) noise around a known mean: the 90% CI must cover it in most replications."""
    rng = np.random.default_rng(5)
    covered = 0
    trials = 40
    for i in range(trials):
        x = lfilter([1.0], [1.0, -0.6], rng.normal(0, 1, 600))  # AR(1), phi = 0.6
        ci = m.block_bootstrap_ci(lambda a: a.mean(axis=1), 0.3 + x, reps=400, seed=i)
        covered += ci.contains(0.3)
        assert ci.low <= ci.estimate <= ci.high
    assert covered / trials >= 0.75  # nominal 0.90; finite-sample block bootstraps undercover a bit
    # ratio statistics work on several arrays at once
    num = rng.integers(0, 2, 300).astype(float)
    den = np.ones(300)
    ci = m.block_bootstrap_ci(lambda a, b: a.sum(axis=1) / b.sum(axis=1), num, den, block=5)
    assert ci.block == 5 and ci.contains(num.mean())
    assert "[" in str(ci)


def test_block_bootstrap_is_wider_than_iid_on_autocorrelated_data():
    rng = np.random.default_rng(9)
    x = np.repeat(rng.normal(0, 1, 60), 10)  # blocks of 10 identical values
    blocked = m.block_bootstrap_ci(lambda a: a.mean(axis=1), x, block=10, reps=500)
    iid = m.block_bootstrap_ci(lambda a: a.mean(axis=1), x, block=1, reps=500)
    assert (blocked.high - blocked.low) > 2 * (iid.high - iid.low)
    auto = m.block_bootstrap_ci(lambda a: a.mean(axis=1), x, reps=200)
    assert auto.block > 1  # Politis–White picks a block for autocorrelated data
