"""The evolution's HTML report (Plotly): the gate's decision, a row per candidate, each
round's accounting, and per symbol the out-of-sample equity curves of the incumbent and
every backtested candidate. The hold-out part of a curve is drawn for the incumbent and
the winner only: the other candidates' hold-out figures were never part of the decision
and are not shown, so nobody picks a loser by its hold-out after the fact.

One self-contained file (plotly.js inlined), written atomically.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

import numpy as np

from augur.rules._evolve import Candidate, Evolution

_STYLE = (
    "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;"
    "font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 7px;vertical-align:top}"
    "th{background:#f3f3f3}td.n{text-align:right}pre{margin:0;white-space:pre-wrap;"
    "max-width:40em}</style>"
)


def excerpt(text: str, limit: int = 300) -> str:
    """A rule text short enough to show (a proposal may be megabytes)."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


def write_evolution_report(result: Evolution, path: Path) -> Path:
    """Write the report to ``path`` atomically; returns ``path``."""
    path = Path(path)
    gate = result.gate
    inc = result.incumbent_trial
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Augur rule evolution</title>{_STYLE}</head><body>",
        "<h1>Augur — decision-rule evolution</h1>",
        f"<p><b>{html.escape(result.decision())}</b></p>",
        f"<p>Incumbent: {html.escape(result.incumbent_label)}; composite {inc.score:+.4f} on the "
        f"search part, {inc.holdout_score:+.4f} on the hold-out. The out-of-sample "
        f"predictions of the walk-forward are split in time: the latest "
        f"{result.data.holdout_fraction:.0%} of each symbol's bars are the final hold-out. "
        "A candidate passes when, on the search part, its composite beats the incumbent's by "
        f"at least {gate.margin:g}, the paired circular block-bootstrap interval of the "
        f"difference ({gate.bootstrap_reps} replicates; level {gate.ci_level:.0%} raised for "
        "the number of candidates) lies above zero, it makes at least "
        f"{gate.min_trades} trades, and no symbol's maximum drawdown deepens by more than "
        f"{gate.max_drawdown_worsening:g} percentage points.</p>",
    ]
    if result.incumbent is not None:
        parts.append(f"<p>Incumbent rules:</p><pre>{html.escape(result.incumbent.rules)}</pre>")
    if result.adopted_path is not None:
        parts.append(f"<p>Written: <code>{html.escape(str(result.adopted_path))}</code></p>")
    parts += ["<h2>Candidates</h2>", _candidates_table(result)]
    parts += ["<h2>Rounds</h2>", _rounds_table(result)]
    first = True
    for symbol in result.data.symbols:
        fig = _equity_figure(result, symbol)
        parts.append(f"<h2>{html.escape(symbol)}</h2>")
        parts.append(fig.to_html(full_html=False, include_plotlyjs="inline" if first else False))
        first = False
    parts.append("</body></html>")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text("\n".join(parts), encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _candidates_table(result: Evolution) -> str:
    head = (
        "<tr><th>#</th><th>round</th><th>from</th><th>rules</th><th>parsed</th>"
        "<th>composite</th><th>difference</th><th>interval</th><th>max DD %</th>"
        "<th>verdict</th></tr>"
    )
    rows = [_candidate_row(c) for c in result.candidates]
    if not rows:
        rows = ["<tr><td colspan='10'>no candidates were proposed</td></tr>"]
    return f"<table>{head}{''.join(rows)}</table>"


def _candidate_row(c: Candidate) -> str:
    t, v = c.trial, c.verdict
    ci = v.interval if v else None
    cells = [
        (str(c.number), True),
        (str(c.round), True),
        (html.escape(c.proposal.source), False),
        (f"<pre>{html.escape(excerpt(c.proposal.rules))}</pre>", False),
        ("yes" if c.parsed else "no", False),
        (f"{t.score:+.4f}" if t else "—", True),
        (f"{v.difference:+.4f}" if v else "—", True),
        (f"[{ci.low:+.4f}, {ci.high:+.4f}] at {ci.level:.1%}" if ci else "—", True),
        (f"{t.max_drawdown_pct:.3f}" if t else "—", True),
        (("<b>accepted</b>: " if v and v.passed else "") + html.escape(c.reason), False),
    ]
    return "<tr>" + "".join(f"<td{' class=n' if n else ''}>{x}</td>" for x, n in cells) + "</tr>"


def _rounds_table(result: Evolution) -> str:
    head = (
        "<tr><th>round</th><th>proposer</th><th>candidates</th><th>prompt tokens</th>"
        "<th>completion tokens</th><th>cost</th><th>seconds</th><th>notes</th></tr>"
    )
    rows = "".join(
        f"<tr><td class=n>{i}</td><td>{html.escape(r.source)}</td>"
        f"<td class=n>{len(r.proposals)}</td><td class=n>{r.prompt_tokens:,}</td>"
        f"<td class=n>{r.completion_tokens:,}</td><td class=n>{r.cost:.4f}</td>"
        f"<td class=n>{r.seconds:.1f}</td><td>{html.escape('; '.join(r.notes)) or '—'}</td></tr>"
        for i, r in enumerate(result.rounds, 1)
    )
    return f"<table>{head}{rows}</table>"


def _equity_figure(result: Evolution, symbol: str) -> Any:
    import plotly.graph_objects as go

    frame = result.data.frames[symbol]
    split = result.data.split[symbol]
    times = frame["timestamp"]
    winner = result.winner
    fig = go.Figure()

    def add(label: str, equity: np.ndarray, whole: bool, width: float) -> None:
        end = len(equity) if whole else split
        fig.add_trace(
            go.Scatter(
                x=times[:end], y=equity[:end], mode="lines", name=label, line={"width": width}
            )
        )

    add(
        f"incumbent ({result.incumbent_label})",
        result.incumbent_trial.symbols[symbol].equity(result.costs),
        True,
        3,
    )
    for c in result.candidates:
        if c.trial is not None:
            add(
                f"candidate {c.number}",
                c.trial.symbols[symbol].equity(result.costs),
                c is winner,
                3 if c is winner else 1,
            )
    fig.add_vline(x=times.iloc[split], line_dash="dash")
    fig.add_annotation(
        x=times.iloc[split], y=1, yref="paper", text="hold-out →", showarrow=False, xanchor="left"
    )
    fig.update_layout(
        title=f"{symbol}: out-of-sample equity, net of costs (hold-out: incumbent and winner only)",
        yaxis_title="equity",
        height=450,
    )
    return fig


__all__ = ["excerpt", "write_evolution_report"]
