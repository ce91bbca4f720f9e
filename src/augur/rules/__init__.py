"""Decision rules in a small, safe language: parsed (never evaluated as Python), checked,
and compiled for the decision engine.

A rule set can only shrink, skip or rescale (within a bound) an entry the risk manager
already allows; it never overrides a drawdown stop or an exit. Example::

    if confidence > 0.75 and volatility < 0.02: size = kelly * 1.5
    elif confidence < 0.4 or volatility > 0.05: size = 0

Public names: :func:`parse` (text → checked :class:`Rules`, or :class:`RuleError` with
every problem's line and column), :func:`compile_rules` (→ the engine's
:class:`RuleProgram`), :func:`evaluate` (the same rules over arrays), :class:`RuleSet`
and its file I/O, and the language's :data:`KPIS` and :data:`CONSTANTS`.
"""

from augur.decision._program import CONSTANTS, KPIS, MAX_SIZE_MULTIPLIER, RuleProgram
from augur.rules._compile import compile_rules, evaluate
from augur.rules._parse import Problem, RuleError, Rules, parse
from augur.rules._ruleset import RuleSet, load_rule_set, save_rule_set

__all__ = [
    "CONSTANTS",
    "KPIS",
    "MAX_SIZE_MULTIPLIER",
    "Problem",
    "RuleError",
    "RuleProgram",
    "RuleSet",
    "Rules",
    "compile_rules",
    "evaluate",
    "load_rule_set",
    "parse",
    "save_rule_set",
]
