"""The value types that cross the decision boundary (the ``Decision`` contract).

A decision is a pure function of (signal, position context, risk state, market context,
config): these types are its inputs and output. The ensemble produces a :class:`Signal`;
the service and the backtest both call the same ``decide`` with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Action(StrEnum):
    """What the caller should do now."""

    NO_ACTION = "no_action"
    RISK_REJECTED = "risk_rejected"
    EXIT_POSITION = "exit_position"
    ENTER_LONG = "enter_long"
    ENTER_SHORT = "enter_short"


@dataclass(frozen=True, slots=True)
class Reason:
    """A machine-readable reason code (e.g. ``confidence_below_threshold``) and a short text."""

    code: str
    text: str


@dataclass(frozen=True, slots=True)
class Signal:
    """The ensemble's view of one symbol at one time.

    ``direction`` is +1 (up), -1 (down) or 0 (flat); ``probability`` is the calibrated
    probability of that direction; ``q05``/``q50``/``q95`` are quantiles of the forward
    return (log return over the label horizon) — their spread gives the payoff ratio.
    """

    direction: int
    probability: float
    p_up: float
    p_down: float
    confidence: float
    agreement: float
    q05: float = 0.0
    q50: float = 0.0
    q95: float = 0.0
    model_version: str = ""


@dataclass(frozen=True, slots=True)
class PositionContext:
    """The caller's open position in this symbol (``side`` 'flat' when none).

    ``size`` is the absolute position as a fraction of equity; ``bars_held`` counts the
    decision steps since entry (the time limit compares it with ``max_holding_bars``).
    """

    side: str = "flat"  # "long" | "short" | "flat"
    size: float = 0.0
    entry_price: float = 0.0
    opened_at: datetime | None = None
    bars_held: int = 0  # decision steps since the position was opened (for the time limit)


@dataclass(frozen=True, slots=True)
class RiskState:
    """Account-level state: equity curve position, loss streak, exposure across symbols.

    ``open_exposure`` maps symbol → signed exposure as a fraction of equity;
    ``correlations`` maps (symbol_a, symbol_b) → return correlation (either order).
    ``consecutive_losses`` is the current streak of losing trades and
    ``bars_since_last_loss`` the decision steps since the last loss was realised (0 at the
    first decision after it); together they drive the cool-down.
    """

    equity: float = 1.0
    peak_equity: float = 1.0
    consecutive_losses: int = 0
    bars_since_last_loss: int = 10**9
    open_exposure: dict[str, float] = field(default_factory=dict)
    correlations: dict[tuple[str, str], float] = field(default_factory=dict)

    @property
    def drawdown(self) -> float:
        """Current drawdown from peak as a fraction (0.1 = 10% below the peak)."""
        if self.peak_equity <= 0:
            return 1.0
        return max(0.0, 1.0 - self.equity / self.peak_equity)


@dataclass(frozen=True, slots=True)
class MarketContext:
    """What the decision needs to know about the market now."""

    symbol: str
    price: float
    timestamp: datetime | None = None
    volatility: float = 0.0  # realised volatility per bar, now
    volatility_ref: float = 0.0  # its long-run reference (e.g. median over the training range)
    trend_strength: float = 0.0  # regime feature in [0, 1] (efficiency ratio)
    regime: int = -1  # the bar's regime code (features.spec.REGIMES); -1 unknown


@dataclass(frozen=True, slots=True)
class Decision:
    """The decision contract (see ARCHITECTURE.md)."""

    action: Action
    size: float
    direction: int
    probability: float
    confidence: float
    agreement: float
    reasons: tuple[Reason, ...]
    model_version: str = ""
    request_id: str = ""
    rule_set: str = ""  # the rule set (name@version) decide() applied; "" none

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (what the HTTP API returns)."""
        return {
            "action": self.action.value,
            "size": self.size,
            "direction": self.direction,
            "probability": self.probability,
            "confidence": self.confidence,
            "agreement": self.agreement,
            "reasons": [{"code": r.code, "text": r.text} for r in self.reasons],
            "model_version": self.model_version,
            "request_id": self.request_id,
            "rule_set": self.rule_set or None,
        }
