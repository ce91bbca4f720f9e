"""``DecisionConfig``: every threshold of the decision and risk engine, typed and documented.

Tuning searches ``confidence_threshold``, ``kelly_fraction``, ``max_drawdown`` and
``cooldown_losses`` (keep those names); the rest are risk settings a platform team sets.
All sizes and exposures are fractions of equity (0.2 = 20% of equity).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class DecisionConfig:
    """Thresholds of the four decision stages (gate → risk → exits → sizing).

    Attributes:
        confidence_threshold: minimum ensemble ``confidence`` (0..1) for a new entry.
        kelly_fraction: multiplier on the full Kelly fraction (0.25 = quarter Kelly).
        max_position_size: cap on one position's size, fraction of equity.
        max_payoff_ratio: cap on the payoff ratio ``b`` from the quantiles (guards a
            vanishing downside quantile).
        max_drawdown: drawdown from peak (fraction) at or beyond which no new exposure is
            taken; exits stay allowed.
        drawdown_scale_start: drawdown (fraction) from which new sizes shrink linearly,
            reaching 0 at ``max_drawdown``; must be below it.
        cooldown_losses: after this many consecutive losing trades, no new entry for
            ``cooldown_bars`` decision steps (0 disables the cool-down).
        cooldown_bars: length of the cool-down, in decision steps after the last loss.
        volatility_scaling: scale sizes by ``volatility_ref / volatility`` (quieter
            market → larger, louder → smaller).
        volatility_scale_cap: upper cap of that multiplier.
        max_symbol_exposure: cap on the absolute exposure in one symbol.
        max_portfolio_heat: cap on the sum of absolute exposures across all symbols.
        correlation_threshold: symbols whose absolute return correlation with the
            candidate is at least this count together against ``max_correlated_exposure``.
        max_correlated_exposure: cap on the candidate's exposure plus the absolute
            exposures of its correlated symbols (conservative: hedges are not netted).
        exit_units: ``"volatility"`` — ``stop_loss``/``take_profit`` are multiples of the
            per-bar volatility (ATR-like); ``"return"`` — they are plain returns (0.01 = 1%).
        stop_loss: exit when the open position's return falls to ``-stop_loss`` (in
            ``exit_units``; 0 disables).
        take_profit: exit when the open position's return reaches ``take_profit``
            (0 disables).
        max_holding_bars: exit after this many decision steps in a position (0 disables).
        exit_on_reversal: exit when a signal in the opposite direction passes the
            confidence gate.
    """

    # The ensemble's confidence mixes margin, agreement and trend (see augur.models): on
    # the sample data its out-of-sample median is ~0.27 and its 95th percentile ~0.41, so
    # 0.55 never let a trade through. 0.35 admits the most confident ~15%; tune it.
    confidence_threshold: float = 0.35
    kelly_fraction: float = 0.25
    max_position_size: float = 0.2
    max_payoff_ratio: float = 10.0
    max_drawdown: float = 0.2
    drawdown_scale_start: float = 0.1
    cooldown_losses: int = 3
    cooldown_bars: int = 24
    volatility_scaling: bool = True
    volatility_scale_cap: float = 2.0
    max_symbol_exposure: float = 0.2
    max_portfolio_heat: float = 0.6
    correlation_threshold: float = 0.7
    max_correlated_exposure: float = 0.3
    exit_units: Literal["volatility", "return"] = "volatility"
    stop_loss: float = 2.0
    take_profit: float = 3.0
    max_holding_bars: int = 24
    exit_on_reversal: bool = True

    def __post_init__(self) -> None:
        def bad(name: str, rule: str) -> ValueError:
            return ValueError(
                f"DecisionConfig.{name}={getattr(self, name)!r} is invalid: it must be {rule}"
            )

        for name in ("confidence_threshold", "correlation_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise bad(name, "in [0, 1]")
        if not 0.0 < self.kelly_fraction <= 1.0:
            raise bad("kelly_fraction", "in (0, 1]")
        for name in (
            "max_position_size",
            "max_payoff_ratio",
            "max_symbol_exposure",
            "max_portfolio_heat",
            "max_correlated_exposure",
            "volatility_scale_cap",
        ):
            if not getattr(self, name) > 0.0:
                raise bad(name, "> 0")
        if not 0.0 < self.max_drawdown <= 1.0:
            raise bad("max_drawdown", "in (0, 1]")
        if not 0.0 <= self.drawdown_scale_start < self.max_drawdown:
            raise bad("drawdown_scale_start", f"in [0, max_drawdown={self.max_drawdown})")
        for name in ("cooldown_losses", "cooldown_bars", "max_holding_bars"):
            if int(getattr(self, name)) != getattr(self, name) or getattr(self, name) < 0:
                raise bad(name, "an integer >= 0")
        for name in ("stop_loss", "take_profit"):
            if getattr(self, name) < 0.0:
                raise bad(name, ">= 0 (0 disables it)")
        if self.exit_units not in ("volatility", "return"):
            raise bad("exit_units", "'volatility' or 'return'")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for model metadata, tuning results, JSON)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DecisionConfig:
        """Build from a mapping; unknown keys are an error naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown DecisionConfig field(s) {unknown}; known fields: {sorted(known)}"
            )
        return cls(**values)
