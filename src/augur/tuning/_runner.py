"""Run a study with Ray Tune driving Optuna: the Tuner builder and the restore idiom.

Search: ``OptunaSearch`` (seeded multivariate TPE) behind a ``ConcurrencyLimiter``, on the
composite score or on two objectives (total return up, max drawdown down: a Pareto front).
Pruning: ASHA at fold boundaries. Study-level early stop: :class:`PlateauStopper`. The
metric Tune ranks trials by is set once, in ``TuneConfig``.

Resume: ``Tuner.can_restore(path)`` → ``Tuner.restore(path, resume_errored=True)`` else a
new Tuner. The searcher's state travels in Tune's experiment snapshot, so sampling goes on
where it stopped and the trial budget counts the trials already made. Tune snapshots after
every trial that ends (:func:`_snapshotting`) and every fold checkpoint is kept, so a
killed driver loses no finished trial and a running one resumes at its newest fold; a
snapshot torn by a kill is first made whole from the study's restore point
(:mod:`augur.tuning._recovery`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from augur.tuning._recovery import (
    prepare_restore,
    refresh_restore_point,
    save_restore_point,
    set_aside,
)
from augur.tuning._study import StudyConfig

__all__ = ["StudyRun", "build_tuner", "experiment_path", "run_study", "shutdown_ray"]

log = logging.getLogger(__name__)

#: What Tune ranks trials by (pruning, the study-level early stop, the best so far): the
#: composite score, maximised — in a two-objective study too, whose Pareto front is Optuna's.
METRIC, MODE = "score", "max"

#: Seconds between periodic experiment-state snapshots (on top of the one after every
#: finished trial): what a killed driver can lose is the fold progress of running trials
#: made in this window, never a finished trial.
EXPERIMENT_CHECKPOINT_S = "10"


def experiment_path(study: StudyConfig) -> str:
    """Where Ray keeps this study's experiment (path or URI)."""
    return f"{study.resolved_storage()}/{study.name}"


def results_dir(study: StudyConfig) -> Path:
    """Local folder for best.json, the trial table, dashboards and progress."""
    storage = study.resolved_storage()
    if "://" in storage:
        from augur.config import get_settings

        return (get_settings().home / "tuning-results" / study.name).resolve()
    return Path(storage) / study.name / "augur"


def cache_dir(study: StudyConfig) -> Path:
    """Cached out-of-sample predictions of fixed models, shared by the studies of one
    storage (files are named by a hash of data, features, model and seed)."""
    return results_dir(study).parent.parent / ".oos-cache"


def _atomic_json(path: Path, payload: dict[str, Any], *, indent: int | None = 2) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=indent, default=str))
    os.replace(tmp, path)


