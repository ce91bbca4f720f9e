"""Checked rule nodes → the two evaluators: a :class:`RuleProgram` for the decision
engine's stack machine (one entry at a time: serving, the sweep, the gate's backtests), and
:func:`evaluate`, the same rules over arrays of entries at once (numpy). Both read
``size`` as assigned so far, divide by zero as 0 and clip the size the same way; a
property test holds them equal."""

from __future__ import annotations

import numpy as np

from augur.decision import _program as vm
from augur.rules._parse import (
    Assign,
    BinOp,
    Bool,
    Chain,
    Compare,
    Kpi,
    Logic,
    Neg,
    Node,
    Not,
    Num,
    Rules,
    Size,
)

_BINARY = {"+": vm.ADD, "-": vm.SUB, "*": vm.MUL, "/": vm.DIV}
_COMPARE = {"<": vm.LT, "<=": vm.LE, ">": vm.GT, ">=": vm.GE, "==": vm.EQ, "!=": vm.NE}


class _Emitter:
    def __init__(self) -> None:
        self.ops: list[int] = []
        self.args: list[float] = []
        self.height = 0
        self.deepest = 0

    def emit(self, op: int, arg: float = 0.0, change: int = 0) -> int:
        self.ops.append(op)
        self.args.append(arg)
        self.height += change
        self.deepest = max(self.deepest, self.height)
        return len(self.ops) - 1

    def patch(self, at: int) -> None:
        self.args[at] = float(len(self.ops))

    def expr(self, node: Node) -> None:
        if isinstance(node, Num):
            self.emit(vm.PUSH_CONST, node.value, +1)
        elif isinstance(node, Bool):
            self.emit(vm.PUSH_CONST, 1.0 if node.value else 0.0, +1)
        elif isinstance(node, Kpi):
            self.emit(vm.PUSH_KPI, float(vm.KPI_INDEX[node.name]), +1)
        elif isinstance(node, Size):
            self.emit(vm.PUSH_SIZE, 0.0, +1)
        elif isinstance(node, Neg):
            self.expr(node.operand)
            self.emit(vm.NEG)
        elif isinstance(node, Not):
            self.expr(node.operand)
            self.emit(vm.NOT)
        elif isinstance(node, BinOp):
            self.expr(node.left)
            self.expr(node.right)
            self.emit(_BINARY[node.op], 0.0, -1)
        elif isinstance(node, Logic):
            self.expr(node.left)
            self.expr(node.right)
            self.emit(vm.AND if node.op == "and" else vm.OR, 0.0, -1)
        elif isinstance(node, Compare):  # a < b < c is (a < b) and (b < c)
            for i, op in enumerate(node.ops):
                self.expr(node.operands[i])
                self.expr(node.operands[i + 1])
                self.emit(_COMPARE[op], 0.0, -1)
                if i:
                    self.emit(vm.AND, 0.0, -1)
        else:  # pragma: no cover - the parser makes no other node
            raise TypeError(f"not a rule node: {node!r}")

    def chain(self, chain: Chain) -> None:
        ends = []
        for branch in chain.branches:
            skip = None
            if branch.condition is not None:
                self.expr(branch.condition)
                skip = self.emit(vm.JUMP_IF_FALSE, 0.0, -1)
            for assign in branch.body:
                self.assign(assign)
            ends.append(self.emit(vm.JUMP))
            if skip is not None:
                self.patch(skip)
        for at in ends:
            self.patch(at)

    def assign(self, assign: Assign) -> None:
        self.expr(assign.value)
        self.emit(vm.SET_SIZE if assign.target == "size" else vm.SET_ACT, 0.0, -1)


def compile_rules(rules: Rules, name: str = "", version: int = 0, text: str = "") -> vm.RuleProgram:
    """The rule set as the decision engine's program."""
    out = _Emitter()
    for chain in rules.chains:
        out.chain(chain)
    return vm.RuleProgram(tuple(out.ops), tuple(out.args), out.deepest, name, version, text)


# ------------------------------------------------------------------ the array evaluator


def evaluate(rules: Rules, kpis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(act, size)`` for every row of ``kpis`` (shape ``(n, len(KPIS))``, columns in
    ``KPIS`` order), exactly as :func:`augur.decision._program.run` answers row by row."""
    kpis = np.asarray(kpis, dtype=np.float64)
    kelly = kpis[:, vm.KPI_INDEX["kelly"]]
    state = {"size": kelly.copy(), "act": np.ones(len(kpis), dtype=bool)}
    for chain in rules.chains:
        open_ = np.ones(len(kpis), dtype=bool)  # rows no branch of this chain has taken
        for branch in chain.branches:
            cond = (
                _value(branch.condition, kpis, state["size"])
                if branch.condition is not None
                else np.ones(len(kpis), dtype=bool)
            )
            take = open_ & cond
            open_ &= ~cond
            for assign in branch.body:
                value = _value(assign.value, kpis, state["size"])
                state[assign.target] = np.where(take, value, state[assign.target])
    size, act = state["size"], state["act"].astype(bool)
    cap = kelly * vm.MAX_SIZE_MULTIPLIER
    clipped = np.where(cap < size, cap, size)
    with np.errstate(invalid="ignore"):
        return act, np.where(act & (size > 0.0), clipped, 0.0)


def _value(node: Node, kpis: np.ndarray, size: np.ndarray) -> np.ndarray:
    n = len(kpis)
    if isinstance(node, Num):
        return np.full(n, node.value)
    if isinstance(node, Bool):
        return np.full(n, node.value, dtype=bool)
    if isinstance(node, Kpi):
        return kpis[:, vm.KPI_INDEX[node.name]]
    if isinstance(node, Size):
        return size
    if isinstance(node, Neg):
        return -_value(node.operand, kpis, size)
    if isinstance(node, Not):
        return ~_value(node.operand, kpis, size)
    if isinstance(node, BinOp):
        a, b = _value(node.left, kpis, size), _value(node.right, kpis, size)
        with np.errstate(all="ignore"):
            if node.op == "/":
                return np.divide(a, b, out=np.zeros(n), where=b != 0.0)
            return {"+": np.add, "-": np.subtract, "*": np.multiply}[node.op](a, b)
    if isinstance(node, Logic):
        a, b = _value(node.left, kpis, size), _value(node.right, kpis, size)
        return (a & b) if node.op == "and" else (a | b)
    if isinstance(node, Compare):
        result = np.ones(n, dtype=bool)
        with np.errstate(invalid="ignore"):
            for i, op in enumerate(node.ops):
                a = _value(node.operands[i], kpis, size)
                b = _value(node.operands[i + 1], kpis, size)
                result &= _COMPARE_NP[op](a, b)
        return result
    raise TypeError(f"not a rule node: {node!r}")  # pragma: no cover


_COMPARE_NP = {
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "==": np.equal,
    "!=": np.not_equal,
}
