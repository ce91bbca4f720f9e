"""One set of account rules: decide(), the step, the sweep and the Monte Carlo agree.

Random signals, account states and configs go through ``decide()``, the plain-Python
step, its compiled form, and short deterministic runs of the sweep kernel and the Monte
Carlo kernel (whose traces give the position or size after every bar). Each must take the
same actions with the same sizes.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from augur.backtest import _kernels, _sweep_kernel
from augur.backtest.simulation import OutOfSampleOutcomes, _prepare, _run_chunk
from augur.decision import (
    Action,
    DecisionConfig,
    MarketContext,
    PositionContext,
    RiskState,
    Signal,
    _step,
    decide,
    payoff_ratio,
)

COST = 3e-4  # per side, per unit of notional (the sweep) or per round trip (the simulation)
ACTIONS = {
    _step.NO_ACTION: Action.NO_ACTION,
    _step.RISK_REJECTED: Action.RISK_REJECTED,
    _step.EXIT_POSITION: Action.EXIT_POSITION,
    _step.ENTER_LONG: Action.ENTER_LONG,
    _step.ENTER_SHORT: Action.ENTER_SHORT,
}


@pytest.fixture(autouse=True)
def _quiet_uint64_wraparound():
    # The simulation's RNG relies on uint64 wrap-around, which numpy reports as overflow.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


@st.composite
def configs(draw) -> DecisionConfig:
    limit = draw(st.floats(0.005, 0.6))
    units = draw(st.sampled_from(["volatility", "return"]))
    exit_scale = 3.0 if units == "volatility" else 0.05
    return DecisionConfig(
        confidence_threshold=draw(st.floats(0.0, 1.0)),
        kelly_fraction=draw(st.floats(0.05, 1.0)),
        max_position_size=draw(st.floats(0.01, 1.0)),
        max_payoff_ratio=draw(st.floats(0.5, 20.0)),
        max_drawdown=limit,
        drawdown_scale_start=limit * draw(st.floats(0.0, 0.99)),
        cooldown_losses=draw(st.integers(0, 3)),
        cooldown_bars=draw(st.integers(0, 4)),
        volatility_scaling=draw(st.booleans()),
        volatility_scale_cap=draw(st.floats(0.5, 3.0)),
        max_symbol_exposure=draw(st.floats(0.01, 1.0)),
        max_portfolio_heat=draw(st.floats(0.01, 1.0)),
        max_correlated_exposure=draw(st.floats(0.01, 1.0)),
        exit_units=units,
        stop_loss=draw(st.sampled_from([0.0, 1.0])) * draw(st.floats(0.0, exit_scale)),
        take_profit=draw(st.sampled_from([0.0, 1.0])) * draw(st.floats(0.0, exit_scale)),
        max_holding_bars=draw(st.integers(0, 4)),
        exit_on_reversal=draw(st.booleans()),
    )


unit = st.floats(0.0, 1.0)
quantile = st.floats(-0.05, 0.05)
bars = st.fixed_dictionaries(
    {
        "direction": st.sampled_from([-1, 0, 1]),
        "probability": unit,
        "confidence": unit,
        "q05": quantile,
        "q95": quantile,
        "move": st.floats(-0.03, 0.03),  # log return into this bar (sweep) / realised (MC)
        "volatility": st.sampled_from([0.0, 0.005, 0.01, 0.02]),
    }
)


def signal_of(bar: dict) -> Signal:
    p = bar["probability"]
    return Signal(
        direction=bar["direction"],
        probability=p,
        p_up=p,
        p_down=1 - p,
        confidence=bar["confidence"],
        agreement=1.0,
        q05=bar["q05"],
        q95=bar["q95"],
    )


def step_args(sig, pos, risk, market, cfg) -> tuple:
    """decide()'s arguments as the step's floats (one symbol, no other exposure)."""
    return (
        risk.drawdown,
        risk.consecutive_losses,
        risk.bars_since_last_loss,
        {"long": 1, "short": -1, "flat": 0}[pos.side],
        pos.size,
        pos.entry_price,
        pos.bars_held,
        sig.direction,
        sig.probability,
        sig.confidence,
        sig.q05,
        sig.q95,
        market.price,
        market.volatility,
        market.volatility_ref,
        cfg.max_symbol_exposure,
        cfg.max_portfolio_heat,
        cfg.max_correlated_exposure,
        _step.rules_of(cfg),
    )


def decide_everywhere(sig, pos, risk, market, cfg):
    """decide(), the Python step and the compiled step on one input: all must agree."""
    d = decide(sig, pos, risk, market, cfg)
    args = step_args(sig, pos, risk, market, cfg)
    action, size, bits = _step.step(*args)
    compiled = _kernels.step(*args)
    assert (ACTIONS[action], size) == (d.action, d.size)
    assert compiled == (action, size, bits)
    return d


@settings(max_examples=150, deadline=None)
@given(
    configs(),
    st.lists(bars, min_size=2, max_size=14),
    st.sampled_from([0.0, 0.01]),
)
def test_decide_step_sweep_and_monte_carlo_agree(cfg, seq, vol_ref):
    """Same actions, positions and sizes from decide(), the step (Python and compiled),
    the sweep kernel and the Monte Carlo kernel."""
    n = len(seq)
    price = np.exp(np.cumsum([b["move"] for b in seq]))

    # --- the sweep: a bar-by-bar account (costs on entry and exit) through decide() ---
    eq, peak = 1.0, 1.0
    side, size, entry_price, start_eq, entry_eq, held = "flat", 0.0, 0.0, 0.0, 0.0, 0
    streak, since_loss = 0, 1 << 40
    expected_positions = np.zeros(n)
    for t, bar in enumerate(seq):
        sign = {"long": 1, "short": -1, "flat": 0}[side]
        if sign:
            eq = entry_eq * (1 + size * sign * (price[t] / entry_price - 1))
            held += 1
        peak = max(peak, eq)
        d = decide_everywhere(
            signal_of(bar),
            PositionContext(side=side, size=size, entry_price=entry_price, bars_held=held),
            RiskState(
                equity=eq,
                peak_equity=peak,
                consecutive_losses=streak,
                bars_since_last_loss=since_loss,
            ),
            MarketContext("X", price[t], volatility=bar["volatility"], volatility_ref=vol_ref),
            cfg,
        )
        if d.action is Action.EXIT_POSITION:
            eq -= entry_eq * size * COST * (price[t] / entry_price)
            trade = eq / start_eq - 1
            if trade > 0:
                streak = 0
            elif trade < 0:
                streak, since_loss = streak + 1, -1
            side = "flat"
        elif d.action in (Action.ENTER_LONG, Action.ENTER_SHORT):
            side = "long" if d.action is Action.ENTER_LONG else "short"
            size, entry_price, start_eq, held = d.size, price[t], eq, 0
            eq -= eq * size * COST
            entry_eq = eq
        since_loss += 1
        sign = {"long": 1, "short": -1, "flat": 0}[side]
        expected_positions[t] = sign * size if sign else 0.0

    column = {k: np.array([b[k] for b in seq], dtype=float) for k in ("q05", "q95")}
    positions = np.empty((1, n))
    _sweep_kernel.sweep_kernel_traced(
        price,
        np.array([b["direction"] for b in seq], dtype=np.int64),
        np.array([b["probability"] for b in seq]),
        np.array([b["confidence"] for b in seq]),
        column["q05"],
        column["q95"],
        np.array([b["volatility"] for b in seq]),
        np.full(n, vol_ref),
        _kernels.rule_rows([cfg]),
        COST,
        1.0,
        np.empty((1, 6)),
        positions,
        *_sweep_kernel.NO_RULES,
    )
    np.testing.assert_array_equal(positions[0], expected_positions)

    # --- the Monte Carlo: one path, one trade per step, through decide() -------------
    outcomes = OutOfSampleOutcomes(
        probability=np.array([b["probability"] for b in seq]),
        payoff_ratio=np.array(
            [payoff_ratio(b["direction"], b["q05"], b["q95"], cfg.max_payoff_ratio) for b in seq]
        ),
        confidence=np.array([b["confidence"] for b in seq]),
        realised_return=np.array([b["move"] for b in seq]),
        direction=np.array([b["direction"] for b in seq]),
        volatility=np.array([b["volatility"] for b in seq]),
        volatility_ref=np.full(n, vol_ref),
    )
    n_steps = 3 * n
    prep = _prepare(outcomes, cfg, n_steps, n, 5, COST, 0.0, 252.0)
    sizes = np.empty((1, n_steps))
    _run_chunk(prep, 0, 1, sizes)
    eq, peak, streak, since_loss = 1.0, 1.0, 0, 1 << 40
    expected_sizes = np.zeros(n_steps)
    for t, i in enumerate(_kernels.path_indices(5, 0, n, n, n_steps)):
        bar = seq[i]
        d = decide_everywhere(
            signal_of(bar),
            PositionContext(),
            RiskState(
                equity=eq,
                peak_equity=peak,
                consecutive_losses=streak,
                bars_since_last_loss=since_loss,
            ),
            MarketContext("X", 1.0, volatility=bar["volatility"], volatility_ref=vol_ref),
            cfg,
        )
        r = 0.0
        if d.action in (Action.ENTER_LONG, Action.ENTER_SHORT):
            expected_sizes[t] = d.size
            r = d.size * (bar["direction"] * bar["move"] - COST)
        eq *= 1 + r
        peak = max(peak, eq)
        streak = 0 if r > 0 else streak + (r < 0)
        since_loss = 0 if r < 0 else since_loss + 1
    # the kernel is compiled with fastmath (reciprocals): sizes agree to rounding
    np.testing.assert_array_equal(sizes[0] > 0, expected_sizes > 0)
    np.testing.assert_allclose(sizes[0], expected_sizes, rtol=1e-12, atol=0)
