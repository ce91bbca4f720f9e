"""`augur weights show | freeze | unfreeze`: the shared member weights in the prediction
log, frozen and unfrozen by version; a version no outcome has moved starts its row from
the weights it was trained with (read from the model store)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from augur.cli import app
from augur.config import get_settings
from augur.models import DynamicWeights
from augur.monitoring import PredictionLog, default_log_url

TAG = "augur-ensemble:v1"


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("AUGUR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "home" / "bentoml"))
    monkeypatch.delenv("AUGUR_PREDICTION_LOG_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "120")
    get_settings.cache_clear()
    yield tmp_path / "home"
    get_settings.cache_clear()


def test_freeze_and_unfreeze_a_version_with_shared_weights(home: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(app, ["weights", "show"])
    assert r.exit_code == 0 and "no version's weights" in r.output
    log = PredictionLog(default_log_url(get_settings()), start=False)
    base = DynamicWeights(["rf", "xgb"], decay=0.5, floor=0.0)
    log.update_weights(TAG, base, [(np.array([[0.1, 0.1, 0.8], [0.5, 0.3, 0.2]]), 1)])
    r = runner.invoke(app, ["weights", "freeze", TAG])
    assert r.exit_code == 0, r.output
    assert "frozen (1 outcomes folded in)" in r.output
    assert log.weights()[TAG].frozen
    r = runner.invoke(app, ["weights", "show"])
    assert r.exit_code == 0 and TAG in r.output and "yes" in r.output
    r = runner.invoke(app, ["weights", "unfreeze", TAG])
    assert r.exit_code == 0 and "following outcomes" in r.output
    assert not log.weights()[TAG].frozen
    log.close()


def test_freezing_an_unknown_version_names_it(home: Path) -> None:
    r = CliRunner().invoke(app, ["weights", "freeze", "nosuch:v9"])
    assert r.exit_code == 1
    assert "nosuch:v9" in r.output
