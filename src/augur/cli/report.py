"""``augur report serving`` — the serving report from the prediction log."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from augur.cli._common import Column, print_table

if TYPE_CHECKING:
    from augur.monitoring.analysis import ServingSummary

report_app = typer.Typer(
    name="report",
    help="Reports on what Augur did: `augur report serving`.",
    no_args_is_help=True,
)


@report_app.command("serving")
def serving(
    log_url: Annotated[
        str,
        typer.Option(
            "--log-url",
            help="SQLAlchemy URL of the prediction log (default: AUGUR_PREDICTION_LOG_URL, "
            "else SQLite at <AUGUR_HOME>/serving/predictions.db).",
        ),
    ] = "",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Where to write the HTML (default: <AUGUR_HOME>/reports/serving.html)."
        ),
    ] = None,
    since: Annotated[
        datetime | None,
        typer.Option(
            "--since", help="Only predictions at or after this UTC time (e.g. 2026-01-31T00:00)."
        ),
    ] = None,
    confidence: Annotated[
        float,
        typer.Option("--confidence", min=0.5, max=0.999, help="Confidence level of the intervals."),
    ] = 0.95,
) -> None:
    """Per-version decisions, shadow agreement, realised performance with the A/B verdict,
    latency percentiles and feature drift, as one HTML page (Plotly)."""
    import sqlalchemy as sa

    from augur.config import get_settings
    from augur.monitoring import PredictionLog, default_log_url, summarize, write_serving_report

    console = Console()
    settings = get_settings()
    url = log_url or default_log_url(settings)
    target = out or settings.reports_dir / "serving.html"
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        console.print(
            f"[red]--log-url {escape(repr(url))} is not a SQLAlchemy URL[/red] "
            "(e.g. sqlite:///path/predictions.db)"
        )
        raise typer.Exit(2) from None
    db = parsed.database
    sqlite_file = parsed.get_backend_name() == "sqlite" and db not in (None, "", ":memory:")
    if sqlite_file and not Path(str(db)).exists():
        console.print(
            f"[yellow]No prediction log at {db}[/yellow]: start the service "
            "(`augur serve`) and send decisions first, or pass --log-url."
        )
        raise typer.Exit(1)
    shown = escape(parsed.render_as_string(hide_password=True))
    try:
        log = PredictionLog(url, start=False)
        try:
            frame = log.frame(since=since)
            drift = log.drift_frame()
        finally:
            log.close()
    except (sa.exc.SQLAlchemyError, ValueError) as exc:
        first_line = escape(str(exc).splitlines()[0])
        console.print(f"[red]Cannot read the prediction log {shown}:[/red] {first_line}")
        raise typer.Exit(1) from None
    summary = summarize(frame, drift=drift, confidence=confidence)
    path = write_serving_report(summary, target)
    if summary.empty:
        console.print(
            "[yellow]The prediction log is empty[/yellow] — no decisions logged yet "
            "(POST /decide to the service first). Wrote an empty report to "
            f"{path}"
        )
        return
    _print_summary(console, summary)
    console.print(f"Report: [bold]{path}[/bold]")


def _print_summary(console: Console, summary: ServingSummary) -> None:
    console.print(
        f"{summary.n_requests} requests, {summary.n_predictions} predictions, "
        f"{summary.n_outcomes} outcomes; baseline {summary.baseline or '—'}"
    )
    lat = summary.latency.groupby("model_version")
    rows = []
    for row in summary.performance.itertuples(index=False):
        g = lat.get_group(row.model_version)
        rows.append(
            [
                row.model_version,
                row.roles,
                str(row.n_predictions),
                str(row.n_calls),
                "—" if row.n_calls == 0 else f"{row.hit_rate:.1%}",
                "—" if row.n_calls == 0 else f"{row.mean_return * 1e4:+.1f} bp",
                f"{g['p50_ms'].max():.2f}",
                f"{g['p99_ms'].max():.2f}",
            ]
        )
    numbers = ("predictions", "calls w/ outcome", "hit rate", "mean ret", "p50 ms", "p99 ms")
    print_table(
        console,
        "Per version",
        ["version", "roles", *(Column(h, number=True) for h in numbers)],
        rows,
    )
    for row in summary.agreement.itertuples(index=False):
        console.print(
            f"shadow {row.shadow_version}: action agreement {row.action_agreement:.1%} "
            f"over {row.n_pairs} requests"
        )
    for c in summary.comparisons:
        style = {"better": "green", "worse": "red"}.get(c.verdict, "white")
        console.print(f"[{style}]A/B[/{style}] {c.sentence()}")
    if not summary.drift.empty:
        flagged = sorted(
            summary.drift.loc[summary.drift["model_drifted"].astype(bool), "model_version"].unique()
        )
        console.print(
            "drift: "
            + (f"[red]flagged for {', '.join(flagged)}[/red]" if flagged else "none flagged")
        )


def register(app: typer.Typer) -> None:
    """Add the ``report`` group to the top-level CLI."""
    app.add_typer(report_app, name="report")
