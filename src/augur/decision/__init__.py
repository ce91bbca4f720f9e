"""Decision engine: confidence gate → risk assessment → exit evaluation → sizing."""

from augur.decision._types import (
    Action,
    Decision,
    MarketContext,
    PositionContext,
    Reason,
    RiskState,
    Signal,
)

__all__ = [
    "Action",
    "Decision",
    "MarketContext",
    "PositionContext",
    "Reason",
    "RiskState",
    "Signal",
]
