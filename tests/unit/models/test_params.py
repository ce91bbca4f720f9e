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
        ("class_weight", "auto"),
        ("class_weight", None),
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


def test_class_weight_is_a_study_search_dimension(tmp_path) -> None:
    from augur.tuning import StudyError, parse_study
    from augur.tuning._space import resolve

    raw = {
        "name": "weights",
        "trials": 2,
        "storage": str(tmp_path),
        "data": {"symbols": ["AAA"]},
        "search_space": {
            "model.class_weight": {"type": "categorical", "choices": ["none", "balanced"]}
        },
    }
    study = parse_study(raw, check_data=False)
    trial = resolve(study, {"model.class_weight": "balanced"})
    assert trial.ensemble_params().class_weight == "balanced"
    raw["search_space"]["model.class_weight"]["choices"] = ["none", "inverse"]
    with pytest.raises(StudyError, match=r"model\.class_weight.*EnsembleParams\.class_weight"):
        parse_study(raw, check_data=False)
