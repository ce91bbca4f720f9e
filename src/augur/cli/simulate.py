"""``augur simulate``: Monte Carlo of the decision rules over the out-of-sample outcomes."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from augur.cli._common import Column, print_table
from augur.cli._common import fail as _fail


def _fmt(metric: str, v: float) -> str:
    if math.isnan(v):
        return "—"
    if metric == "sharpe":
        return f"{v:.2f}"
    return f"{v:.2%}"


def simulate_cmd(
    n: Annotated[
        int, typer.Option("--n", "-n", min=1, help="Number of simulated paths (e.g. 1000000).")
    ] = 1_000_000,
    seed: Annotated[
        int | None,
        typer.Option("--seed", help="Random seed (default AUGUR_SEED); same seed, same result."),
    ] = None,
    block: Annotated[
        int,
        typer.Option(
            "--block", min=1, help="Block length of the bootstrap (consecutive outcomes)."
        ),
    ] = 10,
    steps: Annotated[
        int, typer.Option("--steps", min=2, help="Decision steps per path (one 'year').")
    ] = 252,
    chunk_size: Annotated[
        int, typer.Option("--chunk-size", min=1, help="Paths per chunk (bounds the memory).")
    ] = 1_000_000,
    outcomes_path: Annotated[
        Path | None,
        typer.Option(
            "--outcomes",
            help="Parquet of out-of-sample outcomes (default <AUGUR_HOME>/reports/oos_outcomes.parquet, "
            "written by `augur backtest`).",
        ),
    ] = None,
    config_path: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="JSON file of DecisionConfig fields (e.g. a tuning winner); default the defaults.",
        ),
    ] = None,
    commission_bps: Annotated[
        float, typer.Option("--commission-bps", min=0.0, help="Commission per side, in bp.")
    ] = 1.0,
    slippage_bps: Annotated[
        float, typer.Option("--slippage-bps", min=0.0, help="Slippage per side, in bp.")
    ] = 1.0,
    ruin_equity: Annotated[
        float,
        typer.Option(
            "--ruin-equity",
            min=0.0,
            max=1.0,
            help="Equity (fraction of the start) at or below which a path counts as ruined.",
        ),
    ] = 0.5,
    fixed_weights: Annotated[
        bool,
        typer.Option(
            "--fixed-weights",
            help="Keep each outcome's ensemble probability as the backtest's walk made it "
            "instead of re-walking the member weights along each path (for comparison).",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Simulate N paths of the decision rules over the out-of-sample outcomes.

    Each path is STEPS decision steps drawn by block bootstrap from the outcomes that
    `augur backtest` wrote, sized and risk-managed exactly as the service does (confidence
    gate, fractional Kelly, drawdown scaling and stop, cool-down). Prints quantiles of
    terminal return, maximum drawdown, Sharpe and win rate, and the probability of ruin
    (drawdown limit reached or equity at/below --ruin-equity).

    The ensemble's member weights are re-walked along each path with the rule serving
    applies to outcomes (each step's direction, probability and confidence from the
    weights after the path's earlier outcomes); outcomes written before `augur backtest`
    stored the members' probabilities, or --fixed-weights, keep the walk's own.
    """
    from augur.backtest.simulation import OutOfSampleOutcomes, rewalks, simulate
    from augur.config import get_settings
    from augur.decision import DecisionConfig

    settings = get_settings()
    path = outcomes_path or settings.reports_dir / OutOfSampleOutcomes.FILE_NAME
    try:
        outcomes = OutOfSampleOutcomes.load(path)
    except FileNotFoundError as exc:
        _fail(str(exc))
    except ValueError as exc:
        _fail(f"{path}: {exc}")
    config = DecisionConfig()
    if config_path is not None:
        try:
            config = DecisionConfig.from_dict(json.loads(config_path.read_text()))
        except (OSError, json.JSONDecodeError, ValueError, TypeError) as exc:
            _fail(f"--config {config_path}: {exc}")
    seed = settings.seed if seed is None else seed

    console = Console()
    if outcomes.members is None and not fixed_weights and not as_json:
        # (under --json, "rewalked_weights": false says it)
        console.print(
            f"{path} carries no member probabilities (written before `augur backtest` "
            "stored them): the member weights stay as the backtest had them "
            "(fixed-weights mode); re-run `augur backtest` to re-walk them"
        )
    mode = (
        "member weights re-walked along each path"
        if rewalks(outcomes, fixed_weights)
        else "fixed member weights"
    )
    with Progress(
        TextColumn("[bold]simulating"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=as_json,
    ) as progress:
        task = progress.add_task("paths", total=n)
        try:
            result = simulate(
                outcomes,
                n,
                config,
                seed=seed,
                chunk_size=min(chunk_size, n),
                progress_callback=lambda done, _total: progress.update(task, completed=done),
                n_steps=steps,
                block_length=block,
                commission_bps=commission_bps,
                slippage_bps=slippage_bps,
                ruin_equity=ruin_equity,
                fixed_weights=fixed_weights,
            )
        except ValueError as exc:  # e.g. outcomes whose rows re-walk different rules
            _fail(f"{path}: {exc}")
    if as_json:
        console.print_json(json.dumps(result.to_dict()))
        return
    metrics = list(result.quantiles)
    rows = [["mean", *(_fmt(m, result.mean[m]) for m in metrics)]]
    for q in result.quantiles[metrics[0]]:
        rows.append([f"q{q * 100:g}", *(_fmt(m, result.quantiles[m][q]) for m in metrics)])
    print_table(
        console,
        f"Monte Carlo: {n:,} paths x {steps} steps, block {block}, seed {seed} "
        f"({len(outcomes):,} out-of-sample outcomes; {mode})",
        ["statistic", *(Column(m.replace("_", " "), number=True) for m in metrics)],
        rows,
    )
    console.print(
        f"probability of ruin: [bold]{result.probability_of_ruin:.4%}[/bold] "
        f"(drawdown >= {config.max_drawdown:.0%} or equity <= {ruin_equity:.0%} of start)"
    )
    if result.paths_without_trades:
        console.print(f"paths without a trade: {result.paths_without_trades:,}")
    console.print(
        f"{result.paths_per_second:,.0f} paths/s ({result.elapsed_seconds:.1f} s); quantiles "
        "are accurate to one histogram bin"
    )


def register(app: typer.Typer) -> None:
    """Add the top-level ``simulate`` command to the ``augur`` app."""
    app.command("simulate")(simulate_cmd)
