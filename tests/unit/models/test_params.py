"""Hyper-parameters: typed, validated with the field named, round-trippable."""

from __future__ import annotations

import pytest

from augur.models import EnsembleParams


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("rf_n_estimators", 0),
        ("rf_max_depth", 0),
        ("xgb_learning_rate", 0.0),
        ("xgb_subsample", 1.5),
        ("calibration_folds", 1),
        ("validation_fraction", 0.95),
        ("weight_decay", 1.0),
        ("weight_floor", 0.5),
        ("confidence_margin_weight", -1.0),
        ("volatility_penalty", -0.1),
        ("calibration", "isotonic"),
        ("calibration", "holdout"),  # with the default refit=True: the tail is refitted on
        ("xgb_max_bin", 0),
    ],
)
def test_bad_values_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"EnsembleParams.{field}"):
        EnsembleParams(**{field: value})  # type: ignore[arg-type]


def test_round_trip_and_unknown_keys() -> None:
    p = EnsembleParams(rf_n_estimators=50, svm_gamma=0.1)
    assert EnsembleParams.from_dict(p.to_dict()) == p
    with pytest.raises(ValueError, match=r"unknown ensemble parameter\(s\) \['rf_trees'\]"):
        EnsembleParams.from_dict({"rf_trees": 10})


def test_holdout_calibration_needs_a_tail_and_no_refit() -> None:
    assert EnsembleParams(calibration="holdout", refit=False).calibration == "holdout"
    with pytest.raises(ValueError, match="validation_fraction > 0 and refit=False"):
        EnsembleParams(calibration="holdout", refit=False, validation_fraction=0.0)
