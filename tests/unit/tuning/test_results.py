"""Results: trial table, best.json, Pareto front, importance, dashboards, summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ray.tune import Result

from augur.tuning import parse_study
from augur.tuning._results import pareto_front, rebuild_optuna_study, trial_table, write_results
from tests.unit.tuning.helpers import make_study


def _results(n: int, n_folds: int = 2, rng_seed: int = 0) -> list[Result]:
    rng = np.random.default_rng(rng_seed)
    out = []
    for i in range(n):
        thr, kelly = float(rng.uniform(0, 0.6)), float(rng.uniform(0.05, 1.0))
        fold = n_folds - 1 if i % 5 else 0  # every fifth trial was pruned after fold 0
        metrics = {
            "trial_id": f"t{i:03d}",
            "fold": fold,
            "evaluated_at": 1000.0 + i,
            "score": -((thr - 0.3) ** 2) + 0.1 * kelly,
            "total_return": kelly * 0.1 - thr * 0.01,
            "max_drawdown_pct": kelly * 5 + float(rng.uniform(0, 1)),
            "sharpe": 1.0,
            "win_rate": 0.5,
            "avg_profit_pct": 0.01,
            "n_trades": 10.0,
            "decision": '{"cooldown_losses": 2}',
            "config": {"decision.confidence_threshold": thr, "decision.kelly_fraction": kelly},
        }
        out.append(Result(metrics=metrics, checkpoint=None, error=None, path=f"/x/trial_{i}"))
    failed = Result(
        metrics={"config": {"decision.confidence_threshold": 0.1, "decision.kelly_fraction": 0.5}},
        checkpoint=None,
        error=RuntimeError("Traceback...\nValueError: boom in fold 0"),
        path="/x/trial_failed",
    )
    return [*out, failed]


def test_trial_table_statuses_params_and_errors(bars_root: Path, tmp_path: Path) -> None:
    study = parse_study(make_study(bars_root, tmp_path))
    table = trial_table(study, _results(10))
    assert len(table) == 11
    assert table["status"].value_counts().to_dict() == {"complete": 8, "pruned": 2, "failed": 1}
    assert {"params.decision.confidence_threshold", "decision_cooldown_losses"} <= set(
        table.columns
    )
    assert table.loc[table["status"] == "failed", "error"].item() == "ValueError: boom in fold 0"


def test_write_results_single_objective(bars_root: Path, tmp_path: Path) -> None:
    study = parse_study(make_study(bars_root, tmp_path))
    out = tmp_path / "results"
    summary = write_results(study, _results(20), out, seconds=12.5, resumed=False)
    assert summary["trials_complete"] == 16 and summary["trials_failed"] == 1
    assert summary["first_error"] == "ValueError: boom in fold 0"
    best = json.loads((out / "best.json").read_text())
    table = json.loads((out / "summary.json").read_text())
    assert table["best"]["trial_id"] == best["trial_id"]
    complete = [r for r in _results(20)[:-1] if r.metrics["fold"] == 1]
    assert best["metrics"]["score"] == pytest.approx(max(r.metrics["score"] for r in complete))
    assert best["decision"] == {"cooldown_losses": 2}
    assert set(best["importance"]) == set(study.search_space)
    for name in (
        "optimization_history.html",
        "parallel_coordinates.html",
        "importance.html",
        "convergence.html",
    ):
        assert (out / name).stat().st_size > 1000, name
    assert (out / "plotly.min.js").exists()  # dashboards open offline
    assert (out / "trials.parquet").exists() and (out / "trials.csv").exists()


def test_multi_objective_reports_the_pareto_front(bars_root: Path, tmp_path: Path) -> None:
    study = parse_study(make_study(bars_root, tmp_path, objective="return_vs_drawdown"))
    out = tmp_path / "results"
    results = _results(20)
    summary = write_results(study, results, out, seconds=1.0, resumed=True)
    table = trial_table(study, results)
    front = pareto_front(table)
    assert len(front) >= 1
    for _, row in front.iterrows():  # nothing on the front is dominated
        done = table[table["status"] == "complete"]
        dominated = (
            (done["total_return"] >= row["total_return"])
            & (done["max_drawdown_pct"] <= row["max_drawdown_pct"])
            & (
                (done["total_return"] > row["total_return"])
                | (done["max_drawdown_pct"] < row["max_drawdown_pct"])
            )
        )
        assert not dominated.any()
    assert {p["trial_id"] for p in summary["pareto_front"]} == set(front["trial_id"])
    assert (out / "pareto_front.html").exists() and (out / "pareto.csv").exists()
    assert len(rebuild_optuna_study(study, table).best_trials) == len(front)


def test_no_complete_trial_writes_a_summary_without_best(bars_root: Path, tmp_path: Path) -> None:
    study = parse_study(make_study(bars_root, tmp_path))
    summary = write_results(study, _results(0), tmp_path / "r", seconds=1.0, resumed=False)
    assert summary["best"] is None and summary["trials_failed"] == 1
    assert not (tmp_path / "r" / "best.json").exists()
