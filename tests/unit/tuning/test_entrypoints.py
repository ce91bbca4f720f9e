"""Entry points without Ray: bad input exits non-zero before Ray starts, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from augur.tuning import parse_study, smoke_variant
from augur.tuning._runner import cache_dir, experiment_path, results_dir
from tests.unit.tuning.helpers import make_study
from tuning.run import main


def test_run_without_config_is_an_error(monkeypatch, capsys) -> None:
    monkeypatch.delenv("AUGUR_TUNING_CONFIG", raising=False)
    assert main([]) == 2
    assert "--config" in capsys.readouterr().err


def test_run_with_invalid_study_file(tmp_path: Path, bars_root: Path, capsys) -> None:
    raw = make_study(bars_root, tmp_path, objective="sortino")
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["--config", str(path)]) == 2
    assert "objective" in capsys.readouterr().err


def test_run_reads_yaml_text_from_the_environment(
    tmp_path: Path, bars_root: Path, monkeypatch, capsys
) -> None:
    raw = make_study(bars_root, tmp_path)
    raw["data"]["symbols"] = ["NOPE"]
    monkeypatch.setenv("AUGUR_TUNING_CONFIG", yaml.safe_dump(raw))
    assert main([]) == 2
    assert "data.symbols" in capsys.readouterr().err


def test_cli_tune_invalid_study(tmp_path: Path, bars_root: Path) -> None:
    from augur.cli import app

    raw = make_study(bars_root, tmp_path)
    raw["search_space"]["decision.kelly_fraction"] = {"type": "float", "low": 1.0, "high": 0.1}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(app, ["tune", "--config", str(path)])
    assert result.exit_code == 2
    assert "empty range" in result.output


def test_cli_promote_only_needs_a_finished_study(tmp_path: Path, bars_root: Path) -> None:
    from augur.cli import app

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(make_study(bars_root, tmp_path)))
    result = CliRunner().invoke(app, ["tune", "--config", str(path), "--promote-only"])
    assert result.exit_code == 1
    assert "no best.json" in result.output


def test_locations(tmp_path: Path, bars_root: Path, monkeypatch) -> None:
    study = parse_study(make_study(bars_root, tmp_path))
    assert experiment_path(study) == f"{(tmp_path / 'store').resolve()}/unit"
    assert results_dir(study) == (tmp_path / "store" / "unit" / "augur").resolve()
    assert cache_dir(study) == (tmp_path / "store" / ".oos-cache").resolve()
    remote = study.model_copy(update={"storage": "s3://bucket/tuning/"})
    assert experiment_path(remote) == "s3://bucket/tuning/unit"
    monkeypatch.setenv("AUGUR_HOME", str(tmp_path / "home"))
    from augur.config import get_settings

    get_settings.cache_clear()
    try:
        assert results_dir(remote) == (tmp_path / "home" / "tuning-results" / "unit").resolve()
    finally:
        get_settings.cache_clear()


def test_smoke_variant_is_small_and_separate(tmp_path: Path, bars_root: Path) -> None:
    raw = make_study(bars_root, tmp_path, trials=50, early_stop_patience=5)
    raw["data"]["n_folds"] = 4
    raw["fixed"] = {}
    smoke = smoke_variant(parse_study(raw))
    assert smoke.name == "unit-smoke" and smoke.trials == 4 and smoke.data.n_folds == 2
    assert smoke.fixed["model.rf_n_estimators"] == 10 and smoke.early_stop_patience is None


def test_plateau_stopper_and_progress_callback(tmp_path: Path) -> None:
    import json
    from types import SimpleNamespace

    from augur.tuning._runner import _make_callback_class, _make_stopper_class

    stopper = _make_stopper_class()(patience=2, n_folds=2)
    assert not stopper("a", {"fold": 1, "score": 1.0}) and not stopper.stop_all()
    stopper("b", {"fold": 0, "score": 5.0})  # an unfinished trial does not count
    stopper("c", {"fold": 1, "score": 0.5})
    assert not stopper.stop_all()
    stopper("d", {"fold": 1, "score": 0.9})
    assert stopper.stop_all()
    # with a minimum improvement, gains by a hair do not reset the count
    hair = _make_stopper_class()(patience=2, n_folds=2, min_delta=0.01)
    for value in (1.0, 1.005, 1.009):
        hair("t", {"fold": 1, "score": value})
    assert hair.stop_all() and hair.best == 1.0

    path = tmp_path / "progress.json"
    cb = _make_callback_class()(str(path), total=3, n_folds=2)
    trial = SimpleNamespace(
        trial_id="t1", last_result={"fold": 1, "score": 2.0, "evaluated_at": 5.0}, error_file=None
    )
    cb.on_trial_result(0, [], trial, {"fold": 0, "pid": 42})
    assert not path.exists()  # written once per controller step, at its end
    cb.on_step_end(0, [])
    assert json.loads(path.read_text())["running"] == {"t1": {"fold": 0, "worker_pid": 42}}
    # another fold result within min_interval: the file waits (fold moves are not urgent)
    cb.on_trial_result(0, [], trial, {"fold": 1, "pid": 42})
    cb.on_step_end(0, [])
    assert json.loads(path.read_text())["running"]["t1"]["fold"] == 0
    cb._written -= cb.min_interval
    cb.on_step_end(0, [])
    assert json.loads(path.read_text())["running"]["t1"]["fold"] == 1
    cb.on_trial_complete(0, [], trial)  # a trial that ends is written at once
    cb.on_trial_error(0, [], SimpleNamespace(trial_id="t2", error_file="/x/error.txt"))
    cb.on_step_end(1, [])
    state = json.loads(path.read_text())
    assert state["trials_done"] == 2 and state["best"] == 2.0 and state["running"] == {}
    restored = _make_callback_class()(str(path), total=3, n_folds=2)
    restored.set_state(cb.get_state())
    assert restored.completed == cb.completed and restored.best == 2.0


@pytest.mark.parametrize("name", ["quick", "bench", "full"])
def test_committed_studies_smoke_variant_validates(name: str) -> None:
    from augur.tuning import load_study

    path = Path(__file__).resolve().parents[3] / "tuning" / "studies" / f"{name}.yaml"
    smoke = smoke_variant(load_study(path, check_data=False))
    assert smoke.trials <= 4


def test_progress_bar_reads_progress_file(tmp_path: Path) -> None:
    import io
    import json
    import threading
    import time

    from rich.console import Console

    from augur.cli.tune import _eta, _watch

    assert _eta({"trials_done": 0, "trials_total": 10}) == "—"
    assert _eta({"trials_done": 5, "trials_total": 10, "started": time.time() - 50}).startswith(
        "0m5"
    )
    path = tmp_path / "progress.json"
    path.write_text(
        json.dumps({"trials_done": 3, "trials_total": 6, "best": 1.25, "started": time.time()})
    )
    out = io.StringIO()

    class Stop(threading.Event):
        """The watcher's stop event, noting when the watcher first waits on it: by then it
        has read the file once and updated its bar. (To a console that is not a terminal
        rich writes the bar only when it stops, so there is no output to poll before.)"""

        polled = threading.Event()

        def wait(self, timeout: float | None = None) -> bool:
            self.polled.set()
            return super().wait(timeout)

    stop = Stop()
    watcher = threading.Thread(target=_watch, args=(path, 6, stop, Console(file=out, width=120)))
    watcher.start()
    assert stop.polled.wait(timeout=30)  # it read the progress file and updated the bar
    stop.set()
    watcher.join(timeout=30)
    assert not watcher.is_alive()
    text = out.getvalue()
    assert "3/6" in text and "best 1.2500" in text


def test_scheduler_snapshots_the_experiment_once_soon_after_a_trial_ends() -> None:
    from types import SimpleNamespace

    from ray.tune.schedulers import FIFOScheduler

    from augur.tuning._runner import _snapshotting

    calls: list[bool] = []
    controller = SimpleNamespace(checkpoint=lambda force=False: calls.append(force))
    scheduler = _snapshotting(FIFOScheduler)()
    wrapped = SimpleNamespace(get_trials=lambda: [])  # what Tune passes each step
    scheduler.choose_trial_to_run(wrapped)
    assert calls == []  # nothing ended: no snapshot
    scheduler.on_trial_complete(controller, SimpleNamespace(trial_id="t1"), {"score": 1.0})
    assert calls == []  # not inside the completion: the trial is not TERMINATED yet
    scheduler.choose_trial_to_run(wrapped)
    assert calls == []  # the step that hands the freed worker its next trial
    scheduler.choose_trial_to_run(wrapped)
    scheduler.choose_trial_to_run(wrapped)
    assert calls == [True]  # one forced snapshot, the step after
    scheduler.on_trial_error(controller, SimpleNamespace(trial_id="t2"))
    scheduler.choose_trial_to_run(wrapped)
    scheduler.choose_trial_to_run(wrapped)
    assert calls == [True, True]
    import ray.cloudpickle as pickle

    scheduler._controller = controller
    assert "_controller" not in pickle.loads(pickle.dumps(scheduler)).__dict__
