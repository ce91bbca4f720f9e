"""A/B and shadow analysis of the prediction log (a frame from ``PredictionLog.frame()``).

Definitions (the report states them too):

* A **call** is a logged prediction with a direction (``direction`` ±1). Once its
  outcome is reported it is a **hit** when the realised return has the same sign, and
  its **signed return** is ``direction × realized_return`` — what following the call
  earned before sizing and costs.
* **Hit rate** difference (candidate − baseline): Newcombe's hybrid score interval
  built from the two Wilson intervals (Newcombe 1998, method 10).
* **Mean signed return** difference: Welch's t interval (unequal variances).
* **Verdict** at the chosen confidence (95%): *better* when one interval lies wholly
  above 0 and neither lies wholly below, *worse* the other way round, *mixed* when
  they disagree, otherwise *no significant difference*. A shadow scores the same
  requests as the primary; treating the two samples as independent then overstates
  the variance of the difference, so the shadow's intervals are, if anything, wide.
* The **baseline** is the version serving most requests in the ``primary`` role; every
  other version (canary or shadow) is compared with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

BETTER = "better"
WORSE = "worse"
MIXED = "mixed"
NO_DIFFERENCE = "no significant difference"
INSUFFICIENT = "insufficient data"


# --- intervals -------------------------------------------------------------------------
def _z(confidence: float) -> float:
    from scipy import stats

    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return float(stats.norm.ppf(0.5 + confidence / 2))


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (NaN, NaN when ``n`` is 0)."""
    if n <= 0:
        return (math.nan, math.nan)
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be within [0, n]: {successes} of {n}")
    z = _z(confidence)
    p = successes / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (max(0.0, center - half), min(1.0, center + half))


def newcombe_interval(
    s_a: int, n_a: int, s_b: int, n_b: int, confidence: float = 0.95
) -> tuple[float, float, float]:
    """Difference of proportions p_b − p_a with Newcombe's hybrid score interval.

    Returns (difference, low, high); NaNs when either sample is empty.
    """
    if n_a <= 0 or n_b <= 0:
        return (math.nan, math.nan, math.nan)
    p_a, p_b = s_a / n_a, s_b / n_b
    l_a, u_a = wilson_interval(s_a, n_a, confidence)
    l_b, u_b = wilson_interval(s_b, n_b, confidence)
    d = p_b - p_a
    low = d - math.sqrt((p_b - l_b) ** 2 + (u_a - p_a) ** 2)
    high = d + math.sqrt((u_b - p_b) ** 2 + (p_a - l_a) ** 2)
    return (d, low, high)


def welch_interval(
    a: np.ndarray, b: np.ndarray, confidence: float = 0.95
) -> tuple[float, float, float, float]:
    """Difference of means mean(b) − mean(a) with Welch's t interval and p-value.

    Returns (difference, low, high, p-value); NaNs with fewer than two values a side.
    """
    from scipy import stats

    a = np.asarray(a, dtype="float64")
    b = np.asarray(b, dtype="float64")
    if a.size < 2 or b.size < 2:
        return (math.nan, math.nan, math.nan, math.nan)
    d = float(b.mean() - a.mean())
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        # Degenerate: no spread on either side; the difference is exact.
        return (d, d, d, 0.0 if d != 0 else 1.0)
    res = stats.ttest_ind(b, a, equal_var=False)
    ci = res.confidence_interval(confidence_level=confidence)
    return (d, float(ci.low), float(ci.high), float(res.pvalue))


def _direction_of(low: float, high: float) -> str:
    if math.isnan(low) or math.isnan(high):
        return INSUFFICIENT
    if low > 0:
        return BETTER
    if high < 0:
        return WORSE
    return NO_DIFFERENCE


# --- tables ------------------------------------------------------------------------------
def _require(frame: pd.DataFrame, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"prediction frame lacks columns {missing}; pass PredictionLog.frame() output"
        )


def decisions_by_action(frame: pd.DataFrame) -> pd.DataFrame:
    """Decisions per version, role and action: ``n`` and ``share`` within the version/role."""
    _require(frame, ("model_version", "role", "action"))
    if frame.empty:
        return pd.DataFrame(columns=["model_version", "role", "action", "n", "share"])
    counts = (
        frame.groupby(["model_version", "role", "action"], sort=True)
        .size()
        .rename("n")
        .reset_index()
    )
    totals = counts.groupby(["model_version", "role"])["n"].transform("sum")
    counts["share"] = counts["n"] / totals
    return counts


def baseline_version(frame: pd.DataFrame) -> str | None:
    """The version that served most requests in the ``primary`` role (None if none)."""
    primary = frame.loc[frame["role"] == "primary", "model_version"]
    if primary.empty:
        return None
    counts = primary.value_counts()
    # Ties broken by name so the choice is stable between runs.
    top = counts[counts == counts.max()].index
    return str(sorted(top)[0])


