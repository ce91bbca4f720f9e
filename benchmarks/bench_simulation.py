"""Monte Carlo simulation throughput and parameter-sweep speed vs vectorbt / backtesting.py.

Data: the real hourly EURUSD closes shipped in ``gym_anytrading`` (FOREX_EURUSD_1H_ASK,
6,225 bars) with a simple deterministic, causal signal (10-bar momentum scaled by the
50-bar volatility → p_up/p_down/confidence; quantiles ±1.645 sigma·sqrt(5) tilted by the
momentum). It stands in for the ensemble's out-of-sample predictions so the benchmark
runs on any machine; the engines' speed does not depend on the signal's quality.

1. Simulation: N paths x 252 steps (block bootstrap, block 10) after a warm-up call (which
   loads the compiled kernels). N = 25,000,000 when a 1,000,000-path probe projects it to
   finish within ``SIM_BUDGET_S`` seconds, else the largest N that fits (the metric says
   which N; wall-clock throughput suffers when other work shares the machine, so a row
   also projects 25M from the CPU time per path-step onto idle cores). Peer: the
   reference system this replaces — 25 million in 3 hours
   (≈2,300/s), a figure from the issue, not measured here.
   A second pair of rows measures the re-walk of the ensemble's member weights along each
   path (the default when the outcomes carry member columns) on synthetic member
   probabilities (four noisy variants of the momentum signal, labels from the 5-bar
   forward return): CPU-ns per path-step, beside the fixed-weights mode on the same
   outcomes in the same run.
2. Sweep: 1,000 decision-threshold combinations (confidence threshold x Kelly fraction x
   drawdown limit x cool-down) over the 6,225 bars, best of 3 after a warm-up. Peers in
   the same run: vectorbt ``Portfolio.from_signals`` on the same signals (entries,
   shorts, reversal exits, Kelly sizes, stop/take-profit, fees and slippage) for all
   1,000 columns in one vectorised call plus its metrics (vectorbt has no drawdown stop
   or cool-down, so it does less work per combination), and backtesting.py on 3
   combinations (one ``Backtest.run`` each).
"""

from __future__ import annotations

import os
import time
import warnings

import numpy as np
import pandas as pd

from benchmarks._table import Row

TITLE = "Monte Carlo simulation and parameter sweep (hourly EURUSD)"

SIM_TARGET = 25_000_000
SIM_BUDGET_S = float(os.environ.get("AUGUR_BENCH_SIM_BUDGET_S", "90"))
REFERENCE_PATHS_PER_S = 25_000_000 / (3 * 3600)  # the reference system
HORIZON = 5
COMMISSION_BPS = 1.0
SLIPPAGE_BPS = 1.0


def eurusd_predictions() -> pd.DataFrame:
    """Per-bar predictions from a causal momentum signal on the real EURUSD hourly closes."""
    from gym_anytrading.datasets import FOREX_EURUSD_1H_ASK

    close = FOREX_EURUSD_1H_ASK["Close"].to_numpy(dtype=float)
    logp = np.log(close)
    r1 = np.r_[0.0, np.diff(logp)]
    sigma = pd.Series(r1).rolling(50, min_periods=10).std().bfill().to_numpy()
    mom = np.r_[np.zeros(10), logp[10:] - logp[:-10]] / (sigma * np.sqrt(10))
    p_up = 1.0 / (1.0 + np.exp(-0.8 * mom))
    p_flat = 0.1
    p_down = (1.0 - p_flat) * (1.0 - p_up)
    p_up = (1.0 - p_flat) * p_up
    confidence = np.clip(np.abs(p_up - p_down) * 2.0, 0.0, 1.0)
    spread = 1.645 * sigma * np.sqrt(HORIZON)
    tilt = np.tanh(mom) * 0.3 * spread
    fwd = np.r_[logp[HORIZON:] - logp[:-HORIZON], np.zeros(HORIZON)]
    return pd.DataFrame(
        {
            "p_up": p_up,
            "p_down": p_down,
            "confidence": confidence,
            "q05": -spread + tilt,
            "q95": spread + tilt,
            "price": close,
            "forward_return": np.expm1(fwd),
        }
    )


