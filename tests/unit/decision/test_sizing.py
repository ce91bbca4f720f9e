"""Scalar sizing rules: payoff ratio guards, Kelly bounds, drawdown/volatility scales."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from augur.decision import drawdown_scale, kelly_size, payoff_ratio, volatility_scale


def test_payoff_ratio_orientation_and_guards():
    assert payoff_ratio(1, -0.01, 0.02, 10.0) == pytest.approx(2.0)
    assert payoff_ratio(-1, -0.02, 0.01, 10.0) == pytest.approx(2.0)
    assert payoff_ratio(1, 0.0, 0.0, 10.0) == 1.0  # no quantile model: even money
    assert payoff_ratio(1, -0.01, -0.001, 10.0) == 0.0  # no upside for a long
    assert payoff_ratio(1, 0.001, 0.02, 10.0) == 10.0  # no downside: capped
    assert payoff_ratio(0, -0.01, 0.02, 10.0) == 0.0


def test_kelly_matches_formula_and_never_negative():
    assert kelly_size(0.6, 1.0, 1.0, 1.0) == pytest.approx(0.2)
    assert kelly_size(0.6, 1.0, 0.5, 0.05) == 0.05
    assert kelly_size(0.4, 1.0, 1.0, 1.0) == 0.0
    assert kelly_size(float("nan"), 1.0, 1.0, 1.0) == 0.0
    assert kelly_size(0.9, 0.0, 1.0, 1.0) == 0.0


@given(
    st.floats(0, 1),
    st.floats(0, 100),
    st.floats(0.01, 1),
    st.floats(0.001, 1),
)
def test_kelly_bounds(p, b, kf, cap):
    f = kelly_size(p, b, kf, cap)
    assert 0.0 <= f <= cap
    assert not math.isnan(f)


def test_drawdown_and_volatility_scales():
    assert drawdown_scale(0.05, 0.1, 0.2) == 1.0
    assert drawdown_scale(0.15, 0.1, 0.2) == pytest.approx(0.5)
    assert drawdown_scale(0.2, 0.1, 0.2) == 0.0
    assert volatility_scale(0.0, 0.01, 2.0) == 1.0
    assert volatility_scale(0.02, 0.01, 2.0) == pytest.approx(0.5)
    assert volatility_scale(0.001, 0.01, 2.0) == 2.0


def test_payoff_ratio_edges():
    # one quantile zero is not "no quantile model": a missing downside caps, a missing upside is 0
    assert payoff_ratio(1, 0.0, 0.02, 10.0) == 10.0
    assert payoff_ratio(-1, -0.02, 0.0, 10.0) == 10.0
    assert payoff_ratio(1, -0.02, 0.0, 10.0) == 0.0
    # within 1e-12 of zero counts as zero; exactly 1e-12 does not (for the "both zero" test)
    assert payoff_ratio(1, -1e-12, 0.0, 10.0) == 0.0
    assert payoff_ratio(1, 0.0, 1e-12, 10.0) == 0.0
    assert payoff_ratio(1, -0.01, 1e-12, 10.0) == 0.0  # an upside of 1e-12 is none
    assert payoff_ratio(1, -1e-12, 5e-12, 10.0) == 10.0  # a downside of 1e-12 is none
    # large ratios are capped at max_payoff_ratio
    assert payoff_ratio(1, -0.001, 0.05, 10.0) == 10.0
    assert payoff_ratio(-1, -0.05, 0.001, 7.0) == 7.0


def test_kelly_edges():
    assert kelly_size(1.0, 1e-12, 1.0, 1.0) == 0.0  # a payoff of 1e-12 is no payoff
    assert kelly_size(1.0, 2e-12, 1.0, 1.0) == 1.0


def test_scale_edges():
    # at the limit the scale is 0, even when the scaling starts there
    assert drawdown_scale(0.2, 0.2, 0.2) == 0.0
    assert drawdown_scale(0.3, 0.1, 0.2) == 0.0
    # a volatility (or reference) of 1e-12 is unknown: no scaling
    assert volatility_scale(1e-12, 0.01, 2.0) == 1.0
    assert volatility_scale(0.01, 1e-12, 2.0) == 1.0
    assert volatility_scale(0.01, 2e-12, 2.0) == pytest.approx(2e-10)


def test_even_money_without_quantiles_is_capped_too() -> None:
    """No quantile model (both zero) is even money, but never above the cap: the Monte
    Carlo, which stores b and rebuilds quantiles from it, must size as decide() does."""
    assert payoff_ratio(1, 0.0, 0.0, 10.0) == 1.0
    assert payoff_ratio(-1, 0.0, 0.0, 0.5) == 0.5
