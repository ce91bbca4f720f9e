"""The rule language: what it accepts, and every construct it refuses, with a position."""

from __future__ import annotations

import numpy as np
import pytest

from augur.decision._program import KPI_INDEX, KPIS, run
from augur.rules import RuleError, compile_rules, evaluate, parse

EXAMPLE = (
    "if confidence > 0.75 and volatility < 0.02: size = kelly * 1.5 "
    "elif confidence < 0.4 or volatility > 0.05: size = 0"
)


def kpis(**values: float) -> np.ndarray:
    row = np.zeros(len(KPIS))
    row[KPI_INDEX["kelly"]] = 0.1
    for name, value in values.items():
        row[KPI_INDEX[name]] = value
    return row


def decide(text: str, **values: float) -> tuple[bool, float]:
    program = compile_rules(parse(text))
    ops, args = program.arrays()
    act, size = run(ops, args, program.stack, kpis(**values))
    return bool(act), float(size)


def test_the_issue_example_scales_skips_and_keeps() -> None:
    assert decide(EXAMPLE, confidence=0.8, volatility=0.01) == (True, pytest.approx(0.15))
    assert decide(EXAMPLE, confidence=0.3, volatility=0.01) == (True, 0.0)
    assert decide(EXAMPLE, confidence=0.6, volatility=0.06) == (True, 0.0)
    # no branch taken: the risk manager's size stands
    assert decide(EXAMPLE, confidence=0.6, volatility=0.03) == (True, pytest.approx(0.1))
    assert parse(EXAMPLE).kpis == ("confidence", "volatility", "kelly")


def test_size_is_clipped_to_twice_kelly_and_never_negative() -> None:
    assert decide("if confidence > 0: size = kelly * 10", confidence=1) == (
        True,
        pytest.approx(0.2),
    )
    assert decide("if confidence > 0: size = -kelly", confidence=1) == (True, 0.0)


def test_act_false_skips_and_later_chains_see_earlier_sizes() -> None:
    text = """
    # trending and volatile: half size; ranging: skip on Mondays
    if regime == trending_volatile: size = kelly / 2
    if regime <= ranging_volatile and day_of_week == 0: act = false
    if size < kelly: size = size + 0.01
    """
    assert decide(text, regime=3) == (True, pytest.approx(0.06))
    assert decide(text, regime=1, day_of_week=0) == (False, 0.0)
    assert decide(text, regime=1, day_of_week=2) == (True, pytest.approx(0.1))


def test_chained_comparisons_and_division_by_zero() -> None:
    assert decide("if 0.3 < trend_strength < 0.6: size = 0", trend_strength=0.5) == (True, 0.0)
    assert decide("if 0.3 < trend_strength < 0.6: size = 0", trend_strength=0.7)[1] > 0
    # a ratio over a zero KPI is 0, never an exception
    assert decide("if confidence > 0: size = kelly / drawdown", confidence=1) == (True, 0.0)


def test_else_branch_and_not() -> None:
    text = "if not (agreement >= 0.75): act = false else: size = kelly * 1.2"
    assert decide(text, agreement=0.5) == (False, 0.0)
    assert decide(text, agreement=0.8) == (True, pytest.approx(0.12))


@pytest.mark.parametrize(
    ("text", "construct", "column"),
    [
        ("if __import__('os').system('ls') > 0: size = 0", "a call", 4),
        ("if ().__class__.__bases__[0] > 0: size = 0", "attribute access", 6),
        ("if confidence.real > 0: size = 0", "attribute access", 14),
        ("if kpis[0] > 0: size = 0", "a subscript or list", 8),
        ("import os", "an import", 1),
        ("if [x for x in confidence] > 0: size = 0", "a subscript or list", 4),
        ("if (lambda: 1) > 0: size = 0", "a lambda", 5),
        ("if f'{confidence}' > 0: size = 0", "an f-string", 4),
        ("if 'a' > 0: size = 0", "a string", 4),
        ("if confidence ** 2 > 0: size = 0", "a power (write x * x)", 15),
        ("if (x := 1) > 0: size = 0", "an assignment expression", 7),
        ("if confidence > 0: equity = 1", "an assignment", 20),
        ("if confidence > 0: size = 1; os = 2", "an assignment", 30),
        ("if secret > 0: size = 0", "an unknown name", 4),
        ("if confidence: size = 0", "a type error", 4),
        ("if confidence > 0: act = 1", "a type error", 26),
        ("if confidence > 0 + (1 > 0): size = 0", "a type error", 17),
        ("if confidence > 1e7: size = 0", "a number out of range", 17),
        ("if confidence = 1: size = 0", "an assignment in a condition", 15),
        ("if confidence > 0 size = 0", "syntax", 19),
        ("if confidence > 0:", "incomplete rule", 18),
        ("", "empty rule", 1),
        ("if " + "(" * 40 + "1" + ")" * 40 + " > 0: size = 0", "nesting too deep", 28),
        ("if confidence > 0: size = " + "+".join(["1"] * 400), "rule too long", 1),
        ("x" * 10_000_000, "rule too long", 1),
    ],
)
def test_outside_the_language_is_refused_with_its_place(
    text: str, construct: str, column: int
) -> None:
    with pytest.raises(RuleError) as caught:
        parse(text)
    first = caught.value.problems[0]
    assert (first.construct, first.column) == (construct, column), str(caught.value)
    assert first.line == 1


def test_problems_name_their_line() -> None:
    with pytest.raises(RuleError) as caught:
        parse("if confidence > 0.5:\n    size = kelly\nelif volume > 3:\n    size = 0\n")
    (problem,) = caught.value.problems
    assert (problem.line, problem.column, problem.construct) == (3, 6, "an unknown name")
    assert "'volume' is not a KPI" in problem.message


def test_every_problem_is_reported_not_only_the_first() -> None:
    with pytest.raises(RuleError) as caught:
        parse("if a > 0 and b > 0: size = c")
    assert [p.message.split("'")[1] for p in caught.value.problems] == ["a", "b", "c"]


def test_nothing_in_a_refused_rule_runs(tmp_path) -> None:
    canary = tmp_path / "canary"
    attack = f"if __import__('pathlib').Path('{canary}').touch() is None: size = 0"
    with pytest.raises(RuleError):
        parse(attack)
    assert not canary.exists()


def test_the_array_evaluator_answers_as_the_machine_does() -> None:
    rules = parse(EXAMPLE)
    rng = np.random.default_rng(3)
    table = rng.uniform(0, 1, (200, len(KPIS)))
    table[:, KPI_INDEX["volatility"]] = rng.uniform(0, 0.08, 200)
    act, size = evaluate(rules, table)
    program = compile_rules(rules)
    ops, args = program.arrays()
    for i, row in enumerate(table):
        assert run(ops, args, program.stack, row) == (act[i], size[i])
