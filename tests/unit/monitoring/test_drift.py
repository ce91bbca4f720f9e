"""Drift tests: PSI values, detection of a shifted distribution, no alarm without one."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry

from augur.monitoring import PredictionLog
from augur.monitoring.drift import (
    REFERENCE_FILENAME,
    detect_drift,
    load_reference,
    psi,
    psi_from_proportions,
    reference_sample,
    save_reference,
)
from augur.monitoring.drift_monitor import DriftGauges, DriftMonitor, FeatureWindow

FEATURES = ["ret_5", "vol_20", "rsi_14", "trend_50", "volume_z"]


def normal_frame(n: int, seed: int, shift: dict[str, float] | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.normal(size=(n, len(FEATURES))), columns=FEATURES)
    for name, delta in (shift or {}).items():
        df[name] += delta
    return df


# --- PSI -------------------------------------------------------------------------------
def test_psi_known_values() -> None:
    assert psi_from_proportions([0.5, 0.5], [0.5, 0.5]) == 0.0
    # Σ (a−e)·ln(a/e) by hand: 0.13744 + 0.01116 + 0.00912 + 0.07050
    assert psi_from_proportions([0.25] * 4, [0.1, 0.2, 0.3, 0.4]) == pytest.approx(
        0.228217, abs=1e-5
    )
    # PSI is symmetric in its two arguments.
    assert psi_from_proportions([0.1, 0.2, 0.3, 0.4], [0.25] * 4) == pytest.approx(
        0.228217, abs=1e-5
    )
    with pytest.raises(ValueError, match="same number of bins"):
        psi_from_proportions([0.5, 0.5], [1.0])


def test_psi_on_samples() -> None:
    ref = np.arange(1000, dtype=float)
    assert psi(ref, ref) == 0.0
    # Everything lands in the top decile: expected 10% per bin, actual [0…0, 100%].
    expected = psi_from_proportions([0.1] * 10, [0.0] * 9 + [1.0])
    assert psi(ref, np.full(50, 5000.0)) == pytest.approx(expected)
    # Current values exactly on the reference's lower half: 50% in five deciles, 0 elsewhere.
    assert psi(ref, ref[:500]) == pytest.approx(
        psi_from_proportions([0.1] * 10, [0.2] * 5 + [0.0] * 5)
    )
    assert math.isnan(psi(ref, np.array([np.nan])))


def test_psi_few_distinct_values_merges_bins() -> None:
    ref = np.repeat([0.0, 1.0], 500)
    assert psi(ref, ref[::-1]) == 0.0
    assert psi(ref, np.zeros(100)) > 1.0


# --- detection ---------------------------------------------------------------------------
def test_same_distribution_is_not_flagged() -> None:
    reference = normal_frame(5000, seed=1)
    flagged = [detect_drift(reference, normal_frame(500, seed=s)).drifted for s in range(100, 120)]
    # Per-run false-alarm rate is about alpha (1%) plus a negligible PSI tail: over 20
    # independent runs more than one alarm would be very unlikely (p < 2%).
    assert sum(flagged) <= 1


def test_shifted_feature_is_flagged_and_named() -> None:
    reference = normal_frame(5000, seed=1)
    current = normal_frame(500, seed=2, shift={"vol_20": 0.5})
    result = detect_drift(reference, current, model_version="v7")
    assert result.drifted
    by_name = {f.feature: f for f in result.features}
    assert by_name["vol_20"].drifted
    assert by_name["vol_20"].ks_pvalue < 1e-6
    assert by_name["vol_20"].mw_pvalue < 1e-6
    assert by_name["vol_20"].psi > 0.1  # a half-sigma shift: ~0.2 in theory, deciles lose a little
    assert not any(f.drifted for f in result.features if f.feature != "vol_20")
    frame = result.to_frame()
    assert set(frame["model_version"]) == {"v7"}
    assert frame["model_drifted"].all()
    assert "Bonferroni" in result.rule


def test_change_of_spread_is_caught_by_ks_not_mann_whitney() -> None:
    reference = normal_frame(5000, seed=1)
    current = normal_frame(500, seed=3)
    current["rsi_14"] *= 2.0  # same centre, twice the spread
    result = detect_drift(reference, current)
    rsi = next(f for f in result.features if f.feature == "rsi_14")
    assert rsi.drifted
    assert rsi.ks_pvalue < 1e-6
    assert rsi.mw_pvalue > 0.001


def test_small_window_is_not_flagged() -> None:
    reference = normal_frame(5000, seed=1)
    current = normal_frame(40, seed=2, shift={"vol_20": 2.0})
    result = detect_drift(reference, current, min_rows=100)
    assert not result.enough_data
    assert not result.drifted
    assert next(f for f in result.features if f.feature == "vol_20").psi > 0.2


def test_missing_served_feature_is_an_error() -> None:
    with pytest.raises(ValueError, match="vol_20"):
        detect_drift(normal_frame(100, 1), normal_frame(100, 2).drop(columns="vol_20"))


# --- reference ---------------------------------------------------------------------------
def test_reference_sample_is_bounded_seeded_and_clean() -> None:
    X = normal_frame(3000, seed=4)
    X.iloc[5, 2] = np.nan
    a = reference_sample(X, max_rows=1000, seed=7)
    b = reference_sample(X, max_rows=1000, seed=7)
    assert len(a) == 1000
    pd.testing.assert_frame_equal(a, b)
    assert not a.isna().any().any()
    assert list(a.columns) == FEATURES
    assert len(reference_sample(X.head(10), max_rows=1000)) == 10 - int(
        X.head(10).isna().any(axis=1).sum()
    )
    arr = reference_sample(X.to_numpy()[:50], feature_names=FEATURES)
    assert list(arr.columns) == FEATURES
    assert list(reference_sample(X.to_numpy()[:5]).columns) == [f"f{i}" for i in range(5)]


def test_reference_sample_bad_input() -> None:
    X = normal_frame(10, seed=4)
    X["symbol"] = "AAA"
    with pytest.raises(ValueError, match="symbol"):
        reference_sample(X)
    with pytest.raises(ValueError, match="2-D"):
        reference_sample(np.zeros(5))
    with pytest.raises(ValueError, match="feature_names"):
        reference_sample(np.zeros((5, 2)), feature_names=["a"])
    with pytest.raises(ValueError, match="max_rows"):
        reference_sample(np.zeros((5, 2)), max_rows=0)
    with pytest.raises(ValueError, match="non-NaN"):
        reference_sample(np.full((5, 2), np.nan))


def test_reference_saved_with_the_model(tmp_path: Path) -> None:
    sample = reference_sample(normal_frame(200, seed=5))
    path = save_reference(sample, tmp_path / "model")
    assert path.name == REFERENCE_FILENAME
    assert path.stat().st_mode & 0o044  # readable by the serving process's group/others
    pd.testing.assert_frame_equal(load_reference(tmp_path / "model"), sample)
    assert load_reference(tmp_path / "other") is None


# --- window and monitor --------------------------------------------------------------------
def test_feature_window_keeps_the_latest_rows_in_order() -> None:
    window = FeatureWindow(["a", "b"], capacity=3)
    for i in range(5):
        window.append([i, 10 * i])
    assert len(window) == 3
    assert window.frame()["a"].tolist() == [2, 3, 4]
    window.append({"b": 7.0, "unknown": 1.0})
    frame = window.frame()
    assert frame["b"].tolist() == [30, 40, 7]
    assert math.isnan(frame["a"].iloc[-1])
    with pytest.raises(ValueError, match="expected 2"):
        window.append([1.0, 2.0, 3.0])


def test_monitor_sets_gauges_and_stores_results(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    log = PredictionLog(f"sqlite:///{tmp_path / 'log.db'}")
    monitor = DriftMonitor(window=300, gauges=DriftGauges(registry), log=log)
    monitor.set_reference("v1", normal_frame(3000, seed=1))
    monitor.set_reference("v2", normal_frame(3000, seed=2))
    shifted = normal_frame(300, seed=3, shift={"ret_5": 1.0})
    same = normal_frame(300, seed=4)
    for i in range(300):
        monitor.observe("v1", shifted.iloc[i].to_dict())
        monitor.observe("v2", same.iloc[i].to_numpy())
        monitor.observe("no-reference", [1.0])  # ignored, never an error
    assert monitor.feature_names("v1") == FEATURES
    assert monitor.feature_names("nope") is None
    results = monitor.update()
    assert results["v1"].drifted and not results["v2"].drifted
    assert monitor.results().keys() == {"v1", "v2"}

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert sample("augur_model_drift", model_version="v1") == 1.0
    assert sample("augur_model_drift", model_version="v2") == 0.0
    assert sample("augur_feature_drift_psi", model_version="v1", feature="ret_5") > 0.2
    assert sample("augur_feature_drift_ks_pvalue", model_version="v1", feature="ret_5") < 1e-6
    assert sample("augur_feature_drift_mw_pvalue", model_version="v2", feature="ret_5") > 0.0

    stored = log.drift_frame()
    assert set(stored["model_version"]) == {"v1", "v2"}
    assert len(stored) == 2 * len(FEATURES)
    assert stored.loc[stored["model_version"] == "v1", "model_drifted"].all()
    # A later update replaces what the report shows (latest per version only).
    monitor.update("v1")
    assert len(log.drift_frame()) == 2 * len(FEATURES)
    with pytest.raises(KeyError, match="v9"):
        monitor.update("v9")
    log.close()


def test_monitor_background_refresh_after_n_rows() -> None:
    seen: list[str] = []
    monitor = DriftMonitor(
        window=200,
        update_every=150,
        update_seconds=60,
        on_result=lambda r: seen.append(r.model_version),
    )
    monitor.set_reference("v1", normal_frame(1000, seed=1))
    monitor.start()
    try:
        rows = normal_frame(150, seed=2).to_numpy()
        for row in rows[:149]:
            monitor.observe("v1", row)
        assert monitor.due_versions() == []
        monitor.observe("v1", rows[149])
        deadline = time.monotonic() + 30
        while not seen and time.monotonic() < deadline:
            time.sleep(0.02)
        assert seen == ["v1"]
        assert not monitor.results()["v1"].drifted
    finally:
        monitor.stop()


class ManualClock:
    """The drift monitor's ``time.monotonic``, moved by hand: a time-based rule is checked
    at exact instants, not after sleeps a loaded machine may stretch."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> ManualClock:
    from types import SimpleNamespace

    from augur.monitoring import drift_monitor

    manual = ManualClock()
    monkeypatch.setattr(drift_monitor, "time", SimpleNamespace(monotonic=manual.monotonic))
    return manual


