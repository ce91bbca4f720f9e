"""The account rules as one float-only step: gate → risk → exits → sizing.

:func:`step` is the single implementation of the confidence gate, the drawdown limit,
the cool-down, the exits and the sizing scales. :func:`augur.decision.decide` calls it
and turns its codes into an :class:`~augur.decision.Action` and
:class:`~augur.decision.Reason` texts; :mod:`augur.backtest._kernels` compiles the very
same function with numba (``njit(inline="always")``) for the parameter sweep and the
Monte Carlo simulation. It takes and returns plain floats, ints and bools only, so the
tuning, the report and the service cannot apply different rules.

Reasons are bits of one int (several can hold at once, e.g. a drawdown limit and a
cool-down, or a time limit and a reversal); :data:`REASON_BITS` lists them in the order
``decide()`` reports them.
"""

from __future__ import annotations

import math
from typing import Any

from augur.decision._sizing import drawdown_scale, kelly_size, payoff_ratio, volatility_scale

#: Sizes at or below this are treated as zero (no dust orders).
MIN_SIZE = 1e-9

# Action codes (``decide()`` maps them to ``Action``).
NO_ACTION = 0
RISK_REJECTED = 1
EXIT_POSITION = 2
ENTER_LONG = 3
ENTER_SHORT = 4

# Reason bits, in the order decide() reports them.
FLAT_SIGNAL = 1 << 0
CONFIDENCE_BELOW_THRESHOLD = 1 << 1
DRAWDOWN_LIMIT = 1 << 2  # at or beyond the limit (risk stage)
COOLDOWN = 1 << 3
STOP_LOSS = 1 << 4
TAKE_PROFIT = 1 << 5
TIME_LIMIT = 1 << 6
SIGNAL_REVERSAL = 1 << 7
HOLDING = 1 << 8
KELLY_NON_POSITIVE = 1 << 9
DRAWDOWN_NO_ROOM = 1 << 10  # code "drawdown_limit": the scaled size rounds to nothing
DRAWDOWN_SCALING = 1 << 11
VOLATILITY_SCALING = 1 << 12
EXPOSURE_CAP = 1 << 13  # size limited by the symbol exposure cap
EXPOSURE_CAP_USED_UP = 1 << 14
PORTFOLIO_HEAT = 1 << 15
PORTFOLIO_HEAT_USED_UP = 1 << 16
CORRELATED_EXPOSURE = 1 << 17
CORRELATED_EXPOSURE_USED_UP = 1 << 18
SIZE_ZERO = 1 << 19
ENTERED = 1 << 20

REASON_BITS = (
    FLAT_SIGNAL,
    CONFIDENCE_BELOW_THRESHOLD,
    DRAWDOWN_LIMIT,
    COOLDOWN,
    STOP_LOSS,
    TAKE_PROFIT,
    TIME_LIMIT,
    SIGNAL_REVERSAL,
    HOLDING,
    KELLY_NON_POSITIVE,
    DRAWDOWN_NO_ROOM,
    DRAWDOWN_SCALING,
    VOLATILITY_SCALING,
    EXPOSURE_CAP,
    EXPOSURE_CAP_USED_UP,
    PORTFOLIO_HEAT,
    PORTFOLIO_HEAT_USED_UP,
    CORRELATED_EXPOSURE,
    CORRELATED_EXPOSURE_USED_UP,
    SIZE_ZERO,
    ENTERED,
)


#: A DecisionConfig's thresholds as the step takes them (:func:`rules_of`): confidence
#: threshold, Kelly fraction, max payoff ratio, max position size, max drawdown,
#: drawdown-scaling start, cool-down losses, cool-down bars, volatility scaling (bool),
#: volatility-scale cap, exits in volatility units (bool), stop loss, take profit, max
#: holding bars, exit on reversal (bool).
Rules = tuple[
    float, float, float, float, float, float, int, int, bool, float, bool, float, float, int, bool
]


def rules_of(config: Any) -> Rules:
    """A :class:`~augur.decision.DecisionConfig`'s thresholds as the step's ``rules`` tuple."""
    return (
        float(config.confidence_threshold),
        float(config.kelly_fraction),
        float(config.max_payoff_ratio),
        float(config.max_position_size),
        float(config.max_drawdown),
        float(config.drawdown_scale_start),
        int(config.cooldown_losses),
        int(config.cooldown_bars),
        bool(config.volatility_scaling),
        float(config.volatility_scale_cap),
        config.exit_units == "volatility",
        float(config.stop_loss),
        float(config.take_profit),
        int(config.max_holding_bars),
        bool(config.exit_on_reversal),
    )


def drawdown_of(equity: float, peak_equity: float) -> float:
    """Drawdown from a positive peak as a fraction (0 at or above the peak).

    For accounts whose peak cannot fall to 0 (the sweep's starts at 1 and only rises):
    without a test for a non-positive peak, the compiled sweep computes it only on the
    bars whose decision reads it (a sixth less time per bar than with the test).
    """
    dd = 1.0 - equity / peak_equity
    return dd if dd > 0.0 else 0.0


