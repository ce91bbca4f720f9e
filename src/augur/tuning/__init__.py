"""Tuning: study files, search spaces, the trial scoring function, Ray Tune + Optuna runs,
results and promotion.

Public names:

- :func:`load_study` / :func:`parse_study` → :class:`StudyConfig` (validated before Ray
  starts; :class:`StudyError` names the key and the problem).
- :func:`run_and_report`: run or resume a study, write its results, return the summary.
- :func:`evaluate`: the pure scoring function (params → walk-forward metrics).
- :func:`check_no_placebo`: every searched parameter must move the objective.
- :func:`promote`: train the winner on the full range and save it with lineage.
- :func:`write_summary` (a path or an fsspec URI, written whole) and
  :func:`check_destinations` (the summary file's and model store's URIs are usable).

Ray and Optuna are imported inside functions, never at import time.
"""

from augur.tuning._api import (
    check_destinations,
    check_no_placebo,
    promote,
    run_and_report,
    smoke_variant,
    write_summary,
)
from augur.tuning._objective import evaluate, load_study_bars
from augur.tuning._study import StudyConfig, StudyError, load_study, parse_study

__all__ = [
    "StudyConfig",
    "StudyError",
    "check_destinations",
    "check_no_placebo",
    "evaluate",
    "load_study",
    "load_study_bars",
    "parse_study",
    "promote",
    "run_and_report",
    "smoke_variant",
    "write_summary",
]
