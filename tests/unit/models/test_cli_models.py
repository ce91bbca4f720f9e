"""`augur train` and `augur models list` end to end on small synthetic bars."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from augur.cli import app
from augur.config import get_settings

SMALL = [
    "-p",
    "rf_n_estimators=10",
    "-p",
    "xgb_n_estimators=10",
    "-p",
    "quantile_n_estimators=10",
    "-p",
    "svm_max_samples=200",
    "-p",
    "calibration_folds=2",
]


@pytest.fixture
def home(monkeypatch, tmp_path):
    from augur.data import write_bars
    from tests.conftest import synthetic_bars

    monkeypatch.setenv("AUGUR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "home" / "bentoml"))
    monkeypatch.setenv("COLUMNS", "80")  # tables must still show every cell whole
    get_settings.cache_clear()
    write_bars(synthetic_bars(n=260))
    yield tmp_path / "home"
    get_settings.cache_clear()


def test_train_saves_a_version_and_list_shows_it(home) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["models", "list"])
    assert res.exit_code == 0 and "no ensemble versions" in res.output
    res = runner.invoke(app, ["train", "--symbols", "AAA,BBB", "--name", "cli-ens", *SMALL])
    assert res.exit_code == 0, res.output
    assert "saved cli-ens:" in res.output
    assert "ensemble" in res.output and "majority" in res.output
    assert "…" not in res.output
    res = runner.invoke(app, ["models", "list"])
    assert res.exit_code == 0, res.output
    assert "cli-ens:" in res.output and "AAA,BBB" in res.output and "…" not in res.output

    from augur.models import load_ensemble

    ens = load_ensemble("cli-ens:latest")  # hash of the running code's spec: matches
    assert ens.context["label_horizon"] == get_settings().label_horizon
    assert ens.volatility_ref is not None and ens.volatility_ref > 0


def test_train_user_errors_exit_nonzero_without_traceback(home) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["train", "--symbols", "NOPE"])
    assert res.exit_code == 1 and "NOPE" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["train", "-p", "rf_depth=3"])
    assert res.exit_code == 1 and "unknown ensemble parameter" in res.output
    res = runner.invoke(app, ["train", "-p", "garbage"])
    assert res.exit_code == 1 and "KEY=VALUE" in res.output
