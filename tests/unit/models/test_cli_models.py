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


def test_train_saves_the_decision_thresholds_given(home) -> None:
    from augur.decision import DecisionConfig
    from augur.models import list_models, load_version

    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "train",
            "--name",
            "tuned",
            *SMALL,
            "--decision",
            "confidence_threshold=0.5",
            "--decision",
            "volatility_scaling=false",
            "-d",
            "exit_units=return",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "confidence_threshold=0.5" in res.output
    version = load_version("tuned:latest")
    assert version.decision == DecisionConfig(
        confidence_threshold=0.5, volatility_scaling=False, exit_units="return"
    )
    # without --decision: the defaults
    res = runner.invoke(app, ["train", "--name", "plain", *SMALL])
    assert res.exit_code == 0, res.output
    assert load_version("plain:latest").decision == DecisionConfig()
    assert len(list_models()) == 2


@pytest.mark.parametrize(
    ("flag", "said"),
    [
        ("confidence_gate=0.5", "'confidence_gate' is not a DecisionConfig field"),
        ("confidence_threshold=high", "confidence_threshold=high"),
        ("volatility_scaling=1", "volatility_scaling=1"),
        ("confidence_threshold=1.5", "confidence_threshold=1.5 is invalid"),
        ("exit_units=percent", "exit_units=percent"),
        ("confidence_threshold", "KEY=VALUE"),
    ],
)
def test_train_refuses_a_bad_decision_threshold_before_training(home, flag, said) -> None:
    from augur.models import list_models

    res = CliRunner().invoke(app, ["train", *SMALL, "--decision", flag])
    assert res.exit_code == 2, res.output
    assert said in " ".join(res.output.split()) and "Traceback" not in res.output
    assert list_models() == []
