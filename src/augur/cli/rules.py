"""``augur rules check``: validate a decision-rule file without running anything in it;
``augur rules evolve``: propose rule sets and admit one only when it beats the incumbent
out of sample (the core is ``augur.rules``; this module parses options and prints)."""

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


@app.command("evolve")
def evolve(
    predictions: Annotated[
        Path | None,
        typer.Option(
            "--predictions",
            help="The walk-forward's out-of-sample predictions (default "
            "<AUGUR_HOME>/reports/oos_predictions.parquet, written by `augur backtest`).",
        ),
    ] = None,
    incumbent: Annotated[
        Path | None,
        typer.Option(
            "--incumbent",
            help="The rule set in force (default <AUGUR_HOME>/rules/incumbent.yaml; "
            "absent: no rules).",
        ),
    ] = None,
    local: Annotated[
        bool,
        typer.Option("--local", help="Use the local proposer even when a model is configured."),
    ] = False,
    candidates: Annotated[
        int | None,
        typer.Option("--candidates", min=1, max=50, help="Per round (AUGUR_RULES_CANDIDATES)."),
    ] = None,
    rounds: Annotated[
        int | None, typer.Option("--rounds", min=1, max=20, help="AUGUR_RULES_ROUNDS.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Judge, report, but write no new version.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="HTML report (default <AUGUR_HOME>/reports/rules_evolve.html)."),
    ] = None,
    commission_bps: Annotated[
        float, typer.Option("--commission-bps", min=0.0, help="Commission per unit traded, bps.")
    ] = 1.0,
    slippage_bps: Annotated[
        float, typer.Option("--slippage-bps", min=0.0, help="Slippage per unit traded, bps.")
    ] = 1.0,
    confidence_threshold: Annotated[
        float | None,
        typer.Option(
            "--confidence-threshold",
            min=0.0,
            max=1.0,
            help="Override the decision's confidence gate (as `augur backtest` takes it).",
        ),
    ] = None,
) -> None:
    """Propose new decision rules and keep them only if they earn it out of sample.

    Summarises the incumbent's recent out-of-sample performance (per regime, drawdowns,
    where gating helped or hurt), asks the configured model (AUGUR_LLM_*; without a key,
    the offline local proposer) for candidates, parses and replays each through the
    decision engine, and lets the gate judge them on the search part of the period. A
    winner is written as the next version under <AUGUR_HOME>/rules/ and becomes
    incumbent.yaml; its figure on the final hold-out is reported. Exit 0 whether or not
    a candidate won; 1 on a usage error.
    """
    from rich.console import Console

    from augur.cli._common import Column, fail, print_table
    from augur.config import get_settings
    from augur.decision import DecisionConfig
    from augur.features.store import offline_features_path
    from augur.rules import (
        INCUMBENT_FILE,
        Costs,
        GateConfig,
        RuleError,
        adopt,
        evolve,
        excerpt,
        load_out_of_sample,
        load_rule_set,
        proposer_from_settings,
        split_out_of_sample,
        write_evolution_report,
    )

    settings = get_settings()
    console = Console()
    inc_path = incumbent or settings.rules_dir / INCUMBENT_FILE
    try:
        current = load_rule_set(inc_path) if inc_path.exists() else None
    except (RuleError, ValueError) as exc:
        fail(f"the incumbent {inc_path} is not a valid rule set: {exc}")
    if incumbent is not None and current is None:
        fail(f"--incumbent {incumbent}: no such file")
    try:
        frame = load_out_of_sample(
            predictions or settings.reports_dir / "oos_predictions.parquet",
            offline_features_path(settings),
        )
        data = split_out_of_sample(frame, settings.rules_holdout_fraction)
    except ValueError as exc:
        fail(str(exc))
    decision = DecisionConfig()
    if confidence_threshold is not None:
        decision = DecisionConfig.from_dict(
            {**decision.to_dict(), "confidence_threshold": confidence_threshold}
        )
    proposer, note = proposer_from_settings(settings, local=local)
    if note:
        console.print(note, soft_wrap=True)
    costs = Costs(commission_bps, slippage_bps)
    gate = GateConfig(
        margin=settings.rules_margin,
        max_drawdown_worsening=settings.rules_max_drawdown_worsening,
        ci_level=settings.rules_ci_level,
        bootstrap_reps=settings.rules_bootstrap_reps,
        min_block=settings.label_horizon,
        min_trades=settings.rules_min_trades,
        seed=settings.seed,
    )
    with console.status("evolving the rules…") as status:
        result = evolve(
            data,
            current,
            proposer,
            decision_config=decision,
            costs=costs,
            gate=gate,
            candidates=candidates or settings.rules_candidates,
            rounds=rounds or settings.rules_rounds,
            progress=lambda m: status.update(m),
        )
    for i, r in enumerate(result.rounds, 1):
        console.print(
            f"round {i} ({r.source}): {len(r.proposals)} candidate(s), "
            f"{r.prompt_tokens:,} prompt + {r.completion_tokens:,} completion tokens, "
            f"cost {r.cost:.4f}, {r.seconds:.1f} s",
            soft_wrap=True,
        )
        for line in r.notes:
            console.print(f"  {line}", markup=False, soft_wrap=True)
    inc = result.incumbent_trial
    rows = [
        [
            "incumbent",
            result.incumbent_label,
            "yes",
            f"{inc.score:+.4f}",
            "—",
            "—",
            f"{inc.max_drawdown_pct:.3f}",
            "—",
        ]
    ]
    for c in result.candidates:
        t, v = c.trial, c.verdict
        ci = v.interval if v else None
        rows.append(
            [
                str(c.number),
                _escape(excerpt(" ⏎ ".join(c.proposal.rules.splitlines()), 80)),
                "yes" if c.parsed else "no",
                f"{t.score:+.4f}" if t else "—",
                f"{v.difference:+.4f}" if v else "—",
                f"[{ci.low:+.4f}, {ci.high:+.4f}]" if ci else "—",
                f"{t.max_drawdown_pct:.3f}" if t else "—",
                ("[green]accepted[/green]" if v and v.passed else "rejected")
                + f": {_escape(c.reason)}",
            ]
        )
    print_table(
        console,
        f"candidates vs {result.incumbent_label} (search part of the out-of-sample period)",
        [
            "#",
            "rules",
            "parsed",
            Column("composite", number=True),
            Column("difference", number=True),
            Column("interval", number=True),
            Column("max DD %", number=True),
            "verdict",
        ],
        rows,
    )
    if not dry_run:
        adopt(result, settings.rules_dir)
    console.print(f"[bold]{_escape(result.decision())}[/bold]", soft_wrap=True)
    if result.adopted_path is not None:
        console.print(
            f"written: {result.adopted_path} (and {settings.rules_dir / INCUMBENT_FILE}); "
            "serve it with AUGUR_RULE_SET_FILE",
            soft_wrap=True,
        )
    elif dry_run and result.winner is not None:
        console.print("--dry-run: nothing written")
    report = write_evolution_report(result, out or settings.reports_dir / "rules_evolve.html")
    console.print(f"report: {report}", soft_wrap=True)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
