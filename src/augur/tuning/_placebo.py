"""No placebo parameters: every searched dimension must be able to move the objective.

Each parameter is varied *alone* over its range (``points`` values from low to high, the
others held at a base point) and the fold-cumulative metrics are compared. A parameter
whose every value gives identical metrics is ignored by the trainable — a bug (a typo'd
field, a config never passed on), not a search dimension.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from augur.tuning._space import _encode_choice, base_point
from augur.tuning._study import CategoricalDist, FloatDist, IntDist, StudyConfig

__all__ = ["PlaceboParameterError", "check_no_placebo", "probe_values"]


class PlaceboParameterError(AssertionError):
    """Some searched parameters never change the objective."""


def probe_values(dist: Any, points: int = 5) -> list[Any]:
    """``points`` values spread over a distribution's range (encoded like the search)."""
    if isinstance(dist, CategoricalDist):
        return [_encode_choice(c) for c in dist.choices]
    if isinstance(dist, IntDist) and (dist.high - dist.low) // dist.step <= 8:
        return list(range(dist.low, dist.high + 1, dist.step))  # small span: every value
    lo, hi = float(dist.low), float(dist.high)
    out: list[Any] = []
    for i in range(points):
        t = i / (points - 1)
        v = (
            math.exp(math.log(lo) + t * (math.log(hi) - math.log(lo)))
            if dist.log
            else lo + t * (hi - lo)
        )
        if isinstance(dist, IntDist):
            v = round(v)
        out.append(v)
    assert isinstance(dist, FloatDist | IntDist)
    return list(dict.fromkeys(out))


def check_no_placebo(
    study: StudyConfig, bars: pd.DataFrame, *, points: int = 5, base: dict[str, Any] | None = None
) -> dict[str, list[dict[str, float]]]:
    """Raise :class:`PlaceboParameterError` naming every parameter that never moves the
    metrics; return the probe table ``{parameter: [metrics per value]}``."""
    from augur.tuning._objective import METRIC_KEYS, evaluate

    centre = {**base_point(study), **study.check_base, **(base or {})}
    probes: dict[str, list[dict[str, float]]] = {}
    placebo = []
    for key, dist in study.search_space.items():
        rows: list[dict[str, Any]] = []
        signatures_of: list[tuple[Any, ...]] = []
        for value in probe_values(dist, points):
            report = evaluate(study, bars, {**centre, key: value})
            rows.append({"value": value, **{m: report.metrics[m] for m in METRIC_KEYS}})
            # every grid row counts: a model parameter may move only combinations other
            # than the best (e.g. when the best is to stay out of the market)
            signatures_of.append(
                tuple(round(r, 12) for r in (*rows[-1].values(), *report.grid_scores)[1:])
            )
        probes[key] = rows
        signatures = set(signatures_of)
        if len(signatures) == 1:
            placebo.append(key)
    if placebo:
        raise PlaceboParameterError(
            f"parameters {placebo} never change the objective over their range around "
            f"{centre}: the trial ignores them (or the base point trades nothing) — fix the "
            "wiring or drop them from the search space"
        )
    return probes
