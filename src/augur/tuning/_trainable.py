"""The Ray Tune trainable: runs a trial fold by fold, reporting (with a checkpoint) after
every walk-forward fold, so ASHA can stop it between folds and a retried or restored
trial resumes at its next fold instead of its first.

A checkpoint holds the next fold, the last result and the model's out-of-sample outputs
so far (:data:`~augur.tuning._objective.PREDICTION_COLUMNS` only: the data columns are
rebuilt from the bars). A trial that had finished all folds before a restart only
re-reports its saved result: nothing is recomputed.

The result is kept small on purpose: Tune keeps running statistics of every numeric
key of every trial in the experiment state it snapshots, so the chosen decision
combination travels as one JSON string (``decision``) and the worker's pid is Tune's own
``pid``.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from augur.tuning._objective import TrialScorer, limit_threads
from augur.tuning._study import StudyConfig

_STATE = "state.json"
_OOS = "oos.parquet"


def trial_function(
    config: dict[str, Any], *, study: StudyConfig, bars: Any, cache_dir: str
) -> None:
    """Ray Tune function trainable (wrap with ``tune.with_parameters``)."""
    from ray import tune

    limit_threads(int(study.cpus_per_trial))
    if isinstance(bars, list):  # an ObjectRef-resolved list of frames
        bars = pd.concat(bars, ignore_index=True)
    scorer = TrialScorer(study, bars, dict(config), cache_dir=Path(cache_dir))
    start, last = 0, None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            state = json.loads(Path(d, _STATE).read_text())
            start, last = int(state["next_fold"]), state["last_result"]
            if Path(d, _OOS).exists():
                scorer.restore_oos(pd.read_parquet(Path(d, _OOS)))
    if start >= scorer.n_folds and last is not None:
        tune.report(last)  # finished before a restart: nothing to recompute
        return
    # the trial's own compute: this thread's CPU seconds in the folds so far (not in
    # reporting or checkpointing) — what a trial costs without the scheduling around it
    cpu_s = float(last.get("cpu_s", 0.0)) if last else 0.0
    for k in range(start, scorer.n_folds):
        cpu_start = time.thread_time()
        report = scorer.run_fold(k)
        cpu_s += time.thread_time() - cpu_start
        result = report.as_result()
        result["evaluated_at"] = time.time()
        result["cpu_s"] = cpu_s
        with tempfile.TemporaryDirectory() as d:
            Path(d, _STATE).write_text(
                json.dumps({"next_fold": report.fold + 1, "last_result": result})
            )
            if scorer.oos:
                scorer.oos_state().to_parquet(Path(d, _OOS), index=False)
            tune.report(result, checkpoint=tune.Checkpoint.from_directory(d))
