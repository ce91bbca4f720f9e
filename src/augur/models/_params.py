"""Hyper-parameters of the ensemble, as one typed, serialisable config.

The tuning search space sets these fields by name (``EnsembleParams(**trial_params)``);
the saved model records them (``to_dict``) in the model store's metadata.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

#: The values of :attr:`EnsembleParams.class_weight`.
CLASS_WEIGHTS: tuple[str, ...] = ("none", "balanced")


@dataclass(frozen=True)
class EnsembleParams:
    """Everything that shapes a fitted ensemble (members, weights, confidence)."""

    # random forest
    rf_n_estimators: int = 200
    rf_max_depth: int | None = 8
    rf_min_samples_leaf: int = 20
    rf_max_features: float | str = "sqrt"
    # XGBoost classifier
    xgb_n_estimators: int = 200
    xgb_max_depth: int = 3
    xgb_learning_rate: float = 0.05
    xgb_subsample: float = 0.8
    xgb_colsample_bytree: float = 0.8
    xgb_min_child_weight: float = 5.0
    #: histogram bins per feature (XGBoost's ``max_bin``, also the quantile model's);
    #: 64 fits a few thousand noisy rows as well as 256 at half the cost
    xgb_max_bin: int = 256
    # RBF SVM: fitting is quadratic in rows, so it sees only the most recent rows
    svm_c: float = 1.0
    svm_gamma: float | str = "scale"
    svm_max_samples: int = 3000
    # logistic regression (on standardised features)
    logreg_c: float = 1.0
    # XGBoost multi-quantile regressor of the forward return
    quantile_n_estimators: int = 150
    quantile_max_depth: int = 3
    quantile_learning_rate: float = 0.05
    # imbalanced labels
    #: "balanced": each class weighs in inverse proportion to its share of the training
    #: labels (scikit-learn's ``class_weight="balanced"``), in every member's fit and in
    #: its Platt scaling, so a rare up or down class is predicted as often as its
    #: evidence warrants rather than drowned by flat; probabilities are then those of
    #: equally common classes. "none": every row weighs the same.
    class_weight: Literal["none", "balanced"] = "none"
    # calibration, validation, dynamic weights
    #: "cv": Platt scaling on out-of-fold predictions (``calibration_folds`` extra fits
    #: per member); "holdout": on the validation tail (one fit per member; needs
    #: ``validation_fraction > 0`` and ``refit=False``)
    calibration: str = "cv"
    calibration_folds: int = 3
    validation_fraction: float = 0.2
    refit: bool = True
    weight_decay: float = 0.95
    weight_floor: float = 0.02
    #: the largest step of a member's log-score per outcome (``DynamicWeights.max_step``):
    #: one outcome multiplies a member's unnormalised weight by at most e**3 (about 20)
    weight_max_step: float = 3.0
    # confidence = (margin_w * margin + agreement_w * agreement + trend_w * trend) * vol_penalty
    confidence_margin_weight: float = 0.5
    confidence_agreement_weight: float = 0.3
    confidence_trend_weight: float = 0.2
    volatility_penalty: float = 0.5
    # explanations and execution
    top_k: int = 5
    n_jobs: int = 1
    seed: int = 7

    def __post_init__(self) -> None:
        def bad(name: str, rule: str) -> None:
            raise ValueError(f"EnsembleParams.{name}={getattr(self, name)!r}: must be {rule}")

        for name in (
            "rf_n_estimators",
            "rf_min_samples_leaf",
            "xgb_n_estimators",
            "xgb_max_depth",
            "svm_max_samples",
            "quantile_n_estimators",
            "quantile_max_depth",
            "xgb_max_bin",
            "top_k",
            "n_jobs",
        ):
            if int(getattr(self, name)) < 1:
                bad(name, "an integer >= 1")
        if self.rf_max_depth is not None and self.rf_max_depth < 1:
            bad("rf_max_depth", "None or >= 1")
        for name in ("xgb_learning_rate", "quantile_learning_rate", "svm_c", "logreg_c"):
            if not getattr(self, name) > 0:
                bad(name, "> 0")
        for name in ("xgb_subsample", "xgb_colsample_bytree"):
            if not 0 < getattr(self, name) <= 1:
                bad(name, "in (0, 1]")
        if self.class_weight not in CLASS_WEIGHTS:
            bad("class_weight", " or ".join(f'"{c}"' for c in CLASS_WEIGHTS))
        if self.calibration_folds < 2:
            bad("calibration_folds", ">= 2")
        if self.calibration not in ("cv", "holdout"):
            bad("calibration", '"cv" or "holdout"')
        if self.calibration == "holdout" and (self.validation_fraction <= 0 or self.refit):
            bad(
                "calibration",
                '"cv" unless validation_fraction > 0 and refit=False (holdout calibration '
                "fits on the validation tail, which a refit would train on)",
            )
        if not 0 <= self.validation_fraction < 0.9:
            bad("validation_fraction", "in [0, 0.9)")
        if not 0 < self.weight_decay < 1:
            bad("weight_decay", "in (0, 1)")
        if not 0 <= self.weight_floor < 0.25:
            bad("weight_floor", "in [0, 0.25)")
        if not 0 < self.weight_max_step <= 50:
            bad("weight_max_step", "in (0, 50]")
        conf = (
            "confidence_margin_weight",
            "confidence_agreement_weight",
            "confidence_trend_weight",
        )
        if any(getattr(self, n) < 0 for n in conf) or sum(getattr(self, n) for n in conf) <= 0:
            bad(
                "confidence_margin_weight",
                "non-negative, with the three confidence weights summing to > 0",
            )
        if self.volatility_penalty < 0:
            bad("volatility_penalty", ">= 0")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON/YAML-safe) of every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EnsembleParams:
        """Build from a dict, rejecting unknown keys by name (typos must not pass silently)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown ensemble parameter(s) {unknown}; known: {sorted(known)}")
        return cls(**values)
