"""`augur simulate`: quantiles + ruin from the backtest's outcomes; clear errors."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from augur.backtest.simulation import OutOfSampleOutcomes
from augur.cli import app

runner = CliRunner()


def write_outcomes(tmp_path):
    rng = np.random.default_rng(1)
    n = 300
    d = rng.choice([-1, 1], n)
    o = OutOfSampleOutcomes(
        probability=rng.uniform(0.5, 0.7, n),
        payoff_ratio=rng.uniform(0.8, 1.5, n),
        confidence=rng.uniform(0.3, 1.0, n),
        realised_return=rng.normal(0.001 * d, 0.01),
        direction=d,
    )
    return o.save(tmp_path / "oos_outcomes.parquet")


def test_simulate_prints_quantiles_and_ruin(tmp_path):
    path = write_outcomes(tmp_path)
    result = runner.invoke(
        app, ["simulate", "--n", "3000", "--seed", "3", "--block", "5", "--outcomes", str(path)]
    )
    assert result.exit_code == 0, result.output
    assert "probability of ruin" in result.output
    assert "terminal return" in result.output and "q50" in result.output


def test_simulate_json_is_reproducible_and_takes_a_config(tmp_path):
    path = write_outcomes(tmp_path)
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"confidence_threshold": 0.4, "kelly_fraction": 0.5}))
    args = ["simulate", "--n", "2000", "--seed", "9", "--outcomes", str(path), "--json"]
    first = runner.invoke(app, [*args, "--config", str(cfg)])
    second = runner.invoke(app, [*args, "--config", str(cfg)])
    assert first.exit_code == 0, first.output
    a, b = json.loads(first.output), json.loads(second.output)
    assert a["quantiles"] == b["quantiles"] and a["n_paths"] == 2000


def test_missing_outcomes_tells_to_run_backtest(tmp_path):
    result = runner.invoke(app, ["simulate", "--outcomes", str(tmp_path / "none.parquet")])
    assert result.exit_code == 1
    assert "augur backtest" in " ".join(result.output.split())


def test_bad_config_is_a_clear_error(tmp_path):
    path = write_outcomes(tmp_path)
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"kelly": 0.5}))
    result = runner.invoke(
        app, ["simulate", "--n", "10", "--outcomes", str(path), "--config", str(cfg)]
    )
    assert result.exit_code == 1
    assert "unknown DecisionConfig field" in " ".join(result.output.split())
