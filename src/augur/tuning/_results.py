"""What people look at after a study: the trial table, best.json, the Pareto front,
parameter importance and Plotly dashboards, plus the one-line JSON summary.

Importance and most plots come from Optuna on a study *rebuilt from the trial table*
(``optuna.trial.create_trial``), so they work the same for a live, resumed or copied
study and need no Optuna storage.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from augur.tuning._objective import decision_of
from augur.tuning._space import decode, optuna_distributions
from augur.tuning._study import StudyConfig

__all__ = [
    "StudySummary",
    "pareto_front",
    "rebuild_optuna_study",
    "trial_table",
    "write_results",
]

METRICS = (
    "score",
    "total_return",
    "max_drawdown_pct",
    "sharpe",
    "win_rate",
    "avg_profit_pct",
    "n_trades",
)


def trial_table(study: StudyConfig, result_grid: Any) -> pd.DataFrame:
    """One row per trial: id, status (complete / pruned / failed), folds, params, metrics,
    the decision combination chosen from the in-trial sweep, and the error if any."""
    rows = []
    n_folds = study.data.n_folds
    for res in result_grid:
        metrics = res.metrics or {}
        config = res.config or {}
        trial_id = metrics.get("trial_id") or Path(res.path).name
        fold = metrics.get("fold")
        if res.error is not None or fold is None:
            status = "failed"
        elif int(fold) == n_folds - 1:
            status = "complete"
        else:
            status = "pruned"
        row: dict[str, Any] = {
            "trial_id": trial_id,
            "status": status,
            "folds": 0 if fold is None else int(fold) + 1,
            "evaluated_at": metrics.get("evaluated_at"),
            "cpu_s": metrics.get("cpu_s"),
        }
        for key in study.search_space:
            row[f"params.{key}"] = config.get(key)
        for m in METRICS:
            row[m] = metrics.get(m)
        for key, value in decision_of(metrics).items():
            row[f"decision_{key}"] = value
        row["error"] = _error_text(res.error)
        rows.append(row)
    table = pd.DataFrame(rows)
    if not table.empty:
        table = table.sort_values(["evaluated_at"], na_position="last").reset_index(drop=True)
        table.insert(0, "number", range(len(table)))
    return table


def _error_text(error: Any) -> str | None:
    if error is None:
        return None
    text = str(error).strip()
    # Ray wraps the trial's exception; its last line is the user's error
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else type(error).__name__


def pareto_front(table: pd.DataFrame) -> pd.DataFrame:
    """Complete trials not dominated on (total_return ↑, max_drawdown_pct ↓)."""
    done = table[table["status"] == "complete"]
    if done.empty:
        return done
    r = done["total_return"].to_numpy(float)
    d = done["max_drawdown_pct"].to_numpy(float)
    keep = [
        not np.any((r >= r[i]) & (d <= d[i]) & ((r > r[i]) | (d < d[i]))) for i in range(len(done))
    ]
    return done[np.array(keep)].sort_values("max_drawdown_pct")


def rebuild_optuna_study(study: StudyConfig, table: pd.DataFrame) -> Any:
    """An in-memory Optuna study holding the complete trials of the table."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = optuna_distributions(study)
    if study.multi_objective:
        ot = optuna.create_study(directions=["maximize", "minimize"])
    else:
        ot = optuna.create_study(direction="maximize")
    for _, row in table[table["status"] == "complete"].iterrows():
        params = {k: _plain(row[f"params.{k}"]) for k in dists}
        if any(v is None for v in params.values()):
            continue
        values = (
            [float(row["total_return"]), float(row["max_drawdown_pct"])]
            if study.multi_objective
            else None
        )
        ot.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=dists,
                value=None if values else float(row["score"]),
                values=values,
                user_attrs={"trial_id": row["trial_id"]},
            )
        )
    return ot


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def parameter_importance(study: StudyConfig, ot: Any) -> dict[str, float]:
    """fANOVA importance of each searched parameter (empty when too few trials)."""
    import optuna

    if len(ot.trials) < 3 or len(study.search_space) < 1:
        return {}
    target = (lambda t: t.values[0]) if study.multi_objective else None
    try:
        imp = optuna.importance.get_param_importances(
            ot,
            evaluator=optuna.importance.FanovaImportanceEvaluator(seed=study.seed),
            target=target,
        )
    except (RuntimeError, ValueError):
        return {}
    return {k: float(v) for k, v in imp.items()}


