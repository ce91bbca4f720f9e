"""No look-ahead: features at time t do not change when rows after t change or are added."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from augur.features import FeatureSpec, compute_features
from tests.conftest import synthetic_bars

SPEC = FeatureSpec(windows=(3, 5, 12), lags=(1, 2))
N = 60


@settings(max_examples=30, deadline=None)
@given(
    cut=st.integers(min_value=1, max_value=N - 2),
    seed=st.integers(min_value=0, max_value=2**16),
    append=st.integers(min_value=0, max_value=10),
    scale=st.floats(min_value=0.2, max_value=5.0),
)
def test_future_rows_do_not_move_past_features(
    cut: int, seed: int, append: int, scale: float
) -> None:
    bars = synthetic_bars(N, symbols=("AAA", "BBB"), seed=1)
    base = compute_features(bars, SPEC)

    # Rewrite every bar after `cut` (both symbols) and append `append` more bars.
    rng = np.random.default_rng(seed)
    future = synthetic_bars(N + append, symbols=("AAA", "BBB"), seed=seed)
    future[["open", "high", "low", "close"]] *= scale * rng.uniform(0.5, 2.0)
    cut_time = bars["timestamp"].iloc[cut]
    changed = pd.concat(
        [bars[bars["timestamp"] <= cut_time], future[future["timestamp"] > cut_time]],
        ignore_index=True,
    )
    after = compute_features(changed, SPEC)

    past = base["timestamp"] <= cut_time
    pd.testing.assert_frame_equal(
        after[after["timestamp"] <= cut_time].reset_index(drop=True),
        base[past].reset_index(drop=True),
        check_exact=True,
    )
    # and the change really reached the features after `cut` (the test can fail)
    later = after[after["timestamp"] > cut_time]
    assert len(later) == 2 * (N - 1 - cut + append)
