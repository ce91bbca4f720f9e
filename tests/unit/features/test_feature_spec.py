"""FeatureSpec: names, order, descriptions, lookback and the stable hash."""

from __future__ import annotations

import subprocess
import sys

import pytest

from augur.config import Settings
from augur.features import ENGINE_VERSION, FeatureDef, FeatureSpec, default_spec


def test_default_spec_lists_every_feature_family_once() -> None:
    names = default_spec().names
    assert len(names) == len(set(names))
    assert names[0] == "ret_1"
    for w in (5, 10, 20, 50):
        for family in (
            "ret_mean",
            "vol",
            "rvol",
            "zscore",
            "atr",
            "mom",
            "roc",
            "rsi",
            "skew",
            "kurt",
            "eff_ratio",
            "vol_cluster",
        ):
            assert f"{family}_{w}" in names
    assert names[-5:] == ["tod_sin", "tod_cos", "dow_sin", "dow_cos", "regime"]
    assert [n for n in names if n.startswith("ret_lag_")] == [f"ret_lag_{k}" for k in (1, 2, 3, 5)]


def test_every_feature_is_described() -> None:
    spec = default_spec()
    assert all(isinstance(f, FeatureDef) and len(f.description) > 20 for f in spec.features)
    assert spec.descriptions["rsi_20"].startswith("RSI")


def test_small_windows_drop_moments_they_cannot_estimate() -> None:
    names = FeatureSpec(windows=(2, 3, 4)).names
    assert "skew_2" not in names and "kurt_2" not in names
    assert "skew_3" in names and "kurt_3" not in names
    assert "skew_4" in names and "kurt_4" in names


def test_windows_and_lags_are_normalised() -> None:
    assert FeatureSpec(windows=(20, 5, 20)) == FeatureSpec(windows=(5, 20))
    assert FeatureSpec(windows=(20, 5)).hash == FeatureSpec(windows=(5, 20)).hash
    assert FeatureSpec(lags=()).names.count("ret_lag_1") == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"windows": ()}, "windows must not be empty"),
        ({"windows": (1, 5)}, "windows must all be >= 2"),
        ({"windows": (5.5,)}, "windows must be integers"),
        ({"windows": ("x",)}, "windows must be integers"),
        ({"lags": (0,)}, "lags must all be >= 1"),
    ],
)
def test_bad_spec_is_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FeatureSpec(**kwargs)  # type: ignore[arg-type]


def test_max_lookback_is_the_longest_feature_history() -> None:
    assert default_spec().max_lookback == 52  # vol_cluster_50: 50 pairs of returns
    assert FeatureSpec(windows=(5,), lags=(10,)).max_lookback == 12  # ret_lag_10


def test_hash_is_stable_across_processes_and_tracks_the_definition() -> None:
    spec = default_spec()
    code = "from augur.features import default_spec; print(default_spec().hash)"
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert other == spec.hash
    assert len(spec.hash) == 16 and int(spec.hash, 16) >= 0
    assert FeatureSpec(windows=(5, 10, 20)).hash != spec.hash
    assert FeatureSpec(lags=(1, 2)).hash != spec.hash
    assert ENGINE_VERSION


def test_from_settings_uses_the_configured_windows() -> None:
    spec = FeatureSpec.from_settings(Settings(windows=[30, 7]))
    assert spec.windows == (7, 30)
    assert FeatureSpec.from_settings().windows == tuple(Settings().windows)


def test_the_regime_reads_the_confidence_window_against_the_longest() -> None:
    assert default_spec().regime_windows == (20, 50)
    assert FeatureSpec(windows=(7, 30)).regime_windows == (7, 30)
    assert FeatureSpec(windows=(10,)).regime_windows == (10, 10)  # every bar calm
    assert "eff_ratio_20 >= 0.3" in default_spec().descriptions["regime"]


def test_the_regime_is_served_but_not_fitted_on() -> None:
    spec = default_spec()
    assert "regime" in spec.names and "regime" not in spec.model_names
    assert spec.model_names == [n for n in spec.names if n != "regime"]
