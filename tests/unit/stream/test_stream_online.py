"""The consumer's own path through the feature engine and into Feast's Redis layout."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from augur.features import FeatureSpec, compute_features
from augur.features.stream_online import _check_double_encoding, _double_values, new_feature_rows
from augur.stream._history import tail_of


def test_the_value_encoding_is_protobufs() -> None:
    _check_double_encoding()


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=8))
def test_any_double_encodes_as_feast_value(values: list[float]) -> None:
    from feast.protos.feast.types.Value_pb2 import Value

    (row,) = _double_values(np.array([values]))
    assert row == [b"" if v != v else Value(double_val=v).SerializeToString() for v in values]


def _walk(symbol: str, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    return pd.DataFrame(
        {
            "timestamp": pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC"),
            "symbol": symbol,
            "open": close,
            "high": close * 1.01,
            "low": close * 0.99,
            "close": close,
            "volume": 1.0,
        }
    )


def test_new_rows_are_the_engines_rows_of_the_whole_history() -> None:
    spec = FeatureSpec()
    bars = {"A": _walk("A", 120, 1), "B": _walk("B", 90, 2)}
    new = {"A": 3, "B": 1}
    tails = {s: tail_of(b.tail(spec.max_lookback + new[s])) for s, b in bars.items()}
    got = new_feature_rows(list(tails), list(tails.values()), list(new.values()), spec)
    full = compute_features(pd.concat(bars.values(), ignore_index=True), spec)
    want = pd.concat([full[full["symbol"] == s].tail(k) for s, k in new.items()])
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True))
