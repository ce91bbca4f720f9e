"""The restore point: a whole Tune snapshot kept atomically, put back before a restore."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pyarrow.fs
import pytest

from augur.tuning._recovery import (
    RESTORE_POINT,
    load_restore_point,
    prepare_restore,
    refresh_restore_point,
    save_restore_point,
)

OLD, NEW = "2026-11-22_05-00-00", "2026-11-22_06-00-00"


def _snapshot(folder: Path, session: str, marker: str, *, callbacks: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"experiment_state-{session}.json").write_text(f'{{"m": "{marker}"}}')
    (folder / f"search_gen_state-{session}.json").write_bytes(f"gen {marker}".encode())
    (folder / f"searcher-state-{session}.pkl").write_bytes(f"optuna {marker}".encode())
    if callbacks:
        (folder / f"callback-states-{session}.pkl").write_bytes(f"cb {marker}".encode())


def _controller(staging: Path, experiment: Path, session: str) -> SimpleNamespace:
    storage = SimpleNamespace(
        experiment_driver_staging_path=str(staging),
        storage_filesystem=pyarrow.fs.LocalFileSystem(),
        experiment_fs_path=str(experiment),
    )
    return SimpleNamespace(_storage=storage, _session_str=session)


def test_a_torn_snapshot_is_replaced_by_the_restore_point(tmp_path: Path) -> None:
    staging, experiment = tmp_path / "staging", tmp_path / "store" / "study"
    _snapshot(staging, NEW, "whole")
    experiment.mkdir(parents=True)
    save_restore_point(_controller(staging, experiment, NEW))
    assert (experiment / RESTORE_POINT).is_file()
    assert not [p for p in experiment.iterdir() if p.name.endswith(".tmp")]

    # storage as a kill mid-copy leaves it: a newer experiment state, no searcher files
    _snapshot(experiment, OLD, "older session")
    (experiment / f"experiment_state-{NEW}.json").write_text('{"m": "torn')
    (experiment / "experiment_state-2026-11-22_07-00-00.json").write_text("{}")

    assert prepare_restore(str(experiment)) is True
    names = sorted(p.name for p in experiment.iterdir() if p.name != RESTORE_POINT)
    assert names == sorted(
        f"{kind}-{NEW}.{ext}"
        for kind, ext in [
            ("experiment_state", "json"),
            ("search_gen_state", "json"),
            ("searcher-state", "pkl"),
            ("callback-states", "pkl"),
        ]
    )
    assert (experiment / f"experiment_state-{NEW}.json").read_text() == '{"m": "whole"}'
    assert (experiment / f"searcher-state-{NEW}.pkl").read_bytes() == b"optuna whole"


def test_an_incomplete_staging_snapshot_keeps_the_last_good_point(tmp_path: Path) -> None:
    staging, experiment = tmp_path / "staging", tmp_path / "study"
    _snapshot(staging, OLD, "good")
    experiment.mkdir()
    save_restore_point(_controller(staging, experiment, OLD))
    _snapshot(staging, NEW, "partial")
    (staging / f"searcher-state-{NEW}.pkl").unlink()
    save_restore_point(_controller(staging, experiment, NEW))
    point = load_restore_point(str(experiment))
    assert point is not None and point.session == OLD


def test_without_a_restore_point_tunes_own_snapshot_is_used_only_if_complete(
    tmp_path: Path,
) -> None:
    experiment = tmp_path / "study"
    _snapshot(experiment, OLD, "complete", callbacks=False)
    assert prepare_restore(str(experiment)) is True
    (experiment / f"experiment_state-{NEW}.json").write_text("{}")  # newest, no searcher
    assert prepare_restore(str(experiment)) is False
    assert prepare_restore(str(tmp_path / "nothing")) is False


def test_a_study_that_ended_leaves_its_final_snapshot_as_the_point(tmp_path: Path) -> None:
    experiment = tmp_path / "study"
    _snapshot(experiment, NEW, "final")
    refresh_restore_point(str(experiment))
    point = load_restore_point(str(experiment))
    assert point is not None and point.session == NEW
    assert point.files[f"search_gen_state-{NEW}.json"] == b"gen final"


def test_an_unreadable_restore_point_is_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    experiment = tmp_path / "study"
    _snapshot(experiment, OLD, "tune's")
    (experiment / RESTORE_POINT).write_bytes(b"not a pickle")
    assert load_restore_point(str(experiment)) is None
    assert "unreadable restore point" in caplog.text
    assert prepare_restore(str(experiment)) is True  # falls back to Tune's complete files


def test_a_study_that_cannot_resume_is_moved_aside_and_starts_afresh(
    tmp_path: Path, bars_root: Path
) -> None:
    from augur.tuning import parse_study
    from augur.tuning._runner import restorable
    from tests.unit.tuning.helpers import make_study

    study = parse_study(make_study(bars_root, tmp_path))
    experiment = tmp_path / "store" / "unit"
    assert restorable(study) is False  # nothing stored yet

    _snapshot(experiment, OLD, "killed before any trial ended")
    (experiment / "tuner.pkl").write_bytes(b"tuner")
    (experiment / f"searcher-state-{OLD}.pkl").unlink()
    assert restorable(study) is False
    assert not experiment.exists()
    (aside,) = (tmp_path / "store").glob("unit.unrestorable-*")
    assert (aside / "tuner.pkl").read_bytes() == b"tuner"  # kept, not deleted

    _snapshot(experiment, OLD, "complete")
    (experiment / "tuner.pkl").write_bytes(b"tuner")
    assert restorable(study) is True
