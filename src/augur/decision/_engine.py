"""``decide``: the pure decision function (confidence gate → risk → exits → sizing).

The rules themselves are :func:`augur.decision._step.step` (shared with the compiled
sweep and Monte Carlo); this module turns the value types into its floats and its codes
back into an :class:`Action` and :class:`Reason` texts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from augur.decision import _program, _step
from augur.decision._config import DecisionConfig
from augur.decision._sizing import drawdown_scale, payoff_ratio, volatility_scale
from augur.decision._types import (
    Action,
    Decision,
    MarketContext,
    PositionContext,
    Reason,
    RiskState,
    Signal,
)

_SIDES = {"long": 1, "short": -1, "flat": 0}

_ACTIONS = {
    _step.NO_ACTION: Action.NO_ACTION,
    _step.RISK_REJECTED: Action.RISK_REJECTED,
    _step.EXIT_POSITION: Action.EXIT_POSITION,
    _step.ENTER_LONG: Action.ENTER_LONG,
    _step.ENTER_SHORT: Action.ENTER_SHORT,
}


def _correlation(risk: RiskState, a: str, b: str) -> float:
    corr = risk.correlations.get((a, b))
    if corr is None:
        corr = risk.correlations.get((b, a), 0.0)
    return corr


def _rooms(risk: RiskState, symbol: str, config: DecisionConfig) -> tuple[float, float, float]:
    """What the symbol, portfolio-heat and correlated-exposure caps leave for ``symbol``."""
    exposures = risk.open_exposure
    own = abs(exposures.get(symbol, 0.0))
    correlated = 0.0
    if risk.correlations:
        correlated = sum(
            abs(e)
            for s, e in exposures.items()
            if s != symbol and abs(_correlation(risk, symbol, s)) >= config.correlation_threshold
        )
    return (
        config.max_symbol_exposure - own,
        config.max_portfolio_heat - sum(abs(e) for e in exposures.values()),
        config.max_correlated_exposure - own - correlated,
    )


_NO_ROOMS = (0.0, 0.0, 0.0)


class _Facts(NamedTuple):
    """What the reason texts quote: the inputs and the step's size."""

    size: float
    signal: Signal
    position: PositionContext
    risk: RiskState
    market: MarketContext
    config: DecisionConfig
    rooms: tuple[float, float, float]


def _payoff(f: _Facts) -> float:
    s = f.signal
    return payoff_ratio(s.direction, s.q05, s.q95, f.config.max_payoff_ratio)


def _position_return(f: _Facts) -> float:
    side = _SIDES[f.position.side]
    return side * (f.market.price / f.position.entry_price - 1.0)


def _entered(f: _Facts) -> str:
    s, c = f.signal, f.config
    action = Action.ENTER_LONG if s.direction > 0 else Action.ENTER_SHORT
    kelly = _step.entry_kelly(
        s.direction,
        s.probability,
        s.q05,
        s.q95,
        c.kelly_fraction,
        c.max_payoff_ratio,
        c.max_position_size,
    )
    return (
        f"{action.value} size {f.size:.4f} (kelly {kelly:.4f}, p={s.probability:.3f}, "
        f"b={_payoff(f):.2f})"
    )


def _scale_text(f: _Facts) -> str:
    m, c = f.market, f.config
    return f"volatility regime: size x{volatility_scale(m.volatility, m.volatility_ref, c.volatility_scale_cap):.2f}"


def _drawdown_scale_text(f: _Facts) -> str:
    dd, c = f.risk.drawdown, f.config
    return (
        f"drawdown {dd:.1%}: size x{drawdown_scale(dd, c.drawdown_scale_start, c.max_drawdown):.2f}"
    )


