"""Promotion: the study's winner becomes a new version in the BentoML model store.

The best parameters (searched + fixed, the decision combination the trial chose) are
re-evaluated walk-forward (the honest out-of-sample figure saved with the model), then
the ensemble is trained on the full data range and saved as a version that decides with
the decision thresholds the trial chose (its ``DecisionConfig``), with its lineage: study,
trial id, params, metrics, data range and FeatureSpec (hash, windows, lags), so a
`DecisionService` can take it as shadow or canary.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from augur.tuning._study import StudyConfig

__all__ = ["promote_best", "tuned_decision"]


def promote_best(
    study: StudyConfig,
    best_json: str | Path | dict[str, Any],
    *,
    bars: Any = None,
    store_dir: str | None = None,
    model_name: str | None = None,
) -> dict[str, Any]:
    """Train + save the winner; returns ``{"tag", "lineage"}`` (also ``promoted.json``)."""
    from augur.features import training_frame
    from augur.models import Ensemble, save_version
    from augur.models._confidence import confidence_features
    from augur.tuning._objective import TUNING_MODEL_DEFAULTS, evaluate, load_study_bars
    from augur.tuning._space import resolve

    best = best_json if isinstance(best_json, dict) else json.loads(Path(best_json).read_text())
    if bars is None:
        bars = load_study_bars(study)
    params = dict(best["params"])
    wf = evaluate(study, bars, params)
    configs = resolve(study, params)
    decision = tuned_decision(configs, best.get("decision", {}))
    spec = configs.feature_spec()
    model_params = configs.ensemble_params(
        **{k: v for k, v in TUNING_MODEL_DEFAULTS.items() if k not in configs.model},
        seed=study.seed,
    )
    frame = training_frame(bars, spec, study.data.horizon, study.data.dead_zone)
    frame = frame.sort_values(["timestamp", "symbol"], kind="stable").reset_index(drop=True)
    names = list(spec.model_names)
    vol, trend = confidence_features(names)
    lineage = {
        "study": study.name,
        "objective": study.objective,
        "trial_id": best["trial_id"],
        "params": params,
        "fixed": study.fixed,
        "decision": best.get("decision", {}),
        "study_metrics": best.get("metrics", {}),
        "walk_forward": wf.metrics,
        "data_range": {
            "start": str(frame["timestamp"].min()),
            "end": str(frame["timestamp"].max()),
        },
        "feature_spec_hash": spec.hash,
        "feature_windows": list(spec.windows),
        "feature_lags": list(spec.lags),
    }
    context = {
        "data_start": frame["timestamp"].min(),
        "data_end": frame["timestamp"].max(),
        "symbols": sorted(frame["symbol"].astype(str).unique().tolist()),
        "label_horizon": study.data.horizon,
        "label_dead_zone": study.data.dead_zone,
        "volatility_feature": vol,
        "trend_feature": trend,
        "tuning": lineage,
    }
    ensemble = Ensemble(model_params).fit(
        frame[names].to_numpy(),
        frame["label"].to_numpy(),
        frame["forward_return"].to_numpy(),
        names,
        feature_spec_hash=spec.hash,
        purge=study.data.horizon * len(context["symbols"]),
        volatility_ref=float(np.median(frame[vol])) if vol else None,
        context=context,
    )
    tag = save_version(
        ensemble,
        decision,
        model_name,
        labels={"study": study.name, "trial": str(best["trial_id"])},
        store_dir=store_dir,
        reference=frame[names],
    ).tag
    out = {"tag": tag, "lineage": lineage}
    from augur.tuning._runner import results_dir

    path = results_dir(study) / "promoted.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(out, indent=2, default=str))
    os.replace(tmp, path)
    return out


def tuned_decision(configs: Any, chosen: dict[str, Any]) -> Any:
    """The DecisionConfig the winning trial scored with: its fixed and searched
    ``decision.*`` values with the sweep combination it chose (``best["decision"]``) on
    top, built by the same rule the trial used (``TrialConfigs.decision_configs``)."""
    from augur.decision import DecisionConfig

    types = {k: type(v) for k, v in DecisionConfig().to_dict().items()}
    # Results pass through JSON and pandas: an integer field may come back as 3.0.
    combo = {
        k: int(v) if types.get(k) is int and isinstance(v, float) and v.is_integer() else v
        for k, v in {**configs.decision_grid[0], **chosen}.items()
    }
    (config,) = replace(configs, decision_grid=[combo]).decision_configs()
    return config