def _make_callback_class() -> type:
    from ray.tune import Callback

    class ProgressCallback(Callback):
        """Writes ``progress.json`` (trials done / total, best so far, running trials and
        their worker pids, ETA inputs): the CLI progress bar, the operator and tests read
        it. Trial events only update memory; the file is rewritten at the end of a
        controller step, after Tune has already sent the trial its next fold (so the
        write never delays a worker): at once when a trial ended, otherwise at most once
        per ``min_interval`` seconds (a fold result only moves the running trials' folds,
        and the driver's CPU is shared with the trials)."""

        min_interval = 1.0

        def __init__(self, path: str, total: int, n_folds: int) -> None:
            self.path = path
            self.total = total
            self.n_folds = n_folds
            self.completed: dict[str, dict[str, Any]] = {}
            self.failed: dict[str, str] = {}
            self.running: dict[str, dict[str, Any]] = {}
            self.best: float | None = None
            self.started = time.time()
            self._dirty = False
            self._ended = False
            self._written = 0.0

        def _write(self) -> None:
            self._dirty = self._ended = False
            self._written = time.monotonic()
            _atomic_json(
                Path(self.path),
                {
                    "trials_total": self.total,
                    "trials_done": len(self.completed) + len(self.failed),
                    "trials_completed": len(self.completed),
                    "trials_failed": len(self.failed),
                    "best": self.best,
                    "started": self.started,
                    "updated": time.time(),
                    "completed": self.completed,
                    "failed": self.failed,
                    "running": self.running,
                },
                indent=None,  # rewritten after every fold: keep it cheap
            )

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            result = trial.last_result or {}
            value = result.get(METRIC)
            self.completed[trial.trial_id] = {
                "value": value,
                "fold": result.get("fold"),
                "evaluated_at": result.get("evaluated_at"),
            }
            full = result.get("fold") == self.n_folds - 1
            if value is not None and full and (self.best is None or value > self.best):
                self.best = float(value)
            self.running.pop(trial.trial_id, None)
            self._dirty = self._ended = True

        def on_trial_result(
            self, iteration: int, trials: list, trial: Any, result: dict[str, Any], **info: Any
        ) -> None:
            self.running[trial.trial_id] = {
                "fold": result.get("fold"),
                "worker_pid": result.get("pid"),  # Tune's: the trial actor's process
            }
            self._dirty = True

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self.failed[trial.trial_id] = str(trial.error_file or "error")
            self.running.pop(trial.trial_id, None)
            self._dirty = self._ended = True

        def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
            if self._ended or (
                self._dirty and time.monotonic() - self._written >= self.min_interval
            ):
                self._write()

        def on_experiment_end(self, trials: list, **info: Any) -> None:
            self._write()

        def get_state(self) -> dict[str, Any]:
            return {
                "completed": self.completed,
                "failed": self.failed,
                "best": self.best,
                "started": self.started,
            }

        def set_state(self, state: dict[str, Any]) -> None:
            self.completed = state["completed"]
            self.failed = state["failed"]
            self.best = state["best"]

    return ProgressCallback


def _make_stopper_class() -> type:
    from ray.tune import Stopper

    class PlateauStopper(Stopper):
        """Stop the study when ``patience`` trials in a row finished without improving
        the best :data:`METRIC` by more than ``min_delta`` (only trials that ran every fold
        count)."""

        def __init__(self, patience: int, n_folds: int, min_delta: float = 0.0) -> None:
            self.patience = patience
            self.n_folds = n_folds
            self.min_delta = min_delta
            self.best = -math.inf
            self.since_best = 0

        def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
            if result.get("fold") == self.n_folds - 1 and METRIC in result:
                value = float(result[METRIC])
                if value > self.best + self.min_delta:
                    self.best, self.since_best = value, 0
                else:
                    self.since_best += 1
            return False

        def stop_all(self) -> bool:
            return self.since_best >= self.patience

    return PlateauStopper


def _snapshotting(base: type) -> type:
    """``base`` (a Tune scheduler class) that has Tune snapshot the experiment state once
    after every trial that ends (completed, pruned or failed).

    The snapshot is taken through the controller the scheduler is handed in
    ``on_trial_complete`` / ``on_trial_error`` / ``on_trial_remove``
    (``TuneController.checkpoint(force=True)``), from ``choose_trial_to_run`` two
    controller steps later: by then the ended trial is TERMINATED, the searcher has been
    told its result, and the trial that takes its place has been sent to the freed worker
    — the snapshot, which grows with the trial count, runs while that worker computes
    instead of delaying it. A driver killed between the end and the snapshot restarts
    the ended trial from its newest fold checkpoint: a finished trial only re-reports its
    saved result. Each snapshot is also kept whole as the
    study's restore point (:mod:`augur.tuning._recovery`): Tune's own copy of it to
    storage can be torn by a kill.
    """

    class Snapshotting(base):  # type: ignore[misc, valid-type]
        _controller: Any = None
        _steps_to_snapshot = 0

        def _ended(self, tune_controller: Any) -> None:
            if callable(getattr(tune_controller, "checkpoint", None)):
                self._controller = tune_controller
                self._steps_to_snapshot = 2

        def on_trial_complete(self, tune_controller: Any, trial: Any, result: Any) -> None:
            super().on_trial_complete(tune_controller, trial, result)
            self._ended(tune_controller)

        def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
            super().on_trial_error(tune_controller, trial)
            self._ended(tune_controller)

        def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
            super().on_trial_remove(tune_controller, trial)
            self._ended(tune_controller)

        def choose_trial_to_run(self, tune_controller: Any) -> Any:
            if self._controller is not None:
                self._steps_to_snapshot -= 1
                if self._steps_to_snapshot <= 0:
                    controller, self._controller = self._controller, None
                    controller.checkpoint(force=True)
                    try:
                        save_restore_point(controller)
                    except Exception:  # a study never stops for its restore point
                        log.warning("could not save a restore point", exc_info=True)
            return super().choose_trial_to_run(tune_controller)

        def __getstate__(self) -> dict[str, Any]:
            state = self.__dict__.copy()
            state.pop("_controller", None)  # the live controller is never saved
            return state

    Snapshotting.__name__ = Snapshotting.__qualname__ = f"Snapshotting{base.__name__}"
    return Snapshotting