def member_predictions(preds: pd.DataFrame, seed: int = 3) -> pd.DataFrame:
    """``preds`` with four synthetic members (the momentum signal's p_up tilted and
    noised per member), their labels and the walk's weight rule: what ``augur backtest``
    writes for the Monte Carlo to re-walk the member weights (see MemberOutcomes)."""
    from augur.backtest.simulation import MEMBERS

    rng = np.random.default_rng(seed)
    n = len(preds)
    out = preds.copy()
    base = preds["p_up"].to_numpy() / 0.9  # P(up | not flat) of the signal
    logit = np.log(base / (1.0 - base))
    fwd = np.log1p(preds["forward_return"].to_numpy())
    band = 0.25 * np.std(fwd)
    out["label"] = np.where(fwd > band, 1, np.where(fwd < -band, -1, 0))
    members = []
    for k, m in enumerate(MEMBERS):
        z = logit * (0.5 + 0.4 * k) + rng.normal(0.0, 0.5 + 0.2 * k, n)
        flat = np.clip(rng.normal(0.25, 0.05, n), 0.05, 0.6)
        up = (1.0 - flat) / (1.0 + np.exp(-z))
        down = 1.0 - flat - up
        out[f"p_down_{m}"], out[f"p_flat_{m}"], out[f"p_up_{m}"] = down, flat, up
        out[f"weight_score_{m}"] = np.log(1 / 3)
        members.append(np.stack([down, flat, up], axis=1))
    proba = np.mean(members, axis=0)  # equal starting weights
    out["p_down"], out["p_flat"], out["p_up"] = proba.T
    out["direction"] = np.sign(proba[:, 2] - proba[:, 0]).astype(int)
    out["volatility_ratio"] = 1.0
    out["trend"] = 0.0
    for name, value in (
        ("confidence_margin_weight", 0.5),
        ("confidence_agreement_weight", 0.3),
        ("confidence_trend_weight", 0.0),
        ("volatility_penalty", 0.5),
        ("weight_decay", 0.95),
        ("weight_floor", 0.02),
        ("weight_max_step", 1.0),
        ("weights_frozen", 0.0),
    ):
        out[name] = value
    return out


def _grid() -> dict[str, list[float]]:
    return {
        "confidence_threshold": list(np.round(np.linspace(0.05, 0.5, 10), 3)),
        "kelly_fraction": [0.1, 0.25, 0.5, 0.75, 1.0],
        "max_drawdown": [0.05, 0.1, 0.2, 0.4],
        "cooldown_losses": [0, 2, 3, 5, 8],
    }


def _base_config():
    from augur.decision import DecisionConfig

    # Exits that vectorbt and backtesting.py can express too: stop/take-profit in return
    # units and the confident-reversal exit; no time limit.
    return DecisionConfig(
        exit_units="return",
        stop_loss=0.005,
        take_profit=0.01,
        max_holding_bars=0,
        max_position_size=0.5,
        max_symbol_exposure=0.5,
        max_portfolio_heat=1.0,
        max_correlated_exposure=1.0,
        volatility_scaling=False,
    )


def _bench_simulation(preds: pd.DataFrame) -> list[Row]:
    from augur.backtest.simulation import OutOfSampleOutcomes, simulate

    outcomes = OutOfSampleOutcomes.from_predictions(preds.iloc[:-HORIZON])
    cfg = _base_config()
    warm = time.perf_counter()
    simulate(outcomes, 1_000, cfg, seed=1)
    warm_s = time.perf_counter() - warm
    probe = simulate(outcomes, 1_000_000, cfg, seed=1)
    projected = SIM_TARGET / probe.paths_per_second
    n = (
        SIM_TARGET
        if projected <= SIM_BUDGET_S
        else int(probe.paths_per_second * SIM_BUDGET_S * 0.8)
    )
    n = max(n, 1_000_000)
    cpu = time.process_time()
    result = simulate(outcomes, n, cfg, seed=7)
    cpu_s = time.process_time() - cpu  # CPU time of all threads
    rate = result.paths_per_second
    ns_per_step = 1e9 * cpu_s / (n * 252)
    idle_projection = SIM_TARGET * 252 * ns_per_step / 1e9 / (os.cpu_count() or 1)
    return [
        Row(
            "simulation",
            f"paths/s, {n:,} paths x 252 steps",
            rate,
            "reference system (issue figure: 25M in 3 h)",
            REFERENCE_PATHS_PER_S,
            "paths/s",
            True,
            "25M in <= 60 s",
        ),
        Row(
            "simulation",
            f"time for {n:,} paths (P(ruin) {result.probability_of_ruin:.2%})",
            result.elapsed_seconds,
            "reference system (issue figure)",
            n / REFERENCE_PATHS_PER_S,
            "s",
            False,
            "<= 60 s for 25M",
        ),
        Row(
            "simulation",
            "projected time for 25,000,000 paths",
            SIM_TARGET / rate,
            "target",
            60.0,
            "s",
            False,
            "<= 60 s",
        ),
        Row(
            "simulation",
            f"CPU time per path-step -> 25M on {os.cpu_count()} idle cores",
            idle_projection,
            f"target ({ns_per_step:.1f} CPU-ns per path-step measured)",
            60.0,
            "s",
            False,
            "<= 60 s",
        ),
        Row(
            "simulation",
            "warm-up (load compiled kernels)",
            warm_s,
            "—",
            None,
            "s",
            False,
        ),
        *_bench_rewalk(preds, cfg),
    ]


