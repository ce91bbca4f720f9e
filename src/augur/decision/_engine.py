"""``decide``: the pure decision function (confidence gate → risk → exits → sizing).

The rules themselves are :func:`augur.decision._step.step` (shared with the compiled
sweep and Monte Carlo); this module turns the value types into its floats and its codes
back into an :class:`Action` and :class:`Reason` texts.
"""

from __future__ import annotations

from augur.decision import _step
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


def _reasons(
    bits: int,
    size: float,
    signal: Signal,
    position: PositionContext,
    risk: RiskState,
    market: MarketContext,
    config: DecisionConfig,
    rooms: tuple[float, float, float],
) -> list[Reason]:
    """The step's reason bits as code + text, in the order of :data:`_step.REASON_BITS`."""
    dd = risk.drawdown
    side = _SIDES[position.side]
    b = payoff_ratio(signal.direction, signal.q05, signal.q95, config.max_payoff_ratio)

    def position_return() -> float:
        return side * (market.price / position.entry_price - 1.0)

    def entered() -> str:
        action = Action.ENTER_LONG if signal.direction > 0 else Action.ENTER_SHORT
        kelly = _step.entry_kelly(
            signal.direction,
            signal.probability,
            signal.q05,
            signal.q95,
            config.kelly_fraction,
            config.max_payoff_ratio,
            config.max_position_size,
        )
        return (
            f"{action.value} size {size:.4f} (kelly {kelly:.4f}, p={signal.probability:.3f}, "
            f"b={b:.2f})"
        )

    texts = {
        _step.FLAT_SIGNAL: lambda: ("flat_signal", "the ensemble predicts no move (flat)"),
        _step.CONFIDENCE_BELOW_THRESHOLD: lambda: (
            "confidence_below_threshold",
            f"confidence {signal.confidence:.3f} < threshold {config.confidence_threshold:.3f}",
        ),
        _step.DRAWDOWN_LIMIT: lambda: (
            "drawdown_limit",
            f"drawdown {dd:.1%} is at or beyond the limit {config.max_drawdown:.1%}",
        ),
        _step.COOLDOWN: lambda: (
            "cooldown",
            f"{risk.consecutive_losses} consecutive losses: cooling down for "
            f"{config.cooldown_bars - risk.bars_since_last_loss} more bar(s)",
        ),
        _step.STOP_LOSS: lambda: (
            "stop_loss",
            f"position return {position_return():.4%} hit the stop loss",
        ),
        _step.TAKE_PROFIT: lambda: (
            "take_profit",
            f"position return {position_return():.4%} hit the take profit",
        ),
        _step.TIME_LIMIT: lambda: (
            "time_limit",
            f"held {position.bars_held} bars, limit {config.max_holding_bars}",
        ),
        _step.SIGNAL_REVERSAL: lambda: (
            "signal_reversal",
            "a confident signal points the other way",
        ),
        _step.HOLDING: lambda: (
            "holding",
            f"holding the {position.side} position; no exit rule triggered",
        ),
        _step.KELLY_NON_POSITIVE: lambda: (
            "kelly_non_positive",
            f"no edge: p={signal.probability:.3f}, payoff ratio b={b:.3f}",
        ),
        _step.DRAWDOWN_NO_ROOM: lambda: (
            "drawdown_limit",
            f"drawdown {dd:.1%} leaves no room for new size",
        ),
        _step.DRAWDOWN_SCALING: lambda: (
            "drawdown_scaling",
            f"drawdown {dd:.1%}: size "
            f"x{drawdown_scale(dd, config.drawdown_scale_start, config.max_drawdown):.2f}",
        ),
        _step.VOLATILITY_SCALING: lambda: (
            "volatility_scaling",
            "volatility regime: size x"
            f"{volatility_scale(market.volatility, market.volatility_ref, config.volatility_scale_cap):.2f}",
        ),
        _step.EXPOSURE_CAP: lambda: (
            "exposure_cap",
            f"size limited by the symbol exposure cap to {rooms[0]:.4f}",
        ),
        _step.EXPOSURE_CAP_USED_UP: lambda: ("exposure_cap", "symbol exposure cap is used up"),
        _step.PORTFOLIO_HEAT: lambda: (
            "portfolio_heat",
            f"size limited by the portfolio heat cap to {rooms[1]:.4f}",
        ),
        _step.PORTFOLIO_HEAT_USED_UP: lambda: ("portfolio_heat", "portfolio heat cap is used up"),
        _step.CORRELATED_EXPOSURE: lambda: (
            "correlated_exposure",
            f"size limited by the correlated exposure cap to {rooms[2]:.4f}",
        ),
        _step.CORRELATED_EXPOSURE_USED_UP: lambda: (
            "correlated_exposure",
            "correlated exposure cap is used up",
        ),
        _step.SIZE_ZERO: lambda: ("size_zero", "risk scaling left no size"),
        _step.ENTERED: lambda: ("entered", entered()),
    }
    return [Reason(*texts[bit]()) for bit in _step.REASON_BITS if bits & bit]


def decide(
    signal: Signal,
    position: PositionContext,
    risk: RiskState,
    market: MarketContext,
    config: DecisionConfig,
    request_id: str = "",
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
    """
    if position.side not in _SIDES:
        raise ValueError(
            f"PositionContext.side={position.side!r} is invalid: use 'long', 'short' or 'flat'"
        )
    rooms = _rooms(risk, market.symbol, config)
    action, size, bits = _step.step(
        risk.drawdown,
        risk.consecutive_losses,
        risk.bars_since_last_loss,
        _SIDES[position.side],
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
        _step.rules_of(config),
    )
    return Decision(
        action=_ACTIONS[action],
        size=size,
        direction=signal.direction,
        probability=signal.probability,
        confidence=signal.confidence,
        agreement=signal.agreement,
        reasons=tuple(_reasons(bits, size, signal, position, risk, market, config, rooms)),
        model_version=signal.model_version,
        request_id=request_id,
    )
