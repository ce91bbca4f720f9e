"""Feature drift: does what the service sees now look like what the model was trained on?

For each feature we compare the model's **training reference** (a bounded random sample
of its training features, saved next to the model) with a **window of recently served
features** (a ring buffer per model version) using

* the two-sample Kolmogorov–Smirnov test (``scipy.stats.ks_2samp``) — any change of shape;
* the Mann–Whitney U test (``scipy.stats.mannwhitneyu``) — a shift in location;
* the population stability index (PSI) over deciles of the reference — a size of the
  change that does not grow with the sample size the way p-values do.

**Drift rule** (per feature; a model version drifts when any feature does), with at least
``min_rows`` served rows in the window:

    PSI > psi_threshold (0.2)   or   KS p-value < alpha / n_features (alpha = 0.01, Bonferroni)

Mann–Whitney is reported but not part of the rule (KS already reacts to a location
shift). Caveat: served features are autocorrelated in time while both tests assume
independent draws, so p-values over a short window are optimistic; PSI is the sturdier
signal and the thresholds are settings, not truths.

This module holds the statistics and the rule; :mod:`augur.monitoring.drift_monitor`
keeps the served window per version and refreshes the Prometheus gauges off the request
path.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    pass

from augur.models import REFERENCE_FILENAME, load_reference, reference_sample, save_reference

log = logging.getLogger(__name__)

PSI_THRESHOLD = 0.2
ALPHA = 0.01
MIN_ROWS = 100
_PSI_EPS = 1e-4  # floor for empty bins: log(0) would make PSI infinite


# --- statistics -------------------------------------------------------------------------
def psi_from_proportions(expected: Sequence[float], actual: Sequence[float]) -> float:
    """PSI = Σ (a − e) · ln(a / e) over bins (proportions; empty bins floored at 1e-4)."""
    e = np.clip(np.asarray(expected, dtype="float64"), _PSI_EPS, None)
    a = np.clip(np.asarray(actual, dtype="float64"), _PSI_EPS, None)
    if e.shape != a.shape:
        raise ValueError("psi: expected and actual need the same number of bins")
    return float(np.sum((a - e) * np.log(a / e)))


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """Population stability index of ``current`` against ``reference``.

    Bins are quantiles of the reference (deciles by default; duplicate edges merged, so
    a feature with few distinct values gets fewer bins), open at both ends so every
    current value falls in a bin. Conventional reading: < 0.1 stable, 0.1–0.2 some
    change, > 0.2 a significant shift.
    """
    ref = np.asarray(reference, dtype="float64")
    cur = np.asarray(current, dtype="float64")
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    if ref.size == 0 or cur.size == 0:
        return math.nan
    inner = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    # side="right": a value equal to an edge goes to the bin above it, for both samples.
    ref_counts = np.bincount(np.searchsorted(inner, ref, side="right"), minlength=inner.size + 1)
    cur_counts = np.bincount(np.searchsorted(inner, cur, side="right"), minlength=inner.size + 1)
    return psi_from_proportions(ref_counts / ref.size, cur_counts / cur.size)


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    """Drift statistics of one feature."""

    feature: str
    n_reference: int
    n_current: int
    ks_statistic: float
    ks_pvalue: float
    mw_pvalue: float
    psi: float
    drifted: bool


@dataclass(frozen=True, slots=True)
class DriftResult:
    """Drift of one model version: per-feature statistics and the overall flag."""

    model_version: str
    features: tuple[FeatureDrift, ...]
    drifted: bool
    n_current: int
    enough_data: bool
    rule: str
    ts: datetime

    def to_frame(self) -> pd.DataFrame:
        """One row per feature (for reports and tests)."""
        rows = [
            {"model_version": self.model_version, **_feature_dict(f), "model_drifted": self.drifted}
            for f in self.features
        ]
        return pd.DataFrame(rows)

    def rows(self) -> list[dict[str, Any]]:
        """Rows for :meth:`PredictionLog.log_drift`."""
        return [
            {
                "ts": self.ts,
                "model_version": self.model_version,
                **_feature_dict(f),
                "model_drifted": self.drifted,
            }
            for f in self.features
        ]


def _feature_dict(f: FeatureDrift) -> dict[str, Any]:
    return {
        "feature": f.feature,
        "n_reference": f.n_reference,
        "n_current": f.n_current,
        "ks_statistic": f.ks_statistic,
        "ks_pvalue": f.ks_pvalue,
        "mw_pvalue": f.mw_pvalue,
        "psi": f.psi,
        "drifted": f.drifted,
    }


def detect_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    model_version: str = "",
    psi_threshold: float = PSI_THRESHOLD,
    alpha: float = ALPHA,
    min_rows: int = MIN_ROWS,
    bins: int = 10,
) -> DriftResult:
    """Compare served features (``current``) with the training ``reference``, per feature.

    Features are the reference's columns; ``current`` must contain them all. With fewer
    than ``min_rows`` current rows the statistics are still computed but nothing is
    flagged (``enough_data`` False): small windows make PSI noisy.
    """
    from scipy import stats

    missing = [c for c in reference.columns if c not in current.columns]
    if missing:
        raise ValueError(f"detect_drift: served features lack reference columns {missing}")
    n_features = max(len(reference.columns), 1)
    ks_cut = alpha / n_features
    n_current = len(current)
    enough = n_current >= min_rows
    results = []
    for name in reference.columns:
        ref = reference[name].to_numpy(dtype="float64")
        cur = current[name].to_numpy(dtype="float64")
        ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
        if ref.size == 0 or cur.size == 0:
            ks_stat, ks_p, mw_p, value = math.nan, math.nan, math.nan, math.nan
        else:
            ks = stats.ks_2samp(ref, cur, method="asymp")
            ks_stat, ks_p = float(ks.statistic), float(ks.pvalue)
            mw_p = float(stats.mannwhitneyu(ref, cur, alternative="two-sided").pvalue)
            value = psi(ref, cur, bins=bins)
        flagged = enough and ((value > psi_threshold) or (ks_p < ks_cut))
        results.append(
            FeatureDrift(
                feature=str(name),
                n_reference=int(ref.size),
                n_current=int(cur.size),
                ks_statistic=ks_stat,
                ks_pvalue=ks_p,
                mw_pvalue=mw_p,
                psi=value,
                drifted=bool(flagged),
            )
        )
    return DriftResult(
        model_version=model_version,
        features=tuple(results),
        drifted=any(f.drifted for f in results),
        n_current=n_current,
        enough_data=enough,
        rule=_rule(psi_threshold, alpha, n_features, min_rows),
        ts=datetime.now(UTC),
    )


def _rule(psi_threshold: float, alpha: float, n_features: int, min_rows: int) -> str:
    return (
        f"PSI > {psi_threshold:g} or KS p < {alpha:g}/{n_features} (Bonferroni), "
        f"with >= {min_rows} served rows"
    )


def stored_drift(
    frame: pd.DataFrame, model_version: str, *, min_rows: int = MIN_ROWS
) -> DriftResult | None:
    """A version's latest drift result as the service stored it in the prediction log.

    ``frame`` is :meth:`PredictionLog.drift_frame` (the latest statistics per version);
    None when it holds none for ``model_version``. The flag is the one the service
    computed, under the default rule (the service's monitor uses it); ``n_current`` is
    the most served rows any feature was tested on.
    """
    rows = frame[frame["model_version"] == model_version] if not frame.empty else frame
    if rows.empty:
        return None
    features = tuple(
        FeatureDrift(
            feature=str(r["feature"]),
            n_reference=int(r["n_reference"]),
            n_current=int(r["n_current"]),
            ks_statistic=float(r["ks_statistic"]),
            ks_pvalue=float(r["ks_pvalue"]),
            mw_pvalue=float(r["mw_pvalue"]),
            psi=float(r["psi"]),
            drifted=bool(r["drifted"]),
        )
        for r in rows.to_dict("records")
    )
    n_current = max(f.n_current for f in features)
    return DriftResult(
        model_version=model_version,
        features=features,
        drifted=bool(rows["model_drifted"].any()),
        n_current=n_current,
        enough_data=n_current >= min_rows,
        rule=_rule(PSI_THRESHOLD, ALPHA, len(features), min_rows),
        ts=pd.Timestamp(rows["ts"].max()).to_pydatetime(),
    )


__all__ = [
    "ALPHA",
    "MIN_ROWS",
    "PSI_THRESHOLD",
    "REFERENCE_FILENAME",
    "DriftResult",
    "FeatureDrift",
    "detect_drift",
    "load_reference",
    "psi",
    "psi_from_proportions",
    "reference_sample",
    "save_reference",
    "stored_drift",
]