def _cpu_ns_per_step(outcomes, cfg, n: int, **kwargs) -> float:
    from augur.backtest.simulation import simulate

    cpu = time.process_time()
    simulate(outcomes, n, cfg, seed=7, **kwargs)
    return 1e9 * (time.process_time() - cpu) / (n * 252)


def _bench_rewalk(preds: pd.DataFrame, cfg) -> list[Row]:
    """CPU-ns per path-step re-walking the member weights vs fixed weights, same outcomes."""
    from augur.backtest.simulation import OutOfSampleOutcomes, simulate

    outcomes = OutOfSampleOutcomes.from_predictions(member_predictions(preds.iloc[:-HORIZON]))
    assert outcomes.members is not None
    warm = time.perf_counter()
    assert simulate(outcomes, 1_000, cfg, seed=1).rewalked_weights  # loads the kernel
    warm_s = time.perf_counter() - warm
    n = 1_000_000
    fixed_ns = _cpu_ns_per_step(outcomes, cfg, n, fixed_weights=True)
    rewalk_ns = _cpu_ns_per_step(outcomes, cfg, n)
    return [
        Row(
            "simulation",
            f"re-walked member weights: CPU-ns per path-step ({n:,} paths, synthetic members)",
            rewalk_ns,
            "fixed weights, same outcomes, same run",
            fixed_ns,
            "ns",
            False,
            f"+{rewalk_ns - fixed_ns:.1f} ns per path-step",
        ),
        Row(
            "simulation",
            "re-walk warm-up (load compiled kernel)",
            warm_s,
            "—",
            None,
            "s",
            False,
        ),
    ]


def _vectorbt():
    """Import vectorbt 1.0 under plotly 6 (its theme names a removed trace type)."""
    import plotly.graph_objs as go

    original = go.layout.Template.__init__

    def lenient(self, arg=None, **kwargs):  # type: ignore[no-untyped-def]
        kwargs.setdefault("skip_invalid", True)
        original(self, arg, **kwargs)

    go.layout.Template.__init__ = lenient
    try:
        import vectorbt as vbt
    finally:
        go.layout.Template.__init__ = original
    return vbt


def _signals(preds: pd.DataFrame, combos: pd.DataFrame, cfg):
    """Entries/short entries and Kelly sizes per combination (the same rules as ours)."""
    from augur.decision import kelly_size, payoff_ratio

    p_up, p_down = preds["p_up"].to_numpy(), preds["p_down"].to_numpy()
    direction = np.sign(p_up - p_down).astype(int)
    prob = np.where(direction > 0, p_up, p_down)
    b = np.array(
        [
            payoff_ratio(int(d), a, q, cfg.max_payoff_ratio)
            for d, a, q in zip(direction, preds["q05"], preds["q95"], strict=True)
        ]
    )
    thr = combos["confidence_threshold"].to_numpy()[None, :]
    passes = preds["confidence"].to_numpy()[:, None] >= thr
    long_entries = passes & (direction[:, None] > 0)
    short_entries = passes & (direction[:, None] < 0)
    full_kelly = np.array([kelly_size(p, bb, 1.0, 10.0) for p, bb in zip(prob, b, strict=True)])
    size = np.minimum(
        full_kelly[:, None] * combos["kelly_fraction"].to_numpy()[None, :], cfg.max_position_size
    )
    return long_entries, short_entries, size


def _run_vectorbt(vbt, preds: pd.DataFrame, combos: pd.DataFrame, cfg) -> pd.DataFrame:
    long_e, short_e, size = _signals(preds, combos, cfg)
    close = pd.DataFrame(
        np.broadcast_to(preds["price"].to_numpy()[:, None], long_e.shape),
        columns=pd.RangeIndex(len(combos)),
    )
    pf = vbt.Portfolio.from_signals(
        close,
        entries=long_e,
        exits=short_e,  # a confident opposite signal closes the position
        short_entries=short_e,
        short_exits=long_e,
        upon_opposite_entry="close",
        size=np.where(size > 0, size, np.nan),
        size_type="percent",
        fees=COMMISSION_BPS / 1e4,
        slippage=SLIPPAGE_BPS / 1e4,
        sl_stop=cfg.stop_loss,
        tp_stop=cfg.take_profit,
        init_cash=1.0,
        freq="1h",
    )
    return pd.DataFrame(
        {
            "total_return": pf.total_return().to_numpy(),
            "sharpe": pf.sharpe_ratio().to_numpy(),
            "max_drawdown": pf.max_drawdown().to_numpy(),
            "win_rate": pf.trades.win_rate().to_numpy(),
            "n_trades": pf.trades.count().to_numpy(),
        }
    )


