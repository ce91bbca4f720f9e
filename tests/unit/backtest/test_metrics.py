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


# --- exact values, edges and messages (each pins a rule the tests above only sample) ----


def test_classification_as_dict_and_explicit_predictions():
    y = np.array([1, 1, -1, 0])
    p = np.array([[0.1, 0.2, 0.7], [0.6, 0.2, 0.2], [0.5, 0.3, 0.2], [0.2, 0.5, 0.3]])
    cm = m.classification_metrics(y, p)
    assert cm.n == 4 and cm.accuracy == 0.75  # arg-max: up, down, down, flat
    assert cm.as_dict() == {
        "n": 4,
        "accuracy": 0.75,
        "brier": cm.brier,
        "log_loss": cm.log_loss,
        "precision_down": 0.5,
        "recall_down": 1.0,
        "precision_flat": 1.0,
        "recall_flat": 1.0,
        "precision_up": 1.0,
        "recall_up": 0.5,
    }
    # y_pred (e.g. a dead zone) replaces the arg-max
    cm = m.classification_metrics(y, p, y_pred=np.array([1, 0, -1, 0]))
    assert cm.accuracy == 0.75 and cm.recall["up"] == 0.5 and cm.precision["flat"] == 0.5


def test_classes_absent_from_the_data_still_have_their_columns():
    # only "up" and "down" occur; "flat" is never true nor predicted
    y = np.array([1, -1, 1])
    p = np.array([[0.1, 0.1, 0.8], [0.7, 0.1, 0.2], [0.6, 0.1, 0.3]])
    cm = m.classification_metrics(y, p)
    assert np.isnan(cm.precision["flat"]) and np.isnan(cm.recall["flat"])
    assert cm.precision["down"] == 0.5 and cm.recall["up"] == 0.5
    expected = -(np.log(0.8) + np.log(0.7) + np.log(0.3)) / 3
    assert cm.log_loss == pytest.approx(expected, rel=1e-12)
    one = m.classification_metrics(np.array([0]), np.array([[0.2, 0.5, 0.3]]))
    assert one.n == 1 and one.accuracy == 1.0


def test_log_loss_clips_zero_and_renormalises_rows():
    y = np.array([1, -1])
    # a zero on the true class counts as 1e-15, not as the library's own epsilon
    p = np.array([[0.0, 0.0, 1.0], [0.0, 0.5, 0.5]])
    assert m.classification_metrics(y, p).log_loss == pytest.approx(-np.log(1e-15) / 2, rel=1e-9)
    # rows that do not sum to 1 are scaled to sum to 1
    flat = np.array([[0.3, 0.3, 0.3], [0.2, 0.2, 0.2]])
    assert m.classification_metrics(y, flat).log_loss == pytest.approx(np.log(3.0), rel=1e-12)


def test_classification_messages():
    p = np.full((3, 3), 1 / 3)
    with pytest.raises(ValueError, match=r"^y_true has 2 rows but proba has 3$"):
        m.classification_metrics(np.array([1, 0]), p)
    with pytest.raises(ValueError, match=r"^no rows to score$"):
        m.classification_metrics(np.array([], dtype=int), np.empty((0, 3)))


def test_calibration_table_bins_exactly():
    prob = np.array([0.05, 0.15, 0.5, 0.55, 0.95, 1.0])
    hit = np.array([0, 1, 1, 0, 1, 1])
    table = m.calibration_table(prob, hit)  # 10 bins by default
    assert list(table.columns) == ["bin_low", "bin_high", "mean_predicted", "realised", "count"]
    assert table["bin_low"].tolist() == pytest.approx([0.0, 0.1, 0.5, 0.9])
    assert table["bin_high"].tolist() == pytest.approx([0.1, 0.2, 0.6, 1.0])
    assert table["count"].tolist() == [1, 1, 2, 2]  # 1.0 falls in the last bin
    assert table["mean_predicted"].tolist() == pytest.approx([0.05, 0.15, 0.525, 0.975])
    assert table["realised"].tolist() == pytest.approx([0.0, 1.0, 0.5, 1.0])
    four = m.calibration_table(prob, hit, n_bins=4)
    assert four["bin_low"].tolist() == pytest.approx([0.0, 0.5, 0.75])
    assert four["count"].tolist() == [2, 2, 2]
    empty = m.calibration_table(np.array([]), np.array([]))
    assert empty.empty
    assert list(empty.columns) == ["bin_low", "bin_high", "mean_predicted", "realised", "count"]


