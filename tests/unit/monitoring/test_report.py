"""The serving report: HTML with the plot divs, atomic write, and `augur report serving`."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from augur.cli.report import register
from augur.monitoring import (
    DriftMonitor,
    PredictionLog,
    PredictionRecord,
    summarize,
    write_serving_report,
)

PLOT_DIV = re.compile(r'<div id="[^"]+" class="plotly-graph-div"')


def fill_log(log: PredictionLog, n: int = 300, seed: int = 0) -> None:
    """Primary v1, canary v2 (better), shadow v3 on every request, outcomes for all."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        r = float(rng.normal(0, 0.01))
        truth = 1 if r > 0 else -1
        version, role, p = ("v2", "canary", 0.7) if i % 3 == 0 else ("v1", "primary", 0.5)
        for v, ro, hit in ((version, role, p), ("v3", "shadow", 0.55)):
            d = truth if rng.random() < hit else -truth
            log.log_prediction(
                PredictionRecord(
                    request_id=f"r{i}",
                    symbol="AAA",
                    model_version=v,
                    role=ro,
                    action="enter_long" if d > 0 else "enter_short",
                    p_up=0.5,
                    p_down=0.3,
                    p_flat=0.2,
                    confidence=0.3,
                    agreement=0.8,
                    size=0.02,
                    direction=d,
                    latency_ms=float(rng.gamma(2, 0.5)),
                )
            )
        assert log.log_outcome(f"r{i}", r, caller="test")


@pytest.fixture
def filled_log(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    with PredictionLog(url) as log:
        fill_log_and_drift(log)
    return url


def fill_log_and_drift(log: PredictionLog) -> None:
    """``fill_log`` plus one drift snapshot of a version whose feature ``b`` moved."""
    fill_log(log)
    rng = np.random.default_rng(1)
    monitor = DriftMonitor(window=200, log=log)
    monitor.set_reference("v1", pd.DataFrame(rng.normal(size=(1000, 2)), columns=["a", "b"]))
    for row in rng.normal(size=(200, 2)) + np.array([0.0, 1.0]):
        monitor.observe("v1", row)
    monitor.update()


def test_report_has_every_section_and_plot(filled_log: str, tmp_path: Path) -> None:
    with PredictionLog(filled_log, start=False) as log:
        summary = summarize(log.frame(), drift=log.drift_frame())
    out = write_serving_report(summary, tmp_path / "reports" / "serving.html")
    text = out.read_text()
    # decisions, agreement, performance, A/B, latency, drift
    assert len(PLOT_DIV.findall(text)) == 6
    assert text.count("plotly.js v") <= 2  # plotly.js inlined once, not per figure
    for heading in (
        "Decisions per version",
        "Shadow vs primary",
        "the A/B verdict",
        "Latency",
        "Feature drift",
    ):
        assert heading in text
    assert "v2 (canary) vs v1:" in text
    assert "Drift flagged for: v1" in text
    assert not list(out.parent.glob(".*.tmp"))  # the temp file was renamed, not left


def test_empty_report_says_so(tmp_path: Path) -> None:
    with PredictionLog(f"sqlite:///{tmp_path / 'p.db'}") as log:
        summary = summarize(log.frame(), drift=log.drift_frame())
    text = write_serving_report(summary, tmp_path / "serving.html").read_text()
    assert "The prediction log is empty" in text
    assert not PLOT_DIV.findall(text)


def test_report_without_outcomes_or_shadow(tmp_path: Path) -> None:
    with PredictionLog(f"sqlite:///{tmp_path / 'p.db'}") as log:
        log.log_prediction(
            PredictionRecord(
                request_id="r1",
                symbol="AAA",
                model_version="v1",
                role="primary",
                action="no_action",
                p_up=0.3,
                p_down=0.3,
                p_flat=0.4,
                confidence=0.0,
                agreement=0.5,
                size=0.0,
                direction=0,
                latency_ms=0.8,
            )
        )
        log.flush()
        summary = summarize(log.frame())
    text = write_serving_report(summary, tmp_path / "serving.html").read_text()
    assert "No shadow predictions logged" in text
    assert "No outcomes reported yet" in text
    assert "No drift statistics stored yet" in text
    assert len(PLOT_DIV.findall(text)) == 2  # decisions and latency


# --- CLI -----------------------------------------------------------------------------------
@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_cli_writes_the_report(cli: typer.Typer, filled_log: str, tmp_path: Path) -> None:
    out = tmp_path / "out" / "serving.html"
    result = CliRunner().invoke(
        cli,
        ["report", "serving", "--log-url", filled_log, "--out", str(out)],
        env={"COLUMNS": "80"},
    )
    assert result.exit_code == 0, result.output
    assert out.exists()
    assert "300 requests" in result.output
    # the per-version table cuts no cell ("…" may mark a range in the A/B sentences)
    assert not [line for line in result.output.splitlines() if line[:1] in "│┃" and "…" in line]
    assert "A/B" in result.output
    assert "shadow v3" in result.output
    assert "drift" in result.output


def test_cli_default_paths_come_from_settings(
    cli: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from augur.config import get_settings

    monkeypatch.setenv("AUGUR_HOME", str(tmp_path))
    get_settings.cache_clear()
    try:
        db = tmp_path / "serving" / "predictions.db"
        with PredictionLog(f"sqlite:///{db}") as log:
            fill_log(log, n=30)
        result = CliRunner().invoke(cli, ["report", "serving", "--since", "2000-01-01T00:00"])
        assert result.exit_code == 0, result.output
        assert (tmp_path / "reports" / "serving.html").exists()
    finally:
        get_settings.cache_clear()


def test_cli_empty_log(cli: typer.Typer, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    PredictionLog(url).close()
    result = CliRunner().invoke(
        cli, ["report", "serving", "--log-url", url, "--out", str(tmp_path / "s.html")]
    )
    assert result.exit_code == 0
    assert "prediction log is empty" in result.output


def test_cli_missing_log_and_bad_url(cli: typer.Typer, tmp_path: Path) -> None:
    missing = CliRunner().invoke(
        cli, ["report", "serving", "--log-url", f"sqlite:///{tmp_path / 'none.db'}"]
    )
    assert missing.exit_code == 1
    assert "No prediction log" in missing.output
    assert not (tmp_path / "none.db").exists()  # a report must not create an empty log
    bad = CliRunner().invoke(cli, ["report", "serving", "--log-url", "not a url"])
    assert bad.exit_code == 2
    assert "not a SQLAlchemy URL" in bad.output
    no_driver = CliRunner().invoke(
        cli, ["report", "serving", "--log-url", "postgresql+nodriver://u:secret@127.0.0.1:1/db"]
    )
    assert no_driver.exit_code == 1
    assert "Cannot read the prediction log" in no_driver.output
    assert "secret" not in no_driver.output  # passwords never printed


def test_log_url_errors_name_the_setting() -> None:
    with pytest.raises(ValueError, match="AUGUR_PREDICTION_LOG_URL"):
        PredictionLog("not a url")
    with pytest.raises(ValueError, match="unknown database dialect"):
        PredictionLog("nosuchdb://u@h/db")
