"""Composition of a study run: smoke variant, run/resume, results, promotion (and its push
to a shared model store), the summary file, placebo check."""

from __future__ import annotations

import json
import os
from typing import Any

from augur.tuning._study import StudyConfig

__all__ = [
    "check_destinations",
    "check_no_placebo",
    "promote",
    "run_and_report",
    "smoke_variant",
    "write_summary",
]


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
    study: StudyConfig,
    *,
    smoke_test: bool = False,
    promote: bool = False,
    model_store: str | None = None,
) -> dict[str, Any]:
    """Run (or resume) the study, write results; the JSON-ready summary.

    With ``promote`` and a ``model_store`` (a path or an fsspec URI), the promoted
    version is also pushed there (:func:`augur.models.push_versions`) and
    ``summary["promoted"]["model_store"]`` names it.
    """
    from augur.tuning._results import write_results
    from augur.tuning._runner import run_study

    if smoke_test:
        study = smoke_variant(study)
    run = run_study(study)
    summary = write_results(
        study, run.result_grid, run.results_dir, seconds=run.seconds, resumed=run.resumed
    )
    if promote and summary.get("best"):
        promoted = globals()["promote"](study, run.results_dir / "best.json")
        if model_store:
            from augur.models import push_versions

            push_versions([promoted["tag"]], model_store)
            promoted["model_store"] = model_store
        summary["promoted"] = promoted
    return summary


def check_destinations(*, summary_file: str | None = None, model_store: str | None = None) -> None:
    """Before a study runs: raise :class:`augur.models.ModelStoreError` when the summary
    file's or the model store's URI cannot be used (unknown protocol, package missing)."""
    from augur.models._remote import _check_uri

    if summary_file:
        _check_uri(summary_file, "--summary-file")
    if model_store:
        _check_uri(model_store)


def write_summary(summary: dict[str, Any], target: str | os.PathLike[str]) -> None:
    """The summary as one JSON line, written whole: a local path (or ``file://``) under a
    temporary name then renamed; another fsspec URI (``s3://…``) in one write."""
    from augur.models._remote import _check_uri, _local_root

    text = json.dumps(summary, default=str) + "\n"
    uri = _check_uri(os.fspath(target), "--summary-file")
    local = _local_root(uri)
    if local is None:
        import fsspec

        with fsspec.open(uri, "w") as fh:
            fh.write(text)
        return
    local.parent.mkdir(parents=True, exist_ok=True)
    tmp = local.with_name(f".{local.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, local)
    finally:
        tmp.unlink(missing_ok=True)


def promote(study: StudyConfig, best_json: Any) -> dict[str, Any]:
    """Train the winner on the full range, evaluate it walk-forward, save it with lineage."""
    from augur.tuning._promote import promote_best

    return promote_best(study, best_json)


def check_no_placebo(study: StudyConfig, bars: Any, **kwargs: Any) -> dict[str, Any]:
    """Vary each parameter alone around a base point; raise naming any that never moves
    the objective (see :mod:`augur.tuning._placebo`)."""
    from augur.tuning._placebo import check_no_placebo as check

    return check(study, bars, **kwargs)
