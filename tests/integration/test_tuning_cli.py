"""`augur tune --config … --promote` end to end: real Ray + Optuna, results on disk, and
the winner saved in the BentoML model store with its lineage."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from contextlib import suppress
from pathlib import Path

import pytest
import yaml

from tests.unit.tuning.helpers import TINY_MODEL, trending_bars

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
AUGUR = str(Path(sys.executable).parent / "augur")  # the console script of this venv


def test_tune_and_promote(tmp_path: Path) -> None:
    from augur.data import write_bars
    from augur.models import list_models

    write_bars(trending_bars(), tmp_path / "bars")
    study = {
        "name": "cli",
        "trials": 3,
        "concurrency": 2,
        "storage": str(tmp_path / "store"),
        "data": {"symbols": ["AAA"], "root": str(tmp_path / "bars"), "n_folds": 2},
        "fixed": TINY_MODEL,
        "search_space": {
            "decision.confidence_threshold": {"type": "float", "low": 0.0, "high": 0.6},
        },
        "sweep": {"decision.kelly_fraction": [0.25, 1.0]},
    }
    config = tmp_path / "cli.yaml"
    config.write_text(yaml.safe_dump(study))
    home = tmp_path / "home"
    env = {
        **os.environ,
        "AUGUR_HOME": str(home),
        "BENTOML_HOME": str(home / "bentoml"),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    proc = subprocess.Popen(
        [AUGUR, "tune", "--config", str(config), "--promote"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=600)
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, out[-3000:] + err[-3000:]
    assert "promoted as" in out and "best trial" in out

    results = tmp_path / "store" / "cli" / "augur"
    best = json.loads((results / "best.json").read_text())
    promoted = json.loads((results / "promoted.json").read_text())
    assert promoted["lineage"]["trial_id"] == best["trial_id"]
    records = list_models(store_dir=home / "bentoml")
    assert [r.tag for r in records] == [promoted["tag"]]
    lineage = records[0].metadata["tuning"]
    assert lineage["study"] == "cli" and lineage["trial_id"] == best["trial_id"]
    assert lineage["params"] == best["params"]
    assert set(lineage["walk_forward"]) >= {"score", "total_return", "max_drawdown_pct"}
    assert lineage["feature_spec_hash"] == records[0].metadata["feature_spec_hash"]
    assert lineage["data_range"]["start"] < lineage["data_range"]["end"]


def test_invalid_study_is_a_clear_cli_error(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({"name": "bad", "trials": 2, "objective": "profit"}))
    done = subprocess.run(
        [AUGUR, "tune", "--config", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "objective" in done.stderr and "Traceback" not in done.stderr
