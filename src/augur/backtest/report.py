"""The walk-forward HTML report (Plotly): equity vs baselines, drawdown, calibration,
confusion matrix, the comparison table and the per-fold table, per symbol.

One self-contained file (plotly.js inlined once), written atomically.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from augur.backtest.evaluation import STRATEGIES, STRATEGY_LABELS, EvaluationResult
from augur.backtest.metrics import strategy_returns

__all__ = ["write_report"]

_TABLE_COLUMNS = {
    "strategy": "strategy",
    "accuracy": "accuracy",
    "brier": "Brier",
    "log_loss": "log loss",
    "total_return": "total return",
    "sharpe": "Sharpe",
    "sortino": "Sortino",
    "max_drawdown_pct": "max DD %",
    "n_trades": "trades",
    "win_rate": "win rate",
    "avg_profit_pct": "avg trade %",
    "profit_factor": "profit factor",
    "turnover": "turnover /yr",
    "costs_pct": "costs %",
    "composite": "composite",
}


def _fmt(v: Any) -> str:
    if isinstance(v, str):
        return html.escape(v)
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "—"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, pd.Timestamp):
        return v.strftime("%Y-%m-%d %H:%M")
    if isinstance(v, (float, np.floating)):
        return "inf" if np.isinf(v) else f"{float(v):.4g}"
    return html.escape(str(v))


def _html_table(frame: pd.DataFrame, columns: dict[str, str] | None = None) -> str:
    cols = columns or {c: c for c in frame.columns}
    head = "".join(f"<th>{html.escape(label)}</th>" for label in cols.values())
    body = "".join(
        "<tr>" + "".join(f"<td>{_fmt(row.get(c))}</td>" for c in cols) + "</tr>"
        for row in frame.to_dict("records")
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figures(result: EvaluationResult, symbol: str) -> list[Any]:
    import plotly.graph_objects as go

    s = result.symbols[symbol]
    cfg = result.config
    ts = s.predictions["timestamp"]
    asset = s.predictions["next_return"].to_numpy()
    equity = go.Figure()
    drawdown = go.Figure()
    for strategy in STRATEGIES:
        net, _ = strategy_returns(
            s.positions[strategy].to_numpy(), asset, cfg.commission_bps, cfg.slippage_bps
        )
        curve = np.cumprod(1.0 + net)
        equity.add_trace(go.Scatter(x=ts, y=curve, name=STRATEGY_LABELS[strategy], mode="lines"))
        dd = curve / np.maximum.accumulate(np.maximum(curve, 1.0)) - 1.0
        drawdown.add_trace(
            go.Scatter(x=ts, y=dd * 100, name=STRATEGY_LABELS[strategy], mode="lines")
        )
    equity.update_layout(
        title=f"{symbol}: out-of-sample equity (net of costs) vs baselines",
        yaxis_title="equity (start = 1)",
    )
    drawdown.update_layout(title=f"{symbol}: drawdown", yaxis_title="drawdown %")
    for start in s.folds["test_start"]:
        equity.add_vline(x=start, line_dash="dot", line_color="grey")

    cal = s.calibration
    calibration = go.Figure()
    calibration.add_trace(
        go.Scatter(
            x=[0, 1], y=[0, 1], name="perfect", mode="lines", line={"dash": "dash", "color": "grey"}
        )
    )
    calibration.add_trace(
        go.Scatter(
            x=cal["mean_predicted"],
            y=cal["realised"],
            name="ensemble",
            mode="lines+markers",
            text=[f"n={c}" for c in cal["count"]],
        )
    )
    calibration.update_layout(
        title=f"{symbol}: calibration of the chosen direction's probability",
        xaxis_title="predicted probability",
        yaxis_title="realised frequency",
    )

    names = ["down", "flat", "up"]
    confusion = go.Figure(
        go.Heatmap(
            z=s.confusion.to_numpy(),
            x=[f"pred {n}" for n in names],
            y=[f"real {n}" for n in names],
            text=s.confusion.to_numpy(),
            texttemplate="%{text}",
            colorscale="Blues",
        )
    )
    confusion.update_layout(title=f"{symbol}: confusion matrix (ensemble direction)")
    return [equity, drawdown, calibration, confusion]


def write_report(result: EvaluationResult, path: Path) -> Path:
    """Write the HTML report for every evaluated symbol to ``path`` (atomically)."""
    path = Path(path)
    cfg = result.config
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Augur walk-forward report</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;"
        "font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}"
        "th{background:#f3f3f3}td:first-child{text-align:left}</style></head><body>",
        "<h1>Augur — walk-forward evaluation (out of sample)</h1>",
        f"<p>{cfg.n_folds} purged walk-forward folds ({html.escape(cfg.window)} train window), "
        f"label horizon {cfg.horizon} bars, purge by label window, embargo "
        f"{cfg.horizon if cfg.embargo_bars is None else cfg.embargo_bars} bars; costs "
        f"{cfg.commission_bps:g} bps commission + {cfg.slippage_bps:g} bps slippage per unit "
        "traded. One model per symbol. Confidence intervals: circular block bootstrap over "
        f"time, {cfg.bootstrap_reps} replicates, {cfg.ci_level:.0%} percentile intervals.</p>",
        "<h2>Headline figures</h2>",
        _html_table(result.headline()),
        "<p>accuracy_gain = ensemble accuracy − best single model accuracy (the member with the "
        "best accuracy on the ensemble's validation tail, inside the training data). "
        "fp_reduction = false-positive entries without the gate − with it (entries whose "
        "realised label was not the entered direction); fp_rate_change = gated − ungated "
        "false-positive rate (negative = the gate helps).</p>",
    ]
    first = True
    for symbol, s in result.symbols.items():
        parts.append(f"<h2>{html.escape(symbol)}</h2>")
        parts.append(
            f"<p>Sharpe and Sortino annualised with {s.periods_per_year:,.0f} periods per year "
            "(measured from the bars: bars per year over the data's span).</p>"
        )
        table = s.table.assign(strategy=s.table["strategy"].map(STRATEGY_LABELS))
        parts.append(_html_table(table, _TABLE_COLUMNS))
        verdict = _verdict(s.table)
        parts.append(f"<p><b>{html.escape(verdict)}</b></p>")
        for fig in _figures(result, symbol):
            parts.append(
                fig.to_html(full_html=False, include_plotlyjs="inline" if first else False)
            )
            first = False
        parts.append("<h3>Per fold</h3>")
        parts.append(_html_table(s.folds))
        if not s.regimes.empty:
            parts.append("<h3>Per market regime</h3>")
            parts.append(_html_table(s.regimes))
            parts.append(
                "<p>Regime of each bar from its <code>regime</code> feature: trending when the "
                "efficiency ratio is at least 0.3, volatile when the recent volatility exceeds "
                "the longest window's. hit_rate: the ensemble's non-flat predictions that "
                "were right; returns: the net returns of that regime's bars, compounded.</p>"
            )
    parts.append("</body></html>")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text("\n".join(parts), encoding="utf-8")
    os.replace(tmp, path)
    return path


def _verdict(table: pd.DataFrame) -> str:
    """A plain sentence per baseline: does the product beat it on the composite and on Sharpe?"""
    t = table.set_index("strategy")
    ours = t.loc["ensemble"]
    parts = []
    for b in STRATEGIES[1:]:
        wins = [m for m in ("composite", "sharpe") if ours[m] > t.loc[b, m]]
        if len(wins) == 2:
            parts.append(f"beats {STRATEGY_LABELS[b]}")
        elif wins:
            lost = "Sharpe" if wins == ["composite"] else "composite"
            parts.append(f"beats {STRATEGY_LABELS[b]} on {wins[0]} but NOT on {lost}")
        else:
            parts.append(f"does NOT beat {STRATEGY_LABELS[b]}")
    return (
        "The gated ensemble " + "; ".join(parts) + " (composite score and Sharpe, out of sample)."
    )
