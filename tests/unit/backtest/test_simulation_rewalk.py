"""The Monte Carlo re-walks the ensemble's member weights along its paths with the rule
of ``DynamicWeights`` (issue 25 item 3): the same weights step by step as the Python
class on a replay of the outcomes in order, the fixed mode's positions when the weights
are frozen, and a member the outcomes favour gains weight."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from augur.backtest import _kernels
from augur.backtest.simulation import (
    MEMBERS,
    MemberOutcomes,
    OutOfSampleOutcomes,
    simulate,
    trace_paths,
)
from augur.decision import DecisionConfig
from augur.models import MEMBERS as MODEL_MEMBERS
from augur.models import DynamicWeights, confidence_of, direction_of, margin_of
from augur.models._confidence import agreement_of

N = 60
DECAY, FLOOR, MAX_STEP = 0.9, 0.02, 0.5
# a low gate so that the synthetic signals trade
CONFIG = DecisionConfig(confidence_threshold=0.05, cooldown_losses=0)


def predictions(seed: int = 0, *, frozen: bool = False, n: int = N) -> pd.DataFrame:
    """Per-bar predictions as ``augur backtest`` writes them, with the ensemble's own
    columns computed from the members under the walk's starting weights (what the walk
    says when the weights do not move)."""
    rng = np.random.default_rng(seed)
    per_model = rng.dirichlet([3, 1, 3], size=(len(MEMBERS), n))  # (members, n, 3)
    start = rng.normal(-1.0, 0.2, size=len(MEMBERS))
    dw = DynamicWeights(MEMBERS, DECAY, FLOOR, MAX_STEP)
    dw.perf = start.copy()
    dw._refresh()
    proba = np.einsum("m,mnc->nc", dw.weights, per_model)
    direction = direction_of(proba)
    vol_ratio = rng.uniform(0.5, 2.0, n)
    trend = rng.uniform(0.0, 1.0, n)
    confidence = confidence_of(
        margin_of(proba, direction),
        agreement_of(per_model, direction),
        volatility_ratio=vol_ratio,
        trend_strength=trend,
    )
    frame = pd.DataFrame(
        {
            "p_down": proba[:, 0],
            "p_flat": proba[:, 1],
            "p_up": proba[:, 2],
            "direction": direction,
            "confidence": confidence,
            "q05": -rng.uniform(0.005, 0.02, n),
            "q95": rng.uniform(0.005, 0.02, n),
            "forward_return": rng.normal(0.0, 0.01, n),
            "label": rng.integers(-1, 2, n),
            "volatility": rng.uniform(0.5, 1.5, n),
            "volatility_ref": 1.0,
            "volatility_ratio": vol_ratio,
            "trend": trend,
            "confidence_margin_weight": 0.5,
            "confidence_agreement_weight": 0.3,
            "confidence_trend_weight": 0.2,
            "volatility_penalty": 0.5,
            "weight_decay": DECAY,
            "weight_floor": FLOOR,
            "weight_max_step": MAX_STEP,
            "weights_frozen": float(frozen),
        }
    )
    for i, m in enumerate(MEMBERS):
        frame[f"p_down_{m}"], frame[f"p_flat_{m}"], frame[f"p_up_{m}"] = per_model[i].T
        frame[f"weight_score_{m}"] = start[i]
    return frame


def replay_path(seed: int, n: int = N) -> int:
    """A path whose one block starts at outcome 0: it replays the outcomes in order."""
    return next(p for p in range(100_000) if _kernels.path_indices(seed, p, n, n, n)[0] == 0)


def test_members_are_the_ensembles():
    assert MEMBERS == MODEL_MEMBERS


def test_replay_in_order_gives_dynamic_weights_step_by_step():
    frame = predictions(1)
    outcomes = OutOfSampleOutcomes.from_predictions(frame)
    assert outcomes.members is not None
    seed = 5
    path = replay_path(seed)
    assert list(_kernels.path_indices(seed, path, N, N, N)) == list(range(N))
    sizes, weights = trace_paths(
        outcomes, 1, CONFIG, seed, path_start=path, n_steps=N, block_length=N
    )
    assert weights is not None
    # the Python class, bar by bar: step t decides with the weights before outcome t
    dw = DynamicWeights(MEMBERS, DECAY, FLOOR, MAX_STEP)
    dw.perf = frame[[f"weight_score_{m}" for m in MEMBERS]].to_numpy()[0].copy()
    dw._refresh()
    per_model = outcomes.members.per_model
    expected = np.empty((N, len(MEMBERS)))
    for t in range(N):
        expected[t] = dw.weights
        dw.update(per_model[t], int(frame["label"][t]))
    np.testing.assert_allclose(weights[0], expected, rtol=0, atol=1e-12)
    assert np.ptp(weights[0], axis=0).max() > 0.01  # the weights did move
    assert (sizes[0] > 0).any()


def test_frozen_weights_take_the_fixed_modes_positions():
    frame = predictions(2, frozen=True)
    outcomes = OutOfSampleOutcomes.from_predictions(frame)
    seed = 11
    path = replay_path(seed)
    kw = {"path_start": path, "n_steps": N, "block_length": N}
    rewalked, weights = trace_paths(outcomes, 1, CONFIG, seed, **kw)
    fixed, none = trace_paths(outcomes, 1, CONFIG, seed, fixed_weights=True, **kw)
    assert none is None and weights is not None
    assert np.ptp(weights[0], axis=0).max() == 0.0  # frozen: the walk's starting weights
    assert (fixed > 0).sum() > 5
    np.testing.assert_allclose(rewalked, fixed, rtol=1e-9, atol=1e-12)
    # and on resampled paths too (the same draws in both modes)
    rewalked, _ = trace_paths(outcomes, 40, CONFIG, seed, n_steps=100, block_length=7)
    fixed, _ = trace_paths(
        outcomes, 40, CONFIG, seed, n_steps=100, block_length=7, fixed_weights=True
    )
    np.testing.assert_allclose(rewalked, fixed, rtol=1e-9, atol=1e-12)


def test_outcomes_favouring_one_member_raise_its_weight():
    frame = predictions(3)
    labels = frame["label"].to_numpy()
    for i, m in enumerate(MEMBERS):
        # member 0 gives the realised class 0.8; the others say nothing (1/3 each)
        right = np.eye(3)[labels + 1]
        probs = 0.1 + 0.7 * right if i == 0 else np.full((N, 3), 1 / 3)
        frame[f"p_down_{m}"], frame[f"p_flat_{m}"], frame[f"p_up_{m}"] = probs.T
        frame[f"weight_score_{m}"] = np.log(1 / 3)  # equal start
    outcomes = OutOfSampleOutcomes.from_predictions(frame)
    _, weights = trace_paths(outcomes, 50, CONFIG, 4, n_steps=80, block_length=10)
    assert weights is not None
    np.testing.assert_allclose(weights[:, 0, :], 0.25)
    assert (weights[:, -1, 0] > 0.9).all()
    assert (np.diff(weights[:, :, 0], axis=1) >= -1e-12).all()  # never falls


def test_mode_follows_the_member_columns(tmp_path):
    frame = predictions(4)
    with_members = OutOfSampleOutcomes.from_predictions(frame)
    path = with_members.save(tmp_path / "o.parquet")
    loaded = OutOfSampleOutcomes.load(path)
    assert loaded.members is not None
    np.testing.assert_array_equal(loaded.members.per_model, with_members.members.per_model)
    assert loaded.members.max_step == MAX_STEP and not loaded.members.frozen
    old = OutOfSampleOutcomes.from_frame(loaded.to_frame()[list(OutOfSampleOutcomes.COLUMNS)])
    assert old.members is None
    kw = {"n_steps": 50, "block_length": 5}
    assert simulate(with_members, 200, CONFIG, **kw).rewalked_weights
    assert not simulate(with_members, 200, CONFIG, fixed_weights=True, **kw).rewalked_weights
    assert not simulate(old, 200, CONFIG, **kw).rewalked_weights


def test_one_weight_rule_for_all_outcomes():
    frame = predictions(5)
    frame.loc[3, "weight_decay"] = 0.5
    outcomes = OutOfSampleOutcomes.from_predictions(frame)  # loads; the fixed mode runs
    assert not simulate(outcomes, 100, CONFIG, n_steps=20, fixed_weights=True).rewalked_weights
    with pytest.raises(ValueError, match=r"weight_decay.*differs.*--fixed-weights"):
        simulate(outcomes, 100, CONFIG, n_steps=20)


def test_member_outcomes_shapes_are_checked():
    o = OutOfSampleOutcomes.from_predictions(predictions(6))
    assert o.members is not None
    bad = MemberOutcomes(**{**o.members.__dict__, "start_scores": np.zeros((N, 3))})
    with pytest.raises(ValueError, match="start_scores"):
        OutOfSampleOutcomes(
            o.probability,
            o.payoff_ratio,
            o.confidence,
            o.realised_return,
            o.direction,
            members=bad,
        )


def test_cli_rewalks_by_default_and_says_when_it_cannot(tmp_path):
    from typer.testing import CliRunner

    from augur.cli import app

    runner = CliRunner()
    with_members = OutOfSampleOutcomes.from_predictions(predictions(7))
    new = with_members.save(tmp_path / "new.parquet")
    old = OutOfSampleOutcomes.from_frame(
        with_members.to_frame()[list(OutOfSampleOutcomes.COLUMNS)]
    ).save(tmp_path / "old.parquet")
    args = ["simulate", "--n", "500", "--steps", "50", "--seed", "2"]
    env = {"COLUMNS": "200"}
    result = runner.invoke(app, [*args, "--outcomes", str(new)], env=env)
    assert result.exit_code == 0, result.output
    assert "re-walked" in result.output and "carries no member" not in result.output
    result = runner.invoke(app, [*args, "--outcomes", str(new), "--fixed-weights"], env=env)
    assert result.exit_code == 0, result.output
    assert "fixed member weights" in result.output and "carries no member" not in result.output
    result = runner.invoke(app, [*args, "--outcomes", str(old)], env=env)
    assert result.exit_code == 0, result.output
    assert "carries no member probabilities" in result.output
    assert "fixed member weights" in result.output
