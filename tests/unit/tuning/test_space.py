"""Search space conversion: Tune domains, Optuna distributions, decoding, configs."""

from __future__ import annotations

from pathlib import Path

import optuna

from augur.tuning import parse_study
from augur.tuning._space import base_point, decode, optuna_distributions, resolve, tune_search_space
from tests.unit.tuning.helpers import make_study


def _study(bars_root: Path, tmp_path: Path):
    raw = make_study(bars_root, tmp_path)
    raw["search_space"].update(
        {
            "features.windows": {"type": "categorical", "choices": [[5, 10], [5, 10, 20]]},
            "model.rf_max_depth": {"type": "int", "low": 2, "high": 8},
            "model.rf_n_estimators": {"type": "int", "low": 10, "high": 100, "log": True},
            "decision.cooldown_bars": {"type": "int", "low": 0, "high": 24, "step": 6},
            "model.svm_c": {"type": "float", "low": 0.1, "high": 10.0, "log": True},
        }
    )
    raw["fixed"].pop("model.rf_n_estimators")
    raw["sweep"] = {"decision.max_drawdown": [0.05, 0.2], "decision.cooldown_losses": [0, 2, 4]}
    return parse_study(raw)


def test_tune_space_covers_every_dimension(bars_root: Path, tmp_path: Path) -> None:
    from ray.tune.search.optuna import OptunaSearch

    study = _study(bars_root, tmp_path)
    space = tune_search_space(study)
    assert set(space) == set(study.search_space)
    converted = OptunaSearch.convert_search_space(space)
    assert converted["features.windows"].choices == ("5,10", "5,10,20")
    assert converted["model.rf_n_estimators"].log
    assert converted["model.rf_max_depth"].high == 8


def test_optuna_distributions_match(bars_root: Path, tmp_path: Path) -> None:
    study = _study(bars_root, tmp_path)
    dists = optuna_distributions(study)
    assert isinstance(dists["model.svm_c"], optuna.distributions.FloatDistribution)
    assert dists["decision.cooldown_bars"].step == 6
    point = base_point(study)
    for key, dist in dists.items():
        assert dist._contains(dist.to_internal_repr(point[key])), key


def test_decode_and_resolve(bars_root: Path, tmp_path: Path) -> None:
    study = _study(bars_root, tmp_path)
    assert decode("features.windows", "5,10,20") == (5, 10, 20)
    assert decode("model.svm_c", 2.0) == 2.0
    configs = resolve(study, {**base_point(study), "features.windows": "5,10"})
    assert configs.features == {"windows": (5, 10)}
    assert configs.feature_spec().windows == (5, 10)
    assert configs.model["rf_n_estimators"] > 0 and configs.model["rf_n_estimators"] <= 100
    assert len(configs.decision_grid) == 6  # 2 x 3 sweep combinations
    decisions = configs.decision_configs()
    small = [d for d in decisions if d.max_drawdown == 0.05]
    assert small and all(d.drawdown_scale_start < 0.05 for d in small)
    assert configs.ensemble_params().rf_max_depth == configs.model["rf_max_depth"]
