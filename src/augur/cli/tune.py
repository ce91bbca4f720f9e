"""``augur tune``: run or resume a tuning study (Ray Tune + Optuna), optionally promote.

Thin: validates the study file, runs it with a progress bar read from the study's
``progress.json`` (trials done / total, best so far, ETA), prints where the results are.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from augur.cli._common import fail as _fail

_err = Console(stderr=True)


def _eta(progress: dict[str, Any]) -> str:
    done, total = progress.get("trials_done", 0), progress.get("trials_total", 0)
    if not done or done >= total:
        return "—"
    elapsed = time.time() - float(progress.get("started", time.time()))
    seconds = elapsed / done * (total - done)
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def _watch(path: Path, total: int, stop: threading.Event, console: Console) -> None:
    """Poll progress.json and drive a rich progress bar until ``stop`` is set."""
    columns = (
        TextColumn("[bold]trials"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("best {task.fields[best]}"),
        TextColumn("ETA {task.fields[eta]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("tune", total=total, best="—", eta="—")
        while not stop.is_set():
            try:
                state = json.loads(path.read_text())
            except (OSError, ValueError):
                state = None
            if state:
                best = state.get("best")
                bar.update(
                    task,
                    completed=state.get("trials_done", 0),
                    best="—" if best is None else f"{best:.4f}",
                    eta=_eta(state),
                )
            stop.wait(0.5)


def tune(
    config: Annotated[
        Path,
        typer.Option(
            "--config",
            "-c",
            help="Study file (YAML): search space, trials, objective, data, storage.",
        ),
    ],
    promote: Annotated[
        bool,
        typer.Option(
            "--promote",
            help="After the study, train the winner on the full range and save it as a new "
            "model version with lineage (study, trial, params, metrics, data range).",
        ),
    ] = False,
    promote_only: Annotated[
        bool,
        typer.Option("--promote-only", help="Only promote the finished study's best trial."),
    ] = False,
    smoke_test: Annotated[
        bool, typer.Option("--smoke-test", help="A few trials on two folds with tiny models.")
    ] = False,
) -> None:
    """Run (or resume) a tuning study with Ray Tune driving Optuna.

    Running the same command again resumes the study from its storage: finished trials
    are kept, and the study ends with exactly the configured number of trials. Results
    (best.json, trials.parquet/csv, importance, HTML dashboards) go to the study's
    results folder.
    """
    from augur.tuning import StudyError, load_study, run_and_report, smoke_variant
    from augur.tuning._runner import results_dir

    try:
        study = load_study(config)
    except StudyError as exc:
        _fail(str(exc), code=2)
    if smoke_test:
        study = smoke_variant(study)
    out = results_dir(study)
    console = Console()
    if promote_only:
        best = out / "best.json"
        if not best.exists():
            _fail(f"no best.json in {out}: run `augur tune --config {config}` first")
        from augur.tuning import promote as do_promote

        promoted = do_promote(study, best)
        console.print(
            f"promoted trial {promoted['lineage']['trial_id']} as [bold]{promoted['tag']}[/bold]"
        )
        return
    out.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    watcher = threading.Thread(
        target=_watch, args=(out / "progress.json", study.trials, stop, console), daemon=True
    )
    watcher.start()
    try:
        summary = run_and_report(study, promote=promote)
    finally:
        stop.set()
        watcher.join(timeout=5)
    console.print(
        f"study [bold]{study.name}[/bold]: {summary['trials_complete']} complete, "
        f"{summary['trials_pruned']} pruned, {summary['trials_failed']} failed "
        f"in {summary['seconds']:.0f}s{' (resumed)' if summary['resumed'] else ''}"
    )
    if summary["best"]:
        console.print(
            f"best trial {summary['best']['trial_id']}: score {summary['best']['score']:.4f}"
        )
    console.print(f"results: {summary['results_dir']}")
    if summary.get("promoted"):
        console.print(f"promoted as [bold]{summary['promoted']['tag']}[/bold]")
        _warn_if_not_servable(console, summary["promoted"].get("lineage", {}))
    if summary["trials_complete"] == 0 and summary["trials_pruned"] == 0:
        _fail(f"every trial failed; first error: {summary['first_error']}", code=3)


def _warn_if_not_servable(console: Console, lineage: dict[str, object]) -> None:
    """A winner with other feature windows/lags cannot meet the online store's features."""
    from augur.features import FeatureSpec

    served = FeatureSpec.from_settings()
    trained = lineage.get("feature_spec_hash")
    if trained and trained != served.hash:
        console.print(
            f"[yellow]the winner was trained on FeatureSpec {trained} "
            f"(windows {lineage.get('feature_windows')}, lags {lineage.get('feature_lags')}), "
            f"not the one this configuration serves ({served.hash}, windows "
            f"{list(served.windows)}): serve it with AUGUR_WINDOWS set to its windows after "
            "`augur features build/apply/materialize`, or fix the windows in the study.[/yellow]"
        )


def register(app: typer.Typer) -> None:
    """Add ``augur tune`` to the CLI."""
    app.command("tune")(tune)
