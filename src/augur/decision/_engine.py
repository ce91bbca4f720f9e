"""``decide``: the pure decision function (confidence gate → risk → exits → sizing)."""

from __future__ import annotations

import math

from augur.decision._config import DecisionConfig
from augur.decision._sizing import drawdown_scale, kelly_size, payoff_ratio, volatility_scale
from augur.decision._types import (
    Action,
    Decision,
    MarketContext,
    PositionContext,
    Reason,
    RiskState,
    Signal,
)

#: Sizes at or below this are treated as zero (no dust orders).
_MIN_SIZE = 1e-9

_SIDES = {"long": 1, "short": -1, "flat": 0}


def _correlation(risk: RiskState, a: str, b: str) -> float:
    corr = risk.correlations.get((a, b))
    if corr is None:
        corr = risk.correlations.get((b, a), 0.0)
    return corr


def _gate(signal: Signal, config: DecisionConfig) -> list[Reason]:
    """Stage 1: reasons why the signal may not open a position (empty = passes)."""
    if signal.direction == 0:
        return [Reason("flat_signal", "the ensemble predicts no move (flat)")]
    if not signal.confidence >= config.confidence_threshold:  # NaN fails too
        return [
            Reason(
                "confidence_below_threshold",
                f"confidence {signal.confidence:.3f} < threshold {config.confidence_threshold:.3f}",
            )
        ]
    return []


def _risk_blocks(risk: RiskState, config: DecisionConfig) -> list[Reason]:
    """Stage 2: account-level reasons that forbid new exposure (exits stay allowed)."""
    blocks = []
    if risk.drawdown >= config.max_drawdown:
        blocks.append(
            Reason(
                "drawdown_limit",
                f"drawdown {risk.drawdown:.1%} is at or beyond the limit {config.max_drawdown:.1%}",
            )
        )
    if (
        config.cooldown_losses > 0
        and risk.consecutive_losses >= config.cooldown_losses
        and risk.bars_since_last_loss < config.cooldown_bars
    ):
        blocks.append(
            Reason(
                "cooldown",
                f"{risk.consecutive_losses} consecutive losses: cooling down for "
                f"{config.cooldown_bars - risk.bars_since_last_loss} more bar(s)",
            )
        )
    return blocks


def _exit_reasons(
    signal: Signal, position: PositionContext, market: MarketContext, config: DecisionConfig
) -> list[Reason]:
    """Stage 3: why an open position should be closed now (empty = hold)."""
    side = _SIDES[position.side]
    reasons = []
    if position.entry_price > 0 and market.price > 0:
        ret = side * (market.price / position.entry_price - 1.0)
        unit = market.volatility if config.exit_units == "volatility" else 1.0
        # Volatility-unit exits need a volatility; without one they cannot be placed.
        if unit > 0:
            if config.stop_loss > 0 and ret <= -config.stop_loss * unit:
                reasons.append(Reason("stop_loss", f"position return {ret:.4%} hit the stop loss"))
            elif config.take_profit > 0 and ret >= config.take_profit * unit:
                reasons.append(
                    Reason("take_profit", f"position return {ret:.4%} hit the take profit")
                )
    if config.max_holding_bars > 0 and position.bars_held >= config.max_holding_bars:
        reasons.append(
            Reason(
                "time_limit",
                f"held {position.bars_held} bars, limit {config.max_holding_bars}",
            )
        )
    if (
        config.exit_on_reversal
        and signal.direction == -side
        and signal.confidence >= config.confidence_threshold
    ):
        reasons.append(Reason("signal_reversal", "a confident signal points the other way"))
    return reasons


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

    def result(action: Action, size: float, reasons: list[Reason]) -> Decision:
        return Decision(
            action=action,
            size=size,
            direction=signal.direction,
            probability=signal.probability,
            confidence=signal.confidence,
            agreement=signal.agreement,
            reasons=tuple(reasons),
            model_version=signal.model_version,
            request_id=request_id,
        )

    gate = _gate(signal, config)
    blocks = _risk_blocks(risk, config)

    if position.side != "flat":
        exits = _exit_reasons(signal, position, market, config)
        if exits:
            return result(Action.EXIT_POSITION, abs(position.size), exits)
        return result(
            Action.NO_ACTION,
            0.0,
            [Reason("holding", f"holding the {position.side} position; no exit rule triggered")],
        )

    if gate:
        return result(Action.NO_ACTION, 0.0, gate)
    if blocks:
        return result(Action.RISK_REJECTED, 0.0, blocks)

    b = payoff_ratio(signal.direction, signal.q05, signal.q95, config.max_payoff_ratio)
    kelly = kelly_size(signal.probability, b, config.kelly_fraction, config.max_position_size)
    if not kelly > _MIN_SIZE:
        return result(
            Action.NO_ACTION,
            0.0,
            [
                Reason(
                    "kelly_non_positive",
                    f"no edge: p={signal.probability:.3f}, payoff ratio b={b:.3f}",
                )
            ],
        )

    reasons: list[Reason] = []
    size = kelly
    dd_scale = drawdown_scale(risk.drawdown, config.drawdown_scale_start, config.max_drawdown)
    if kelly * dd_scale <= _MIN_SIZE:  # at the limit up to rounding (1 - 0.8 < 0.2)
        return result(
            Action.RISK_REJECTED,
            0.0,
            [Reason("drawdown_limit", f"drawdown {risk.drawdown:.1%} leaves no room for new size")],
        )
    if dd_scale < 1.0:
        size *= dd_scale
        reasons.append(
            Reason("drawdown_scaling", f"drawdown {risk.drawdown:.1%}: size x{dd_scale:.2f}")
        )
    if config.volatility_scaling:
        vol_scale = volatility_scale(
            market.volatility, market.volatility_ref, config.volatility_scale_cap
        )
        if vol_scale != 1.0:
            size *= vol_scale
            reasons.append(
                Reason("volatility_scaling", f"volatility regime: size x{vol_scale:.2f}")
            )
    size = min(size, config.max_position_size)

    # Exposure caps: how much room each limit leaves for this symbol.
    exposures = risk.open_exposure
    own = abs(exposures.get(market.symbol, 0.0))
    correlated = sum(
        abs(e)
        for s, e in exposures.items()
        if s != market.symbol
        and abs(_correlation(risk, market.symbol, s)) >= config.correlation_threshold
    )
    rooms = [
        ("exposure_cap", config.max_symbol_exposure - own, "symbol exposure cap"),
        (
            "portfolio_heat",
            config.max_portfolio_heat - sum(abs(e) for e in exposures.values()),
            "portfolio heat cap",
        ),
        (
            "correlated_exposure",
            config.max_correlated_exposure - own - correlated,
            "correlated exposure cap",
        ),
    ]
    for code, room, label in rooms:
        if size > room:
            if room <= _MIN_SIZE:
                return result(
                    Action.RISK_REJECTED, 0.0, [*reasons, Reason(code, f"{label} is used up")]
                )
            size = room
            reasons.append(Reason(code, f"size limited by the {label} to {room:.4f}"))

    if not math.isfinite(size) or size <= _MIN_SIZE:
        return result(
            Action.RISK_REJECTED, 0.0, [*reasons, Reason("size_zero", "risk scaling left no size")]
        )
    action = Action.ENTER_LONG if signal.direction > 0 else Action.ENTER_SHORT
    reasons.append(
        Reason(
            "entered",
            f"{action.value} size {size:.4f} (kelly {kelly:.4f}, p={signal.probability:.3f}, "
            f"b={b:.2f})",
        )
    )
    return result(action, size, reasons)
