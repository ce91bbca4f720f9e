"""Composition of a study run: smoke variant, run/resume, results, promotion, placebo check."""

from __future__ import annotations

from typing import Any

from augur.tuning._study import StudyConfig

__all__ = ["check_no_placebo", "promote", "run_and_report", "smoke_variant"]


def smoke_variant(study: StudyConfig) -> StudyConfig:
    """A few trials on two folds with tiny models, under its own name (``--smoke-test``)."""
    data = study.data.model_copy(update={"n_folds": min(2, study.data.n_folds)})
    fixed = dict(study.fixed)
    for key, value in (
        ("model.rf_n_estimators", 10),
        ("model.xgb_n_estimators", 10),
        ("model.quantile_n_estimators", 10),
        ("model.svm_max_samples", 200),
    ):
        if key not in study.search_space:
            fixed.setdefault(key, value)
    return study.model_copy(
        update={
            "name": f"{study.name}-smoke",
            "trials": min(study.trials, 4),
            "data": data,
            "fixed": fixed,
            "early_stop_patience": None,
        }
    )


def run_and_report(
    study: StudyConfig, *, smoke_test: bool = False, promote: bool = False
) -> dict[str, Any]:
    """Run (or resume) the study, write results; the JSON-ready summary."""
    from augur.tuning._results import write_results
    from augur.tuning._runner import run_study

    if smoke_test:
        study = smoke_variant(study)
    run = run_study(study)
    summary = write_results(
        study, run.result_grid, run.results_dir, seconds=run.seconds, resumed=run.resumed
    )
    if promote and summary.get("best"):
        summary["promoted"] = globals()["promote"](study, run.results_dir / "best.json")
    return summary


def promote(study: StudyConfig, best_json: Any) -> dict[str, Any]:
    """Train the winner on the full range, evaluate it walk-forward, save it with lineage."""
    from augur.tuning._promote import promote_best

    return promote_best(study, best_json)


def check_no_placebo(study: StudyConfig, bars: Any, **kwargs: Any) -> dict[str, Any]:
    """Vary each parameter alone around a base point; raise naming any that never moves
    the objective (see :mod:`augur.tuning._placebo`)."""
    from augur.tuning._placebo import check_no_placebo as check

    return check(study, bars, **kwargs)