def test_a_version_with_new_rows_is_due_once_update_seconds_passed(clock: ManualClock) -> None:
    monitor = DriftMonitor(update_every=1000, update_seconds=30.0)
    monitor.set_reference("v1", normal_frame(100, seed=1))
    clock.advance(31.0)
    assert monitor.due_versions() == []  # nothing new served: never due
    monitor.observe("v1", np.zeros(len(FEATURES)))
    assert monitor.due_versions() == ["v1"]  # one row, and more than 30 s since the last
    monitor.update("v1")
    monitor.observe("v1", np.zeros(len(FEATURES)))
    clock.advance(29.9)
    assert monitor.due_versions() == []  # fewer rows than update_every, and not 30 s yet
    clock.advance(0.1)
    assert monitor.due_versions() == ["v1"]
    with pytest.raises(ValueError, match="empty"):
        monitor.set_reference("v2", pd.DataFrame(columns=FEATURES))


def test_min_interval_holds_back_a_due_version_until_it_passed(clock: ManualClock) -> None:
    monitor = DriftMonitor(update_every=1, update_seconds=10.0, min_interval_seconds=300.0)
    monitor.set_reference("v1", normal_frame(100, seed=1))
    monitor.observe("v1", np.zeros(len(FEATURES)))
    clock.advance(299.0)
    assert monitor.due_versions() == []  # rows and seconds say due; the interval says wait
    clock.advance(1.0)
    assert monitor.due_versions() == ["v1"]
    monitor.update("v1")  # the interval counts from the last computation
    monitor.observe("v1", np.zeros(len(FEATURES)))
    clock.advance(299.0)
    assert monitor.due_versions() == []
    clock.advance(1.0)
    assert monitor.due_versions() == ["v1"]


def test_default_gauges_are_made_once() -> None:
    assert DriftGauges.default() is DriftGauges.default()


def test_monitor_from_settings() -> None:
    from augur.config import Settings

    monitor = DriftMonitor.from_settings(
        Settings(drift_window=64, drift_update_rows=8, drift_update_seconds=2.5)
    )
    assert (monitor.window, monitor.update_every, monitor.update_seconds) == (64, 8, 2.5)