def _write_atomic(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    os.replace(tmp, path)


def _dashboards(study: StudyConfig, table: pd.DataFrame, ot: Any, out: Path) -> list[str]:
    import optuna.visualization as vis
    import plotly.graph_objects as go

    written: list[str] = []

    def save(fig: Any, name: str) -> None:
        path = out / name
        # plotly.min.js is written once next to the pages: dashboards open offline
        _write_atomic(path, lambda p: fig.write_html(p, include_plotlyjs="directory"))
        written.append(name)

    done = table[table["status"] == "complete"]
    if study.multi_objective:
        if len(ot.trials):
            save(
                vis.plot_pareto_front(ot, target_names=["total return", "max drawdown %"]),
                "pareto_front.html",
            )
    elif len(ot.trials):
        save(vis.plot_optimization_history(ot), "optimization_history.html")
    target = (lambda t: t.values[0]) if study.multi_objective else None
    tname = "total return" if study.multi_objective else "score"
    if len(ot.trials) >= 2:
        save(
            vis.plot_parallel_coordinate(ot, target=target, target_name=tname),
            "parallel_coordinates.html",
        )
    if len(ot.trials) >= 3 and len(study.search_space) >= 1:
        try:
            import optuna

            fig = vis.plot_param_importances(
                ot,
                evaluator=optuna.importance.FanovaImportanceEvaluator(seed=study.seed),
                target=target,
                target_name=tname,
            )
            save(fig, "importance.html")
        except (RuntimeError, ValueError):
            pass
    if not done.empty:
        metric = "total_return" if study.multi_objective else "score"
        series = done.sort_values("evaluated_at")
        best = series[metric].cummax()
        minutes = (series["evaluated_at"] - table["evaluated_at"].min()) / 60.0
        fig = go.Figure(
            [
                go.Scatter(x=minutes, y=series[metric], mode="markers", name="trial"),
                go.Scatter(x=minutes, y=best, mode="lines", name="best so far"),
            ]
        )
        fig.update_layout(
            title=f"Convergence — {study.name}",
            xaxis_title="minutes since the first trial",
            yaxis_title=metric,
        )
        save(fig, "convergence.html")
    return written


StudySummary = dict[str, Any]


def write_results(
    study: StudyConfig, result_grid: Any, out: Path, *, seconds: float, resumed: bool
) -> StudySummary:
    """Write the trial table, best.json, pareto.csv, importance.json and dashboards into
    ``out``; return the summary (also written as ``summary.json``)."""
    out.mkdir(parents=True, exist_ok=True)
    table = trial_table(study, result_grid)
    _write_atomic(out / "trials.parquet", lambda p: table.to_parquet(p, index=False))
    _write_atomic(out / "trials.csv", lambda p: table.to_csv(p, index=False))
    done = table[table["status"] == "complete"] if not table.empty else table
    summary: StudySummary = {
        "study": study.name,
        "objective": study.objective,
        "trials_total": study.trials,
        "trials_run": len(table),
        "trials_complete": len(done),
        "trials_pruned": int((table["status"] == "pruned").sum()) if len(table) else 0,
        "trials_failed": int((table["status"] == "failed").sum()) if len(table) else 0,
        "resumed": resumed,
        "seconds": round(seconds, 2),
        "results_dir": str(out),
        "best": None,
        "first_error": None,
    }
    failed = table[table["status"] == "failed"] if len(table) else table
    if len(failed):
        summary["first_error"] = (
            failed["error"].dropna().iloc[0] if failed["error"].notna().any() else "trial failed"
        )
    if not done.empty:
        if study.multi_objective:
            front = pareto_front(table)
            _write_atomic(out / "pareto.csv", lambda p: front.to_csv(p, index=False))
            best_row = front.sort_values("total_return", ascending=False).iloc[0]
            summary["pareto_front"] = [
                {
                    "trial_id": r.trial_id,
                    "total_return": r.total_return,
                    "max_drawdown_pct": r.max_drawdown_pct,
                }
                for r in front.itertuples()
            ]
        else:
            best_row = done.loc[done["score"].idxmax()]
        best = _best_payload(study, best_row)
        summary["best"] = {"trial_id": best["trial_id"], "score": best["metrics"]["score"]}
        if study.multi_objective:
            best["pareto_front"] = summary["pareto_front"]
        ot = rebuild_optuna_study(study, table)
        importance = parameter_importance(study, ot)
        best["importance"] = importance
        _write_atomic(
            out / "importance.json", lambda p: Path(p).write_text(json.dumps(importance, indent=2))
        )
        _write_atomic(
            out / "best.json", lambda p: Path(p).write_text(json.dumps(best, indent=2, default=str))
        )
        summary["dashboards"] = _dashboards(study, table, ot, out)
    _write_atomic(
        out / "summary.json",
        lambda p: Path(p).write_text(json.dumps(summary, indent=2, default=str)),
    )
    return summary


def _best_payload(study: StudyConfig, row: pd.Series) -> dict[str, Any]:
    params = {k: decode(k, _plain(row[f"params.{k}"])) for k in study.search_space}
    decision = {
        k.removeprefix("decision_"): _plain(v)
        for k, v in row.items()
        if str(k).startswith("decision_")
    }
    return {
        "study": study.name,
        "objective": study.objective,
        "trial_id": row["trial_id"],
        "params": {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()},
        "fixed": study.fixed,
        "decision": decision,
        "metrics": {m: _plain(row[m]) for m in METRICS},
        "folds": int(row["folds"]),
        "data": study.data.model_dump(mode="json"),
    }
