"""Rule programs in the compiled sweep kernel, over random rule sets and random prediction
series: the gate's replay (:func:`replay_decisions`) holds the very positions, entries and
return of ``run_decisions(..., rules=program)`` (``decide()`` bar by bar), and the sweep
with rules those of ``decide(..., rules=program)`` on the sweep's own account."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any
from unittest import mock

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from augur.backtest import _sweep_kernel
from augur.backtest.evaluation import run_decisions
from augur.backtest.sweep import (
    _params,
    _prediction_arrays,
    _program_arrays,
    _sweep_kpis,
    replay_decisions,
    sweep,
)
from augur.decision import (
    Action,
    DecisionConfig,
    MarketContext,
    PositionContext,
    RiskState,
    Signal,
    decide,
)
from augur.rules import RuleError, compile_rules, parse, run_trial, split_out_of_sample
from tests.unit.rules.test_evolve import CONFIG, SKIP_LOSERS, synthetic_predictions
from tests.unit.rules.test_properties import _rules

COST = 5e-4
CONFIGS = [
    DecisionConfig(confidence_threshold=0.3, max_holding_bars=3, max_position_size=0.5),
    DecisionConfig(
        confidence_threshold=0.2,
        kelly_fraction=1.0,
        max_position_size=0.9,
        max_symbol_exposure=0.9,
        max_portfolio_heat=0.9,
        max_correlated_exposure=0.9,
        max_drawdown=0.03,
        drawdown_scale_start=0.01,
        cooldown_losses=2,
        cooldown_bars=3,
        exit_units="return",
        stop_loss=0.01,
        take_profit=0.015,
        max_holding_bars=6,
    ),
    DecisionConfig(confidence_threshold=0.4, volatility_scaling=False, exit_on_reversal=False),
]

# Rules that bite: a KPI against a value in its range, then a skip or a resize.
_KPI_RANGES = {
    "confidence": (0.2, 0.9),
    "probability": (0.3, 0.8),
    "margin": (0.0, 0.5),
    "agreement": (0.3, 1.0),
    "volatility": (0.004, 0.02),
    "volatility_ratio": (0.5, 2.0),
    "trend_strength": (0.0, 1.0),
    "regime": (0.0, 3.0),
    "drawdown": (0.0, 0.03),
    "consecutive_losses": (0.0, 2.0),
    "hour": (0.0, 23.0),
    "day_of_week": (0.0, 6.0),
    "kelly": (0.0, 0.5),
    "direction": (-1.0, 1.0),
}


def _biting_rule(t: tuple[str, str, float, str, str]) -> str:
    kpi, op, at, body, otherwise = t
    low, high = _KPI_RANGES[kpi]
    value = round(low + at * (high - low), 0 if op == "==" else 3)
    return f"if {kpi} {op} {value}: {body}\n{otherwise}"


_biting = st.tuples(
    st.sampled_from(sorted(_KPI_RANGES)),
    st.sampled_from(["<", ">=", "=="]),
    st.floats(0.0, 1.0),
    st.sampled_from(["act = false", "size = 0", "size = kelly * 1.7", "size = kelly / 3"]),
    st.sampled_from(["", "else: size = size * 0.8\n"]),
).map(_biting_rule)


def frame_of(seed: int, n: int) -> pd.DataFrame:
    """Random bars with every column decide() and the rules' KPIs read."""
    rng = np.random.default_rng(seed)
    p_up = rng.uniform(0.05, 0.85, n)
    p_down = rng.uniform(0.0, 1.0, n) * (1.0 - p_up)
    direction = np.sign(p_up - p_down).astype(int)
    next_return = rng.normal(0.0, 0.008, n)
    close = 100.0 * np.concatenate([[1.0], np.cumprod(1.0 + next_return)[:-1]])
    regime = rng.integers(-1, 4, n).astype(float)
    regime[regime < 0] = np.nan
    spread = rng.uniform(0.002, 0.02, n)
    tilt = direction * rng.uniform(0.0, 0.5, n) * spread
    return pd.DataFrame(
        {
            "timestamp": pd.date_range(
                pd.Timestamp("2024-01-01", tz="UTC")
                + pd.Timedelta(hours=int(rng.integers(0, 200))),
                periods=n,
                freq="h",
            ),
            "direction": direction.astype(float),
            "probability": np.where(direction > 0, p_up, p_down),
            "p_up": p_up,
            "p_down": p_down,
            "confidence": rng.uniform(0.0, 1.0, n),
            "agreement": rng.choice([0.25, 0.5, 0.75, 1.0], n),
            "q05": -spread + tilt,
            "q50": tilt,
            "q95": spread + tilt,
            "close": close,
            "next_return": next_return,
            "volatility": rng.uniform(0.004, 0.02, n),
            "volatility_ref": 0.01,
            "trend": rng.uniform(0.0, 1.0, n),
            "regime": regime,
        }
    )


