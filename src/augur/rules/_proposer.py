"""Who proposes candidate rule sets, and the deterministic local proposer.

A proposer answers a :class:`ProposalRequest` (the incumbent's text, a summary of its
recent out-of-sample performance, the verdicts of earlier rounds) with a
:class:`ProposalRound`: rule texts, not yet parsed, and the notes and token figures of
the round. The local proposer needs no service: it mutates the incumbent's numbers
(thresholds and size factors), crosses two mutants over number by number, and adds rules
for the regimes where the incumbent lost money, from a seeded generator, so the same
inputs give the same candidates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from augur.rules._parse import (
    Assign,
    BinOp,
    Branch,
    Compare,
    Kpi,
    Logic,
    Neg,
    Node,
    Not,
    Num,
    RuleError,
    parse,
)

LOCAL_PROPOSER = "local-proposer"


@dataclass(frozen=True)
class Proposal:
    """One candidate as proposed: its rule text and why."""

    rules: str
    rationale: str = ""
    source: str = LOCAL_PROPOSER


@dataclass(frozen=True)
class ProposalRequest:
    """What a proposer is told in one round."""

    round: int
    candidates: int
    incumbent: str | None  # rule text; None: no rules
    summary: dict[str, Any]
    feedback: list[dict[str, Any]] = field(default_factory=list)  # earlier rounds' verdicts


@dataclass
class ProposalRound:
    """A round's answer: the proposals, what happened on the way (one line each), and
    the tokens and cost it took (0 for the local proposer)."""

    proposals: list[Proposal]
    source: str
    notes: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    seconds: float = 0.0


class Proposer(Protocol):
    name: str

    def propose(self, request: ProposalRequest) -> ProposalRound: ...


# --- the local proposer -------------------------------------------------------------------

_NUMBER = re.compile(r"(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
#: Rules the local proposer starts from when the incumbent has no numbers to vary.
SEED_RULES: tuple[str, ...] = (
    "if confidence < 0.6: act = false",
    "if volatility_ratio > 1.5: size = kelly * 0.5",
    "if drawdown > 0.05: size = kelly * 0.5",
    "if consecutive_losses >= 3: size = kelly * 0.5",
    "if agreement < 0.7: act = false",
    "if confidence > 0.8 and volatility_ratio < 1: size = kelly * 1.25",
)


class LocalProposer:
    """Mutations and crossovers of the incumbent's numbers (see the module doc)."""

    name = LOCAL_PROPOSER

    def __init__(self, seed: int = 7, scale: float = 0.25) -> None:
        self.seed = seed
        self.scale = scale

    def propose(self, request: ProposalRequest) -> ProposalRound:
        rng = np.random.default_rng([self.seed, request.round])
        parents = [request.incumbent] if request.incumbent and _numbers(request.incumbent) else []
        regime_rules = [
            f"if regime == {name}: act = false"
            for name, row in request.summary.get("regimes", {}).items()
            if row.get("return_incumbent", 0.0) < 0
        ]
        seeds = [*regime_rules, *SEED_RULES]
        if request.incumbent:
            seeds = [f"{request.incumbent.rstrip()}\n{s}" for s in seeds]  # chains appended
        seen = {_normal(request.incumbent or "")}
        out: list[Proposal] = []
        for attempt in range(request.candidates * 20):
            if len(out) >= request.candidates:
                break
            kind = attempt % 3 if parents else 2
            if kind == 0:
                text = self._mutate(parents[0], rng)
                why = "mutated the incumbent's numbers"
            elif kind == 1:
                text = _crossover(self._mutate(parents[0], rng), self._mutate(parents[0], rng), rng)
                why = "crossed two mutants of the incumbent, number by number"
            else:
                base = seeds[(attempt // 3 if parents else attempt) % len(seeds)]
                text = self._mutate(base, rng) if attempt >= len(seeds) else base
                why = "added a rule: " + base.splitlines()[-1]
            key = _normal(text)
            if key in seen or not _valid(text):  # e.g. a number scaled past the bound
                continue
            seen.add(key)
            out.append(Proposal(text, why, LOCAL_PROPOSER))
        return ProposalRound(out, LOCAL_PROPOSER)

    def _mutate(self, text: str, rng: np.random.Generator) -> str:
        values = []
        for start, end, counted in _numbers(text):
            x = float(text[start:end])
            if counted:  # compared with an hour, a day, a count, a regime: a step of 1
                values.append(str(max(0, int(x) + int(rng.choice([-1, 0, 1])))))
            else:
                y = x * float(np.exp(rng.normal(0.0, self.scale)))
                if 0 < x < 1:
                    y = min(y, 0.99)
                values.append(f"{y:.3g}")
        return _substitute(text, values)


#: KPIs whose values are whole numbers: a number compared with one moves by steps of 1.
COUNTED_KPIS = frozenset(
    {"regime", "consecutive_losses", "hour", "day_of_week", "bars_held", "direction"}
)


def _numbers(text: str) -> list[tuple[int, int, bool]]:
    """Start and end offsets of the number literals of a valid rule text, in order, and
    whether each is compared with a counted KPI."""
    try:
        rules = parse(text)
    except RuleError:
        return []
    starts = [0]
    for line in text.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    nodes = list(_walk(rules.chains))
    counted = {
        id(operand)
        for node in nodes
        if isinstance(node, Compare)
        and any(isinstance(o, Kpi) and o.name in COUNTED_KPIS for o in node.operands)
        for operand in node.operands
    }
    spans = {}
    for node in nodes:
        if isinstance(node, Num):
            at = starts[node.line - 1] + node.column - 1
            m = _NUMBER.match(text, at)
            if m:  # a named constant is a Num too, but not a number in the text
                spans[(at, m.end())] = id(node) in counted
    return [(start, end, flag) for (start, end), flag in sorted(spans.items())]


def _walk(nodes: Any) -> Any:
    for node in nodes:
        if node is None:
            continue
        yield node
        if isinstance(node, BinOp | Logic):
            yield from _walk((node.left, node.right))
        elif isinstance(node, Neg | Not):
            yield from _walk((node.operand,))
        elif isinstance(node, Compare):
            yield from _walk(node.operands)
        elif isinstance(node, Assign):
            yield from _walk((node.value,))
        elif isinstance(node, Branch):
            yield from _walk((node.condition, *node.body))
        elif isinstance(node, Node) and hasattr(node, "branches"):
            yield from _walk(node.branches)


def _substitute(text: str, values: list[str]) -> str:
    spans = _numbers(text)
    out, last = [], 0
    for (start, end, _), value in zip(spans, values, strict=True):
        out += [text[last:start], value]
        last = end
    return "".join([*out, text[last:]])


def _crossover(a: str, b: str, rng: np.random.Generator) -> str:
    """``a`` with each number taken from ``a`` or ``b`` (same shape: mutants of one text)."""
    na, nb = _numbers(a), _numbers(b)
    if len(na) != len(nb):
        return a
    picks = [
        a[s:e] if rng.random() < 0.5 else b[t:u]
        for (s, e, _), (t, u, _) in zip(na, nb, strict=True)
    ]
    return _substitute(a, picks)


def _valid(text: str) -> bool:
    try:
        parse(text)
    except RuleError:
        return False
    return True


def _normal(text: str) -> str:
    return " ".join(text.split())


__all__ = [
    "LOCAL_PROPOSER",
    "LocalProposer",
    "Proposal",
    "ProposalRequest",
    "ProposalRound",
    "Proposer",
]
