"""Decision engine: confidence gate → risk assessment → exit evaluation → sizing.

Public names: :func:`decide` (pure), :class:`DecisionConfig`, the contract types, and the
scalar sizing rules (:func:`kelly_size`, :func:`payoff_ratio`, :func:`drawdown_scale`,
:func:`volatility_scale`) shared with the compiled simulation engines.
"""

from augur.decision._config import DecisionConfig
from augur.decision._engine import decide
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

__all__ = [
    "Action",
    "Decision",
    "DecisionConfig",
    "MarketContext",
    "PositionContext",
    "Reason",
    "RiskState",
    "Signal",
    "decide",
    "drawdown_scale",
    "kelly_size",
    "payoff_ratio",
    "volatility_scale",
]
