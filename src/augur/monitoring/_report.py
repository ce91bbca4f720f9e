"""The serving report: one self-contained HTML page (Plotly) built from a ServingSummary."""

from __future__ import annotations

import html
import math
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from augur.monitoring.analysis import ABComparison, ServingSummary

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1100px;
color:#222}
h1{margin-bottom:.2rem} h2{margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;font-size:.9rem;margin:.6rem 0}
th,td{border:1px solid #ddd;padding:.25rem .55rem;text-align:right}
th{background:#f4f4f4} td:first-child,th:first-child{text-align:left}
.note{color:#555;font-size:.9rem} .verdict{font-weight:600}
.better{color:#137333} .worse{color:#b3261e} .drift{color:#b3261e;font-weight:600}
"""


def _make_readable(path: str) -> None:
    # mkstemp creates 0600; a report or model file is meant to be read by others too.
    os.chmod(path, 0o644)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.3g}"
        return f"{value:.4g}"
    return str(value)


def _table(df: pd.DataFrame) -> str:
    if df.empty:
        return '<p class="note">No data.</p>'
    return df.to_html(index=False, escape=True, border=0, formatters=None, float_format=_fmt)


class _Figures:
    """Renders figures as divs; the first carries plotly.js inline (works offline)."""

    def __init__(self) -> None:
        self.count = 0

    def div(self, fig: Any) -> str:
        include = self.count == 0
        self.count += 1
        fig.update_layout(height=380, margin={"l": 50, "r": 20, "t": 50, "b": 50})
        return str(fig.to_html(full_html=False, include_plotlyjs=include))


def _decisions_fig(summary: ServingSummary) -> Any:
    import plotly.express as px

    d = summary.decisions.copy()
    d["version"] = d["model_version"] + " (" + d["role"] + ")"
    return px.bar(d, x="version", y="n", color="action", title="Decisions per version and action")


def _agreement_fig(summary: ServingSummary) -> Any:
    import plotly.graph_objects as go

    a = summary.agreement
    fig = go.Figure()
    for kind in ("action", "direction"):
        fig.add_bar(
            name=f"{kind} agreement",
            x=a["shadow_version"],
            y=a[f"{kind}_agreement"],
            error_y={
                "type": "data",
                "symmetric": False,
                "array": a[f"{kind}_high"] - a[f"{kind}_agreement"],
                "arrayminus": a[f"{kind}_agreement"] - a[f"{kind}_low"],
            },
        )
    fig.update_layout(
        title="Shadow vs served decision on the same requests (Wilson 95% intervals)",
        yaxis={"range": [0, 1.05], "tickformat": ".0%"},
        barmode="group",
    )
    return fig


def _performance_fig(summary: ServingSummary) -> Any:
    from plotly.subplots import make_subplots

    p = summary.performance
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Hit rate", "Mean signed return"))
    fig.add_scatter(
        x=p["model_version"],
        y=p["hit_rate"],
        mode="markers",
        name="hit rate",
        error_y={
            "type": "data",
            "symmetric": False,
            "array": p["hit_high"] - p["hit_rate"],
            "arrayminus": p["hit_rate"] - p["hit_low"],
        },
        row=1,
        col=1,
    )
    fig.add_scatter(
        x=p["model_version"],
        y=p["mean_return"],
        mode="markers",
        name="mean return",
        error_y={
            "type": "data",
            "symmetric": False,
            "array": p["return_high"] - p["mean_return"],
            "arrayminus": p["mean_return"] - p["return_low"],
        },
        row=1,
        col=2,
    )
    fig.update_layout(title="Realised performance per version (95% intervals)", showlegend=False)
    return fig


def _ab_fig(comparisons: list[ABComparison]) -> Any:
    from plotly.subplots import make_subplots

    names = [f"{c.candidate} ({c.candidate_role})" for c in comparisons]
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("Hit rate difference (B − A)", "Mean return difference (B − A)"),
    )
    for col, (d, lo, hi) in enumerate(
        [
            ("hit_rate_diff", "hit_rate_low", "hit_rate_high"),
            ("mean_return_diff", "mean_return_low", "mean_return_high"),
        ],
        start=1,
    ):
        ds = [getattr(c, d) for c in comparisons]
        fig.add_scatter(
            x=ds,
            y=names,
            mode="markers",
            error_x={
                "type": "data",
                "symmetric": False,
                "array": [getattr(c, hi) - v for c, v in zip(comparisons, ds, strict=True)],
                "arrayminus": [v - getattr(c, lo) for c, v in zip(comparisons, ds, strict=True)],
            },
            row=1,
            col=col,
        )
        fig.add_vline(x=0, line_dash="dash", line_color="#888", row=1, col=col)
    fig.update_layout(title="A/B: candidate minus baseline, with intervals", showlegend=False)
    return fig


def _latency_fig(summary: ServingSummary) -> Any:
    import plotly.graph_objects as go

    lat = summary.latency
    x = lat["model_version"] + " (" + lat["role"] + ")"
    fig = go.Figure()
    for q in ("p50_ms", "p90_ms", "p99_ms"):
        fig.add_bar(name=q.removesuffix("_ms"), x=x, y=lat[q])
    fig.update_layout(title="Scoring latency per version (ms)", barmode="group")
    return fig


def _drift_fig(drift: pd.DataFrame) -> Any:
    import plotly.express as px

    fig = px.bar(
        drift,
        x="feature",
        y="psi",
        color="model_version",
        barmode="group",
        title="Population stability index per feature (dashed: 0.2)",
    )
    fig.add_hline(y=0.2, line_dash="dash", line_color="#b3261e")
    return fig


def _verdict_html(c: ABComparison) -> str:
    cls = {"better": "better", "worse": "worse"}.get(c.verdict, "")
    return f'<li class="verdict {cls}">{html.escape(c.sentence())}</li>'


def render_serving_report(summary: ServingSummary, title: str = "Augur — serving report") -> str:
    """The report as one HTML string (plotly.js inline once, so it opens offline)."""
    figs = _Figures()
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="note">Generated {now}. {summary.n_requests} requests, '
        f"{summary.n_predictions} logged predictions (all roles), "
        f"{summary.n_outcomes} with a reported outcome. Baseline (primary) version: "
        f"<b>{html.escape(summary.baseline or '—')}</b>.</p>",
    ]
    if summary.empty:
        parts.append(
            '<p class="note">The prediction log is empty: send decisions to the service '
            "(POST /decide), then run <code>augur report serving</code> again.</p>"
        )
    else:
        parts += ["<h2>Decisions per version</h2>", figs.div(_decisions_fig(summary))]
        parts.append(_table(summary.decisions))

        parts.append("<h2>Shadow vs primary</h2>")
        if summary.agreement.empty:
            parts.append('<p class="note">No shadow predictions logged.</p>')
        else:
            parts += [figs.div(_agreement_fig(summary)), _table(summary.agreement)]

        pct = f"{summary.confidence:.0%}"
        parts += [
            "<h2>Realised performance and the A/B verdict</h2>",
            '<p class="note">A call is a prediction with a direction; a hit when the '
            "realised return has its sign; signed return = direction × realised return. "
            f"Intervals at {pct}: Wilson (hit rate), t (mean); differences B − A: "
            "Newcombe hybrid score (hit rate) and Welch t (mean return).</p>",
        ]
        if summary.n_outcomes == 0:
            parts.append(
                '<p class="note">No outcomes reported yet (POST /outcome with the '
                "request_id and the realised return).</p>"
            )
        else:
            parts += [figs.div(_performance_fig(summary)), _table(summary.performance)]
            if summary.comparisons:
                parts.append("<ul>" + "".join(_verdict_html(c) for c in summary.comparisons))
                parts.append("</ul>")
                parts.append(figs.div(_ab_fig(summary.comparisons)))
                rows = pd.DataFrame(
                    [
                        {
                            "candidate": c.candidate,
                            "role": c.candidate_role,
                            "baseline": c.baseline,
                            "n_B": c.n_candidate,
                            "n_A": c.n_baseline,
                            "hit_diff": c.hit_rate_diff,
                            "hit_low": c.hit_rate_low,
                            "hit_high": c.hit_rate_high,
                            "return_diff": c.mean_return_diff,
                            "return_low": c.mean_return_low,
                            "return_high": c.mean_return_high,
                            "return_p": c.mean_return_pvalue,
                            "verdict": c.verdict,
                        }
                        for c in summary.comparisons
                    ]
                )
                parts.append(_table(rows))
            else:
                parts.append('<p class="note">Only one version served: nothing to compare.</p>')

        parts += ["<h2>Latency</h2>", figs.div(_latency_fig(summary)), _table(summary.latency)]

    parts.append("<h2>Feature drift</h2>")
    drift = summary.drift
    if drift is None or drift.empty:
        parts.append(
            '<p class="note">No drift statistics stored yet (the service records them once '
            "a version with a training reference has served enough rows).</p>"
        )
    else:
        flagged = sorted(drift.loc[drift["model_drifted"].astype(bool), "model_version"].unique())
        if flagged:
            parts.append(
                f'<p class="drift">Drift flagged for: {html.escape(", ".join(flagged))}</p>'
            )
        else:
            parts.append('<p class="note">No version flagged for drift.</p>')
        parts.append(
            '<p class="note">Rule: a feature drifts when PSI &gt; 0.2 or its KS p-value is '
            "below 0.01 divided by the number of features (Bonferroni), once at least 100 "
            "served rows are in the window; a version drifts when any feature does.</p>"
        )
        parts += [figs.div(_drift_fig(drift)), _table(drift)]
    parts.append("</body></html>")
    return "\n".join(parts)


def write_serving_report(summary: ServingSummary, out: str | Path) -> Path:
    """Render the report and write it atomically (temp file + ``os.replace``)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = render_serving_report(summary)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        _make_readable(tmp)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out
