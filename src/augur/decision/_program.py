"""A compiled decision-rule set (``augur.rules`` writes it) and the machine that runs it.

A rule set may only shrink, skip or rescale an entry the risk manager already allows.
It sees the entry's KPIs (below) and answers ``(act, size)``: ``act`` false skips the
entry, ``size`` replaces the risk manager's Kelly size, clipped to
``[0, kelly * MAX_SIZE_MULTIPLIER]``. The program is a flat list of stack-machine
instructions, so the same plain-Python ``run`` serves a request (``decide()``) and,
compiled by numba (:mod:`augur.backtest._sweep_kernel`), every entry of the parameter
sweep and of the rules gate's backtests. The Monte Carlo runs no rule set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from augur.decision._types import MarketContext, PositionContext, RiskState, Signal

#: The KPIs a rule may name, in the order of the vector :func:`run` reads.
KPIS: tuple[str, ...] = (
    "confidence",  # the signal's confidence, 0..1
    "probability",  # the probability of the predicted direction, 0..1
    "margin",  # |p_up - p_down|
    "agreement",  # share of members agreeing with the direction, 0..1
    "volatility",  # the bar's realised volatility
    "volatility_ratio",  # volatility over the version's long-run reference
    "trend_strength",  # the efficiency ratio, 0..1
    "regime",  # 0 ranging_calm, 1 ranging_volatile, 2 trending_calm, 3 trending_volatile
    "drawdown",  # the account's drawdown from its peak, 0..1
    "consecutive_losses",  # losing trades in a row
    "hour",  # hour of the bar, UTC, 0..23
    "day_of_week",  # 0 Monday .. 6 Sunday
    "bars_held",  # bars the current position has been held (0 when flat)
    "kelly",  # the size the risk manager allows
    "direction",  # +1 long, -1 short
)
KPI_INDEX: dict[str, int] = {name: i for i, name in enumerate(KPIS)}

#: Named constants a rule may use.
CONSTANTS: dict[str, float] = {
    "ranging_calm": 0.0,
    "ranging_volatile": 1.0,
    "trending_calm": 2.0,
    "trending_volatile": 3.0,
    "long": 1.0,
    "short": -1.0,
}

#: A rule scales the risk manager's size by at most this factor.
MAX_SIZE_MULTIPLIER = 2.0

# Instructions: (op, arg). Binary operators pop b then a and push a op b; comparisons
# and logic push 1.0 or 0.0; a comparison with NaN is false.
PUSH_CONST, PUSH_KPI, PUSH_SIZE = 0, 1, 2
ADD, SUB, MUL, DIV, NEG = 3, 4, 5, 6, 7
LT, LE, GT, GE, EQ, NE = 8, 9, 10, 11, 12, 13
AND, OR, NOT = 14, 15, 16
JUMP, JUMP_IF_FALSE = 17, 18  # arg: the instruction to go to
SET_SIZE, SET_ACT = 19, 20


@dataclass(frozen=True)
class RuleProgram:
    """A rule set compiled for :func:`run`: instructions, their arguments, the stack depth
    they need, and the rule set's name and version (reported with each decision)."""

    ops: tuple[int, ...]
    args: tuple[float, ...]
    stack: int
    name: str = ""
    version: int = 0
    text: str = field(default="", compare=False)

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}" if self.name else ""

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """The program as numba takes it."""
        return np.asarray(self.ops, dtype=np.int64), np.asarray(self.args, dtype=np.float64)


def entry_kpis(
    signal: Signal,
    position: PositionContext,
    risk: RiskState,
    market: MarketContext,
    kelly: float,
) -> np.ndarray:
    """The KPI vector of an entry the risk manager sized at ``kelly``."""
    ts = market.timestamp
    ratio = market.volatility / market.volatility_ref if market.volatility_ref > 0 else math.nan
    return np.array(
        [
            signal.confidence,
            signal.probability,
            abs(signal.p_up - signal.p_down),
            signal.agreement,
            market.volatility,
            ratio,
            market.trend_strength,
            float(market.regime) if market.regime >= 0 else math.nan,
            risk.drawdown,
            float(risk.consecutive_losses),
            float(ts.hour) if ts is not None else math.nan,
            float(ts.weekday()) if ts is not None else math.nan,
            float(position.bars_held),
            kelly,
            float(signal.direction),
        ]
    )


def run(ops: np.ndarray, args: np.ndarray, depth: int, kpis: np.ndarray) -> tuple[bool, float]:
    """Run a program on one entry's ``kpis`` (ordered as :data:`KPIS`); returns
    ``(act, size)`` with ``size`` already clipped to the multiplier's bound."""
    kelly = kpis[13]
    size = kelly
    act = True
    stack = np.empty(max(depth, 1))
    top = 0  # the number of values on the stack
    pc = 0
    n = len(ops)
    while pc < n:
        op = ops[pc]
        arg = args[pc]
        pc += 1
        if op == PUSH_CONST:
            stack[top] = arg
            top += 1
        elif op == PUSH_KPI:
            stack[top] = kpis[int(arg)]
            top += 1
        elif op == PUSH_SIZE:
            stack[top] = size
            top += 1
        elif op == NEG:
            stack[top - 1] = -stack[top - 1]
        elif op == NOT:
            stack[top - 1] = 0.0 if stack[top - 1] != 0.0 else 1.0
        elif op == JUMP:
            pc = int(arg)
        elif op == JUMP_IF_FALSE:
            top -= 1
            if stack[top] == 0.0:
                pc = int(arg)
        elif op == SET_SIZE:
            top -= 1
            size = stack[top]
        elif op == SET_ACT:
            top -= 1
            act = stack[top] != 0.0
        else:
            top -= 1
            b = stack[top]
            a = stack[top - 1]
            stack[top - 1] = _binary(op, a, b)
    if not act or not size > 0.0:  # NaN counts as no size
        return act, 0.0
    cap = kelly * MAX_SIZE_MULTIPLIER
    return act, cap if cap < size else size


def _binary(op: int, a: float, b: float) -> float:
    if op == ADD:
        return a + b
    if op == SUB:
        return a - b
    if op == MUL:
        return a * b
    if op == DIV:
        return a / b if b != 0.0 else 0.0  # division by zero gives 0: a rule never raises
    if op == LT:
        return 1.0 if a < b else 0.0
    if op == LE:
        return 1.0 if a <= b else 0.0
    if op == GT:
        return 1.0 if a > b else 0.0
    if op == GE:
        return 1.0 if a >= b else 0.0
    if op == EQ:
        return 1.0 if a == b else 0.0
    if op == NE:
        return 1.0 if a != b else 0.0
    if op == AND:
        return 1.0 if a != 0.0 and b != 0.0 else 0.0
    if op == OR:
        return 1.0 if a != 0.0 or b != 0.0 else 0.0
    return math.nan


__all__ = [
    "CONSTANTS",
    "KPIS",
    "KPI_INDEX",
    "MAX_SIZE_MULTIPLIER",
    "RuleProgram",
    "entry_kpis",
    "run",
]
