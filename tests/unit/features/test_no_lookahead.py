"""No look-ahead: features at time t do not change when rows after t change or are added,
and a change at bar t+k does reach the features of bar t+k."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from augur.features import FeatureSpec, compute_features
from tests.conftest import synthetic_bars

SPEC = FeatureSpec(windows=(3, 5, 12), lags=(1, 2))
N = 60
PRICES = ["open", "high", "low", "close"]


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
    future[PRICES] *= scale * rng.uniform(0.5, 2.0)
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


@settings(max_examples=40, deadline=None)
@given(
    t=st.integers(min_value=0, max_value=N - 2),
    k=st.integers(min_value=1, max_value=12),
    factor=st.one_of(st.floats(0.5, 0.98), st.floats(1.02, 2.0)),
    symbol=st.sampled_from(["AAA", "BBB"]),
)
def test_a_change_at_t_plus_k_moves_that_bar_and_nothing_before(
    t: int, k: int, factor: float, symbol: str
) -> None:
    """One bar of one symbol, t+k, gets new prices: every feature row before t+k (so all of
    <= t) is bit-identical, some feature of bar t+k differs, the other symbol is untouched."""
    k = min(k, N - 1 - t)
    bars = synthetic_bars(N, symbols=("AAA", "BBB"), seed=1)
    base = compute_features(bars, SPEC)

    when = bars["timestamp"].iloc[t + k]
    row = (bars["symbol"] == symbol) & (bars["timestamp"] == when)
    assert row.sum() == 1
    changed = bars.copy()
    changed.loc[row, PRICES] *= factor
    after = compute_features(changed, SPEC)

    mine = (base["symbol"] == symbol).to_numpy()
    ts = base["timestamp"]
    before = ~mine | (ts < when).to_numpy()  # the other symbol entirely, and mine before t+k
    pd.testing.assert_frame_equal(after[before], base[before], check_exact=True)

    at = (mine & (ts == when).to_numpy()).nonzero()[0]
    assert len(at) == 1
    old_row = base.loc[at[0], SPEC.names].to_numpy(dtype=float)
    new_row = after.loc[at[0], SPEC.names].to_numpy(dtype=float)
    same = (old_row == new_row) | (np.isnan(old_row) & np.isnan(new_row))
    assert not same.all(), f"changing bar t+k={t + k} of {symbol} moved none of its features"
    # the 1-bar return of t+k sees the new close: log(factor) apart from the old one
    moved = after.loc[at[0], "ret_1"] - base.loc[at[0], "ret_1"]
    assert np.isclose(moved, np.log(factor), rtol=1e-9, atol=1e-12)
