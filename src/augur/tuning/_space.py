"""Search space: study distributions → Ray Tune domains / Optuna distributions, and a
trial's flat parameters → the typed configs (FeatureSpec, EnsembleParams, DecisionConfig).

Lists (feature windows, lags) are not Optuna-native categorical values, so a list choice
travels as its canonical string (``"5,10,20"``) and is decoded here.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from augur.tuning._study import CategoricalDist, FloatDist, IntDist, StudyConfig

__all__ = [
    "TrialConfigs",
    "base_point",
    "decode",
    "optuna_distributions",
    "resolve",
    "tune_search_space",
]


def _encode_choice(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return ",".join(str(int(v)) for v in value)
    return value


def decode(key: str, value: Any) -> Any:
    """A sampled value back in the type its config class wants."""
    if key.startswith("features.") and isinstance(value, str):
        return tuple(int(v) for v in value.split(",") if v)
    return value


def tune_search_space(study: StudyConfig) -> dict[str, Any]:
    """``param_space`` for ``ray.tune.Tuner`` (OptunaSearch converts it)."""
    from ray import tune

    space: dict[str, Any] = {}
    for key, dist in study.search_space.items():
        if isinstance(dist, FloatDist):
            space[key] = (tune.loguniform if dist.log else tune.uniform)(dist.low, dist.high)
        elif isinstance(dist, IntDist):
            if dist.log:
                space[key] = tune.lograndint(dist.low, dist.high + 1)
            elif dist.step > 1:
                space[key] = tune.qrandint(dist.low, dist.high, dist.step)
            else:
                space[key] = tune.randint(dist.low, dist.high + 1)
        else:
            space[key] = tune.choice([_encode_choice(c) for c in dist.choices])
    return space


def optuna_distributions(study: StudyConfig) -> dict[str, Any]:
    """Optuna distributions of the search space (same encoding as the Tune space)."""
    import optuna

    out: dict[str, Any] = {}
    for key, dist in study.search_space.items():
        if isinstance(dist, FloatDist):
            out[key] = optuna.distributions.FloatDistribution(dist.low, dist.high, log=dist.log)
        elif isinstance(dist, IntDist):
            out[key] = optuna.distributions.IntDistribution(
                dist.low, dist.high, log=dist.log, step=dist.step
            )
        else:
            out[key] = optuna.distributions.CategoricalDistribution(
                [_encode_choice(c) for c in dist.choices]
            )
    return out


def base_point(study: StudyConfig) -> dict[str, Any]:
    """A central point of the search space (encoded): the placebo check varies around it."""
    import math

    point: dict[str, Any] = {}
    for key, dist in study.search_space.items():
        if isinstance(dist, FloatDist):
            point[key] = math.sqrt(dist.low * dist.high) if dist.log else (dist.low + dist.high) / 2
        elif isinstance(dist, IntDist):
            mid = (
                round(math.sqrt(dist.low * dist.high)) if dist.log else (dist.low + dist.high) // 2
            )
            point[key] = dist.low + (mid - dist.low) // dist.step * dist.step
        else:
            assert isinstance(dist, CategoricalDist)
            point[key] = _encode_choice(dist.choices[len(dist.choices) // 2])
    return point


@dataclass(frozen=True)
class TrialConfigs:
    """The typed configs one trial evaluates."""

    features: dict[str, tuple[int, ...]]
    model: dict[str, Any]
    decision_grid: list[dict[str, Any]] = field(default_factory=list)

    def feature_spec(self) -> Any:
        from augur.features import FeatureSpec

        return FeatureSpec(**self.features) if self.features else FeatureSpec()

    def ensemble_params(self, **overrides: Any) -> Any:
        from augur.models._params import EnsembleParams

        return EnsembleParams(**{**self.model, **overrides})

    def decision_configs(self) -> list[Any]:
        from augur.decision import DecisionConfig

        out = []
        for combo in self.decision_grid:
            values = dict(combo)
            # a searched max_drawdown below the default scale start would be invalid:
            # start shrinking sizes at half the limit unless the study says otherwise
            if "drawdown_scale_start" not in values and "max_drawdown" in values:
                values["drawdown_scale_start"] = min(
                    DecisionConfig().drawdown_scale_start, 0.5 * float(values["max_drawdown"])
                )
            out.append(DecisionConfig(**values))
        return out


def resolve(study: StudyConfig, params: dict[str, Any]) -> TrialConfigs:
    """A trial's flat parameters (sampled + fixed + in-trial sweep) → typed configs."""
    flat = {**study.fixed, **{k: decode(k, v) for k, v in params.items()}}
    features: dict[str, tuple[int, ...]] = {}
    model: dict[str, Any] = {}
    decision: dict[str, Any] = {}
    for key, value in flat.items():
        section, name = key.split(".", 1)
        if section == "features":
            features[name] = tuple(int(v) for v in value)
        elif section == "model":
            model[name] = value
        elif section == "decision":
            decision[name] = value
    sweep_keys = [k.split(".", 1)[1] for k in study.sweep]
    grid = [
        {**decision, **dict(zip(sweep_keys, combo, strict=True))}
        for combo in itertools.product(*study.sweep.values())
    ] or [decision]
    return TrialConfigs(features=features, model=model, decision_grid=grid)
