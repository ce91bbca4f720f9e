"""A consistent restore point for a study, whatever moment its driver was killed at.

Tune snapshots an experiment as several files (the experiment state with every trial,
the SearchGenerator/ConcurrencyLimiter counters, the pickled Optuna study, the callbacks'
state), written to a driver staging folder and then copied to the storage path by a
background thread, file by file, each overwritten in place. A driver SIGKILLed during
that copy can leave storage with files from two different snapshots, or a searcher file
missing or cut short. ``Tuner.restore`` then fails or, worse, resumes wrongly:

* no searcher file: Tune skips restoring the searcher and OptunaSearch has no search
  space ("no search space has been defined");
* a searcher older than the experiment state: running trials report to a searcher that
  never suggested them (``KeyError`` in ``on_trial_result``).

So after each snapshot the scheduler asks for (:func:`save_restore_point`), the set of
files that snapshot wrote (complete: Tune writes them synchronously before its copy
starts) is bundled into one file and written to storage atomically (a temporary name,
then a rename). Before a restore, :func:`prepare_restore` puts that bundle's files back
as the experiment's newest snapshot. A restore point is at most one trial old; a
running trial then resumes from the fold checkpoint it records, as after any snapshot.
"""

from __future__ import annotations

import fnmatch
import logging
import pickle
import time
import uuid
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

__all__ = [
    "RESTORE_POINT",
    "RestorePoint",
    "prepare_restore",
    "refresh_restore_point",
    "save_restore_point",
    "set_aside",
]

log = logging.getLogger(__name__)

#: The bundle's name inside the experiment folder.
RESTORE_POINT = "augur-restore-point.pkl"

#: Tune's snapshot files, ``{}`` being the session (the driver's start time).
_SNAPSHOT_FILES = (
    "experiment_state-{}.json",  # TuneController.CKPT_FILE_TMPL
    "search_gen_state-{}.json",  # SearchGenerator.CKPT_FILE_TMPL
    "searcher-state-{}.pkl",  # Searcher.CKPT_FILE_TMPL (the Optuna study)
    "callback-states-{}.pkl",  # CallbackList.CKPT_FILE_TMPL
)
#: Without these a restore cannot continue the search.
_REQUIRED = _SNAPSHOT_FILES[:3]


@dataclass(frozen=True)
class RestorePoint:
    """One complete Tune snapshot: its session and its files' bytes."""

    session: str
    files: dict[str, bytes]
    saved_at: float


def _fs(path: str) -> tuple[Any, str]:
    import pyarrow.fs

    return pyarrow.fs.FileSystem.from_uri(path)  # type: ignore[no-any-return]


def _write_atomic(fs: Any, fs_path: str, data: bytes) -> None:
    parent = str(PurePosixPath(fs_path).parent)
    tmp = f"{parent}/.{uuid.uuid4().hex}.tmp"
    with fs.open_output_stream(tmp) as out:
        out.write(data)
    fs.move(tmp, fs_path)  # a rename on a local disk; one object put on object stores


def _read(fs: Any, fs_path: str) -> bytes | None:
    import pyarrow.fs

    if fs.get_file_info(fs_path).type != pyarrow.fs.FileType.File:
        return None
    with fs.open_input_stream(fs_path) as src:
        return bytes(src.readall())


def _collect(fs: Any, folder: str, session: str) -> dict[str, bytes]:
    """The snapshot files of ``session`` found in ``folder``, by name."""
    files = {}
    for template in _SNAPSHOT_FILES:
        data = _read(fs, f"{folder}/{template.format(session)}")
        if data is not None:
            files[template.format(session)] = data
    return files


def _store(fs: Any, root: str, session: str, files: dict[str, bytes]) -> None:
    """Write ``files`` as the experiment's restore point, in one atomic write."""
    point = RestorePoint(session=session, files=files, saved_at=time.time())
    _write_atomic(
        fs, f"{root}/{RESTORE_POINT}", pickle.dumps(point, protocol=pickle.HIGHEST_PROTOCOL)
    )