def _run_backtesting(preds: pd.DataFrame, combo: dict[str, float], cfg) -> float:
    import backtesting.backtesting as bt_module
    from backtesting import Backtest, Strategy

    bt_module._tqdm = lambda seq, **_: seq  # no progress bar inside the benchmark table

    long_e, short_e, size = _signals(preds, pd.DataFrame([combo]), cfg)
    price = preds["price"].to_numpy()
    data = pd.DataFrame(
        {"Open": price, "High": price, "Low": price, "Close": price},
        index=pd.date_range("2017-01-01", periods=len(price), freq="h"),
    )
    long_e, short_e, size = long_e[:, 0], short_e[:, 0], size[:, 0]

    class Signals(Strategy):
        def init(self) -> None:
            pass

        def next(self) -> None:
            i = len(self.data) - 1
            p = self.data.Close[-1]
            if self.position:
                if (self.position.is_long and short_e[i]) or (self.position.is_short and long_e[i]):
                    self.position.close()
                return
            s = float(size[i])
            if 0 < s < 1:
                if long_e[i]:
                    self.buy(size=s, sl=p * (1 - cfg.stop_loss), tp=p * (1 + cfg.take_profit))
                elif short_e[i]:
                    self.sell(size=s, sl=p * (1 + cfg.stop_loss), tp=p * (1 - cfg.take_profit))

    bt = Backtest(
        data,
        Signals,
        cash=1_000_000,
        commission=(COMMISSION_BPS + SLIPPAGE_BPS) / 1e4,
        trade_on_close=True,
        finalize_trades=True,
    )
    stats = bt.run()
    return float(stats["Return [%]"])


def _bench_sweep(preds: pd.DataFrame) -> list[Row]:
    from augur.backtest.sweep import _grid_frame, sweep

    cfg = _base_config()
    grid = _grid()
    combos = _grid_frame(grid)
    n = len(combos)
    kwargs = {"commission_bps": COMMISSION_BPS, "slippage_bps": SLIPPAGE_BPS}
    sweep(preds.iloc[:50], grid, cfg, **kwargs)  # warm-up: load the compiled kernel
    ours = []
    for _ in range(3):
        t = time.perf_counter()
        result = sweep(preds, grid, cfg, periods_per_year=6240, **kwargs)
        ours.append(time.perf_counter() - t)
    ours_s = min(ours)
    assert len(result) == n and result["n_trades"].gt(0).any()

    vbt = _vectorbt()
    _run_vectorbt(vbt, preds.iloc[:200], combos.iloc[:4], cfg)  # warm-up: its numba kernels
    vbt_times = []
    for _ in range(2):
        t = time.perf_counter()
        _run_vectorbt(vbt, preds, combos, cfg)
        vbt_times.append(time.perf_counter() - t)
    vbt_s = min(vbt_times)
    # Same signals → same trades where the rules coincide (no cool-down, loose drawdown
    # limit): the total returns must agree closely (the fee models differ slightly).
    same = ((combos["cooldown_losses"] == 0) & (combos["max_drawdown"] == 0.4)).to_numpy()
    peer = _run_vectorbt(vbt, preds, combos[same].reset_index(drop=True), cfg)
    agreement = float(np.corrcoef(peer["total_return"], result.loc[same, "total_return"])[0, 1])

    picks = [0, n // 2, n - 1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        for i in picks:
            _run_backtesting(preds, combos.iloc[i].to_dict(), cfg)
        bt_s = (time.perf_counter() - t) / len(picks)

    per_combo_ms = 1e3 * ours_s / n
    return [
        Row(
            "sweep",
            f"time per combination ({n:,} combos x {len(preds):,} bars)",
            per_combo_ms,
            "vectorbt from_signals, 1,000 columns in one call",
            1e3 * vbt_s / n,
            "ms",
            False,
            "faster than vectorbt",
        ),
        Row(
            "sweep",
            "time per combination",
            per_combo_ms,
            "backtesting.py Backtest.run (3 combos)",
            1e3 * bt_s,
            "ms",
            False,
        ),
        Row(
            "sweep",
            f"total-return correlation with vectorbt ({int(same.sum())} combos, same rules)",
            agreement,
            "—",
            None,
            "corr",
            True,
            "close to 1",
        ),
        Row(
            "sweep",
            f"total for {n:,} combinations",
            ours_s,
            "vectorbt from_signals",
            vbt_s,
            "s",
            False,
        ),
    ]


def run() -> list[Row]:
    """Both benchmarks; see the module docstring."""
    preds = eurusd_predictions()
    return _bench_sweep(preds) + _bench_simulation(preds)
