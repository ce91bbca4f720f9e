"""Scalar sizing rules shared by :func:`augur.decision.decide` and the compiled engines.

Plain Python on floats only, so that :mod:`augur.backtest._kernels` can compile the very
same functions with numba (``njit(payoff_ratio)``): the Monte Carlo simulation and the
parameter sweep size positions by exactly the rules the service uses.
"""

from __future__ import annotations

#: Below this the downside (or upside) quantile is treated as zero.
_EPS = 1e-12


def payoff_ratio(direction: int, q05: float, q95: float, max_payoff_ratio: float) -> float:
    """Payoff ratio ``b`` (expected win / expected loss) from the forward-return quantiles.

    Long (``direction`` +1): ``b = q95 / -q05`` (upside over downside); short (-1):
    ``b = -q05 / q95``. Guards: when both quantiles are zero (no quantile model) ``b = 1``
    (even money, capped too); no upside in the traded direction → ``b = 0`` (Kelly is then
    non-positive, nothing is entered); no downside → ``b = max_payoff_ratio``. The
    result is always in ``[0, max_payoff_ratio]``.
    """
    if abs(q05) < _EPS and abs(q95) < _EPS:
        return min(1.0, max_payoff_ratio)
    if direction > 0:
        upside = q95
        downside = -q05
    elif direction < 0:
        upside = -q05
        downside = q95
    else:
        return 0.0
    if upside <= _EPS:
        return 0.0
    if downside <= _EPS:
        return max_payoff_ratio
    b = upside / downside
    return b if b < max_payoff_ratio else max_payoff_ratio


def kelly_size(probability: float, payoff: float, kelly_fraction: float, max_size: float) -> float:
    """Fractional Kelly: ``kelly_fraction * (p - (1 - p) / b)``, clipped to ``[0, max_size]``.

    ``probability`` is the calibrated probability that the traded direction is right and
    ``payoff`` the payoff ratio ``b``; ``b <= 0`` gives 0 (never a negative size).
    """
    if payoff <= _EPS or kelly_fraction <= 0.0:
        return 0.0
    f = kelly_fraction * (probability - (1.0 - probability) / payoff)
    if not f > 0.0:  # also catches NaN
        return 0.0
    return f if f < max_size else max_size


def drawdown_scale(drawdown: float, scale_start: float, limit: float) -> float:
    """Size multiplier for the current drawdown: 1 below ``scale_start``, falling linearly
    to 0 at ``limit`` (and 0 beyond it)."""
    # Selects rather than early returns: the compiled Monte Carlo evaluates this for many
    # paths at once, where a jump that goes either way at random costs more than the sum.
    span = limit - scale_start
    linear = (limit - drawdown) / span if span > 0.0 else 0.0
    scale = 1.0 if drawdown <= scale_start else linear
    return 0.0 if drawdown >= limit else scale


def volatility_scale(volatility: float, volatility_ref: float, cap: float) -> float:
    """Volatility-regime multiplier ``vol_ref / vol`` capped at ``cap`` (1 when unknown)."""
    if volatility <= _EPS or volatility_ref <= _EPS:
        return 1.0
    s = volatility_ref / volatility
    return s if s < cap else cap
