"""`augur backtest` end to end on small synthetic bars: table, report, parquet outputs."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from typer.testing import CliRunner

from augur.cli import app
from augur.config import get_settings

TINY = [
    "-p",
    "rf_n_estimators=6",
    "-p",
    "xgb_n_estimators=6",
    "-p",
    "quantile_n_estimators=6",
    "-p",
    "svm_max_samples=150",
    "-p",
    "calibration_folds=2",
]


@pytest.fixture
def home(monkeypatch, tmp_path):
    from augur.data import write_bars
    from tests.unit.backtest.test_evaluation import momentum_bars

    monkeypatch.setenv("AUGUR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "80")  # tables must still show every number whole
    monkeypatch.setenv("AUGUR_LABEL_HORIZON", "3")
    get_settings.cache_clear()
    write_bars(
        pd.concat([momentum_bars(n=520, symbol="AAA"), momentum_bars(n=150, symbol="SHORT")])
    )
    yield tmp_path / "home"
    get_settings.cache_clear()


def test_backtest_prints_table_and_writes_report_and_outputs(home) -> None:
    res = CliRunner().invoke(
        app,
        [
            "backtest",
            "--symbols",
            "AAA",
            "--folds",
            "2",
            "--quick",
            "--bootstrap-reps",
            "100",
            "--confidence-threshold",
            "0.3",
            *TINY,
        ],
    )
    assert res.exit_code == 0, res.output
    for label in (
        "ensemble + confidence gate",
        "no confidence gate",
        "best single model",
        "always flat",
        "buy and hold",
        "accuracy gain",
        "false-positive entries",
        "false-positive rate",
        "The gated ensemble",
    ):
        assert label in res.output
    # no cut cells ("…" also marks the confidence intervals' ranges, outside the table)
    assert not [line for line in res.output.splitlines() if line[:1] in "│┃" and "…" in line]
    # one column per strategy: every metric's row shows all five figures
    for metric in ("│ accuracy ", "│ total return ", "│ n trades ", "│ composite "):
        [row] = [line for line in res.output.splitlines() if line.startswith(metric)]
        assert len(re.findall(r"-?\d[\d,]*(?:\.\d+)?|—|inf", row)) == 5, row
    reports = home / "reports"
    assert "plotly-graph-div" in (reports / "backtest.html").read_text()
    preds = pd.read_parquet(reports / "oos_predictions.parquet")
    assert {
        "symbol",
        "timestamp",
        "p_up",
        "p_down",
        "confidence",
        "q05",
        "q50",
        "q95",
        "forward_return",
        "close",
    } <= set(preds.columns)
    assert len(pd.read_parquet(reports / "oos_outcomes.parquet")) == len(preds)


def test_backtest_user_errors_exit_nonzero_without_traceback(home) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["backtest", "--symbols", "NOPE"])
    assert res.exit_code == 1 and "NOPE" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["backtest", "--symbols", "AAA", "-p", "rf_depth=3"])
    assert res.exit_code == 1 and "unknown ensemble parameter" in res.output
    res = runner.invoke(app, ["backtest", "--window", "rolling"])
    assert res.exit_code == 1 and "--train-bars" in res.output
    res = runner.invoke(app, ["backtest", "--symbols", "SHORT", *TINY])
    assert res.exit_code == 1 and "SHORT" in res.output and "at least 200" in res.output
