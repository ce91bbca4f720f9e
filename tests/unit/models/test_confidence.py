"""Confidence: bounded, monotone in margin and agreement, penalised by volatility."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from augur.models import confidence_of
from augur.models._confidence import (
    agreement_of,
    confidence_scalar,
    direction_of,
    direction_scalar,
    margin_of,
)

unit = st.floats(0.0, 1.0)


@settings(max_examples=100, deadline=None)
@given(m=unit, a=unit, dm=unit, da=unit, vol=st.floats(0.0, 10.0), trend=st.one_of(st.none(), unit))
def test_bounded_and_monotone(m, a, dm, da, vol, trend) -> None:
    c = float(confidence_of(m, a, volatility_ratio=vol, trend_strength=trend))
    assert 0.0 <= c <= 1.0
    assert (
        float(confidence_of(min(m + dm, 1.0), a, volatility_ratio=vol, trend_strength=trend))
        >= c - 1e-12
    )
    assert (
        float(confidence_of(m, min(a + da, 1.0), volatility_ratio=vol, trend_strength=trend))
        >= c - 1e-12
    )
    assert float(confidence_of(m, a, volatility_ratio=vol + 1.0, trend_strength=trend)) <= c + 1e-12


def test_formula_values() -> None:
    assert float(confidence_of(1.0, 1.0)) == 1.0
    assert float(confidence_of(0.0, 0.0, trend_strength=0.0)) == 0.0
    # (0.5*0.2 + 0.3*1 + 0.2*0.5) / 1 = 0.5, halved by volatility 3x reference (1 / (1 + 0.5*2))
    assert float(confidence_of(0.2, 1.0, trend_strength=0.5, volatility_ratio=3.0)) == 0.25
    assert float(confidence_of(2.0, -1.0, volatility_ratio=np.nan)) == confidence_of(1.0, 0.0)


def test_direction_margin_agreement() -> None:
    p = np.array(
        [[0.5, 0.2, 0.3], [0.2, 0.3, 0.5], [0.3, 0.4, 0.3], [0.4, 0.2, 0.4], [0.35, 0.35, 0.3]]
    )
    d = direction_of(p)
    assert d.tolist() == [-1, 1, 0, 0, 0]
    np.testing.assert_allclose(margin_of(p, d), [0.2, 0.2, 0.1, 0.0, 0.0])
    per_model = np.stack([p, p[::-1]])
    np.testing.assert_allclose(agreement_of(per_model, d), [0.5, 0.5, 1.0, 0.5, 0.5])


@settings(max_examples=100, deadline=None)
@given(
    p=st.tuples(unit, unit, unit),
    a=unit,
    vol=st.one_of(st.none(), st.floats(0.0, 10.0), st.just(float("nan"))),
    trend=st.one_of(st.none(), unit, st.just(float("nan"))),
)
def test_scalar_fast_path_equals_vectorised(p, a, vol, trend) -> None:
    arr = np.array([p])
    d = int(direction_of(arr)[0])
    assert direction_scalar(list(p)) == d
    m = float(margin_of(arr, np.array([d]))[0])
    vec = float(confidence_of(m, a, volatility_ratio=vol, trend_strength=trend))
    assert confidence_scalar(m, a, vol, trend, 0.5, 0.3, 0.2, 0.5) == vec