#: Each reason bit of the step: its code and how its text is written.
_TEXTS: dict[int, tuple[str, Callable[[_Facts], str]]] = {
    _step.FLAT_SIGNAL: ("flat_signal", lambda f: "the ensemble predicts no move (flat)"),
    _step.CONFIDENCE_BELOW_THRESHOLD: (
        "confidence_below_threshold",
        lambda f: (
            f"confidence {f.signal.confidence:.3f} < threshold {f.config.confidence_threshold:.3f}"
        ),
    ),
    _step.DRAWDOWN_LIMIT: (
        "drawdown_limit",
        lambda f: (
            f"drawdown {f.risk.drawdown:.1%} is at or beyond the limit {f.config.max_drawdown:.1%}"
        ),
    ),
    _step.COOLDOWN: (
        "cooldown",
        lambda f: (
            f"{f.risk.consecutive_losses} consecutive losses: cooling down for "
            f"{f.config.cooldown_bars - f.risk.bars_since_last_loss} more bar(s)"
        ),
    ),
    _step.STOP_LOSS: (
        "stop_loss",
        lambda f: f"position return {_position_return(f):.4%} hit the stop loss",
    ),
    _step.TAKE_PROFIT: (
        "take_profit",
        lambda f: f"position return {_position_return(f):.4%} hit the take profit",
    ),
    _step.TIME_LIMIT: (
        "time_limit",
        lambda f: f"held {f.position.bars_held} bars, limit {f.config.max_holding_bars}",
    ),
    _step.SIGNAL_REVERSAL: ("signal_reversal", lambda f: "a confident signal points the other way"),
    _step.HOLDING: (
        "holding",
        lambda f: f"holding the {f.position.side} position; no exit rule triggered",
    ),
    _step.KELLY_NON_POSITIVE: (
        "kelly_non_positive",
        lambda f: f"no edge: p={f.signal.probability:.3f}, payoff ratio b={_payoff(f):.3f}",
    ),
    _step.DRAWDOWN_NO_ROOM: (
        "drawdown_limit",
        lambda f: f"drawdown {f.risk.drawdown:.1%} leaves no room for new size",
    ),
    _step.DRAWDOWN_SCALING: ("drawdown_scaling", _drawdown_scale_text),
    _step.VOLATILITY_SCALING: ("volatility_scaling", _scale_text),
    _step.EXPOSURE_CAP: (
        "exposure_cap",
        lambda f: f"size limited by the symbol exposure cap to {f.rooms[0]:.4f}",
    ),
    _step.EXPOSURE_CAP_USED_UP: ("exposure_cap", lambda f: "symbol exposure cap is used up"),
    _step.PORTFOLIO_HEAT: (
        "portfolio_heat",
        lambda f: f"size limited by the portfolio heat cap to {f.rooms[1]:.4f}",
    ),
    _step.PORTFOLIO_HEAT_USED_UP: ("portfolio_heat", lambda f: "portfolio heat cap is used up"),
    _step.CORRELATED_EXPOSURE: (
        "correlated_exposure",
        lambda f: f"size limited by the correlated exposure cap to {f.rooms[2]:.4f}",
    ),
    _step.CORRELATED_EXPOSURE_USED_UP: (
        "correlated_exposure",
        lambda f: "correlated exposure cap is used up",
    ),
    _step.SIZE_ZERO: ("size_zero", lambda f: "risk scaling left no size"),
    _step.ENTERED: ("entered", _entered),
}


def _reasons(bits: int, facts: _Facts) -> tuple[Reason, ...]:
    """The step's reason bits as code + text, lowest bit first (the order of
    :data:`_step.REASON_BITS`)."""
    out = []
    while bits:
        bit = bits & -bits  # the lowest bit set
        bits ^= bit
        code, text = _TEXTS[bit]
        out.append(Reason(code, text(facts)))
    return tuple(out)


_RULES: dict[int, tuple[DecisionConfig, _step.Rules]] = {}


def _rules_of(config: DecisionConfig) -> _step.Rules:
    """A config's thresholds as the step's tuple, once per config object (configs are
    frozen; the entry holds the config, so its id is not reused while it is kept). Not
    an ``lru_cache``: that hashes the config's twenty fields on every call."""
    hit = _RULES.get(id(config))
    if hit is None or hit[0] is not config:
        if len(_RULES) >= 256:
            _RULES.clear()
        hit = _RULES[id(config)] = (config, _step.rules_of(config))
    return hit[1]