def entry_kelly(
    direction: int,
    probability: float,
    q05: float,
    q95: float,
    kelly_fraction: float,
    max_payoff_ratio: float,
    max_position_size: float,
) -> float:
    """The signal's capped fractional-Kelly size (before the account's scaling)."""
    b = payoff_ratio(direction, q05, q95, max_payoff_ratio)
    return kelly_size(probability, b, kelly_fraction, max_position_size)


def signal_gate(direction: int, confidence: float, rules: Rules) -> int:
    """The confidence gate: 0 when the signal passes, else its reason bit."""
    if direction == 0:
        return FLAT_SIGNAL
    if not confidence >= rules[0]:  # NaN fails too
        return CONFIDENCE_BELOW_THRESHOLD
    return 0


def cooling_down(consecutive_losses: int, bars_since_loss: int, rules: Rules) -> bool:
    """Whether the cool-down after ``cooldown_losses`` consecutive losses is running."""
    cooldown_losses = rules[6]
    # "&" rather than "and": no short-circuit jumps (see entry())
    return (
        (cooldown_losses > 0)
        & (consecutive_losses >= cooldown_losses)
        & (bars_since_loss < rules[7])
    )


def risk_blocks(
    drawdown: float, consecutive_losses: int, bars_since_loss: int, rules: Rules
) -> int:
    """The risk stage: 0 when it allows new exposure, else the bits of what forbids it
    (the drawdown limit reached, the cool-down running)."""
    limit = DRAWDOWN_LIMIT if drawdown >= rules[4] else 0
    return limit | (COOLDOWN if cooling_down(consecutive_losses, bars_since_loss, rules) else 0)


def signal_terms(
    direction: int,
    probability: float,
    confidence: float,
    q05: float,
    q95: float,
    volatility: float,
    volatility_ref: float,
    rules: Rules,
) -> tuple[int, float, float]:
    """What an entry needs from the signal and the market alone: ``(gate, kelly, scale)``.

    ``gate`` is 0 when the confidence gate passes, else its reason bit; ``kelly`` the
    signal's capped fractional-Kelly size (0 when the gate fails); ``scale`` the
    volatility-regime multiplier (1 with volatility scaling off). The Monte Carlo
    computes these once per outcome; :func:`step` computes them on every call.
    """
    gate = signal_gate(direction, confidence, rules)
    kelly = 0.0
    if gate == 0:  # only a signal that passes the gate needs the Kelly size
        b = payoff_ratio(direction, q05, q95, rules[2])
        kelly = kelly_size(probability, b, rules[1], rules[3])
    scale = 1.0
    if rules[8]:  # volatility_scaling
        scale = volatility_scale(volatility, volatility_ref, rules[9])
    return gate, kelly, scale


def entry(
    drawdown: float,
    consecutive_losses: int,
    bars_since_loss: int,
    direction: int,
    gate: int,
    kelly: float,
    vol_scale: float,
    symbol_room: float,
    heat_room: float,
    correlated_room: float,
    rules: Rules,
) -> tuple[int, float, int]:
    """A flat position's decision from :func:`signal_terms` and the account.

    ``gate``, ``kelly`` and ``vol_scale`` as :func:`signal_terms` returns them (no Kelly
    size when the gate fails).

    The gate first, then the risk stage (drawdown limit, cool-down: no new exposure),
    then the Kelly size scaled by drawdown and volatility regime and capped by the
    position size and the three rooms. Every rule's outcome is computed straight
    through and the first rule that applies decides: no early exits, so that a compiled
    loop over many paths (the Monte Carlo) can use selects rather than jumps.
    """
    max_position_size = rules[3]
    max_drawdown = rules[4]
    cooling = cooling_down(consecutive_losses, bars_since_loss, rules)
    blocks = risk_blocks(drawdown, consecutive_losses, bars_since_loss, rules)
    dd_scale = drawdown_scale(drawdown, rules[5], max_drawdown)  # 0 at the limit
    # a cool-down leaves no Kelly size to scale (decided before the drawdown's scaling)
    scaled = (0.0 if cooling else kelly) * dd_scale
    wanted = scaled * vol_scale  # x1.0 is exact: an unscaled size stays as it is
    # Capped by the position size and by the room each exposure limit leaves for this
    # symbol: the tightest of them (the same as capping by each in turn).
    cap = symbol_room if max_position_size > symbol_room else max_position_size
    cap = heat_room if cap > heat_room else cap
    cap = correlated_room if cap > correlated_room else cap
    size = cap if wanted > cap else wanted
    # Whether it enters, with as few tests as possible after the drawdown's scaling (in
    # the Monte Carlo each sits on the chain from one step's equity to the next): a
    # failed gate (signal_terms) and a cool-down leave no Kelly size and the drawdown
    # limit a zero scale, so "scaled" covers them and a non-positive Kelly size; a
    # used-up room leaves "size" at most MIN_SIZE.
    enters = (
        (scaled > MIN_SIZE)
        & (size > MIN_SIZE)  # NaN and -inf fail it
        & (size < math.inf)
    )
    # What bound the size, for the reasons: the caps in turn.
    scaling = (DRAWDOWN_SCALING if dd_scale < 1.0 else 0) | (
        VOLATILITY_SCALING if vol_scale != 1.0 else 0
    )
    capped = max_position_size if wanted > max_position_size else wanted
    symbol_hit = capped > symbol_room
    capped = symbol_room if symbol_hit else capped
    heat_hit = capped > heat_room
    capped = heat_room if heat_hit else capped
    correlated_hit = capped > correlated_room
    limited = (
        scaling
        | (EXPOSURE_CAP if symbol_hit else 0)
        | (PORTFOLIO_HEAT if heat_hit else 0)
        | (CORRELATED_EXPOSURE if correlated_hit else 0)
    )
    symbol_used_up = symbol_hit & (symbol_room <= MIN_SIZE)
    heat_used_up = heat_hit & (heat_room <= MIN_SIZE)
    correlated_used_up = correlated_hit & (correlated_room <= MIN_SIZE)
    out = size if enters else 0.0
    action = RISK_REJECTED
    if gate != 0:
        action, reasons = NO_ACTION, gate
    elif blocks != 0:
        reasons = blocks
    elif not kelly > MIN_SIZE:
        action, reasons = NO_ACTION, KELLY_NON_POSITIVE
    elif scaled <= MIN_SIZE:  # at the limit up to rounding (1 - 0.8 < 0.2)
        reasons = DRAWDOWN_NO_ROOM
    elif symbol_used_up:
        reasons = scaling | EXPOSURE_CAP_USED_UP
    elif heat_used_up:
        reasons = scaling | (limited & EXPOSURE_CAP) | PORTFOLIO_HEAT_USED_UP
    elif correlated_used_up:
        reasons = (limited & ~CORRELATED_EXPOSURE) | CORRELATED_EXPOSURE_USED_UP
    elif not enters:
        reasons = limited | SIZE_ZERO
    else:
        action = ENTER_LONG if direction > 0 else ENTER_SHORT
        reasons = limited | ENTERED
    return action, out, reasons


