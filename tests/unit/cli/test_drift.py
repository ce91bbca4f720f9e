"""`augur drift check`: its exit code says whether a version drifted, from the statistics
the service stored in the prediction log, and its table names the features that moved."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from augur.cli import app
from augur.config import get_settings

TAG = "augur-ensemble:v1"
FEATURES = ["ret_5", "vol_20", "rsi_14", "hour"]


@pytest.fixture
def home(monkeypatch, tmp_path) -> Path:
    monkeypatch.setenv("AUGUR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "home" / "bentoml"))
    monkeypatch.delenv("AUGUR_PREDICTION_LOG_URL", raising=False)
    monkeypatch.delenv("AUGUR_ROUTING_TABLE", raising=False)
    monkeypatch.setenv("COLUMNS", "80")  # the table must still show every number whole
    get_settings.cache_clear()
    yield tmp_path / "home"
    get_settings.cache_clear()


def serve_rows(
    reference: pd.DataFrame, served: pd.DataFrame, version: str = TAG, url: str | None = None
) -> None:
    """What a serving worker does: observe the served rows, test them against the version's
    reference, store the statistics in the prediction log."""
    from augur.monitoring import DriftMonitor, PredictionLog, default_log_url

    log = PredictionLog(url or default_log_url(get_settings()), start=False)
    try:
        monitor = DriftMonitor(update_every=10**9, log=log)
        monitor.set_reference(version, reference)
        for row in served.to_numpy():
            monitor.observe(version, row)
        monitor.update(version)
    finally:
        log.close()


def reference(seed: int = 0, n: int = 2000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(n, len(FEATURES))), columns=FEATURES)


def served(n: int = 300, shift: dict[str, float] | None = None, seed: int = 1) -> pd.DataFrame:
    rows = reference(seed, n)
    for name, by in (shift or {}).items():
        rows[name] += by
    return rows


def check(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, ["drift", "check", *args])
    assert "Traceback" not in res.output, res.output
    return res.exit_code, " ".join(res.output.split())


def test_drift_flagged_exits_1_and_lists_the_features_that_moved(home) -> None:
    serve_rows(reference(), served(shift={"ret_5": 1.5, "vol_20": -2.0}))
    code, out = check("--version", TAG)
    assert code == 1, out
    assert f"2 of 4 features of {TAG} moved" in out
    assert "ret_5" in out and "vol_20" in out
    assert "rsi_14" not in out and "hour" not in out  # only the features that moved
    assert "PSI > 0.2 or KS p < 0.01/4" in out
    assert "…" not in out

    from augur.monitoring import PredictionLog, default_log_url

    with PredictionLog(default_log_url(get_settings()), start=False) as log:
        stored = log.drift_frame().set_index("feature")
    assert f"{stored.loc['vol_20', 'psi']:.3f}" in out  # every number whole


def test_no_drift_exits_0(home) -> None:
    serve_rows(reference(), served())
    code, out = check("--version", TAG)
    assert code == 0, out
    assert f"no drift: none of {TAG}'s 4 features moved" in out and "300 served rows" in out


def test_the_latest_statistics_decide(home) -> None:
    serve_rows(reference(), served(shift={"hour": 3.0}))
    assert check("--version", TAG)[0] == 1
    serve_rows(reference(), served(seed=2))  # the service saw the features come back
    assert check("--version", TAG)[0] == 0


def test_default_version_is_the_routing_tables_primary(home) -> None:
    routes = home / "serving" / "routes.json"
    routes.parent.mkdir(parents=True)
    table = {
        "versions": [
            {"name": "stable", "model_tag": TAG, "weight": 90},
            {"name": "canary", "model_tag": "augur-ensemble:v2", "weight": 10},
        ]
    }
    routes.write_text(json.dumps(table))
    serve_rows(reference(), served(shift={"rsi_14": 2.0}))
    serve_rows(reference(), served(), version="augur-ensemble:v2")
    code, out = check()
    assert code == 1 and f"of {TAG} moved" in out and "rsi_14" in out


@pytest.mark.parametrize(
    ("setup", "args", "said"),
    [
        (None, ["--version", TAG], "no prediction log at"),
        (
            "other version",
            ["--version", TAG],
            f"holds no drift statistics for {TAG}. The service stores them while it serves "
            "the version (every AUGUR_DRIFT_UPDATE_ROWS served rows or "
            "AUGUR_DRIFT_UPDATE_SECONDS); versions with statistics: augur-ensemble:v9",
        ),
        ("few rows", ["--version", TAG], "rest on 40 served rows; the drift rule needs 100"),
        ("drifted", ["--version", TAG, "--max-age-hours", "0"], "more than --max-age-hours 0"),
        (None, ["--version", "nothing:latest"], "no model 'nothing'"),
        (None, ["--version", TAG, "--log-url", "not a url"], "is not a SQLAlchemy URL"),
    ],
)
def test_nothing_to_judge_exits_2_saying_why(home, setup, args, said) -> None:
    if setup == "other version":
        serve_rows(reference(), served(), version="augur-ensemble:v9")
    elif setup == "few rows":
        serve_rows(reference(), served(n=40, shift={"ret_5": 3.0}))
    elif setup == "drifted":
        serve_rows(reference(), served(shift={"ret_5": 3.0}))
    code, out = check(*args)
    assert code == 2, out
    assert said in out
