"""A/B and shadow analysis: intervals against published values, verdicts on synthetic
logs with a known difference and with none."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from augur.monitoring.analysis import (
    BETTER,
    INSUFFICIENT,
    NO_DIFFERENCE,
    WORSE,
    ab_comparisons,
    baseline_version,
    compare_versions,
    decisions_by_action,
    latency_percentiles,
    newcombe_interval,
    shadow_agreement,
    summarize,
    version_performance,
    welch_interval,
    wilson_interval,
)

ACTIONS = {1: "enter_long", -1: "enter_short", 0: "no_action"}


def synthetic_log(
    n: int,
    hit_prob: dict[str, float],
    seed: int,
    canary_share: float = 0.5,
    shadow: str | None = None,
    with_outcomes: bool = True,
) -> pd.DataFrame:
    """A log like PredictionLog.frame(): 'v1' primary, 'v2' canary (+ optional shadow),
    where each version calls the sign of the realised return with the given probability."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        r = float(rng.normal(0.0, 0.01))
        truth = 1 if r > 0 else -1
        version, role = ("v2", "canary") if rng.random() < canary_share else ("v1", "primary")
        served = [(version, role)] + ([(shadow, "shadow")] if shadow else [])
        for v, ro in served:
            d = truth if rng.random() < hit_prob[v] else -truth
            rows.append(
                {
                    "request_id": f"r{i}",
                    "model_version": v,
                    "role": ro,
                    "action": ACTIONS[d],
                    "direction": d,
                    "latency_ms": float(rng.gamma(2.0, 0.5)),
                    "realized_return": r if with_outcomes else math.nan,
                }
            )
    return pd.DataFrame(rows)


# --- intervals ---------------------------------------------------------------------------
def test_wilson_matches_published_values() -> None:
    # Newcombe (1998), Statistics in Medicine 17:857, table I: 81/263 → 0.2553–0.3662.
    low, high = wilson_interval(81, 263)
    assert (low, high) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert all(math.isnan(x) for x in wilson_interval(0, 0))
    with pytest.raises(ValueError, match="within"):
        wilson_interval(11, 10)
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(1, 10, confidence=1.5)


def test_newcombe_matches_published_values() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873, example (a), method 10:
    # 56/70 − 48/80 = 0.2000, 95% interval 0.0524 to 0.3339.
    d, low, high = newcombe_interval(48, 80, 56, 70)
    assert d == pytest.approx(0.2)
    assert (low, high) == pytest.approx((0.0524, 0.3339), abs=1e-4)
    assert all(math.isnan(x) for x in newcombe_interval(0, 0, 1, 2))


def test_welch_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 40), rng.normal(0.5, 2, 60)
    d, low, high, p = welch_interval(a, b)
    assert d == pytest.approx(b.mean() - a.mean())
    res = stats.ttest_ind(b, a, equal_var=False)
    assert p == pytest.approx(res.pvalue)
    # Welch–Satterthwaite by hand.
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    dof = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    half = stats.t.ppf(0.975, dof) * math.sqrt(va + vb)
    assert (low, high) == pytest.approx((d - half, d + half))
    assert all(math.isnan(x) for x in welch_interval(a[:1], b))
    assert welch_interval(np.ones(3), np.ones(4) * 2)[:3] == (1.0, 1.0, 1.0)


# --- verdicts ------------------------------------------------------------------------------
def test_verdict_better_with_a_known_difference() -> None:
    frame = synthetic_log(4000, {"v1": 0.50, "v2": 0.60}, seed=1)
    c = compare_versions(frame, "v1", "v2")
    assert c.verdict == BETTER
    assert c.hit_rate_verdict == BETTER
    assert c.hit_rate_low > 0
    assert c.hit_rate_low < 0.10 < c.hit_rate_high  # the true difference is covered
    assert c.mean_return_diff > 0
    assert c.candidate_role == "canary"
    assert "better at 95%" in c.sentence()


def test_verdict_worse_when_swapped() -> None:
    frame = synthetic_log(4000, {"v1": 0.60, "v2": 0.50}, seed=2)
    c = compare_versions(frame, "v1", "v2")
    assert c.verdict == WORSE
    assert c.hit_rate_high < 0


def test_no_difference_when_there_is_none() -> None:
    verdicts = [
        compare_versions(synthetic_log(800, {"v1": 0.55, "v2": 0.55}, seed=s), "v1", "v2").verdict
        for s in range(100, 140)
    ]
    # Two 95% intervals per comparison: a false verdict in ~7% of runs (measured over 300
    # seeds). More than 8 of 40 would happen with probability < 1% if that holds.
    assert verdicts.count(NO_DIFFERENCE) >= 32


def test_insufficient_without_outcomes() -> None:
    frame = synthetic_log(100, {"v1": 0.5, "v2": 0.5}, seed=3, with_outcomes=False)
    c = compare_versions(frame, "v1", "v2")
    assert c.verdict == INSUFFICIENT
    assert "not enough outcomes" in c.sentence()
    perf = version_performance(frame)
    assert (perf["n_calls"] == 0).all()
    assert perf["hit_rate"].isna().all()


