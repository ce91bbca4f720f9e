"""``augur rules check``: validate a decision-rule file without running anything in it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Decision rules in Augur's safe rule language (see `augur rules check --help`).",
    no_args_is_help=True,
)


@app.command("check")
def check(
    path: Annotated[
        Path,
        typer.Argument(
            help="A rule file: just the rule text, or a versioned rule-set YAML "
            "(name, version, parent, created_by, rules, evidence).",
            metavar="FILE",
        ),
    ],
) -> None:
    """Parse and check FILE. Exit 0 with a one-line summary when it is valid; exit 1 with
    every problem (construct, line, column) when not. Nothing in the file is executed.

    The language: `if COND: ASSIGN [elif COND: ASSIGN] [else: ASSIGN]`, chains in order;
    ASSIGN is `size = EXPR` (a number: the risk manager's size is `kelly`, the result is
    clipped to [0, 2 x kelly]) or `act = COND` (false skips the entry). COND uses
    comparisons, and/or/not; EXPR uses + - * / over KPIs, constants and numbers.
    """
    from augur.rules import RuleError, load_rule_set

    try:
        rule_set = load_rule_set(path)
    except RuleError as exc:
        typer.echo(f"{path}: {len(exc.problems)} problem(s):", err=True)
        for p in exc.problems:
            typer.echo(f"  {path}:{p.line}:{p.column}: {p.construct}: {p.message}", err=True)
        raise typer.Exit(1) from None
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    rules = rule_set.parsed()
    kpis = ", ".join(rules.kpis) or "none"
    typer.echo(
        f"{path}: valid rule set {rule_set.label} ({rule_set.created_by}): "
        f"{len(rules.chains)} chain(s), {rules.branches} branch(es); KPIs: {kpis}"
    )