def test_periods_per_year_edges():
    days = pd.date_range("2021-01-01", periods=366, freq="D", tz="UTC")  # 365 days
    assert m.periods_per_year(days) == pytest.approx(365.25, rel=1e-12)
    sixty = pd.date_range("2021-01-01", periods=61, freq="D", tz="UTC")  # exactly 60 days
    assert m.periods_per_year(sixty) == pytest.approx(365.25, rel=1e-12)
    three = pd.date_range("2021-01-01", periods=3, freq="h")
    assert m.periods_per_year(three) == 252 * 24
    half_days = pd.date_range("2021-01-01", periods=10, freq="12h")
    assert m.periods_per_year(half_days) == 252.0  # 12 h bars count as daily
    weeks = pd.date_range("2021-01-01", periods=5, freq="7D")
    assert m.periods_per_year(weeks) == 252.0
    with pytest.raises(ValueError, match=r"^need at least 3 distinct timestamps to measure"):
        m.periods_per_year(pd.DatetimeIndex(["2021-01-01", "2021-01-01", "2021-01-02"]))


def test_strategy_and_trade_returns_exactly():
    pos = np.array([0.5, 0.5, -1.0, 0.0])
    asset = np.array([0.02, -0.01, 0.03, 0.05])
    net, costs = m.strategy_returns(pos, asset, commission_bps=3, slippage_bps=7)
    rate = 10 / 1e4
    np.testing.assert_allclose(costs, [0.5 * rate, 0.0, 1.5 * rate, 1.0 * rate])
    np.testing.assert_allclose(net, [0.01 - 0.5 * rate, -0.005, -0.03 - 1.5 * rate, -rate])
    free_net, free_costs = m.strategy_returns(pos, asset)  # no costs unless asked
    assert (free_costs == 0).all()
    np.testing.assert_allclose(free_net, pos * asset)
    np.testing.assert_allclose(m.trade_returns(pos, asset), [1.01 * 0.995 - 1, -0.03])


def test_trade_returns_runs_resizes_and_open_trades():
    rate = 0.001
    # one long trade resized 1 -> 3 -> 2 over three bars, then flat
    pos = np.array([1.0, 3.0, 2.0, 0.0])
    asset = np.array([0.01, 0.01, -0.01, 0.0])
    gross = (1 + 0.01) * (1 + 0.03) * (1 - 0.02) - 1
    assert m.trade_returns(pos, asset, rate) == pytest.approx([gross - rate * (1 + 2 + 1 + 2)])
    # a trade still open at the last bar: all its bars count, no exit is paid
    pos = np.array([0.0, 1.0, 1.0, 2.0])
    asset = np.array([0.5, 0.01, 0.02, 0.03])
    gross = 1.01 * 1.02 * 1.06 - 1
    assert m.trade_returns(pos, asset, rate) == pytest.approx([gross - rate * (1 + 1)])
    # three separate trades, each of one bar
    pos = np.array([1.0, 0.0, -1.0, 0.0, 1.0])
    asset = np.array([0.01, 0.0, 0.02, 0.0, 0.03])
    assert m.trade_returns(pos, asset) == pytest.approx([0.01, -0.02, 0.03])


def test_a_boolean_mask_is_a_unit_long_position():
    mask = np.array([False, True, True, False, True])
    asset = np.array([0.01, 0.02, -0.01, 0.03, 0.01])
    as_float = m.trading_metrics(mask.astype(float), asset, 252, commission_bps=5)
    assert m.trading_metrics(mask, asset, 252, commission_bps=5) == as_float
    np.testing.assert_allclose(m.trade_returns(mask, asset), [1.02 * 0.99 - 1, 0.01])
    net, _ = m.strategy_returns(mask, asset)
    np.testing.assert_allclose(net, [0.0, 0.02, -0.01, 0.0, 0.01])


