"""``augur drift check``: is a served model version's drift flag up? An exit code for a
CronJob or a CI gate, and a table of the features that moved."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from augur.cli._common import Column, LogUrlOption, fail, print_table

if TYPE_CHECKING:
    from augur.config import Settings
    from augur.monitoring import DriftResult

#: ``augur drift check``'s exit codes.
NO_DRIFT, DRIFTED, NOTHING_TO_JUDGE = 0, 1, 2

app = typer.Typer(
    help="Feature drift of the served model versions: `augur drift check`.",
    no_args_is_help=True,
)

VersionOption = Annotated[
    str | None,
    typer.Option(
        "--version",
        help="The model version to judge (name:version, or name:latest). Default: the "
        "routing table's primary version, else the latest in the model store.",
        metavar="TAG",
    ),
]
RoutingTableOption = Annotated[
    Path | None,
    typer.Option(
        "--routing-table",
        help="The routing table the service follows (default: AUGUR_ROUTING_TABLE, else "
        "<AUGUR_HOME>/serving/routes.json, which `augur serve --canary/--shadow` writes).",
        dir_okay=False,
    ),
]
MaxAgeOption = Annotated[
    float | None,
    typer.Option(
        "--max-age-hours",
        min=0.0,
        help="Statistics older than this are nothing to judge (exit 2): the service "
        "stopped serving the version, or stopped writing. Default: any age.",
    ),
]


def routing_table_path(settings: Settings, given: Path | None = None) -> Path:
    """The routing table file: ``given``, else AUGUR_ROUTING_TABLE, else ``augur serve``'s."""
    if given is not None:
        return given
    if settings.routing_table is not None:
        return Path(settings.routing_table)
    return Path(settings.home).resolve() / "serving" / "routes.json"


def version_to_judge(settings: Settings, version: str | None, routes: Path) -> str:
    """The concrete ``name:version`` to judge (exit 2 when there is none).

    A concrete tag is taken as given, so a log can be judged where the model store is
    not at hand; ``name:latest`` or a bare name is resolved in the model store.
    """
    if version is None:
        if routes.is_file():
            from augur.serving import RoutingTableError, load_routing_table

            try:
                return load_routing_table(routes).versions[0].model_tag
            except RoutingTableError as exc:
                fail(str(exc), code=NOTHING_TO_JUDGE)
        version = f"{settings.model_name}:latest"
    name, _, tag = version.partition(":")
    if tag and tag != "latest":
        return version.lower()  # BentoML tags are lowercase
    from augur.models import ModelNotFoundError, resolve_version

    try:
        return resolve_version(name)[0]
    except ModelNotFoundError as exc:
        fail(str(exc), code=NOTHING_TO_JUDGE)


def latest_drift(
    settings: Settings, version: str, log_url: str, max_age_hours: float | None
) -> DriftResult:
    """The version's latest drift statistics stored in the prediction log; exit 2 with
    the reason when there is nothing to judge."""
    import sqlalchemy as sa

    from augur.monitoring import PredictionLog, default_log_url
    from augur.monitoring.drift import MIN_ROWS, stored_drift

    url = log_url or default_log_url(settings)
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        fail(
            f"--log-url {url!r} is not a SQLAlchemy URL (e.g. sqlite:///path/predictions.db)",
            code=NOTHING_TO_JUDGE,
        )
    db = parsed.database
    if parsed.get_backend_name() == "sqlite" and db and not Path(db).exists():
        fail(
            f"no prediction log at {db}: serve the version (`augur serve`) so the service "
            "records drift statistics, or pass --log-url",
            code=NOTHING_TO_JUDGE,
        )
    try:
        log = PredictionLog(url, start=False)
    except ValueError as exc:
        fail(str(exc), code=NOTHING_TO_JUDGE)
    try:
        frame = log.drift_frame()
    finally:
        log.close()
    result = stored_drift(frame, version)
    if result is None:
        known = sorted(set(frame["model_version"])) if not frame.empty else []
        fail(
            f"nothing to judge: the prediction log ({escape(url)}) holds no drift statistics "
            f"for {version}. The service stores them while it serves the version (every "
            "AUGUR_DRIFT_UPDATE_ROWS served rows or AUGUR_DRIFT_UPDATE_SECONDS); versions "
            "with statistics: "
            f"{', '.join(known) or 'none'}",
            code=NOTHING_TO_JUDGE,
        )
    if not result.enough_data:
        fail(
            f"nothing to judge: {version}'s latest drift statistics ({_when(result)}) rest on "
            f"{result.n_current} served rows; the drift rule needs {MIN_ROWS}",
            code=NOTHING_TO_JUDGE,
        )
    age_hours = (datetime.now(UTC) - result.ts).total_seconds() / 3600
    if max_age_hours is not None and age_hours > max_age_hours:
        fail(
            f"nothing to judge: {version}'s latest drift statistics are {age_hours:.1f} hours "
            f"old ({_when(result)}), more than --max-age-hours {max_age_hours:g}",
            code=NOTHING_TO_JUDGE,
        )
    return result