def decide(
    signal: Signal,
    position: PositionContext,
    risk: RiskState,
    market: MarketContext,
    config: DecisionConfig,
    request_id: str = "",
    rules: _program.RuleProgram | None = None,
) -> Decision:
    """Decide what to do for one symbol now. Pure: same inputs → same decision.

    Stages: (1) confidence gate on the signal; (2) risk assessment — drawdown limit and
    cool-down forbid new exposure; (3) exit evaluation for an open position — stop loss,
    take profit, time limit, confident reversal (exits are always allowed, whatever the
    gate or the risk state say); (4) sizing for a flat position — fractional Kelly from
    ``signal.probability`` and the payoff ratio of the quantiles, scaled by drawdown and
    volatility regime, capped by position size, symbol exposure, portfolio heat and
    correlated exposure.

    ``Decision.size`` is the size to trade as a fraction of equity: the new position for
    an entry, the open position's size for an exit, 0 otherwise. ``direction`` is the
    signal's direction.

    ``rules`` (an ``augur.rules`` rule set, compiled) then sees an entry's KPIs: it may
    skip the entry or rescale its size within the same caps, never touch an exit or a
    refusal.
    """
    if position.side not in _SIDES:
        raise ValueError(
            f"PositionContext.side={position.side!r} is invalid: use 'long', 'short' or 'flat'"
        )
    side = _SIDES[position.side]
    # the caps only limit an entry: an open position is exited or held whatever they say
    rooms = _rooms(risk, market.symbol, config) if side == 0 else _NO_ROOMS
    action, size, bits = _step.step(
        risk.drawdown,
        risk.consecutive_losses,
        risk.bars_since_last_loss,
        side,
        position.size,
        position.entry_price,
        position.bars_held,
        signal.direction,
        signal.probability,
        signal.confidence,
        signal.q05,
        signal.q95,
        market.price,
        market.volatility,
        market.volatility_ref,
        rooms[0],
        rooms[1],
        rooms[2],
        _rules_of(config),
    )
    reasons = _reasons(bits, _Facts(size, signal, position, risk, market, config, rooms))
    if rules is not None and action in (_step.ENTER_LONG, _step.ENTER_SHORT):
        action, size, ruled = _apply_rules(
            rules, size, signal, position, risk, market, config, rooms
        )
        reasons += ruled
    return Decision(
        action=_ACTIONS[action],
        size=size,
        direction=signal.direction,
        probability=signal.probability,
        confidence=signal.confidence,
        agreement=signal.agreement,
        reasons=reasons,
        model_version=signal.model_version,
        request_id=request_id,
        rule_set=(rules.label or "rules") if rules is not None else "",
    )


def _apply_rules(
    rules: _program.RuleProgram,
    size: float,
    signal: Signal,
    position: PositionContext,
    risk: RiskState,
    market: MarketContext,
    config: DecisionConfig,
    rooms: tuple[float, float, float],
) -> tuple[int, float, tuple[Reason, ...]]:
    """An entry the risk manager sized at ``size``, after the rule set: skipped, resized
    (at most the position-size and exposure caps), or as it was."""
    ops, args = rules.arrays()
    kpis = _program.entry_kpis(signal, position, risk, market, size)
    act, ruled = _program.run(ops, args, rules.stack, kpis)
    ruled = min(ruled, config.max_position_size, *rooms)
    name = rules.label or "rules"
    if not act or ruled <= 0.0:
        return _step.NO_ACTION, 0.0, (Reason("rule_skipped", f"rule set {name} skipped the entry"),)
    action = _step.ENTER_LONG if signal.direction > 0 else _step.ENTER_SHORT
    if ruled == size:
        return action, size, ()
    return (
        action,
        ruled,
        (Reason("rule_sized", f"rule set {name}: size {size:.4f} -> {ruled:.4f}"),),
    )