def test_a_missing_return_given_as_none_is_refused():
    with pytest.raises(ValueError, match=r"^asset_returns has missing or infinite values"):
        m.strategy_returns([1.0, 1.0], [0.01, None])


def test_ratios_on_short_and_one_sided_series():
    assert m.sharpe_ratio(np.array([0.01]), 252) == 0.0
    assert m.sortino_ratio(np.array([0.01]), 252) == 0.0
    two = np.array([0.01, 0.03])
    assert m.sharpe_ratio(two, 4) == pytest.approx(0.02 / np.std(two, ddof=1) * 2)
    assert m.sortino_ratio(np.array([0.01, -0.03]), 4) == pytest.approx(
        -0.01 * 4 / (np.sqrt(0.03**2 / 2) * 2)
    )
    assert m.sortino_ratio(np.array([0.01, 0.02, 0.03]), 252) == 0.0  # no downside
    assert m.sharpe_ratio(np.full(5, 0.01), 252) == 0.0  # no variation
    assert m.max_drawdown(np.array([])) == 0.0
    assert m.max_drawdown(np.array([-0.1])) == pytest.approx(0.1)
    assert m.max_drawdown(np.array([0.1, -0.5, 0.2])) == pytest.approx(0.5)


def test_trading_metrics_fields_exactly():
    pos = np.array([1.0, 1.0, 0.0, 2.0, 0.0, 0.0])
    asset = np.array([0.1, -0.2, 0.0, 0.05, 0.0, 0.0])
    tm = m.trading_metrics(pos, asset, periods_per_year=100, commission_bps=10)
    rate = 0.001
    net, costs = m.strategy_returns(pos, asset, 10)
    trades = [1.1 * 0.8 - 1 - 2 * rate, 0.1 - 4 * rate]
    assert tm.as_dict() == {
        "n_bars": 6,
        "periods_per_year": 100.0,
        "total_return": pytest.approx(np.prod(1 + net) - 1),
        "sharpe": pytest.approx(m.sharpe_ratio(net, 100)),
        "sortino": pytest.approx(m.sortino_ratio(net, 100)),
        "max_drawdown_pct": pytest.approx(m.max_drawdown(net) * 100),
        "n_trades": 2,
        "win_rate": 0.5,
        "avg_profit_pct": pytest.approx(np.mean(trades) * 100),
        "profit_factor": pytest.approx(trades[1] / -trades[0]),
        "turnover": pytest.approx(6.0 / 6 * 100),
        "costs_pct": pytest.approx(costs.sum() * 100),
        "exposure": pytest.approx(3 / 6),
        "composite": pytest.approx(
            np.mean(trades) * 100
            + 0.1 * m.sharpe_ratio(net, 100)
            + 10 * (0.5 - 0.5)
            - 0.05 * m.max_drawdown(net) * 100
        ),
    }
    assert tm.max_drawdown_pct == pytest.approx((1 - 0.8 * (1 - rate)) * 100, rel=1e-6)
    assert tm.costs_pct == pytest.approx(0.6)


def test_profit_factor_and_win_rate_edges():
    # no losing trade: infinite profit factor
    tm = m.trading_metrics(np.array([1.0, 0.0]), np.array([0.05, 0.0]), 252)
    assert tm.profit_factor == float("inf") and tm.win_rate == 1.0
    # a total loss of exactly 1.0 against a win of 0.5
    tm = m.trading_metrics(np.array([1.0, 0.0, 1.0, 0.0]), np.array([0.5, 0.0, -1.0, 0.0]), 252)
    assert tm.profit_factor == pytest.approx(0.5)
    # a trade that makes exactly nothing is not a win
    tm = m.trading_metrics(np.array([1.0, 0.0, 1.0]), np.array([0.0, 0.0, 0.02]), 252)
    assert tm.n_trades == 2 and tm.win_rate == 0.5
    # no bars at all
    empty = m.trading_metrics(np.array([]), np.array([]), 252)
    assert (empty.n_bars, empty.turnover, empty.exposure, empty.n_trades) == (0, 0.0, 0.0, 0)