def save_restore_point(controller: Any) -> None:
    """Bundle the snapshot the controller just wrote to its staging folder and store it
    atomically in the experiment folder (called right after
    ``controller.checkpoint(force=True)``, which writes the files synchronously)."""
    import pyarrow.fs

    storage = controller._storage
    session = controller._session_str
    files = _collect(pyarrow.fs.LocalFileSystem(), storage.experiment_driver_staging_path, session)
    missing = [t.format(session) for t in _REQUIRED if t.format(session) not in files]
    if missing:  # not a snapshot this module understands: keep the last good point
        log.warning("no restore point saved: the snapshot lacks %s", ", ".join(missing))
        return
    _store(storage.storage_filesystem, storage.experiment_fs_path, session, files)


def load_restore_point(experiment: str) -> RestorePoint | None:
    """The experiment's restore point, or None if it has none (or it cannot be read)."""
    fs, root = _fs(experiment)
    try:
        data = _read(fs, f"{root}/{RESTORE_POINT}")
        point = pickle.loads(data) if data is not None else None
    except Exception as exc:  # written atomically, so only a foreign file lands here
        log.warning("ignoring the unreadable restore point in %s: %s", experiment, exc)
        return None
    return point if isinstance(point, RestorePoint) else None


def _snapshot_names(fs: Any, root: str) -> list[str]:
    import pyarrow.fs

    selector = pyarrow.fs.FileSelector(root, allow_not_found=True, recursive=False)
    patterns = [t.format("*") for t in _SNAPSHOT_FILES]
    return [
        info.base_name
        for info in fs.get_file_info(selector)
        if info.type == pyarrow.fs.FileType.File
        and any(fnmatch.fnmatch(info.base_name, p) for p in patterns)
    ]


def _newest_complete_session(fs: Any, root: str) -> str | None:
    """The newest session in storage if it has every file a restore needs, else None."""
    names = set(_snapshot_names(fs, root))
    states = sorted(n for n in names if fnmatch.fnmatch(n, _SNAPSHOT_FILES[0].format("*")))
    if not states:
        return None
    session = states[-1][len("experiment_state-") : -len(".json")]
    return session if all(t.format(session) in names for t in _REQUIRED) else None


def refresh_restore_point(experiment: str) -> None:
    """After a study ended normally (Tune's last snapshot was copied to storage and
    waited for), make that snapshot the restore point: a later run with a larger trial
    budget continues from the end, not from the last trial's start."""
    fs, root = _fs(experiment)
    session = _newest_complete_session(fs, root)
    if session is not None:
        _store(fs, root, session, _collect(fs, root, session))


def prepare_restore(experiment: str) -> bool:
    """Make the experiment's newest snapshot a consistent one before ``Tuner.restore``.

    With a restore point: Tune's snapshot files of every session are replaced by the
    point's (each written atomically; if this is interrupted, the next attempt redoes
    it). Without one (the driver died before its first trial ended), Tune's own files
    are used if the newest session has all of them. Returns False when the experiment
    cannot be restored: the caller starts the study afresh (nothing finished is lost,
    since no trial had ended).
    """
    fs, root = _fs(experiment)
    point = load_restore_point(experiment)
    if point is None:
        return _newest_complete_session(fs, root) is not None
    for name in _snapshot_names(fs, root):
        if name not in point.files:
            fs.delete_file(f"{root}/{name}")  # a later, possibly torn snapshot
    for name, data in point.files.items():
        _write_atomic(fs, f"{root}/{name}", data)
    log.info(
        "restoring from the snapshot of %s (session %s)",
        time.strftime("%H:%M:%S", time.localtime(point.saved_at)),
        point.session,
    )
    return True


def set_aside(experiment: str) -> str:
    """Move an experiment that cannot be resumed out of the way (kept, not deleted);
    returns where it went."""
    fs, root = _fs(experiment)
    aside = f"{root}.unrestorable-{time.strftime('%Y%m%d-%H%M%S')}"
    fs.move(root, aside)
    return aside