def _when(result: DriftResult) -> str:
    return f"{result.ts.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def _number(value: float, spec: str) -> str:
    return "—" if math.isnan(value) else format(value, spec)


def print_verdict(console: Console, result: DriftResult) -> None:
    """The verdict: the features that moved as a table, or one line when none did."""
    moved = sorted((f for f in result.features if f.drifted), key=lambda f: -f.psi)
    n = len(result.features)
    stats = f"statistics of {_when(result)}, {result.n_current} served rows"
    if not result.drifted:
        top = max(result.features, key=lambda f: -1.0 if math.isnan(f.psi) else f.psi)
        console.print(
            f"no drift: none of {result.model_version}'s {n} features moved ({stats}); "
            f"largest PSI {_number(top.psi, '.3f')} ({top.feature})"
        )
        return
    rows = [
        [
            escape(f.feature),
            _number(f.psi, ".3f"),
            _number(f.ks_pvalue, ".3g"),
            _number(f.ks_statistic, ".3f"),
            _number(f.mw_pvalue, ".3g"),
            str(f.n_current),
            str(f.n_reference),
        ]
        for f in moved
    ]
    headers = ("PSI", "KS p-value", "KS statistic", "MW p-value", "served rows", "reference rows")
    print_table(
        console,
        f"drift: {len(moved)} of {n} features of {result.model_version} moved ({stats})",
        ["feature", *(Column(h, number=True) for h in headers)],
        rows,
        caption=f"rule: {result.rule}",
    )


@app.command("check")
def check(
    version: VersionOption = None,
    log_url: LogUrlOption = "",
    routing_table: RoutingTableOption = None,
    max_age_hours: MaxAgeOption = None,
) -> None:
    """Exit 1 when a model version's drift flag is up, 0 when it is not, 2 when there is
    nothing to judge; list the features that moved.

    The verdict is the service's own. Each serving worker tests the features it served
    against the version's training reference (a feature moved when PSI > 0.2 or the KS
    p-value < 0.01 / number of features, once 100 rows were served) and stores the
    statistics in the prediction log; this reads the latest stored for the version. It
    does not recompute them: the log keeps a digest of each request's features, not the
    features, so only the service has seen what it served.

    Exit codes: 0 no drift; 1 drift flagged; 2 nothing to judge (no prediction log, no
    statistics for the version, fewer served rows than the rule needs, statistics older
    than --max-age-hours) or a bad option.
    """
    from augur.config import get_settings

    settings = get_settings()
    tag = version_to_judge(settings, version, routing_table_path(settings, routing_table))
    result = latest_drift(settings, tag, log_url, max_age_hours)
    print_verdict(Console(), result)
    raise typer.Exit(DRIFTED if result.drifted else NO_DRIFT)