def test_bootstrap_is_the_documented_circular_block_resampling():
    """Re-derive the interval from the documented procedure with the same generator."""
    rng = np.random.default_rng(4)
    x = rng.normal(0.1, 1.0, 5000)  # 5,000 bars: the resampling runs in several chunks
    ci = m.block_bootstrap_ci(lambda a: a.mean(axis=1), x, block=7, reps=1000, seed=11, level=0.8)
    g = np.random.default_rng(11)
    n_blocks = int(np.ceil(5000 / 7))
    starts = g.integers(0, 5000, size=(1000, n_blocks))
    idx = ((starts[:, :, None] + np.arange(7)[None, None, :]) % 5000).reshape(1000, -1)[:, :5000]
    dist = x[idx].mean(axis=1)
    low, high = np.quantile(dist, [0.1, 0.9])
    assert (ci.low, ci.high) == (low, high)
    assert (ci.estimate, ci.level, ci.block, ci.reps) == (x.mean(), 0.8, 7, 1000)
    # the same seed gives the same interval; the defaults are 1,000 draws and seed 0
    again = m.block_bootstrap_ci(lambda a: a.mean(axis=1), x[:300], block=3)
    assert again == m.block_bootstrap_ci(lambda a: a.mean(axis=1), x[:300], block=3, seed=0)
    assert again.reps == 1000 and again.level == 0.9


def test_bootstrap_edges_and_messages():
    two = m.block_bootstrap_ci(lambda a: a.mean(axis=1), np.array([1.0, 3.0]), block=1, reps=50)
    assert two.estimate == 2.0 and 1.0 <= two.low <= two.high <= 3.0
    assert two.contains(two.low) and two.contains(two.high)
    assert not two.contains(two.high + 1e-9)
    undefined = m.block_bootstrap_ci(
        lambda a: np.full(a.shape[0], np.nan), np.arange(10.0), block=2, reps=20, level=0.8
    )
    assert np.isnan(undefined.estimate) and np.isnan(undefined.low) and np.isnan(undefined.high)
    assert (undefined.level, undefined.block, undefined.reps) == (0.8, 2, 20)
    for args, message in (
        ((), "block_bootstrap_ci needs at least one array"),
        ((np.ones(3), np.ones(4)), "all arrays must have the same length"),
        ((np.ones(1),), "need at least 2 observations to bootstrap"),
    ):
        with pytest.raises(ValueError, match=f"^{message}$"):
            m.block_bootstrap_ci(lambda a: a.mean(axis=1), *args)


def test_optimal_block_length_edges():
    assert m._optimal_block(np.zeros(50)) == 1  # no variation
    assert m._optimal_block(np.r_[np.zeros(49), 1.0]) == 1  # Politis–White rounds to 0
    alternating = np.tile([1.0, -1.0], 25)  # standard deviation exactly 1
    assert m._optimal_block(alternating) == 9


def test_optimal_block_falls_back_to_one_without_a_finite_answer(monkeypatch):
    import arch.bootstrap

    def no_answer(x):
        return pd.DataFrame({"stationary": [np.nan], "circular": [np.nan]})

    monkeypatch.setattr(arch.bootstrap, "optimal_block_length", no_answer)
    assert m._optimal_block(np.random.default_rng(0).normal(size=100)) == 1


def test_labels_that_are_not_exactly_a_class_are_refused():
    """0.5 is no label: it used to be truncated to 0 (flat) and scored silently."""
    p = np.full((3, 3), 1 / 3)
    for labels in ([1, 0.5, -1], [1.0, -0.9, 0.0]):
        with pytest.raises(ValueError, match=r"^row 1: label must be -1, 0 or 1$"):
            m.classification_metrics(np.array(labels), p)
    # integral floats (e.g. a float column of labels) are fine
    assert m.classification_metrics(np.array([1.0, 0.0, -1.0]), p).n == 3
    assert m.brier_score(np.array([1.0, 0.0, -1.0]), p) == pytest.approx(2 / 3)
