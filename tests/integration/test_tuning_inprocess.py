"""Studies run in this process (real local Ray, real Optuna): multi-objective with its
Pareto front, ASHA pruning at fold boundaries, the study-level early stop, the promotion
of the winner, and a re-run that finds the study finished."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from augur.tuning import parse_study, promote, run_and_report
from tests.unit.tuning.helpers import make_study, trending_bars

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def bars_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from augur.data import write_bars
    from augur.tuning._runner import shutdown_ray

    root = tmp_path_factory.mktemp("bars")
    write_bars(trending_bars(), root)
    yield root
    shutdown_ray()


def test_multi_objective_study_reports_a_pareto_front(bars_root: Path, tmp_path: Path) -> None:
    raw = make_study(bars_root, tmp_path, name="pareto", trials=6, objective="return_vs_drawdown")
    raw["data"]["n_folds"] = 3
    summary = run_and_report(parse_study(raw))
    assert summary["trials_run"] == 6 and summary["trials_failed"] == 0
    assert summary["pareto_front"]
    out = Path(summary["results_dir"])
    best = json.loads((out / "best.json").read_text())
    assert best["pareto_front"] == summary["pareto_front"]
    assert (out / "pareto_front.html").exists()
    again = run_and_report(parse_study(raw))  # finished: resumes, runs nothing new
    assert again["resumed"] and again["trials_run"] == 6


def test_asha_prunes_and_early_stop_ends_the_study(
    bars_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "bentoml"))
    raw = make_study(
        bars_root,
        tmp_path,
        name="asha",
        trials=40,
        concurrency=1,
        early_stop_patience=4,
        early_stop_min_delta=0.01,  # gains by a hair (this objective has many) do not count
        pruning={"enabled": True, "grace_folds": 1, "reduction_factor": 2},
    )
    raw["data"]["n_folds"] = 3
    study = parse_study(raw)
    summary = run_and_report(study)
    assert summary["trials_run"] < 40  # the plateau stopper ended it
    assert summary["trials_pruned"] >= 1  # ASHA stopped weak trials between folds
    promoted = promote(study, Path(summary["results_dir"]) / "best.json")
    assert promoted["tag"].startswith("augur-ensemble:")
    assert promoted["lineage"]["study"] == "asha"