def shadow_agreement(frame: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """How often each shadow version agrees with the served decision on the same request.

    One row per shadow version: ``n_pairs`` (requests scored by both), the
    ``action_agreement`` and ``direction_agreement`` rates with Wilson intervals.
    """
    _require(frame, ("request_id", "role", "model_version", "action", "direction"))
    cols = [
        "shadow_version",
        "n_pairs",
        "action_agreement",
        "action_low",
        "action_high",
        "direction_agreement",
        "direction_low",
        "direction_high",
    ]
    shadow = frame[frame["role"] == "shadow"]
    served = frame[frame["role"] != "shadow"]
    if shadow.empty or served.empty:
        return pd.DataFrame(columns=cols)
    pairs = shadow.merge(
        served[["request_id", "action", "direction"]],
        on="request_id",
        suffixes=("", "_served"),
    )
    rows = []
    for version, g in pairs.groupby("model_version", sort=True):
        n = len(g)
        same_action = int((g["action"] == g["action_served"]).sum())
        same_dir = int((g["direction"] == g["direction_served"]).sum())
        a_low, a_high = wilson_interval(same_action, n, confidence)
        d_low, d_high = wilson_interval(same_dir, n, confidence)
        rows.append([str(version), n, same_action / n, a_low, a_high, same_dir / n, d_low, d_high])
    return pd.DataFrame(rows, columns=cols)


def _calls(frame: pd.DataFrame) -> pd.DataFrame:
    with_outcome = frame[frame["realized_return"].notna() & (frame["direction"] != 0)]
    out = with_outcome[["model_version", "role", "request_id", "direction", "realized_return"]]
    out = out.copy()
    out["signed_return"] = out["direction"] * out["realized_return"]
    out["hit"] = np.sign(out["realized_return"]) == out["direction"]
    return out


def version_performance(frame: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Realised performance per version: calls with outcomes, hit rate and mean signed
    return, each with its interval."""
    _require(frame, ("model_version", "role", "direction", "realized_return", "request_id"))
    cols = [
        "model_version",
        "roles",
        "n_predictions",
        "n_calls",
        "hit_rate",
        "hit_low",
        "hit_high",
        "mean_return",
        "return_low",
        "return_high",
    ]
    if frame.empty:
        return pd.DataFrame(columns=cols)
    from scipy import stats

    calls = _calls(frame)
    rows = []
    for version, g in frame.groupby("model_version", sort=True):
        c = calls[calls["model_version"] == version]
        n = len(c)
        hits = int(c["hit"].sum())
        low, high = wilson_interval(hits, n, confidence)
        mean = float(c["signed_return"].mean()) if n else math.nan
        # ptp, not std: identical values give a float std of ~1e-19, not 0.
        if n >= 2 and np.ptp(c["signed_return"].to_numpy()) > 0:
            r_low, r_high = stats.t.interval(
                confidence, n - 1, loc=mean, scale=stats.sem(c["signed_return"])
            )
        else:
            r_low, r_high = math.nan, math.nan
        rows.append(
            [
                str(version),
                ",".join(sorted(g["role"].unique())),
                len(g),
                n,
                hits / n if n else math.nan,
                low,
                high,
                mean,
                float(r_low),
                float(r_high),
            ]
        )
    return pd.DataFrame(rows, columns=cols)


@dataclass(frozen=True, slots=True)
class ABComparison:
    """Candidate version B against baseline A (differences are B − A)."""

    baseline: str
    candidate: str
    candidate_role: str
    confidence: float
    n_baseline: int
    n_candidate: int
    hit_rate_baseline: float
    hit_rate_candidate: float
    hit_rate_diff: float
    hit_rate_low: float
    hit_rate_high: float
    mean_return_baseline: float
    mean_return_candidate: float
    mean_return_diff: float
    mean_return_low: float
    mean_return_high: float
    mean_return_pvalue: float
    hit_rate_verdict: str
    mean_return_verdict: str
    verdict: str

    def sentence(self) -> str:
        """One line for people: 'B (canary v2) vs A (v1): better at 95% …'."""
        pct = f"{self.confidence:.0%}"
        if self.verdict == INSUFFICIENT:
            head = f"not enough outcomes yet (n={self.n_baseline} vs {self.n_candidate})"
        elif self.verdict == NO_DIFFERENCE:
            head = f"no significant difference at {pct}"
        else:
            head = f"{self.verdict} at {pct}"
        return (
            f"{self.candidate} ({self.candidate_role}) vs {self.baseline}: {head} — "
            f"hit rate {_pp(self.hit_rate_diff)} [{_pp(self.hit_rate_low)}, "
            f"{_pp(self.hit_rate_high)}], mean return {_bp(self.mean_return_diff)} "
            f"[{_bp(self.mean_return_low)}, {_bp(self.mean_return_high)}]"
        )


def _pp(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x * 100:+.1f} pp"


def _bp(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x * 1e4:+.1f} bp"


def compare_versions(
    frame: pd.DataFrame, baseline: str, candidate: str, confidence: float = 0.95
) -> ABComparison:
    """A/B comparison of ``candidate`` (B) against ``baseline`` (A) on realised outcomes."""
    _require(frame, ("model_version", "role", "direction", "realized_return", "request_id"))
    calls = _calls(frame)
    a = calls[calls["model_version"] == baseline]
    b = calls[calls["model_version"] == candidate]
    roles = frame.loc[frame["model_version"] == candidate, "role"]
    role = str(roles.mode().iloc[0]) if not roles.empty else ""
    hit_a, hit_b = int(a["hit"].sum()), int(b["hit"].sum())
    hd, hl, hh = newcombe_interval(hit_a, len(a), hit_b, len(b), confidence)
    md, ml, mh, mp = welch_interval(
        a["signed_return"].to_numpy(), b["signed_return"].to_numpy(), confidence
    )
    hv, mv = _direction_of(hl, hh), _direction_of(ml, mh)
    if INSUFFICIENT in (hv, mv):
        verdict = INSUFFICIENT
    else:
        found = {hv, mv} - {NO_DIFFERENCE}
        verdict = MIXED if found == {BETTER, WORSE} else (found.pop() if found else NO_DIFFERENCE)
    return ABComparison(
        baseline=baseline,
        candidate=candidate,
        candidate_role=role,
        confidence=confidence,
        n_baseline=len(a),
        n_candidate=len(b),
        hit_rate_baseline=hit_a / len(a) if len(a) else math.nan,
        hit_rate_candidate=hit_b / len(b) if len(b) else math.nan,
        hit_rate_diff=hd,
        hit_rate_low=hl,
        hit_rate_high=hh,
        mean_return_baseline=float(a["signed_return"].mean()) if len(a) else math.nan,
        mean_return_candidate=float(b["signed_return"].mean()) if len(b) else math.nan,
        mean_return_diff=md,
        mean_return_low=ml,
        mean_return_high=mh,
        mean_return_pvalue=mp,
        hit_rate_verdict=hv,
        mean_return_verdict=mv,
        verdict=verdict,
    )


def ab_comparisons(frame: pd.DataFrame, confidence: float = 0.95) -> list[ABComparison]:
    """Every non-baseline version (canary or shadow) against the baseline."""
    base = baseline_version(frame)
    if base is None:
        return []
    others = sorted(v for v in frame["model_version"].unique() if v != base)
    return [compare_versions(frame, base, str(v), confidence) for v in others]


def latency_percentiles(frame: pd.DataFrame) -> pd.DataFrame:
    """Scoring latency per version and role: n, p50, p90, p99, max (milliseconds)."""
    _require(frame, ("model_version", "role", "latency_ms"))
    cols = ["model_version", "role", "n", "p50_ms", "p90_ms", "p99_ms", "max_ms"]
    if frame.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for (version, role), g in frame.groupby(["model_version", "role"], sort=True):
        lat = g["latency_ms"].to_numpy(dtype="float64")
        p50, p90, p99 = np.percentile(lat, [50, 90, 99])
        rows.append([str(version), str(role), len(lat), p50, p90, p99, lat.max()])
    return pd.DataFrame(rows, columns=cols)


@dataclass(frozen=True)
class ServingSummary:
    """Everything the serving report shows, computed once."""

    n_predictions: int
    n_requests: int
    n_outcomes: int
    baseline: str | None
    decisions: pd.DataFrame
    agreement: pd.DataFrame
    performance: pd.DataFrame
    comparisons: list[ABComparison]
    latency: pd.DataFrame
    drift: pd.DataFrame = field(default_factory=pd.DataFrame)
    confidence: float = 0.95

    @property
    def empty(self) -> bool:
        return self.n_predictions == 0


def summarize(
    frame: pd.DataFrame, drift: pd.DataFrame | None = None, confidence: float = 0.95
) -> ServingSummary:
    """All report tables from a ``PredictionLog.frame()`` (and ``drift_frame()``)."""
    _require(frame, ("request_id", "realized_return"))
    outcomes = frame.drop_duplicates("request_id")["realized_return"].notna().sum()
    return ServingSummary(
        n_predictions=len(frame),
        n_requests=int(frame["request_id"].nunique()),
        n_outcomes=int(outcomes),
        baseline=baseline_version(frame) if not frame.empty else None,
        decisions=decisions_by_action(frame),
        agreement=shadow_agreement(frame, confidence),
        performance=version_performance(frame, confidence),
        comparisons=ab_comparisons(frame, confidence) if not frame.empty else [],
        latency=latency_percentiles(frame),
        drift=drift if drift is not None else pd.DataFrame(),
        confidence=confidence,
    )


__all__ = [
    "BETTER",
    "INSUFFICIENT",
    "MIXED",
    "NO_DIFFERENCE",
    "WORSE",
    "ABComparison",
    "ServingSummary",
    "ab_comparisons",
    "baseline_version",
    "compare_versions",
    "decisions_by_action",
    "latency_percentiles",
    "newcombe_interval",
    "shadow_agreement",
    "summarize",
    "version_performance",
    "welch_interval",
    "wilson_interval",
]