def __getattr__(name: str) -> Any:  # the Ray-derived classes, built on first use
    if name == "ProgressCallback":
        return _make_callback_class()
    if name == "PlateauStopper":
        return _make_stopper_class()
    raise AttributeError(name)


def init_ray(study: StudyConfig) -> None:
    """Connect to the cluster named by RAY_ADDRESS (a KubeRay RayJob sets it), else start a
    local Ray sized for the study.

    A local Ray started here ends with :func:`shutdown_ray` (``ray.init`` also registers it
    at exit) and, should this process be killed, by the reaper process Ray starts beside
    its head: a finished or killed study leaves no Ray processes behind.
    """
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # no dashboard; trial errors travel as exceptions, so worker logs stay out of the driver
    common: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.WARNING,
    }
    if os.environ.get("RAY_ADDRESS"):
        ray.init(**common)
        return
    cpus = max(2, math.ceil(study.concurrency * study.cpus_per_trial))
    for attempt in range(3):
        try:
            # "local": a Ray of this study's own, never another one found on the machine
            ray.init(address="local", num_cpus=cpus, object_store_memory=256 * 1024**2, **common)
            return
        except Exception as exc:
            # Ray gives its raylet a fixed time to register; on a busy machine it can miss
            # that once — start again rather than fail the study
            if "timed out during startup" not in str(exc) or attempt == 2:
                raise
            log.warning("local Ray did not start in time (%s); retrying", exc)
            shutdown_ray()


def shutdown_ray() -> None:
    """Disconnect from Ray, stopping the local Ray :func:`init_ray` started, if any."""
    import ray

    ray.shutdown()


def restorable(study: StudyConfig) -> bool:
    """Whether this study's storage holds an experiment to resume, made consistent for
    ``Tuner.restore`` by :func:`~augur.tuning._recovery.prepare_restore`.

    An experiment that cannot be resumed (its driver died before any trial ended, with
    its first snapshot torn) is moved aside, not deleted, and the study starts afresh."""
    from ray import tune

    path = experiment_path(study)
    if not tune.Tuner.can_restore(path):
        return False
    if prepare_restore(path):
        return True
    aside = set_aside(path)
    log.warning(
        "%s cannot be resumed (its driver died before any trial ended, mid-snapshot); "
        "moved to %s, starting the study afresh",
        path,
        aside,
    )
    return False