def test_ab_comparisons_take_the_primary_as_baseline() -> None:
    frame = synthetic_log(
        600, {"v1": 0.5, "v2": 0.5, "v3": 0.5}, seed=4, canary_share=0.2, shadow="v3"
    )
    assert baseline_version(frame) == "v1"
    comps = ab_comparisons(frame)
    assert [(c.baseline, c.candidate, c.candidate_role) for c in comps] == [
        ("v1", "v2", "canary"),
        ("v1", "v3", "shadow"),
    ]
    assert ab_comparisons(frame[frame["role"] == "shadow"]) == []


def test_mixed_verdict_when_the_metrics_disagree() -> None:
    # Three small rises for each big fall. The candidate always buys: right 75% of the
    # time but loses on average; the baseline always sells: right 25%, earns on average.
    rows = []
    for i in range(400):
        r = -0.02 if i % 4 == 0 else 0.001
        for version, role, d in (("v1", "primary", -1), ("v2", "canary", 1)):
            rows.append(
                {
                    "request_id": f"{version}-{i}",
                    "model_version": version,
                    "role": role,
                    "action": ACTIONS[d],
                    "direction": d,
                    "latency_ms": 1.0,
                    "realized_return": r,
                }
            )
    c = compare_versions(pd.DataFrame(rows), "v1", "v2")
    assert c.hit_rate_diff == pytest.approx(0.5)
    assert c.hit_rate_verdict == BETTER
    assert c.mean_return_verdict == WORSE
    assert c.verdict == "mixed"


# --- tables --------------------------------------------------------------------------------
def test_shadow_agreement_counts_pairs() -> None:
    rows = []
    for i in range(10):
        rows.append(
            {
                "request_id": f"r{i}",
                "role": "primary",
                "model_version": "v1",
                "action": "enter_long",
                "direction": 1,
            }
        )
        agree = i < 7
        rows.append(
            {
                "request_id": f"r{i}",
                "role": "shadow",
                "model_version": "v9",
                "action": "enter_long" if agree else "no_action",
                "direction": 1 if i < 8 else -1,
            }
        )
    rows.append(
        {
            "request_id": "lonely",
            "role": "shadow",
            "model_version": "v9",
            "action": "no_action",
            "direction": 0,
        }
    )
    table = shadow_agreement(pd.DataFrame(rows))
    row = table.iloc[0]
    assert row["shadow_version"] == "v9"
    assert row["n_pairs"] == 10
    assert row["action_agreement"] == pytest.approx(0.7)
    assert row["direction_agreement"] == pytest.approx(0.8)
    assert row["action_low"] < 0.7 < row["action_high"]
    assert shadow_agreement(pd.DataFrame(rows[:1])).empty


def test_decisions_by_action_shares() -> None:
    frame = synthetic_log(300, {"v1": 0.5, "v2": 0.5}, seed=5)
    table = decisions_by_action(frame)
    assert table.groupby(["model_version", "role"])["share"].sum().tolist() == pytest.approx([1, 1])
    assert table["n"].sum() == len(frame)
    assert decisions_by_action(frame.iloc[:0]).empty
    with pytest.raises(ValueError, match=r"PredictionLog\.frame"):
        decisions_by_action(frame.drop(columns="action"))


def test_latency_percentiles() -> None:
    frame = pd.DataFrame(
        {"model_version": "v1", "role": "primary", "latency_ms": np.arange(1, 101, dtype=float)}
    )
    row = latency_percentiles(frame).iloc[0]
    assert row["n"] == 100
    assert row["p50_ms"] == pytest.approx(50.5)
    assert row["p99_ms"] == pytest.approx(99.01)
    assert row["max_ms"] == 100.0
    assert latency_percentiles(frame.iloc[:0]).empty


def test_version_performance_intervals_cover_the_truth() -> None:
    frame = synthetic_log(3000, {"v1": 0.55, "v2": 0.65}, seed=6)
    perf = version_performance(frame).set_index("model_version")
    assert perf.loc["v1", "hit_low"] < 0.55 < perf.loc["v1", "hit_high"]
    assert perf.loc["v2", "hit_low"] < 0.65 < perf.loc["v2", "hit_high"]
    assert (
        perf.loc["v2", "return_low"] < perf.loc["v2", "mean_return"] < perf.loc["v2", "return_high"]
    )
    assert perf.loc["v1", "roles"] == "primary"


def test_summarize() -> None:
    frame = synthetic_log(500, {"v1": 0.5, "v2": 0.6, "v3": 0.5}, seed=7, shadow="v3")
    summary = summarize(frame)
    assert not summary.empty
    assert summary.n_requests == 500
    assert summary.n_predictions == 1000
    assert summary.n_outcomes == 500
    assert summary.baseline == "v1"
    assert len(summary.comparisons) == 2
    assert summary.drift.empty
    empty = summarize(frame.iloc[:0])
    assert empty.empty and empty.baseline is None and empty.comparisons == []