def step(
    drawdown: float,
    consecutive_losses: int,
    bars_since_loss: int,
    position_side: int,
    position_size: float,
    entry_price: float,
    bars_held: int,
    direction: int,
    probability: float,
    confidence: float,
    q05: float,
    q95: float,
    price: float,
    volatility: float,
    volatility_ref: float,
    symbol_room: float,
    heat_room: float,
    correlated_room: float,
    rules: Rules,
) -> tuple[int, float, int]:
    """One decision for one symbol: ``(action code, size, reason bits)``.

    Account: ``drawdown`` from peak (fraction), the loss streak and the decision steps
    since the last loss. Position: ``position_side`` +1/-1/0, its absolute size, entry
    price and steps held. Signal: ``direction``, ``probability``, ``confidence`` and the
    forward-return quantiles. Market: ``price`` and the per-bar ``volatility`` with its
    reference. Rooms: what the symbol, portfolio-heat and correlated-exposure caps leave
    for this symbol. ``rules``: the config's thresholds, :func:`rules_of`.

    An open position is exited (size: its own) or held — exits are always allowed,
    whatever the gate or the risk state say. A flat one goes through :func:`entry`.
    """
    if position_side != 0:
        thr = rules[0]
        stop_loss, take_profit, max_holding_bars = rules[11], rules[12], rules[13]
        reasons = 0
        if entry_price > 0.0 and price > 0.0:
            ret = position_side * (price / entry_price - 1.0)
            unit = volatility if rules[10] else 1.0  # exit_in_volatility_units
            # Volatility-unit exits need a volatility; without one they cannot be placed.
            if unit > 0.0:
                if stop_loss > 0.0 and ret <= -stop_loss * unit:
                    reasons |= STOP_LOSS
                elif take_profit > 0.0 and ret >= take_profit * unit:
                    reasons |= TAKE_PROFIT
        if max_holding_bars > 0 and bars_held >= max_holding_bars:
            reasons |= TIME_LIMIT
        if rules[14] and direction == -position_side and confidence >= thr:  # exit_on_reversal
            reasons |= SIGNAL_REVERSAL
        if reasons != 0:
            return EXIT_POSITION, abs(position_size), reasons
        return NO_ACTION, 0.0, HOLDING
    # A failed gate or a refusing risk stage is what entry() would say too; a bar-by-bar
    # loop is quicker for the jump, and sizes only the signals that may be entered.
    gate = signal_gate(direction, confidence, rules)
    if gate != 0:
        return NO_ACTION, 0.0, gate
    blocks = risk_blocks(drawdown, consecutive_losses, bars_since_loss, rules)
    if blocks != 0:
        return RISK_REJECTED, 0.0, blocks
    gate, kelly, vol_scale = signal_terms(
        direction, probability, confidence, q05, q95, volatility, volatility_ref, rules
    )
    return entry(
        drawdown,
        consecutive_losses,
        bars_since_loss,
        direction,
        gate,
        kelly,
        vol_scale,
        symbol_room,
        heat_room,
        correlated_room,
        rules,
    )
