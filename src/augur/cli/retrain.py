"""``augur retrain``: train a new version on the recent bars and make it the shadow of the
version it would replace: when that version drifted (``--if-drifted``), or always. What a
scheduled job runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from augur.cli._common import HoldoutOption, fail, parse_params, train_with_progress
from augur.cli.drift import (
    LogUrlOption,
    MaxAgeOption,
    RoutingTableOption,
    VersionOption,
    latest_drift,
    print_verdict,
    routing_table_path,
    version_to_judge,
)

if TYPE_CHECKING:
    from augur.serving import RoutingTable


def retrain(
    if_drifted: Annotated[
        bool,
        typer.Option(
            "--if-drifted",
            help="Train only when the version's drift flag is up (as `augur drift check` "
            "reads it); otherwise say so and exit 0.",
        ),
    ] = False,
    version: VersionOption = None,
    shadow_percent: Annotated[
        float,
        typer.Option(
            "--shadow-percent",
            min=0.0,
            max=100.0,
            help="Share of requests the new version mirrors.",
        ),
    ] = 100.0,
    last_bars: Annotated[
        int | None,
        typer.Option(
            "--last-bars",
            min=1,
            help="Train on each symbol's last N bars (default: every bar in the bar store).",
        ),
    ] = None,
    holdout: HoldoutOption = 0.2,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            help="Hyper-parameter KEY=VALUE overriding the drifted version's (a field of "
            "augur.models.EnsembleParams), repeatable.",
        ),
    ] = None,
    log_url: LogUrlOption = "",
    routing_table: RoutingTableOption = None,
    max_age_hours: MaxAgeOption = None,
) -> None:
    """Train a new version on the bar store's bars and route it as the shadow of a served
    version (default: the routing table's primary, else the latest in the model store).

    The new version is trained as `augur train` trains, on the same symbols and with the
    same hyper-parameters as the version it shadows (--param overrides them), and saved
    under the same name, so it becomes name:latest (a service started without a routing
    table would serve it). The routing table keeps its versions and weights; its shadow
    becomes the new version, mirroring --shadow-percent of the requests. A service
    started with that table (`augur serve --routing-table`, AUGUR_ROUTING_TABLE) loads
    the new version without a restart. Compare the two with `augur report serving`
    before giving the new one traffic.

    With --if-drifted the drift verdict is `augur drift check`'s (the statistics the
    service stored in the prediction log): no drift prints so and exits 0 without
    training; nothing to judge exits 2. Other exit codes: 1 when training fails, 2 for a
    bad option or a version that is not served or not in the model store.
    """
    from augur.config import get_settings

    settings = get_settings()
    console = Console()
    routes = routing_table_path(settings, routing_table)
    tag = version_to_judge(settings, version, routes)
    table = _current_table(routes, tag)
    if if_drifted:
        result = latest_drift(settings, tag, log_url, max_age_hours)
        print_verdict(console, result)
        if not result.drifted:
            console.print(f"nothing drifted: {tag} keeps serving, no version trained")
            raise typer.Exit(0)
    new_tag = _train_like(tag, parse_params(param or []), last_bars, holdout, settings, console)
    table = _with_shadow(table, new_tag, shadow_percent)

    from augur.serving import write_routing_table

    write_routing_table(table, routes)
    serving = ", ".join(f"{v.name}={v.model_tag} ({v.weight:g}%)" for v in table.versions)
    console.print(
        f"routing table {routes}: {serving} serve; shadow {new_tag} mirrors {shadow_percent:g}%"
    )


def _current_table(routes: Path, tag: str) -> RoutingTable:
    """The routing table in force (one version, ``tag``, when there is no file); exit 2
    when it does not serve ``tag``: a shadow mirrors the versions that serve."""
    from augur.serving import RoutingTable, RoutingTableError, load_routing_table

    if not routes.is_file():
        return RoutingTable.single(tag)
    try:
        table = load_routing_table(routes)
    except RoutingTableError as exc:
        fail(str(exc), code=2)
    served = [v.model_tag for v in table.versions]
    if tag not in served:
        fail(
            f"{tag} is not served by the routing table at {routes} (it serves "
            f"{', '.join(served)}): pass --version one of them",
            code=2,
        )
    return table


def _with_shadow(table: RoutingTable, tag: str, percent: float) -> RoutingTable:
    """``table`` with ``tag`` as its shadow (the shadow's name kept, or ``shadow``)."""
    from augur.serving import RoutingTable

    names = {v.name for v in table.versions}
    name = table.shadow.name if table.shadow is not None else "shadow"
    if name in names:  # a version already goes by that name
        name = "retrained"
    data: dict[str, Any] = table.model_dump(exclude_none=True)
    data["shadow"] = {"name": name, "model_tag": tag, "percent": percent}
    return RoutingTable.model_validate(data)


def _train_like(
    tag: str,
    overrides: dict[str, Any],
    last_bars: int | None,
    holdout: float,
    settings: Any,
    console: Console,
) -> str:
    """Train and save a version with ``tag``'s symbols and hyper-parameters (``overrides``
    on top) on the bar store's latest bars; returns the new tag."""
    from augur.data import read_bars
    from augur.models import (
        EnsembleParams,
        FeatureSpecMismatchError,
        ModelNotFoundError,
        load_version,
        save_version,
    )

    try:
        version = load_version(tag)
    except (ModelNotFoundError, FeatureSpecMismatchError, ValueError) as exc:
        fail(f"cannot read the recipe of {tag}: {exc}", code=2)
    drifted = version.ensemble
    try:
        params = EnsembleParams.from_dict({**drifted.params.to_dict(), **overrides})
    except (TypeError, ValueError) as exc:
        fail(str(exc), code=2)
    symbols = [str(s) for s in drifted.context.get("symbols", [])] or None
    try:
        bars = read_bars(symbols)
    except KeyError as exc:
        fail(str(exc.args[0]) if exc.args else str(exc))
    if last_bars is not None:
        bars = bars.groupby("symbol", sort=False).tail(last_bars).reset_index(drop=True)
    if bars.empty:
        fail("the bar store is empty: import bars with `augur data import FILE --symbol S`")
    try:
        result = train_with_progress(console, bars, params, settings, holdout)
        with console.status("saving to the model store…"):
            # The successor keeps the thresholds the drifted version decides with.
            new_tag = save_version(
                result.ensemble,
                version.decision,
                tag.split(":", 1)[0],
                labels={"retrained_from": tag},
                reference=result.reference,
            ).tag
    except ValueError as exc:
        fail(str(exc))
    ho = result.holdout.get("ensemble") or {}
    figures = (
        f"; held-out accuracy {ho['accuracy']:.3f} "
        f"(majority class {result.holdout.get('majority_class_accuracy', float('nan')):.3f})"
        if "accuracy" in ho
        else ""
    )
    ctx = result.ensemble.context
    console.print(
        f"saved [bold]{new_tag}[/bold]: {result.n_train} training rows of "
        f"{', '.join(ctx.get('symbols', []))} up to {ctx.get('data_end', '?')}{figures}"
    )
    return str(new_tag)


def register(app: typer.Typer) -> None:
    """Add the top-level ``retrain`` command."""
    app.command("retrain")(retrain)


__all__ = ["register", "retrain"]
