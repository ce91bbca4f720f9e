"""Promotion: the study's winner is saved as a version that decides with the thresholds
the winning trial chose."""

from __future__ import annotations

from pathlib import Path

from augur.decision import DecisionConfig
from augur.tuning import parse_study
from augur.tuning._promote import promote_best, tuned_decision
from augur.tuning._space import resolve
from tests.unit.tuning.helpers import make_study


def test_the_promoted_version_decides_with_the_tuned_thresholds(
    bars_root: Path, tmp_path: Path
) -> None:
    from augur.models import list_models, load_version

    study = parse_study(make_study(bars_root, tmp_path, sweep={"decision.cooldown_losses": [1, 4]}))
    best = {
        "trial_id": "t1",
        "params": {"decision.confidence_threshold": 0.42, "decision.kelly_fraction": 0.5},
        # as best.json holds it: the combination the trial chose, through pandas and JSON
        "decision": {"confidence_threshold": 0.42, "kelly_fraction": 0.5, "cooldown_losses": 4.0},
        "metrics": {"score": 1.0},
    }
    store = tmp_path / "bentoml"
    out = promote_best(study, best, store_dir=str(store))
    version = load_version(
        out["tag"], expected_hash=out["lineage"]["feature_spec_hash"], store_dir=store
    )
    assert version.decision == DecisionConfig(
        confidence_threshold=0.42, kelly_fraction=0.5, cooldown_losses=4
    )
    assert isinstance(version.decision.cooldown_losses, int)
    assert version.volatility_ref is not None and version.volatility_ref > 0
    assert version.lineage["tuning"]["trial_id"] == "t1"
    assert [r.tag for r in list_models(store_dir=store)] == [out["tag"]]


def test_tuned_thresholds_follow_the_rule_the_trial_scored_with(
    bars_root: Path, tmp_path: Path
) -> None:
    """A searched max_drawdown below the default scale start: the trial shrank sizes from
    half the limit, and so does the promoted version."""
    study = parse_study(
        make_study(
            bars_root,
            tmp_path,
            search_space={"decision.max_drawdown": {"type": "float", "low": 0.05, "high": 0.3}},
        )
    )
    configs = resolve(study, {"decision.max_drawdown": 0.08})
    assert tuned_decision(configs, {"max_drawdown": 0.08}) == DecisionConfig(
        max_drawdown=0.08, drawdown_scale_start=0.04
    )
    # a study that tunes no threshold: its version decides with the defaults
    plain = parse_study(
        make_study(
            bars_root,
            tmp_path,
            search_space={"model.xgb_max_depth": {"type": "int", "low": 2, "high": 4}},
        )
    )
    assert tuned_decision(resolve(plain, {"model.xgb_max_depth": 3}), {}) == DecisionConfig()