def program_of(text: str) -> Any:
    try:
        return compile_rules(parse(text))
    except RuleError as exc:  # the generator stays inside the language but for limits
        assert all(p.construct in ("rule too long", "nesting too deep") for p in exc.problems)
        return None


def recording(codes: Counter[str]) -> Any:
    """decide(), counting the rule reasons it gives."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        d = decide(*args, **kwargs)
        codes.update(r.code for r in d.reasons if r.code.startswith("rule_"))
        return d

    return wrapper


# --- the gate's replay against run_decisions ------------------------------------------------


def test_the_replay_holds_the_positions_of_decide_bar_by_bar() -> None:
    codes: Counter[str] = Counter()
    checked = []

    @settings(max_examples=150, deadline=None)
    @given(
        st.one_of(_rules, _biting),
        st.integers(0, 2**32 - 1),
        st.integers(20, 80),
        st.sampled_from(range(len(CONFIGS))),
    )
    def check(text: str, seed: int, n: int, which: int) -> None:
        program = program_of(text)
        if program is None:
            return
        frame, cfg = frame_of(seed, n), CONFIGS[which]
        ref = frame["volatility_ref"].to_numpy()
        with mock.patch("augur.decision.decide", recording(codes)):
            want_pos, want_entries = run_decisions(
                frame, cfg, symbol="X", volatility_ref=ref, rules=program
            )
        pos, entries = replay_decisions(frame, cfg, volatility_ref=ref, rules=program)
        np.testing.assert_allclose(pos, want_pos, rtol=0, atol=1e-9)
        np.testing.assert_array_equal(entries, want_entries)
        asset = frame["next_return"].to_numpy()
        total = np.prod(1.0 + pos * asset) - 1.0
        assert abs(total - (np.prod(1.0 + want_pos * asset) - 1.0)) <= 1e-9
        checked.append(int((entries != 0).sum()))

    check()
    # not vacuous: rules skipped and resized entries, and entries were made
    assert codes["rule_skipped"] > 20 and codes["rule_sized"] > 20, codes
    assert sum(checked) > 100


# --- the sweep with rules against decide() on the sweep's account ---------------------------


def sweep_reference(
    frame: pd.DataFrame, cfg: DecisionConfig, program: Any, codes: Counter[str] | None = None
) -> tuple:
    """The sweep's account (marked equity, costs on entry and exit, a loss a trade whose
    net return is negative) bar by bar through decide(..., rules=program): positions,
    total return, trades."""
    price = frame["close"].to_numpy()
    eq, peak = 1.0, 1.0
    side, size, entry_price, start_eq, entry_eq, held = 0, 0.0, 0.0, 0.0, 0.0, 0
    streak, since_loss, trades = 0, 1 << 40, 0
    positions = np.zeros(len(frame))
    for t, bar in enumerate(frame.itertuples()):
        if side:
            eq = entry_eq * (1 + size * side * (price[t] / entry_price - 1))
            held += 1
        peak = max(peak, eq)
        d = (decide if codes is None else recording(codes))(
            Signal(
                int(bar.direction),
                bar.probability,
                bar.p_up,
                bar.p_down,
                bar.confidence,
                bar.agreement,
                bar.q05,
                bar.q50,
                bar.q95,
            ),
            PositionContext(
                side={1: "long", -1: "short", 0: "flat"}[side],
                size=size if side else 0.0,
                entry_price=entry_price if side else 0.0,
                bars_held=held if side else 0,
            ),
            RiskState(eq, peak, streak, since_loss),
            MarketContext(
                "X",
                price[t],
                bar.timestamp,
                bar.volatility,
                bar.volatility_ref,
                bar.trend,
                -1 if np.isnan(bar.regime) else int(bar.regime),
            ),
            cfg,
            rules=program,
        )
        if d.action is Action.EXIT_POSITION:
            eq -= entry_eq * size * COST * (price[t] / entry_price)
            trade = eq / start_eq - 1
            trades += 1
            if trade > 0:
                streak = 0
            elif trade < 0:
                streak, since_loss = streak + 1, -1
            side = 0
        elif d.action in (Action.ENTER_LONG, Action.ENTER_SHORT):
            side = 1 if d.action is Action.ENTER_LONG else -1
            size, entry_price, start_eq, held = d.size, price[t], eq, 0
            eq -= eq * size * COST
            entry_eq = eq
        since_loss += 1
        positions[t] = side * size if side else 0.0
    return positions, eq - 1.0, trades


def sweep_predictions(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.rename(columns={"close": "price", "trend": "trend_strength"})


def traced_sweep(frame: pd.DataFrame, cfg: DecisionConfig, program: Any) -> tuple:
    preds = sweep_predictions(frame)
    a = _prediction_arrays(preds)
    out = np.empty((1, 6))
    positions = np.empty((1, len(frame)))
    _sweep_kernel.sweep_kernel_traced(
        a["price"],
        a["direction"],
        a["probability"],
        a["confidence"],
        a["q05"],
        a["q95"],
        a["volatility"],
        a["volatility_ref"],
        _params([cfg]),
        COST,
        1.0,
        out,
        positions,
        _sweep_kpis(preds, a),
        *_program_arrays(program),
        *_sweep_kernel.NO_RULES[4:],
    )
    return positions[0], out[0]


def test_the_sweep_with_rules_decides_as_decide() -> None:
    codes: Counter[str] = Counter()

    @settings(max_examples=120, deadline=None)
    @given(
        st.one_of(_rules, _biting),
        st.integers(0, 2**32 - 1),
        st.integers(20, 80),
        st.sampled_from(range(len(CONFIGS))),
    )
    def check(text: str, seed: int, n: int, which: int) -> None:
        program = program_of(text)
        if program is None:
            return
        frame, cfg = frame_of(seed, n), CONFIGS[which]
        want_pos, want_total, want_trades = sweep_reference(frame, cfg, program, codes)
        pos, out = traced_sweep(frame, cfg, program)
        np.testing.assert_allclose(pos, want_pos, rtol=0, atol=1e-9)
        assert abs(out[0] - want_total) <= 1e-9 and out[4] == want_trades
        # the untraced kernel sweep() runs gives the same figures
        result = sweep(
            sweep_predictions(frame),
            {"confidence_threshold": [cfg.confidence_threshold]},
            cfg,
            commission_bps=COST * 1e4,
            slippage_bps=0.0,
            rules=program,
        )
        assert abs(result["total_return"][0] - out[0]) <= 1e-12
        assert result["n_trades"][0] == out[4]

    check()
    assert codes["rule_skipped"] > 20 and codes["rule_sized"] > 20, codes


def test_a_rule_that_sizes_zero_trades_nothing() -> None:
    frame = frame_of(3, 200)
    preds = sweep_predictions(frame)
    grid = {"confidence_threshold": [0.1, 0.3, 0.5], "kelly_fraction": [0.25, 1.0]}
    plain = sweep(preds, grid, CONFIGS[0])
    none = sweep(preds, grid, CONFIGS[0], rules=compile_rules(parse("if true: size = 0")))
    assert (plain["n_trades"] > 0).all()
    assert (none["n_trades"] == 0).all() and (none["total_return"] == 0.0).all()
    pos, entries = replay_decisions(
        frame, CONFIGS[0], volatility_ref=0.01, rules=compile_rules(parse("if true: act = false"))
    )
    assert not pos.any() and not entries.any()


def test_without_rules_the_sweep_is_unchanged() -> None:
    frame = frame_of(5, 300)
    preds = sweep_predictions(frame)
    grid = {"confidence_threshold": [0.1, 0.3, 0.5], "cooldown_losses": [0, 2]}
    costs = {"commission_bps": COST * 1e4, "slippage_bps": 0.0}
    plain = sweep(preds, grid, CONFIGS[1], **costs)
    # a program that never changes an entry, and the kernel's two copies, agree with it
    idle = sweep(
        preds, grid, CONFIGS[1], **costs, rules=compile_rules(parse("if hour > 99: size = 0"))
    )
    pd.testing.assert_frame_equal(plain, idle)
    for i, cfg in enumerate(
        [replace(CONFIGS[1], **r) for r in plain[list(grid)].to_dict("records")]
    ):
        _, want_total, want_trades = sweep_reference(frame, cfg, None)
        assert abs(plain["total_return"][i] - want_total) <= 1e-9
        assert plain["n_trades"][i] == want_trades
    assert plain["n_trades"].sum() > 0


def test_the_trial_replays_what_decide_holds() -> None:
    """The gate's trial (compiled) holds run_decisions' positions on the evolve fixture."""
    data = split_out_of_sample(synthetic_predictions(400), 0.3)
    program = compile_rules(parse(SKIP_LOSERS))
    trial = run_trial(data, program, CONFIG, _costs(), "x")
    for symbol, frame in data.frames.items():
        want, entries = run_decisions(
            frame,
            CONFIG,
            symbol=symbol,
            volatility_ref=frame["volatility_ref"].to_numpy(dtype=float),
            rules=program,
        )
        np.testing.assert_array_equal(trial.symbols[symbol].positions, want)
        np.testing.assert_array_equal(trial.symbols[symbol].entries, entries)
        assert (entries != 0).sum() > 10


def _costs() -> Any:
    from augur.rules import Costs

    return Costs()