def build_tuner(study: StudyConfig, bars: Any, restore: bool | None = None) -> Any:
    """The Tuner for this study: restored from its storage if it exists there, else new."""
    import optuna
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    from augur.tuning._space import tune_search_space
    from augur.tuning._trainable import trial_function

    out = results_dir(study)
    out.mkdir(parents=True, exist_ok=True)
    trainable = tune.with_parameters(
        trial_function, study=study, bars=bars, cache_dir=str(cache_dir(study))
    )
    if study.cpus_per_trial != 1.0:
        trainable = tune.with_resources(trainable, {"cpu": study.cpus_per_trial})
    path = experiment_path(study)
    if restore is None:
        restore = restorable(study)
    if restore:
        return tune.Tuner.restore(path, trainable=trainable, resume_errored=True)

    sampler = optuna.samplers.TPESampler(seed=study.seed, multivariate=True)
    # METRIC/MODE are set once, in TuneConfig, which hands them to the searcher and the
    # scheduler. A two-objective searcher names its own pair instead (TuneConfig's single
    # metric would overwrite it; Ray's multi-objective Optuna example does the same), and
    # then the scheduler names the score it prunes on.
    ranking: dict[str, Any] = {"metric": METRIC, "mode": MODE}
    if study.multi_objective:
        optuna_search = OptunaSearch(
            metric=["total_return", "max_drawdown_pct"], mode=["max", "min"], sampler=sampler
        )
        tune_ranking, scheduler_ranking = {}, ranking
    else:
        optuna_search = OptunaSearch(sampler=sampler)
        tune_ranking, scheduler_ranking = ranking, {}
    searcher = ConcurrencyLimiter(optuna_search, max_concurrent=study.concurrency)
    n_folds = study.data.n_folds
    if study.pruning.enabled and n_folds > 1:
        scheduler: Any = _snapshotting(ASHAScheduler)(
            **scheduler_ranking,
            time_attr="training_iteration",
            max_t=n_folds,
            grace_period=min(study.pruning.grace_folds, n_folds),
            reduction_factor=study.pruning.reduction_factor,
        )
    else:
        scheduler = _snapshotting(FIFOScheduler)()
    callbacks = [_make_callback_class()(str(out / "progress.json"), study.trials, n_folds)]
    stop = None
    if study.early_stop_patience:
        stop = _make_stopper_class()(study.early_stop_patience, n_folds, study.early_stop_min_delta)
    return tune.Tuner(
        trainable,
        param_space=tune_search_space(study),
        tune_config=tune.TuneConfig(
            **tune_ranking,
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=study.trials,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=study.name,
            storage_path=study.resolved_storage(),
            stop=stop,
            callbacks=callbacks,
            failure_config=tune.FailureConfig(max_failures=study.max_failures),
            # keep every fold checkpoint: any num_to_keep makes Tune snapshot the whole
            # experiment after every num_to_keep checkpoints of a trial (see the module
            # docstring); the scheduler snapshots once per finished trial instead
            checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
            verbose=0,
        ),
    )


@dataclass
class StudyRun:
    """Outcome of :func:`run_study`: where things are and whether it resumed."""

    study: StudyConfig
    results_dir: Path
    resumed: bool
    seconds: float
    result_grid: Any


def prepare(study: StudyConfig, bars: Any) -> None:
    """Work shared by every trial, done once in the driver before trials start: for a
    study that searches only decision thresholds, the fixed model's out-of-sample
    predictions (cached on disk where the trials read them)."""
    from augur.tuning._objective import TrialScorer, model_searched

    if model_searched(study):
        return
    TrialScorer(study, bars, {}, cache_dir=cache_dir(study)).fixed_model_predictions()


def run_study(study: StudyConfig, bars: Any | None = None) -> StudyRun:
    """Run (or resume) a study to the end; returns the Ray ResultGrid and locations."""
    from augur.tuning._objective import load_study_bars

    # before Ray starts: a missing data range must fail here, naming the key
    if bars is None:
        bars = load_study_bars(study)
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", EXPERIMENT_CHECKPOINT_S)
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Tune's result loggers are off; its analysis would warn about their missing files
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    started = time.perf_counter()
    prepare(study, bars)
    init_ray(study)
    resumed = restorable(study)
    tuner = build_tuner(study, bars, restore=resumed)
    grid = tuner.fit()
    refresh_restore_point(experiment_path(study))
    return StudyRun(
        study=study,
        results_dir=results_dir(study),
        resumed=resumed,
        seconds=time.perf_counter() - started,
        result_grid=grid,
    )
