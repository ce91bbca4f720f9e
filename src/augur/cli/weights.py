"""``augur weights show | freeze | unfreeze``: the member weights outcomes move in the
service, as every worker and replica shares them (the prediction log's database).

A frozen version's weights stay where they are whatever outcomes arrive; the service's
workers take a change within ``AUGUR_ROUTING_RELOAD_SECONDS``. Unfreezing lets outcomes
move them again from there.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from augur.cli._common import Column, LogUrlOption, fail, print_table

app = typer.Typer(
    help="Ensemble member weights that outcomes move in the service: show, freeze, unfreeze.",
    no_args_is_help=True,
)

TagArgument = Annotated[
    str, typer.Argument(help="The model version (name:version).", metavar="TAG")
]


def _open(log_url: str) -> Any:
    from augur.config import get_settings
    from augur.monitoring import PredictionLog, default_log_url

    try:
        return PredictionLog(log_url or default_log_url(get_settings()), start=False)
    except ValueError as exc:
        fail(str(exc))


def _averages(row: Any) -> str:
    """The members' log-score averages (the weights are their softmax over 1 - decay,
    with the version's floor: GET /models shows them)."""
    return ", ".join(f"{n}={v:.3f}" for n, v in zip(row.names, row.perf, strict=True))


@app.command("show")
def show(log_url: LogUrlOption = "") -> None:
    """Each version's shared weights state: outcomes folded in, frozen, log-score averages."""
    log = _open(log_url)
    try:
        rows = log.weights()
    finally:
        log.close()
    if not rows:
        typer.echo("no version's weights have been moved or frozen yet")
        return
    from rich.console import Console

    print_table(
        Console(),
        "shared member weights",
        ["version", Column("outcomes", number=True), "frozen", "log-score averages"],
        [
            [tag, str(row.n_updates), "yes" if row.frozen else "no", _averages(row)]
            for tag, row in sorted(rows.items())
        ],
    )


def _set(tag: str, frozen: bool, log_url: str) -> None:
    log = _open(log_url)
    try:
        try:
            row = log.set_weights_frozen(tag, frozen)
        except LookupError:  # no outcome yet: the row starts from the trained weights
            from augur.models import ModelNotFoundError, load_version

            try:
                base = load_version(tag).ensemble.dynamic_weights
            except (ModelNotFoundError, ValueError) as exc:
                fail(f"{tag}: {exc}")
            row = log.set_weights_frozen(tag, frozen, base)
    finally:
        log.close()
    state = "frozen" if row.frozen else "following outcomes"
    typer.echo(f"{tag}: member weights {state} ({row.n_updates} outcomes folded in)")


@app.command("freeze")
def freeze(tag: TagArgument, log_url: LogUrlOption = "") -> None:
    """Outcomes stop moving the version's member weights (every worker, every replica)."""
    _set(tag, True, log_url)


@app.command("unfreeze")
def unfreeze(tag: TagArgument, log_url: LogUrlOption = "") -> None:
    """Outcomes move the version's member weights again."""
    _set(tag, False, log_url)
