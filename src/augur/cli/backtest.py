"""``augur backtest``: the purged walk-forward evaluation with baselines and the HTML report."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from augur.cli._common import Column, print_table
from augur.cli._common import fail as _fail
from augur.cli._common import parse_params as _parse_params

#: Symbols of the default run: the hourly FX pair and the daily sets of the sample data.
DEFAULT_SYMBOLS = ("EURUSD", "SP500", "NASDAQ", "AAPL", "GOOG", "IBM", "MSFT")

#: Ensemble hyper-parameters of a walk-forward run. Lighter than `augur train`'s defaults
#: because the ensemble is fitted once per fold and symbol (35 fits by default) on 2 cores;
#: override any with --param KEY=VALUE.
BACKTEST_PARAMS: dict[str, Any] = {
    "rf_n_estimators": 80,
    "rf_max_depth": 6,
    "xgb_n_estimators": 80,
    "svm_max_samples": 1200,
    "quantile_n_estimators": 60,
    "refit": False,
    "n_jobs": 2,
}
QUICK_PARAMS: dict[str, Any] = {
    **BACKTEST_PARAMS,
    "rf_n_estimators": 40,
    "xgb_n_estimators": 40,
    "svm_max_samples": 600,
    "quantile_n_estimators": 40,
    "calibration_folds": 2,
}


def _num(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:.{digits}f}"


def _print_symbol(console: Console, s: Any, threshold: float) -> None:
    from augur.backtest.evaluation import STRATEGY_LABELS

    metrics = [
        ("accuracy", 3),
        ("total_return", 4),
        ("sharpe", 2),
        ("sortino", 2),
        ("max_drawdown_pct", 2),
        ("n_trades", 0),
        ("win_rate", 3),
        ("avg_profit_pct", 4),
        ("profit_factor", 2),
        ("costs_pct", 3),
        ("composite", 3),
    ]
    # one column per strategy, one row per metric: five number columns fit 80 characters
    strategies = s.table.to_dict("records")
    print_table(
        console,
        f"{s.symbol}: out-of-sample, {len(s.folds)} folds, {len(s.predictions):,} bars "
        f"(Sharpe annualised at {s.periods_per_year:,.0f} bars/yr)",
        ["metric", *(Column(STRATEGY_LABELS[row["strategy"]], number=True) for row in strategies)],
        [
            [
                name.replace("_pct", " %").replace("_", " "),
                *(_num(row[name], d) if d else _num(int(row[name])) for row in strategies),
            ]
            for name, d in metrics
        ],
    )
    gain = s.accuracy_gain
    fp = s.false_positive_entries
    change = fp["rate_change"]
    level = f"{gain.level:.0%} CI"
    console.print(
        f"  accuracy gain over the best single model: {gain.estimate:+.4f} "
        f"({level} {gain.low:+.4f} … {gain.high:+.4f}, block bootstrap, block {gain.block} bars)"
    )
    console.print(
        f"  false-positive entries: {fp['ungated']} ungated → {fp['gated']} gated "
        f"(reduction {fp['reduction'].estimate:+.0f}, {level} {fp['reduction'].low:+.0f} … "
        f"{fp['reduction'].high:+.0f}); false-positive rate {_num(fp['rate_ungated'])} → "
        f"{_num(fp['rate_gated'])}"
        + (
            f" (change {change.estimate:+.3f}, {level} {change.low:+.3f} … {change.high:+.3f})"
            if math.isfinite(change.estimate)
            else " (no gated entries: the rate is undefined)"
        )
    )
    if not s.regimes.empty:
        print_table(
            console,
            f"{s.symbol}: by market regime (the regime feature)",
            [
                "regime",
                *(
                    Column(c, number=True)
                    for c in ("bars", "hit rate", "trades", "trade hit", "return %", "hold %")
                ),
            ],
            [
                [
                    r["regime"],
                    _num(int(r["bars"])),
                    _num(r["hit_rate"], 3),
                    _num(int(r["trades"])),
                    _num(r["trade_hit_rate"], 3),
                    _num(100 * r["return_ensemble"], 4),
                    _num(100 * r["return_buy_and_hold"], 2),
                ]
                for r in s.regimes.to_dict("records")
            ],
        )
    from augur.backtest.report import _verdict

    console.print(f"  [bold]{_verdict(s.table)}[/bold]")
    if fp["entries_gated"] == 0:
        top = float(s.predictions["confidence"].max())
        console.print(
            f"  [yellow]the confidence gate never opened: the highest out-of-sample confidence "
            f"was {top:.3f} (threshold {threshold:.2f}); lower it with --confidence-threshold "
            "or tune it (`augur tune`).[/yellow]"
        )


def backtest(
    symbols: Annotated[
        list[str] | None,
        typer.Option(
            "--symbols",
            "-s",
            help="Symbols to evaluate (repeatable or comma-separated); "
            "default EURUSD (hourly) and the daily sample sets present in the dataset.",
        ),
    ] = None,
    folds: Annotated[
        int, typer.Option("--folds", min=1, max=20, help="Walk-forward test folds.")
    ] = 5,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help="EURUSD only (unless --symbols), 3 folds, lighter models: about a minute.",
        ),
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="HTML report path (default <AUGUR_HOME>/reports/backtest.html)."
        ),
    ] = None,
    window: Annotated[
        str, typer.Option("--window", help="Train window: 'expanding' or 'rolling'.")
    ] = "expanding",
    train_bars: Annotated[
        int | None, typer.Option("--train-bars", min=50, help="Rolling window length in bars.")
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
            help="Override the decision's confidence gate.",
        ),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            help="Ensemble hyper-parameter KEY=VALUE (augur.models.EnsembleParams), repeatable.",
        ),
    ] = None,
    reps: Annotated[
        int, typer.Option("--bootstrap-reps", min=100, help="Bootstrap replicates for the CIs.")
    ] = 1000,
) -> None:
    """Purged walk-forward evaluation: fit per fold, decide bar by bar, compare with baselines.

    Prints the table (ensemble with and without the confidence gate, best single model,
    always flat, buy and hold), the accuracy gain and the gate's false-positive reduction
    with block-bootstrap CIs; writes the HTML report, oos_predictions.parquet and
    oos_outcomes.parquet (the Monte Carlo's input) to <AUGUR_HOME>/reports.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from augur.backtest.evaluation import (
        EvaluationConfig,
        EvaluationResult,
        evaluate_symbol,
        save_outputs,
    )
    from augur.backtest.report import write_report
    from augur.config import get_settings
    from augur.data import list_symbols, read_bars
    from augur.decision import DecisionConfig
    from augur.models import EnsembleParams

    settings = get_settings()
    console = Console()
    available = list_symbols()
    if not available:
        _fail("the bars dataset is empty: run `augur data sample` (or `augur data import`) first")
    if symbols:
        wanted = [s.strip() for item in symbols for s in item.split(",") if s.strip()]
    else:
        wanted = ["EURUSD"] if quick else [s for s in DEFAULT_SYMBOLS if s in available]
        wanted = wanted or sorted(available)
    missing = [s for s in wanted if s not in available]
    if missing:
        _fail(f"no bars for {missing}; available: {sorted(available)} (see `augur data sample`)")
    if window not in ("expanding", "rolling"):
        _fail(f"--window {window!r}: use 'expanding' or 'rolling'")
    if window == "rolling" and train_bars is None:
        _fail("--window rolling needs --train-bars N")
    n_folds = 3 if quick and folds == 5 else folds
    try:
        params = EnsembleParams.from_dict(
            {
                **(QUICK_PARAMS if quick else BACKTEST_PARAMS),
                "seed": settings.seed,
                **_parse_params(param or []),
            }
        )
        decision = DecisionConfig()
        if confidence_threshold is not None:
            decision = DecisionConfig.from_dict(
                {**decision.to_dict(), "confidence_threshold": confidence_threshold}
            )
        config = EvaluationConfig(
            n_folds=n_folds,
            window=window,
            train_bars=train_bars,
            horizon=settings.label_horizon,
            dead_zone=settings.label_dead_zone,
            commission_bps=commission_bps,
            slippage_bps=slippage_bps,
            bootstrap_reps=reps,
            seed=settings.seed,
        )
        config.walk_forward()
    except ValueError as exc:
        _fail(str(exc))
    bars = read_bars(wanted)
    result = EvaluationResult(config=config)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("walk-forward", total=len(wanted) * n_folds)
        for sym in wanted:

            def tick(msg: str, _sym: str = sym) -> None:
                progress.update(task, description=f"{_sym}: {msg}")
                if msg.startswith("fold ") and not msg.startswith("fold 1/"):
                    progress.advance(task)

            try:
                result.symbols[sym] = evaluate_symbol(
                    bars, sym, params=params, decision_config=decision, config=config, progress=tick
                )
            except ValueError as exc:
                _fail(f"{sym}: {exc}")
            progress.advance(task)
    for s in result.symbols.values():
        _print_symbol(console, s, decision.confidence_threshold)
    reports = settings.reports_dir
    report_path = out or reports / "backtest.html"
    write_report(result, report_path)
    paths = save_outputs(result, reports)
    console.print(f"report: {report_path}")
    console.print(f"out-of-sample predictions: {paths['predictions']}")
    console.print(f"out-of-sample outcomes (for `augur simulate`): {paths['outcomes']}")


def register(app: typer.Typer) -> None:
    """Add ``augur backtest`` to the top-level CLI."""
    app.command("backtest")(backtest)
