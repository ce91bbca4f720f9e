"""One evolution of the decision rules: summarise the incumbent's recent out-of-sample
performance, ask a proposer for candidates (round after round, each told the last
rounds' figures), parse and replay each valid one, let the gate judge them all, and
write the winner, if any, as the next version with its evidence.

Every candidate counts, parsed or not: how many were tried is part of the evidence, and
the gate's interval widens with it. The hold-out part of the period is only replayed,
never summarised or fed back, so the winner's hold-out figure is one the search never saw.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from augur.rules._compile import compile_rules
from augur.rules._gate import GateConfig, Verdict, judge
from augur.rules._parse import RuleError, parse
from augur.rules._proposer import Proposal, ProposalRequest, ProposalRound, Proposer
from augur.rules._ruleset import RuleSet, save_rule_set
from augur.rules._summary import summarise
from augur.rules._trial import Costs, OutOfSample, Trial, run_trial

#: The file under the rules directory that holds the rule set in force.
INCUMBENT_FILE = "incumbent.yaml"


@dataclass
class Candidate:
    """One proposal and what became of it."""

    number: int
    round: int
    proposal: Proposal
    problem: str | None = None  # why it was not backtested
    trial: Trial | None = None
    verdict: Verdict | None = None

    @property
    def parsed(self) -> bool:
        return self.trial is not None

    @property
    def reason(self) -> str:
        if self.verdict is not None:
            return self.verdict.reason
        return self.problem or ""


@dataclass
class Evolution:
    """The whole run: the incumbent's replay, every candidate, every round's accounting."""

    incumbent: RuleSet | None
    incumbent_trial: Trial
    data: OutOfSample
    costs: Costs
    gate: GateConfig
    summary: dict[str, Any]
    candidates: list[Candidate] = field(default_factory=list)
    rounds: list[ProposalRound] = field(default_factory=list)
    adopted: RuleSet | None = None
    adopted_path: Path | None = None

    @property
    def winner(self) -> Candidate | None:
        return next((c for c in self.candidates if c.verdict and c.verdict.passed), None)

    @property
    def incumbent_label(self) -> str:
        return self.incumbent.label if self.incumbent else "no rules"

    def decision(self) -> str:
        """The gate's decision in a sentence, with the figures it rests on."""
        tried = len(self.candidates)
        backtested = sum(c.parsed for c in self.candidates)
        counted = f"{tried} candidate(s) tried, {backtested} parsed and backtested"
        w = self.winner
        if w is None:
            kept = f"kept {self.incumbent_label}: no candidate passed the gate ({counted})"
            judged = [c for c in self.candidates if c.verdict is not None]
            if not judged:
                return kept + "."
            best = max(judged, key=lambda c: c.verdict.difference)  # type: ignore[union-attr]
            v = best.verdict
            assert v is not None and v.interval is not None
            return (
                f"{kept}; the largest difference, candidate {best.number}: {v.difference:+.3f}, "
                f"{v.interval.level:.1%} interval [{v.interval.low:+.3f}, {v.interval.high:+.3f}]"
                f" — {v.reason}."
            )
        assert w.trial is not None and w.verdict is not None and w.verdict.interval
        ci = w.verdict.interval
        return (
            f"accepted candidate {w.number} over {self.incumbent_label} ({counted}): "
            f"composite {w.trial.score:+.3f} vs {self.incumbent_trial.score:+.3f} on the "
            f"search part (difference {ci.estimate:+.3f}, {ci.level:.1%} interval "
            f"[{ci.low:+.3f}, {ci.high:+.3f}]); on the final hold-out, never searched: "
            f"{w.trial.holdout_score:+.3f} vs {self.incumbent_trial.holdout_score:+.3f}."
        )


def evolve(
    data: OutOfSample,
    incumbent: RuleSet | None,
    proposer: Proposer,
    *,
    decision_config: Any,
    costs: Costs,
    gate: GateConfig,
    candidates: int,
    rounds: int = 1,
    progress: Callable[[str], None] | None = None,
) -> Evolution:
    """Run the rounds and the gate (see the module doc); nothing is written."""
    say = progress or (lambda _m: None)
    say(f"replaying {incumbent.label if incumbent else 'no rules'}")
    program = incumbent.program() if incumbent else None
    inc_trial = run_trial(data, program, decision_config, costs, "incumbent")
    ungated_config = dataclasses.replace(decision_config, confidence_threshold=0.0)
    ungated = run_trial(data, None, ungated_config, costs, "no gate, no rules")
    summary = summarise(data, inc_trial, ungated, costs)
    result = Evolution(incumbent, inc_trial, data, costs, gate, summary)
    seen = {" ".join((incumbent.rules if incumbent else "").split()): "the incumbent"}
    feedback: list[dict[str, Any]] = []
    for r in range(1, rounds + 1):
        say(f"round {r}/{rounds}: asking {proposer.name}")
        request = ProposalRequest(
            r, candidates, incumbent.rules if incumbent else None, summary, list(feedback)
        )
        answer = proposer.propose(request)
        result.rounds.append(answer)
        for proposal in answer.proposals:
            c = Candidate(len(result.candidates) + 1, r, proposal)
            result.candidates.append(c)
            say(f"round {r}/{rounds}: replaying candidate {c.number}")
            _try(c, data, decision_config, costs, seen)
            feedback.append(_feedback(c, inc_trial))
    verdicts = judge(inc_trial, [c.trial for c in result.candidates], costs, gate)
    for c, v in zip(result.candidates, verdicts, strict=True):
        c.verdict = v
    return result


