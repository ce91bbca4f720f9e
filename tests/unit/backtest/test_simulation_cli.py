"""`augur simulate`: quantiles + ruin from the backtest's outcomes; clear errors."""

from __future__ import annotations

import json
import re

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
        app,
        ["simulate", "--n", "3000", "--seed", "3", "--block", "5", "--outcomes", str(path)],
        env={"COLUMNS": "80"},
    )
    assert result.exit_code == 0, result.output
    assert "probability of ruin" in result.output
    assert "terminal return" in result.output and "q50" in result.output
    assert "…" not in result.output
    rows = [line for line in result.output.splitlines() if line.startswith(("│ mean", "│ q"))]
    metrics = len(simulate_json(path, "--n", "3000", "--seed", "3", "--block", "5")["mean"])
    assert rows and all(len(re.findall(r"-?\d+\.\d+%?", row)) == metrics for row in rows)


def simulate_json(path, *extra):
    args = ["simulate", "--n", "2000", "--seed", "9", "--outcomes", str(path), "--json"]
    result = runner.invoke(app, [*args, *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def figures(summary):
    """What a run measured (not how long it took)."""
    keep = ("probability_of_ruin", "paths_without_trades", "quantiles", "mean")
    return json.loads(json.dumps({k: summary[k] for k in keep}))  # NaN-safe, str keys


def test_simulate_json_is_reproducible(tmp_path):
    path = write_outcomes(tmp_path)
    first, second = simulate_json(path), simulate_json(path)
    assert first["quantiles"] == second["quantiles"] and first["n_paths"] == 2000


def test_simulate_runs_the_decision_rules_of_its_config(tmp_path):
    """--config replaces the default DecisionConfig: the run equals the library's with the
    file's fields, and differs from a run without it."""
    from augur.backtest.simulation import simulate
    from augur.decision import DecisionConfig

    path = write_outcomes(tmp_path)
    fields = {"confidence_threshold": 0.6, "kelly_fraction": 0.5}
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(fields))
    with_config = figures(simulate_json(path, "--config", str(cfg)))
    without = figures(simulate_json(path))
    assert with_config != without, "--config changed nothing: the file was ignored"

    outcomes = OutOfSampleOutcomes.load(path)

    def library(config):
        return figures(simulate(outcomes, 2000, config, seed=9, chunk_size=2000).to_dict())

    assert with_config == library(DecisionConfig.from_dict(fields))
    assert without == library(DecisionConfig())


def test_a_config_whose_gate_admits_nothing_trades_nothing(tmp_path):
    """A figure only the config's value produces: with confidence_threshold 1 (every
    outcome's confidence is below 1) no path ever trades; the defaults trade on every path."""
    path = write_outcomes(tmp_path)
    cfg = tmp_path / "closed.json"
    cfg.write_text(json.dumps({"confidence_threshold": 1.0}))
    closed = simulate_json(path, "--config", str(cfg))
    assert closed["paths_without_trades"] == closed["n_paths"] == 2000
    assert set(closed["quantiles"]["terminal_return"].values()) == {0.0}
    assert closed["probability_of_ruin"] == 0.0
    assert simulate_json(path)["paths_without_trades"] == 0


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
