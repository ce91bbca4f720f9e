"""The Ray Tune trainable: runs a trial fold by fold, reporting (with a checkpoint) after
every walk-forward fold, so ASHA can stop it between folds and a killed run resumes a
trial at its next fold instead of its first.

A checkpoint holds the next fold, the last result and the out-of-sample predictions so
far (a few KB). A trial that had finished all folds before the kill only re-reports its
saved result: nothing is recomputed.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from augur.tuning._objective import TrialScorer
from augur.tuning._study import StudyConfig

_STATE = "state.json"
_OOS = "oos.parquet"


def trial_function(
    config: dict[str, Any], *, study: StudyConfig, bars: Any, cache_dir: str
) -> None:
    """Ray Tune function trainable (wrap with ``tune.with_parameters``)."""
    from ray import tune

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
                oos = pd.read_parquet(Path(d, _OOS))
                scorer.oos = [part for _, part in oos.groupby("fold", sort=True)]
    if start >= scorer.n_folds and last is not None:
        tune.report(last)  # finished before a restart: nothing to recompute
        return
    for report in scorer.folds(start):
        result = report.as_result()
        result["evaluated_at"] = time.time()
        result["worker_pid"] = os.getpid()
        with tempfile.TemporaryDirectory() as d:
            Path(d, _STATE).write_text(
                json.dumps({"next_fold": report.fold + 1, "last_result": result})
            )
            if scorer.oos:
                pd.concat(scorer.oos, ignore_index=True).to_parquet(Path(d, _OOS), index=False)
            tune.report(result, checkpoint=tune.Checkpoint.from_directory(d))
