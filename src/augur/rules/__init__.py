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

Evolution (``augur rules evolve``): :func:`evolve` asks a proposer (:class:`LLMProposer`,
an OpenAI-compatible model, or the offline :class:`LocalProposer`) for candidates,
replays them over the walk-forward's out-of-sample predictions (:func:`run_trial`) and
lets the gate (:func:`judge`) pick at most one; :func:`adopt` writes it as the next
version, :func:`write_evolution_report` the HTML report.
"""

from augur.decision._program import CONSTANTS, KPIS, MAX_SIZE_MULTIPLIER, RuleProgram
from augur.rules._compile import compile_rules, evaluate
from augur.rules._evolve import INCUMBENT_FILE, Candidate, Evolution, adopt, evolve
from augur.rules._gate import GateConfig, Verdict, judge
from augur.rules._llm import CircuitBreaker, LLMProposer, proposer_from_settings
from augur.rules._parse import Problem, RuleError, Rules, parse
from augur.rules._proposer import LocalProposer, Proposal, ProposalRequest, ProposalRound
from augur.rules._report import excerpt, write_evolution_report
from augur.rules._ruleset import RuleSet, load_rule_set, save_rule_set
from augur.rules._trial import (
    Costs,
    OutOfSample,
    Trial,
    load_out_of_sample,
    run_trial,
    split_out_of_sample,
)

__all__ = [
    "CONSTANTS",
    "INCUMBENT_FILE",
    "KPIS",
    "MAX_SIZE_MULTIPLIER",
    "Candidate",
    "CircuitBreaker",
    "Costs",
    "Evolution",
    "GateConfig",
    "LLMProposer",
    "LocalProposer",
    "OutOfSample",
    "Problem",
    "Proposal",
    "ProposalRequest",
    "ProposalRound",
    "RuleError",
    "RuleProgram",
    "RuleSet",
    "Rules",
    "Trial",
    "Verdict",
    "adopt",
    "compile_rules",
    "evaluate",
    "evolve",
    "excerpt",
    "judge",
    "load_out_of_sample",
    "load_rule_set",
    "parse",
    "proposer_from_settings",
    "run_trial",
    "save_rule_set",
    "split_out_of_sample",
    "write_evolution_report",
]