def _try(
    c: Candidate, data: OutOfSample, decision_config: Any, costs: Costs, seen: dict[str, str]
) -> None:
    text = c.proposal.rules
    try:
        rules = parse(text)
    except RuleError as exc:
        more = f" (and {len(exc.problems) - 2} more)" if len(exc.problems) > 2 else ""
        c.problem = "not parsed: " + "; ".join(str(p) for p in exc.problems[:2]) + more
        return
    key = " ".join(text.split())
    if key in seen:
        c.problem = f"the same rules as {seen[key]}"
        return
    seen[key] = f"candidate {c.number}"
    program = compile_rules(rules, "candidate", c.number, text)
    c.trial = run_trial(data, program, decision_config, costs, f"candidate {c.number}")


def _feedback(c: Candidate, incumbent: Trial) -> dict[str, Any]:
    """What the next round is told of a candidate: search-part figures only."""
    out: dict[str, Any] = {"rules": c.proposal.rules[:1000], "parsed": c.parsed}
    if c.trial is None:
        out["problem"] = c.problem
    else:
        out["composite_minus_incumbent"] = round(c.trial.score - incumbent.score, 4)
        out["max_drawdown_pct"] = round(c.trial.max_drawdown_pct, 3)
    return out


def adopt(result: Evolution, rules_dir: Path) -> Path | None:
    """Write the winner, if any, as the incumbent's next version with its evidence:
    ``<name>-v<version>.yaml`` under ``rules_dir``, then the same as its
    ``incumbent.yaml`` (each written atomically). Returns the version's path."""
    w = result.winner
    if w is None:
        return None
    assert w.trial is not None and w.verdict is not None and w.verdict.interval
    inc, gate, ci = result.incumbent, result.gate, w.verdict.interval
    name = inc.name if inc else "evolved"
    version = (inc.version if inc else 0) + 1
    data = result.data
    evidence = {
        "decided_at": datetime.now(UTC).isoformat(),
        "candidates_tried": len(result.candidates),
        "candidates_backtested": sum(c.parsed for c in result.candidates),
        "rounds": len(result.rounds),
        "symbols": {
            s: {
                "from": str(f["timestamp"].iloc[0]),
                "holdout_from": str(f["timestamp"].iloc[data.split[s]]),
                "to": str(f["timestamp"].iloc[-1]),
            }
            for s, f in data.frames.items()
        },
        "holdout_fraction": data.holdout_fraction,
        "search": {
            "composite": round(w.trial.score, 6),
            "incumbent_composite": round(result.incumbent_trial.score, 6),
            "difference": round(ci.estimate, 6),
            "interval": [round(ci.low, 6), round(ci.high, 6)],
            "interval_level": ci.level,
            "bootstrap": {"reps": ci.reps, "block": ci.block},
            "max_drawdown_pct": round(w.trial.max_drawdown_pct, 4),
            "incumbent_max_drawdown_pct": round(result.incumbent_trial.max_drawdown_pct, 4),
        },
        "holdout": {
            "composite": round(w.trial.holdout_score, 6),
            "incumbent_composite": round(result.incumbent_trial.holdout_score, 6),
            "max_drawdown_pct": round(w.trial.holdout_max_drawdown_pct, 4),
            "incumbent_max_drawdown_pct": round(result.incumbent_trial.holdout_max_drawdown_pct, 4),
        },
        "gate": {
            "margin": gate.margin,
            "max_drawdown_worsening_pp": gate.max_drawdown_worsening,
            "ci_level": gate.ci_level,
        },
        "rationale": w.proposal.rationale,
    }
    new = RuleSet(
        name=name,
        version=version,
        parent=inc.label if inc else None,
        created_by=w.proposal.source,
        rules=w.proposal.rules,
        evidence=evidence,
    )
    path = save_rule_set(new, Path(rules_dir) / f"{name}-v{version}.yaml")
    save_rule_set(new, Path(rules_dir) / INCUMBENT_FILE)
    result.adopted, result.adopted_path = new, path
    return path


__all__ = ["INCUMBENT_FILE", "Candidate", "Evolution", "adopt", "evolve"]
