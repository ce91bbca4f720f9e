"""Direction, agreement and confidence from member probabilities (vectorised).

Probability vectors are ordered (down, flat, up) everywhere in ``augur.models``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]

#: Features the confidence's volatility penalty and trend term read, first found wins:
#: per-bar realised volatility and the regime's trend strength (Kaufman efficiency
#: ratio, in [0, 1]). Training, evaluation, tuning, promotion and serving all choose
#: through :func:`confidence_features`.
VOLATILITY_FEATURES = ("vol_20", "vol_10", "vol_50", "vol_5")
TREND_FEATURES = ("eff_ratio_20", "eff_ratio_10", "eff_ratio_50", "eff_ratio_5")


def confidence_features(names: Sequence[str]) -> tuple[str | None, str | None]:
    """(volatility feature, trend feature) among ``names``, None where there is none."""
    vol = next((n for n in VOLATILITY_FEATURES if n in names), None)
    trend = next((n for n in TREND_FEATURES if n in names), None)
    return vol, trend


def direction_of(p: F64) -> NDArray[np.int64]:
    """Direction (-1, 0, 1) of the largest probability; ties go to flat (0).

    Flat wins whenever ``p_flat >= max(p_down, p_up)`` or ``p_down == p_up``: an
    undecided model must not open a position.
    """
    p = np.asarray(p, dtype=np.float64)
    down, flat, up = p[..., 0], p[..., 1], p[..., 2]
    d = np.where(up > down, 1, -1)
    return np.where((flat >= np.maximum(up, down)) | (up == down), 0, d).astype(np.int64)


def margin_of(p: F64, direction: NDArray[np.int64]) -> F64:
    """Probability of the chosen direction minus the largest other probability (>= 0)."""
    p = np.asarray(p, dtype=np.float64)
    idx = np.asarray(direction) + 1
    chosen = np.take_along_axis(p, idx[..., None], axis=-1)[..., 0]
    others = np.where(np.arange(3) == idx[..., None], -np.inf, p).max(axis=-1)
    return np.maximum(chosen - others, 0.0)


def agreement_of(per_model: F64, direction: NDArray[np.int64]) -> F64:
    """Share of members whose own argmax direction equals the ensemble's.

    ``per_model``: (members, n, 3); ``direction``: (n,).
    """
    member_dirs = direction_of(per_model)
    return (member_dirs == np.asarray(direction)[None, :]).mean(axis=0)


def confidence_of(
    margin: F64,
    agreement: F64,
    *,
    volatility_ratio: F64 | float | None = None,
    trend_strength: F64 | float | None = None,
    margin_weight: float = 0.5,
    agreement_weight: float = 0.3,
    trend_weight: float = 0.2,
    volatility_penalty: float = 0.5,
) -> F64:
    """Confidence in [0, 1] from four signals.

    ::

        base       = (wm * margin + wa * agreement + wt * trend) / (wm + wa + wt)
        penalty    = 1 / (1 + lam * max(0, volatility_ratio - 1))
        confidence = clip(base * penalty, 0, 1)

    ``margin`` = P(chosen) − P(runner-up) of the weighted ensemble; ``agreement`` = share of
    members agreeing with the ensemble; ``trend`` = trend strength in [0, 1] (efficiency
    ratio: a clear regime makes a directional call more trustworthy); ``volatility_ratio``
    = current volatility / its reference: above-normal volatility shrinks confidence,
    normal or calm volatility leaves it unchanged. When the trend strength is unknown
    (None) its term is dropped and the other two weights renormalised; an unknown
    volatility means no penalty. Monotone non-decreasing in margin, agreement and trend,
    non-increasing in volatility.
    """
    m = np.clip(np.asarray(margin, dtype=np.float64), 0.0, 1.0)
    a = np.clip(np.asarray(agreement, dtype=np.float64), 0.0, 1.0)
    num = margin_weight * m + agreement_weight * a
    den = margin_weight + agreement_weight
    if trend_strength is not None:
        t = np.nan_to_num(np.clip(np.asarray(trend_strength, dtype=np.float64), 0.0, 1.0))
        num = num + trend_weight * t
        den += trend_weight
    base = num / den if den > 0 else np.zeros_like(m)
    if volatility_ratio is not None:
        v = np.nan_to_num(np.asarray(volatility_ratio, dtype=np.float64), nan=1.0)
        base = base / (1.0 + volatility_penalty * np.maximum(v - 1.0, 0.0))
    return np.clip(base, 0.0, 1.0)


def direction_scalar(p: Sequence[float]) -> int:
    """:func:`direction_of` for one (down, flat, up) triple, in plain Python (fast path)."""
    down, flat, up = p
    if flat >= max(up, down) or up == down:
        return 0
    return 1 if up > down else -1


def confidence_scalar(
    margin: float,
    agreement: float,
    volatility_ratio: float | None,
    trend_strength: float | None,
    margin_weight: float,
    agreement_weight: float,
    trend_weight: float,
    volatility_penalty: float,
) -> float:
    """:func:`confidence_of` for one row, in plain Python (same formula; tested equal)."""
    m = min(max(margin, 0.0), 1.0)
    a = min(max(agreement, 0.0), 1.0)
    num = margin_weight * m + agreement_weight * a
    den = margin_weight + agreement_weight
    if trend_strength is not None:
        t = 0.0 if math.isnan(trend_strength) else min(max(trend_strength, 0.0), 1.0)
        num += trend_weight * t
        den += trend_weight
    base = num / den if den > 0 else 0.0
    if volatility_ratio is not None:
        v = 1.0 if math.isnan(volatility_ratio) else volatility_ratio
        base = base / (1.0 + volatility_penalty * max(v - 1.0, 0.0))
    return min(max(base, 0.0), 1.0)
