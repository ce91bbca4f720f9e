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
