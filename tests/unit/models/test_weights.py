"""Dynamic weights: direction of updates, normalisation, state round trip."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from augur.models import DynamicWeights

probs_st = st.lists(
    st.tuples(*(st.floats(0.0, 1.0) for _ in range(3))).filter(lambda t: sum(t) > 1e-3),
    min_size=3,
    max_size=3,
)


@settings(max_examples=60, deadline=None)
@given(probs=probs_st, label=st.sampled_from([-1, 0, 1]), decay=st.floats(0.5, 0.99))
def test_weights_stay_normalised_and_move_toward_the_better_member(probs, label, decay) -> None:
    p = np.array(probs)
    p = p / p.sum(axis=1, keepdims=True)
    dw = DynamicWeights(["a", "b", "c"], decay=decay, floor=0.0)
    before = dw.weights
    after = dw.update(p, label)
    assert after.sum() == pytest.approx(1.0)
    assert np.all(after > 0)
    col = label + 1
    best, worst = int(np.argmax(p[:, col])), int(np.argmin(p[:, col]))
    assert after[best] >= before[best] - 1e-12
    assert after[worst] <= before[worst] + 1e-12


def test_decay_forgets_old_evidence_and_floor_keeps_everyone() -> None:
    good_then_bad = np.array([[0.1, 0.1, 0.8], [0.4, 0.3, 0.3]])
    dw = DynamicWeights(["a", "b"], decay=0.5, floor=0.1)
    for _ in range(10):
        dw.update(good_then_bad[[0, 1]], 1)  # a is right ("up"), b is not
    assert dw.weights[0] > dw.weights[1]
    assert dw.weights[1] >= 0.1 / 2 - 1e-12  # the floor
    for _ in range(10):
        dw.update(good_then_bad[[1, 0]], 1)  # now b is right
    assert dw.weights[1] > dw.weights[0]
    restored = DynamicWeights.from_state(dw.state())
    np.testing.assert_allclose(restored.weights, dw.weights)
    assert restored.n_updates == 20


def test_bad_update_arguments() -> None:
    dw = DynamicWeights(["a", "b"])
    with pytest.raises(ValueError, match="shape"):
        dw.update(np.ones((3, 3)) / 3, 1)
    with pytest.raises(ValueError, match="realised_label"):
        dw.update(np.ones((2, 3)) / 3, 2)
    with pytest.raises(ValueError, match="decay"):
        DynamicWeights(["a"], decay=1.0)


def test_weights_are_the_forgetting_product_of_probabilities() -> None:
    """With no floor, weight_m ∝ prod_k p_m(y_k) ** (decay ** (steps after k)) (module doc)."""
    probs = [
        np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1], [0.1, 0.8, 0.1]]),
        np.array([[0.5, 0.4, 0.1], [0.2, 0.2, 0.6], [0.3, 0.3, 0.4]]),
        np.array([[0.3, 0.3, 0.4], [0.1, 0.1, 0.8], [0.7, 0.2, 0.1]]),
    ]
    labels = [1, -1, 0]
    decay = 0.7
    dw = DynamicWeights(["a", "b", "c"], decay=decay, floor=0.0)
    for step, (p, y) in enumerate(zip(probs, labels, strict=True)):
        dw.update(p, y)
        log_w = sum(
            decay ** (step - k) * np.log(probs[k][:, labels[k] + 1]) for k in range(step + 1)
        )
        expected = np.exp(log_w) / np.exp(log_w).sum()
        np.testing.assert_allclose(dw.weights, expected, rtol=1e-12)
    # one step from equal weights: proportional to the probability of what happened
    one = DynamicWeights(["a", "b", "c"], decay=0.3, floor=0.0)
    np.testing.assert_allclose(one.update(probs[0], 1), np.array([0.5, 0.1, 0.1]) / 0.7)


def test_floor_mixes_in_uniform_weights_and_defaults() -> None:
    p = np.array([[0.1, 0.1, 0.8], [0.4, 0.4, 0.2]])
    plain = DynamicWeights(["a", "b"], decay=0.5, floor=0.0).update(p, 1)
    floored = DynamicWeights(["a", "b"], decay=0.5, floor=0.1).update(p, 1)
    np.testing.assert_allclose(floored, 0.9 * plain + 0.1 / 2, rtol=1e-12)
    np.testing.assert_allclose(plain, [0.8, 0.2], rtol=1e-12)
    default = DynamicWeights(["a", "b"])
    assert (default.decay, default.floor) == (0.95, 0.02)
    np.testing.assert_allclose(default.update(p, 1), 0.98 * np.array([0.8, 0.2]) + 0.01)
    assert default.as_dict() == dict(zip(["a", "b"], default.weights.tolist(), strict=True))
    assert list(default.as_dict()) == ["a", "b"]


def test_long_runs_of_bad_outcomes_stay_finite() -> None:
    """Every member keeps giving ~0 to what happens: the weights stay a finite distribution."""
    dw = DynamicWeights(["a", "b"], decay=0.99, floor=0.0)
    wrong = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    for _ in range(500):
        weights = dw.update(wrong, 1)
    assert np.isfinite(weights).all() and weights.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(weights, [0.5, 0.5])


def test_probabilities_are_clipped_to_the_unit_interval() -> None:
    # a member at 1.2 (rounding noise) scores like one at 1.0, not better
    dw = DynamicWeights(["a", "b"], decay=0.5, floor=0.0)
    np.testing.assert_allclose(dw.update(np.array([[0, 0, 1.2], [0, 0, 1.0]]), 1), [0.5, 0.5])
    with pytest.raises(ValueError, match=r"decay must be in \(0, 1\), got 0"):
        DynamicWeights(["a"], decay=0)


def test_max_step_bounds_what_one_outcome_does_to_a_weight() -> None:
    """One outcome multiplies a member's unnormalised weight by at most e**max_step: a
    member that gave the realised class ~0 is not silenced by it."""
    p = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])  # a says up, b is sure of down
    free = DynamicWeights(["a", "b"], decay=0.9, floor=0.0)
    bounded = DynamicWeights(["a", "b"], decay=0.9, floor=0.0, max_step=2.0)
    free.update(p, 1)
    bounded.update(p, 1)
    # unbounded: b's weight falls by the factor 1e-6 (its clipped probability)
    assert free.weights[1] / free.weights[0] == pytest.approx(1e-6, rel=1e-9)
    # bounded: the log-score step is clipped to -2, so the ratio is e**-2
    assert bounded.weights[1] / bounded.weights[0] == pytest.approx(np.exp(-2.0), rel=1e-12)
    np.testing.assert_allclose(bounded.perf, [0.0, -0.1 * 2.0])
    # a step inside the bound is the plain rule
    q = np.array([[0.2, 0.3, 0.5], [0.3, 0.3, 0.4]])
    one = DynamicWeights(["a", "b"], decay=0.5, floor=0.0, max_step=2.0).update(q, 1)
    np.testing.assert_allclose(one, np.array([0.5, 0.4]) / 0.9, rtol=1e-12)
    # the bound survives the state round trip; old states (no max_step) are unbounded
    assert DynamicWeights.from_state(bounded.state()).max_step == 2.0
    old = {k: v for k, v in bounded.state().items() if k not in ("max_step", "frozen")}
    assert DynamicWeights.from_state(old).max_step is None
    with pytest.raises(ValueError, match="max_step"):
        DynamicWeights(["a"], max_step=0.0)


def test_frozen_weights_ignore_outcomes() -> None:
    p = np.array([[0.1, 0.1, 0.8], [0.4, 0.4, 0.2]])
    dw = DynamicWeights(["a", "b"], decay=0.5, floor=0.0)
    dw.update(p, 1)
    before = dw.weights.copy()
    dw.frozen = True
    np.testing.assert_array_equal(dw.update(p, -1), before)
    assert dw.n_updates == 1
    with pytest.raises(ValueError, match="realised_label"):  # still checked
        dw.update(p, 5)
    restored = DynamicWeights.from_state(dw.state())
    assert restored.frozen
    np.testing.assert_array_equal(restored.update(p, -1), before)


def test_ensemble_params_carry_the_bound() -> None:
    from augur.models import Ensemble, EnsembleParams

    assert Ensemble(EnsembleParams(weight_max_step=1.5)).dynamic_weights.max_step == 1.5
    assert Ensemble().dynamic_weights.max_step == EnsembleParams().weight_max_step == 3.0
    with pytest.raises(ValueError, match="weight_max_step"):
        EnsembleParams(weight_max_step=0.0)
