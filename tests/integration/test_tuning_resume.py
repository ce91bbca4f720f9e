"""Kill-and-resume of a tuning study with real Ray and real processes.

The driver (``python -m tuning.run``) is SIGKILLed after >= 3 trials finished; running
the same command again resumes: finished trials are not re-run (their fold results keep
the time they were computed), the study ends with exactly N trials and the best value is
at least the best before the kill. A SIGKILLed trial worker is retried from its last
fold checkpoint (FailureConfig): it continues at its next fold, and the study still
ends with every trial complete, none failed. A driver that ends — finished, failed or
SIGKILLed — leaves none of Ray's processes behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
N_TRIALS = 8


def _bars(n: int = 700) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    eps = rng.normal(0, 0.004, n)
    r = np.zeros(n)
    for i in range(1, n):
        r[i] = 0.4 * r[i - 1] + eps[i]
    close = 100 * np.exp(np.cumsum(r))
    open_ = np.r_[close[0], close[:-1]]
    return pd.DataFrame(
        {
            "timestamp": pd.date_range("2021-01-04", periods=n, freq="h", tz="UTC"),
            "symbol": "AAA",
            "open": open_,
            "high": np.maximum(open_, close) * 1.001,
            "low": np.minimum(open_, close) * 0.999,
            "close": close,
            "volume": 1000.0,
        }
    )


@pytest.fixture(scope="module")
def bars_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from augur.data import write_bars

    root = tmp_path_factory.mktemp("bars")
    write_bars(_bars(), root)
    return root


def _study(tmp: Path, bars_root: Path, name: str, **extra: Any) -> Path:
    study = {
        "name": name,
        "trials": N_TRIALS,
        "concurrency": 2,
        "seed": 11,
        "storage": str(tmp / "store"),
        "data": {"symbols": ["AAA"], "root": str(bars_root), "n_folds": 2},
        "pruning": {"enabled": False},
        "max_failures": 2,
        "fixed": {
            "model.rf_n_estimators": 8,
            "model.xgb_n_estimators": 8,
            "model.quantile_n_estimators": 8,
            "model.svm_max_samples": 150,
        },
        # a model dimension: every trial fits, so trials take a few seconds each
        "search_space": {
            "model.rf_max_depth": {"type": "int", "low": 2, "high": 8},
            "decision.confidence_threshold": {"type": "float", "low": 0.0, "high": 0.6},
        },
        **extra,
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def _env(tmp: Path) -> dict[str, str]:
    return {
        **os.environ,
        "AUGUR_HOME": str(tmp / "home"),
        "BENTOML_HOME": str(tmp / "home" / "bentoml"),
        "RAY_USAGE_STATS_ENABLED": "0",
    }


def _start(config: Path, tmp: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tuning.run", "--config", str(config)],
        cwd=REPO,
        env=_env(tmp),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: we can clean up what it started
    )


def _progress(tmp: Path, name: str) -> dict[str, Any]:
    try:
        return json.loads((tmp / "store" / name / "augur" / "progress.json").read_text())
    except (OSError, ValueError):
        return {}


def _wait(proc: subprocess.Popen[str], until: Any, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = until()
        if state:
            return state
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"the study ended before the condition was met:\n{out[-3000:]}")
        time.sleep(0.2)
    _kill_group(proc)
    pytest.fail(f"condition not met within {timeout}s")


def _assert_no_processes_left(proc: subprocess.Popen[str], timeout: float = 60) -> None:
    """Everything the driver started (Ray's head, its agents, the trial workers: all in the
    driver's process group) ends by itself within ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    ps = subprocess.run(["ps", "-eo", "pgid=,pid=,args="], capture_output=True, text=True)
    left = [line for line in ps.stdout.splitlines() if line.split()[:1] == [str(proc.pid)]]
    pytest.fail("processes outlived the study's driver:\n" + "\n".join(left))


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def _run(config: Path, tmp: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the entry point to the end; on a timeout, end everything it started."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuning.run", "--config", str(config)],
        cwd=REPO,
        env=_env(tmp),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
        _assert_no_processes_left(proc)
    finally:
        _kill_group(proc)  # whatever is left after a timeout or a failed assertion
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _finish(config: Path, tmp: Path, timeout: float = 600) -> dict[str, Any]:
    done = _run(config, tmp, timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _kill_driver_after_three_trials(
    config: Path, tmp: Path, name: str
) -> tuple[dict[str, Any], subprocess.Popen[str]]:
    """Start the study, SIGKILL its driver once >= 3 trials finished; the progress then, and
    the killed driver (for :func:`_killed_driver_left_nothing`)."""
    proc = _start(config, tmp)
    before = _wait(
        proc,
        lambda: (p := _progress(tmp, name)).get("trials_completed", 0) >= 3 and p,
        400,
    )
    proc.send_signal(signal.SIGKILL)  # the driver only: no clean shutdown, no final save
    proc.wait(timeout=30)
    assert before["trials_completed"] < N_TRIALS, "the study finished before the kill"
    return before, proc


def _killed_driver_left_nothing(proc: subprocess.Popen[str]) -> None:
    """What the killed driver had started ends without help. Ray's dashboard and runtime-env
    agents are the slowest: they see their raylet die at once but first try to report it
    to the (dead) GCS, for about a minute; the resumed run has taken part of that time."""
    _assert_no_processes_left(proc, timeout=120)


def _finish_resumed(config: Path, tmp: Path) -> tuple[dict[str, Any], pd.DataFrame]:
    """Run the killed study again to its end: it resumed, and ends with exactly N trials,
    all complete. Its summary and trial table."""
    summary = _finish(config, tmp)
    assert summary["resumed"] is True
    assert summary["trials_run"] == N_TRIALS
    table = pd.read_parquet(Path(summary["results_dir"]) / "trials.parquet")
    assert len(table) == N_TRIALS and table["trial_id"].is_unique
    assert (table["status"] == "complete").all()
    return summary, table


def test_killed_driver_resumes_without_rerunning_finished_trials(
    tmp_path: Path, bars_root: Path
) -> None:
    config = _study(tmp_path, bars_root, "resume")
    before, killed = _kill_driver_after_three_trials(config, tmp_path, "resume")
    try:
        summary, table = _finish_resumed(config, tmp_path)
        _killed_driver_left_nothing(killed)
    finally:
        _kill_group(killed)
    for trial_id, seen in before["completed"].items():
        row = table[table["trial_id"] == trial_id]
        assert len(row) == 1, f"finished trial {trial_id} is missing after the resume"
        # not re-run: its result is the one computed before the kill
        assert row["evaluated_at"].iloc[0] == pytest.approx(seen["evaluated_at"])
    assert summary["best"]["score"] >= before["best"] - 1e-12
    best = json.loads((Path(summary["results_dir"]) / "best.json").read_text())
    assert best["trial_id"] == summary["best"]["trial_id"]


def _tear_snapshot(experiment: Path) -> list[str]:
    """Leave storage the way a kill during Tune's copy of a snapshot can: the searcher's
    files gone (Tune then restores no search space) and the experiment state cut short."""
    torn = []
    for path in sorted(experiment.iterdir()):
        if path.name.startswith(("search_gen_state-", "searcher-state-")):
            path.unlink()
            torn.append(path.name)
        elif path.name.startswith("experiment_state-"):
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
            torn.append(path.name)
    return torn


def test_killed_driver_resumes_from_a_torn_snapshot(tmp_path: Path, bars_root: Path) -> None:
    config = _study(tmp_path, bars_root, "torn")
    before, killed = _kill_driver_after_three_trials(config, tmp_path, "torn")
    try:
        torn = _tear_snapshot(tmp_path / "store" / "torn")
        assert any(n.startswith("searcher-state-") for n in torn), torn
        summary, table = _finish_resumed(config, tmp_path)
        _killed_driver_left_nothing(killed)
    finally:
        _kill_group(killed)
    # the restore point is at most one trial old: all but the last trial that finished
    # before the kill keep the result computed then
    kept = [
        trial_id
        for trial_id, seen in before["completed"].items()
        if (row := table[table["trial_id"] == trial_id]).shape[0] == 1
        and row["evaluated_at"].iloc[0] == pytest.approx(seen["evaluated_at"])
    ]
    assert len(kept) >= len(before["completed"]) - 1, (kept, before["completed"])
    assert summary["best"]["score"] >= before["best"] - 1e-12


def _trial_dir(tmp: Path, name: str, trial_id: str) -> Path | None:
    """The trial's folder in storage (its fold checkpoints and, after a failure, error.txt)."""
    found = sorted((tmp / "store" / name).glob(f"trial_function_{trial_id}_*"))
    return found[0] if found else None


def _checkpoint_states(trial_dir: Path) -> list[dict[str, Any]]:
    """The trainable's state in each of the trial's fold checkpoints, in the order written."""
    return [
        json.loads(path.read_text()) for path in sorted(trial_dir.glob("checkpoint_*/state.json"))
    ]


def test_killed_trial_worker_is_retried_from_its_checkpoint(
    tmp_path: Path, bars_root: Path
) -> None:
    """A worker SIGKILLed after its trial checkpointed fold 0 but before fold 1 ended: the
    retried trial continues at fold 1 with the checkpointed state (fold 0 is not computed
    again), and the study still ends with every trial complete."""
    trials = 4
    # bigger models than the other studies here: a fold takes long enough (about a second
    # or more) that the kill reliably lands while the victim's fold 1 is running
    config = _study(
        tmp_path,
        bars_root,
        "worker",
        trials=trials,
        fixed={
            "model.rf_n_estimators": 150,
            "model.xgb_n_estimators": 150,
            "model.quantile_n_estimators": 150,
            "model.svm_max_samples": 400,
        },
    )
    proc = _start(config, tmp_path)

    def mid_trial_worker() -> dict[str, Any] | None:
        """A trial whose fold 0 is checkpointed in storage and whose fold 1 is not."""
        for trial_id, info in _progress(tmp_path, "worker").get("running", {}).items():
            trial_dir = _trial_dir(tmp_path, "worker", trial_id)
            if (
                info.get("worker_pid")
                and trial_dir is not None
                and (trial_dir / "checkpoint_000000" / "state.json").exists()
                and not (trial_dir / "checkpoint_000001").exists()
            ):
                return {"trial_id": trial_id, "trial_dir": trial_dir, **info}
        return None

    victim = _wait(proc, mid_trial_worker, 400)
    killed_at = time.time()
    os.kill(int(victim["worker_pid"]), signal.SIGKILL)
    try:
        out, _ = proc.communicate(timeout=600)
        _assert_no_processes_left(proc)
    finally:
        _kill_group(proc)
    assert proc.returncode == 0, out[-3000:]
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["trials_run"] == trials
    assert summary["trials_failed"] == 0
    table = pd.read_parquet(Path(summary["results_dir"]) / "trials.parquet")
    assert victim["trial_id"] in set(table["trial_id"])
    assert (table["status"] == "complete").all()

    # the kill hit this trial, mid-trial: Tune recorded its worker's death...
    trial_dir: Path = victim["trial_dir"]
    error = (trial_dir / "error.txt").read_text() if (trial_dir / "error.txt").exists() else ""
    assert f"pid: {victim['worker_pid']}" in error, (
        f"trial {victim['trial_id']} has no failure of worker {victim['worker_pid']}: "
        f"the kill did not land while it ran\n{error[-1500:]}"
    )
    # ...and its folds: fold 0 computed once, before the kill; fold 1 only after it, by
    # the retry, which started at the checkpoint's next fold with its state
    states = _checkpoint_states(trial_dir)
    folds = [state["last_result"]["fold"] for state in states]
    assert folds == [0, 1], (
        f"fold checkpoints of the retried trial hold folds {folds}: fold 0 was computed "
        "again (the retry did not resume from its checkpoint)"
        if folds.count(0) > 1
        else f"fold checkpoints of the retried trial hold folds {folds}, expected [0, 1]"
    )
    assert [state["next_fold"] for state in states] == [1, 2]
    first, second = (state["last_result"] for state in states)
    assert first["evaluated_at"] < killed_at < second["evaluated_at"], (
        f"fold 0 at {first['evaluated_at']}, kill at {killed_at}, fold 1 at "
        f"{second['evaluated_at']}: the kill must fall between the two folds"
    )
    # the retry carried the checkpointed state: the trial's CPU seconds include fold 0's
    assert second["cpu_s"] > first["cpu_s"]
    row = table[table["trial_id"] == victim["trial_id"]]
    assert row["evaluated_at"].iloc[0] == pytest.approx(second["evaluated_at"])


def test_invalid_study_fails_before_ray_starts(tmp_path: Path, bars_root: Path) -> None:
    config = _study(
        tmp_path,
        bars_root,
        "invalid",
        search_space={"model.rf_depth": {"type": "int", "low": 2, "high": 8}},
    )
    started = time.monotonic()
    done = _run(config, tmp_path, 120)
    assert done.returncode == 2
    assert "search_space.model.rf_depth" in done.stderr and "unknown parameter" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "store").exists()  # Ray never ran
    assert time.monotonic() - started < 60


def test_every_trial_failing_exits_non_zero_with_the_first_error(
    tmp_path: Path, bars_root: Path
) -> None:
    # more folds than the data has timestamps for: every trial raises in its first fold
    config = _study(tmp_path, bars_root, "failing", trials=2, max_failures=0)
    raw = yaml.safe_load(config.read_text())
    raw["data"]["n_folds"] = 5000
    config.write_text(yaml.safe_dump(raw))
    done = _run(config, tmp_path, 600)
    assert done.returncode == 3, done.stdout[-2000:] + done.stderr[-2000:]
    assert "every trial failed" in done.stderr and "too few" in done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["trials_failed"] == 2
