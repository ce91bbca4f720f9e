"""The ensemble: four calibrated classifiers, dynamic weights, quantiles, explanations.

Classes. Labels are -1 (down), 0 (flat: the forward return fell inside the dead zone)
and 1 (up). Flat is an explicit third class, not a residual: every member is a
3-class classifier and gives P(down), P(flat), P(up); the ensemble's direction is flat
when flat is the most probable class (or down and up tie), so an undecided ensemble
never points anywhere. A class absent from the training labels gets probability 0.

Calibration. Each member is wrapped in ``CalibratedClassifierCV(method="sigmoid",
ensemble=False, cv=KFold(calibration_folds))``: one-vs-rest Platt scaling fitted on
out-of-fold predictions of contiguous blocks, then the member refitted on all rows.
With ``calibration="holdout"`` (what tuning uses: a third of the fits) the member is
fitted once and the Platt scaling is fitted on the validation tail instead (scikit-learn's
``FrozenEstimator``); a tail missing one of the training classes falls back to "cv".

Class weights. With ``class_weight="balanced"`` every class weighs in inverse proportion
to its share of the rows, in the members' fits and in their Platt scaling alike: Platt
scaling fitted on unweighted rows would map the scores back to the skewed class shares
and undo the weighting. Random forest and XGBoost take the weights as ``sample_weight``;
the SVM and logistic regression sit in a ``Pipeline`` that cannot pass it on, so they
take ``class_weight="balanced"`` (the same weights, computed on the rows they fit).

Validation and weights. ``fit`` holds out the last ``validation_fraction`` of rows
(after a ``purge`` gap of label-horizon rows), fits on the rest, replays the tail
through the dynamic weights in time order (so the ensemble's validation figures use
only weights known before each outcome), records out-of-sample metrics, then refits
every model on all rows (``refit``) keeping the weights learnt on the tail.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from augur.decision._types import Signal
from augur.models._confidence import (
    agreement_of,
    confidence_of,
    confidence_scalar,
    direction_of,
    direction_scalar,
    margin_of,
)
from augur.models._fast import FastForest, FastLinear, FastPlatt, FastSVC, FastXGB
from augur.models._params import EnsembleParams
from augur.models._weights import CLASSES, DynamicWeights

F64 = NDArray[np.float64]
MEMBERS: tuple[str, str, str, str] = ("rf", "xgb", "svm", "logreg")
QUANTILES: tuple[float, float, float] = (0.05, 0.5, 0.95)
_MIN_ROWS = 60


@dataclass(frozen=True, slots=True)
class EnsembleOutput:
    """The ensemble's answer for one row.

    Probability triples in ``per_model`` are ordered (down, flat, up). ``contributions``
    are the top-k tree-SHAP contributions (log-odds of the chosen class) of the XGBoost
    member, largest magnitude first. ``q05 <= q50 <= q95`` are forward-return quantiles.
    """

    p_up: float
    p_down: float
    p_flat: float
    direction: int
    probability: float
    agreement: float
    confidence: float
    per_model: dict[str, tuple[float, float, float]]
    weights: dict[str, float]
    q05: float
    q50: float
    q95: float
    contributions: tuple[tuple[str, float], ...] = ()

    def to_signal(self, model_version: str = "") -> Signal:
        """The decision engine's input (:class:`augur.decision.Signal`)."""
        return Signal(
            direction=self.direction,
            probability=self.probability,
            p_up=self.p_up,
            p_down=self.p_down,
            confidence=self.confidence,
            agreement=self.agreement,
            q05=self.q05,
            q50=self.q50,
            q95=self.q95,
            model_version=model_version,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (explanations included)."""
        return {
            "p_up": self.p_up,
            "p_down": self.p_down,
            "p_flat": self.p_flat,
            "direction": self.direction,
            "probability": self.probability,
            "agreement": self.agreement,
            "confidence": self.confidence,
            "per_model": {
                k: {"down": v[0], "flat": v[1], "up": v[2]} for k, v in self.per_model.items()
            },
            "weights": dict(self.weights),
            "q05": self.q05,
            "q50": self.q50,
            "q95": self.q95,
            "contributions": [{"feature": f, "contribution": c} for f, c in self.contributions],
        }


@dataclass(frozen=True)
class EnsemblePrediction:
    """Batch result (arrays over ``n`` rows); probability columns are (down, flat, up)."""

    proba: F64  # (n, 3) weighted ensemble probabilities
    per_model: F64  # (members, n, 3)
    direction: NDArray[np.int64]  # (n,)
    probability: F64  # (n,) probability of the chosen direction
    agreement: F64  # (n,)
    confidence: F64  # (n,)
    quantiles: F64  # (n, 3): q05, q50, q95 (sorted per row)
    weights: F64  # (members,)
    members: tuple[str, ...] = MEMBERS

    @property
    def p_down(self) -> F64:
        return self.proba[:, 0]

    @property
    def p_flat(self) -> F64:
        return self.proba[:, 1]

    @property
    def p_up(self) -> F64:
        return self.proba[:, 2]


@dataclass
class _Member:
    """One fitted member: the library model (reference) and its compiled fast path."""

    calibrated: Any  # CalibratedClassifierCV
    classes: NDArray[np.int64]  # original labels of the encoded classes, e.g. [-1, 0, 1]
    fast: Any = field(default=None, repr=False)
    platt: FastPlatt | None = field(default=None, repr=False)

    def compile(self, name: str) -> None:
        base = self.calibrated.calibrated_classifiers_[0].estimator
        if type(base).__name__ == "FrozenEstimator":  # holdout calibration
            base = base.estimator
        if name == "rf":
            base.set_params(n_jobs=1)
            self.fast = FastForest(base)
        elif name == "xgb":
            base.set_params(n_jobs=1)
            self.fast = FastXGB(base.get_booster())
        elif name == "svm":
            self.fast = FastSVC(base)
        else:
            self.fast = FastLinear(base)
        self.platt = FastPlatt(self.calibrated)

    @property
    def columns(self) -> NDArray[np.int64]:
        """Where this member's classes go in (down, flat, up)."""
        return self.classes + 1

    def proba(self, x: F64) -> F64:
        """(n, 3) calibrated probabilities through the fast path."""
        assert self.platt is not None
        out = np.zeros((x.shape[0], 3))
        out[:, self.columns] = self.platt(self.fast.raw(x))
        return out

    def library_proba(self, x: F64) -> F64:
        """(n, 3) calibrated probabilities through the library's ``predict_proba``."""
        out = np.zeros((x.shape[0], 3))
        out[:, self.columns] = self.calibrated.predict_proba(x)
        return out


def _weights_of(p: EnsembleParams) -> DynamicWeights:
    """Equal starting weights with the parameters' decay, floor and bounded step."""
    # getattr: parameters pickled before weight_max_step existed lack it
    max_step = getattr(p, "weight_max_step", None)
    return DynamicWeights(MEMBERS, p.weight_decay, p.weight_floor, max_step)


def _balanced(y: NDArray[np.int64]) -> F64:
    """Row weights in inverse proportion to each class's share of ``y``."""
    from sklearn.utils.class_weight import compute_sample_weight

    return np.asarray(compute_sample_weight("balanced", y), dtype=np.float64)


def _fit_calibrated(cal: Any, X: F64, y: NDArray[np.int64], balanced: bool) -> None:
    """Fit a ``CalibratedClassifierCV``; ``balanced`` weighs its rows by class (the
    member's fit when it takes ``sample_weight``, and the Platt scaling always)."""
    if not balanced:
        cal.fit(X, y)
        return
    with warnings.catch_warnings():
        # A Pipeline or a FrozenEstimator takes no sample_weight, and scikit-learn warns
        # that the weights then reach only the Platt scaling: that is what is meant here.
        warnings.filterwarnings("ignore", message=".*does not appear to accept sample_weight")
        cal.fit(X, y, sample_weight=_balanced(y))


class Ensemble:
    """RF + XGBoost + RBF-SVM + logistic regression, weighted by recent performance.

    Use :meth:`fit`, then :meth:`predict` (batch) or :meth:`predict_one` (the fast
    single-row path used by the service). Save with :func:`augur.models.save_ensemble`.
    """

    def __init__(self, params: EnsembleParams | None = None) -> None:
        self.params = params or EnsembleParams()
        self.members: dict[str, _Member] = {}
        self.quantile_model: Any = None
        self._quantile_fast: FastXGB | None = None
        self.dynamic_weights = _weights_of(self.params)
        self.feature_names: tuple[str, ...] = ()
        self.feature_spec_hash = ""
        self.metrics: dict[str, Any] = {}
        self.context: dict[str, Any] = {}
        self.volatility_ref: float | None = None
        self.training_seconds = 0.0
        self.tag = ""  # name:version once saved or loaded

    # --- fitting ---------------------------------------------------------------------

    @property
    def is_fitted(self) -> bool:
        return bool(self.members)

    def fit(
        self,
        X: F64,
        y: NDArray[Any],
        forward_returns: F64,
        feature_names: Sequence[str],
        *,
        feature_spec_hash: str = "",
        purge: int = 0,
        volatility_ref: float | None = None,
        context: dict[str, Any] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> Ensemble:
        """Fit on rows in time order; returns self.

        ``X``: (n, k) features; ``y``: labels in {-1, 0, 1}; ``forward_returns``: the
        label's forward log return (target of the quantile model); ``feature_names``: k
        names (for explanations and the saved metadata). ``purge``: rows dropped between
        the fitting part and the validation tail (use the label horizon, so no training
        label overlaps a validation bar). ``volatility_ref``: the reference volatility
        the confidence's volatility penalty compares against. ``context``: extra
        metadata saved with the model (data range, symbols, label horizon, …).
        """
        started = time.perf_counter()
        say = progress or (lambda _msg: None)
        X, y_arr, r = self._check_training_data(X, y, forward_returns, feature_names)
        p = self.params
        n = X.shape[0]
        n_val = round(n * p.validation_fraction)
        self.feature_names = tuple(feature_names)
        self.feature_spec_hash = feature_spec_hash
        self.context = dict(context or {})
        self.volatility_ref = volatility_ref
        self.dynamic_weights = _weights_of(p)
        self.metrics = {"n_rows": n, "n_validation": n_val}

        if n_val > 0:
            train_end = n - n_val - purge
            if train_end < _MIN_ROWS // 2:
                raise ValueError(
                    f"only {train_end} rows left to fit before the validation tail "
                    f"({n} rows, validation_fraction={p.validation_fraction}, purge={purge}); "
                    "give more rows or a smaller validation_fraction"
                )
            say(f"fitting on {train_end} rows, validating on the last {n_val}")
            tail = (X[n - n_val :], y_arr[n - n_val :]) if p.calibration == "holdout" else None
            self._fit_models(X[:train_end], y_arr[:train_end], r[:train_end], say, tail)
            say("validating out of sample")
            self.metrics.update(self._validate(X[n - n_val :], y_arr[n - n_val :], r[n - n_val :]))
        if n_val == 0 or p.refit:
            say(f"fitting on all {n} rows")
            self._fit_models(X, y_arr, r, say)
        self.training_seconds = time.perf_counter() - started
        self.metrics["training_seconds"] = self.training_seconds
        return self

    def _check_training_data(
        self, X: Any, y: Any, forward_returns: Any, feature_names: Sequence[str]
    ) -> tuple[F64, NDArray[np.int64], F64]:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (rows × features), got shape {X.shape}")
        n, k = X.shape
        if len(feature_names) != k:
            raise ValueError(f"feature_names has {len(feature_names)} names but X has {k} columns")
        y_arr = np.asarray(y)
        r = np.asarray(forward_returns, dtype=np.float64)
        if y_arr.shape != (n,) or r.shape != (n,):
            raise ValueError(
                f"y {y_arr.shape} and forward_returns {r.shape} must both have one value per row of X ({n})"
            )
        if n < _MIN_ROWS:
            raise ValueError(f"need at least {_MIN_ROWS} training rows, got {n}")
        bad_rows = np.flatnonzero(~np.isfinite(X).all(axis=1) | ~np.isfinite(r))
        if bad_rows.size:
            raise ValueError(
                f"{bad_rows.size} row(s) have NaN/inf features or forward return (first: row "
                f"{bad_rows[0]}); drop them before fitting (training_frame does)"
            )
        labels = set(np.unique(y_arr).tolist())
        if not labels <= set(CLASSES):
            raise ValueError(f"labels must be -1, 0 or 1; found {sorted(labels - set(CLASSES))}")
        if len(labels) < 2:
            raise ValueError(f"labels need at least two classes, found only {sorted(labels)}")
        return X, y_arr.astype(np.int64), r

    def _fit_models(
        self,
        X: F64,
        y: NDArray[np.int64],
        r: F64,
        say: Callable[[str], None],
        calibration_rows: tuple[F64, NDArray[np.int64]] | None = None,
    ) -> None:
        """Fit the members and the quantile model; ``calibration_rows`` (held-out rows
        after ``X``) switch Platt scaling from out-of-fold predictions to those rows."""
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.frozen import FrozenEstimator
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import KFold
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVC
        from xgboost import XGBClassifier, XGBRegressor

        p = self.params
        classes = np.unique(y)
        y_enc = np.searchsorted(classes, y)  # members see 0..K-1 (XGBoost requires it)
        balanced = p.class_weight == "balanced"
        pipeline_weight = "balanced" if balanced else None
        estimators = {
            "rf": RandomForestClassifier(
                n_estimators=p.rf_n_estimators,
                max_depth=p.rf_max_depth,
                min_samples_leaf=p.rf_min_samples_leaf,
                max_features=p.rf_max_features,
                n_jobs=p.n_jobs,
                random_state=p.seed,
            ),
            "xgb": XGBClassifier(
                n_estimators=p.xgb_n_estimators,
                max_depth=p.xgb_max_depth,
                learning_rate=p.xgb_learning_rate,
                subsample=p.xgb_subsample,
                colsample_bytree=p.xgb_colsample_bytree,
                min_child_weight=p.xgb_min_child_weight,
                tree_method="hist",
                max_bin=p.xgb_max_bin,
                n_jobs=p.n_jobs,
                random_state=p.seed,
                verbosity=0,
            ),
            "svm": Pipeline(
                [
                    ("scale", StandardScaler()),
                    (
                        "svc",
                        SVC(
                            C=p.svm_c, gamma=p.svm_gamma, kernel="rbf", class_weight=pipeline_weight
                        ),
                    ),
                ]
            ),
            "logreg": Pipeline(
                [
                    ("scale", StandardScaler()),
                    (
                        "logreg",
                        LogisticRegression(
                            C=p.logreg_c, max_iter=2000, class_weight=pipeline_weight
                        ),
                    ),
                ]
            ),
        }
        holdout = None
        if calibration_rows is not None:
            X_cal, y_cal = calibration_rows
            # Platt scaling on the tail needs every class the members were fitted on
            if np.isin(classes, y_cal).all():
                seen = np.isin(y_cal, classes)
                holdout = (X_cal[seen], np.searchsorted(classes, y_cal[seen]))
        self.metrics["calibration"] = "holdout" if holdout is not None else "cv"
        members: dict[str, _Member] = {}
        for name in MEMBERS:
            say(f"fitting {name}")
            Xm, ym = X, y_enc
            if name == "svm" and X.shape[0] > p.svm_max_samples:
                Xm, ym = X[-p.svm_max_samples :], y_enc[-p.svm_max_samples :]
            if holdout is not None:
                # the pipelines weigh classes themselves (class_weight)
                own = {"sample_weight": _balanced(ym)} if balanced and name in ("rf", "xgb") else {}
                fitted = estimators[name].fit(Xm, ym, **own)
                cal = CalibratedClassifierCV(
                    FrozenEstimator(fitted), method="sigmoid", ensemble=False
                )
                _fit_calibrated(cal, *holdout, balanced)
            else:
                cal = CalibratedClassifierCV(
                    estimators[name],
                    method="sigmoid",
                    cv=KFold(p.calibration_folds),
                    ensemble=False,
                )
                _fit_calibrated(cal, Xm, ym, balanced)
            members[name] = _Member(cal, classes[cal.classes_])
            members[name].compile(name)
        say("fitting the quantile model")
        quantile = XGBRegressor(
            objective="reg:quantileerror",
            quantile_alpha=np.array(QUANTILES),
            n_estimators=p.quantile_n_estimators,
            max_depth=p.quantile_max_depth,
            learning_rate=p.quantile_learning_rate,
            tree_method="hist",
            max_bin=p.xgb_max_bin,
            n_jobs=p.n_jobs,
            random_state=p.seed,
            verbosity=0,
        )
        quantile.fit(X, r)
        quantile.set_params(n_jobs=1)
        self.members = members
        self.quantile_model = quantile
        self._quantile_fast = FastXGB(quantile.get_booster())

    def evaluate(self, X: F64, y: Any, forward_returns: F64) -> dict[str, Any]:
        """Out-of-sample metrics on rows after the training data, in time order.

        Replays the rows through the dynamic weights as outcomes would arrive in
        serving: each row is scored with the weights known before its outcome, then its
        outcome updates them (so the ensemble leaves with the weights learnt here).
        Returns per-member and ensemble accuracy, log loss, Brier score and
        directional hit rate, the equal-weight ensemble, the majority-class accuracy
        (the "always the commonest class" baseline) and the quantile interval's coverage.
        """
        self._require_fitted()
        X = self._check_rows(X)
        y_arr = np.asarray(y).astype(np.int64)
        r = np.asarray(forward_returns, dtype=np.float64)
        if y_arr.shape != (X.shape[0],) or r.shape != (X.shape[0],):
            raise ValueError("y and forward_returns need one value per row of X")
        return self._validate(X, y_arr, r)

    def _validate(self, X: F64, y: NDArray[np.int64], r: F64) -> dict[str, Any]:
        from sklearn.metrics import log_loss

        per_model = np.stack([self.members[m].proba(X) for m in MEMBERS])
        n = X.shape[0]
        ens = np.empty((n, 3))
        dw = self.dynamic_weights
        for t in range(n):  # weights known before each outcome only
            ens[t] = dw.weights @ per_model[:, t, :]
            dw.update(per_model[:, t, :], int(y[t]))
        y_idx = y + 1

        def scores(p: F64) -> dict[str, float]:
            d = direction_of(p)
            onehot = np.eye(3)[y_idx]
            moved = d != 0
            return {
                "accuracy": float((d == y).mean()),
                "log_loss": float(log_loss(y_idx, np.clip(p, 1e-12, 1.0), labels=[0, 1, 2])),
                "brier": float(((p - onehot) ** 2).sum(axis=1).mean()),
                "directional_hit_rate": float((d[moved] == y[moved]).mean())
                if moved.any()
                else float("nan"),
            }

        out: dict[str, Any] = {m: scores(per_model[i]) for i, m in enumerate(MEMBERS)}
        out["ensemble"] = scores(ens)
        out["ensemble_equal_weights"] = scores(per_model.mean(axis=0))
        majority = int(np.bincount(y_idx, minlength=3).argmax())
        out["majority_class_accuracy"] = float((y_idx == majority).mean())
        q = self._quantiles(X)
        out["quantile_coverage_90"] = float(((r >= q[:, 0]) & (r <= q[:, 2])).mean())
        out["quantile_median_abs_error"] = float(np.abs(r - q[:, 1]).mean())
        out["weights_after_validation"] = dw.as_dict()
        return out

    # --- prediction ------------------------------------------------------------------

    def _require_fitted(self) -> None:
        if not self.is_fitted:
            raise RuntimeError("the ensemble is not fitted: call fit() or load_ensemble() first")

    def _quantiles(self, X: F64) -> F64:
        assert self._quantile_fast is not None
        # Separate per-quantile trees can cross; sorting restores q05 <= q50 <= q95
        # (it is the rearrangement of Chernozhukov et al., which never increases loss).
        return np.sort(self._quantile_fast.raw(X), axis=1)

    def predict(
        self,
        X: F64,
        *,
        volatility_ratio: F64 | None = None,
        trend_strength: F64 | None = None,
    ) -> EnsemblePrediction:
        """Batch prediction with the current weights (no explanations)."""
        self._require_fitted()
        X = self._check_rows(X)
        per_model = np.stack([self.members[m].proba(X) for m in MEMBERS])
        w = self.dynamic_weights.weights
        proba = np.einsum("m,mnc->nc", w, per_model)
        return self._prediction(X, per_model, proba, w, volatility_ratio, trend_strength)

    def predict_walk(
        self,
        X: F64,
        y: Any,
        times: Any,
        label_times: Any,
        *,
        volatility_ratio: F64 | None = None,
        trend_strength: F64 | None = None,
    ) -> EnsemblePrediction:
        """Batch prediction as the service makes them while outcomes arrive.

        Row ``t`` is scored with the weights after every outcome known at its time: the
        label ``y[s]`` of each row ``s`` with ``label_times[s] <= times[t]`` (a label is
        known at the close of the bar it ends on), folded in by
        :meth:`DynamicWeights.update` in the order they became known — the rule, bound
        and frozen flag the service applies to ``POST /outcome``. ``times`` and
        ``label_times``: one comparable value per row (e.g. ``datetime64``). The
        ensemble's own weights are left as they are; ``weights`` of the result are the
        last row's.
        """
        self._require_fitted()
        X = self._check_rows(X)
        n = X.shape[0]
        y_arr = np.asarray(y).astype(np.int64)
        times, label_times = np.asarray(times), np.asarray(label_times)
        for name, arr in (("y", y_arr), ("times", times), ("label_times", label_times)):
            if arr.shape != (n,):
                raise ValueError(f"{name} needs one value per row of X ({n}), got {arr.shape}")
        per_model = np.stack([self.members[m].proba(X) for m in MEMBERS])
        dw = DynamicWeights.from_state(self.dynamic_weights.state())
        W = np.empty((n, len(MEMBERS)))
        known = np.argsort(label_times, kind="stable")
        j = 0
        for t in np.argsort(times, kind="stable"):
            while j < n and label_times[known[j]] <= times[t]:
                s = known[j]
                dw.update(per_model[:, s, :], int(y_arr[s]))
                j += 1
            W[t] = dw.weights
        proba = np.einsum("nm,mnc->nc", W, per_model)
        last = W[-1] if n else dw.weights
        return self._prediction(X, per_model, proba, last, volatility_ratio, trend_strength)

    def _prediction(
        self,
        X: F64,
        per_model: F64,
        proba: F64,
        weights: F64,
        volatility_ratio: F64 | None,
        trend_strength: F64 | None,
    ) -> EnsemblePrediction:
        direction = direction_of(proba)
        agreement = agreement_of(per_model, direction)
        probability = np.take_along_axis(proba, (direction + 1)[:, None], axis=1)[:, 0]
        confidence = self.confidence(
            margin_of(proba, direction), agreement, volatility_ratio, trend_strength
        )
        return EnsemblePrediction(
            proba=proba,
            per_model=per_model,
            direction=direction,
            probability=probability,
            agreement=agreement,
            confidence=confidence,
            quantiles=self._quantiles(X),
            weights=weights,
        )

    def predict_library(self, X: F64) -> F64:
        """(members, n, 3) probabilities through each library's own ``predict_proba``
        (slow reference for tests and the benchmark)."""
        self._require_fitted()
        X = self._check_rows(X)
        return np.stack([self.members[m].library_proba(X) for m in MEMBERS])

    def predict_one(
        self,
        x: F64,
        *,
        volatility: float | None = None,
        volatility_ref: float | None = None,
        trend_strength: float | None = None,
        explain: bool = True,
    ) -> EnsembleOutput:
        """One row (1-D, ``len(feature_names)`` values) → :class:`EnsembleOutput`.

        ``volatility``: the realised volatility now; it is compared with
        ``volatility_ref`` (default: the reference stored at fit time) for the
        confidence's volatility penalty. ``trend_strength`` in [0, 1]. ``explain``
        adds the XGBoost member's top-k tree-SHAP contributions.
        """
        self._require_fitted()
        row = np.asarray(x, dtype=np.float64)
        if row.shape != (len(self.feature_names),):
            raise ValueError(
                f"expected one row of {len(self.feature_names)} features "
                f"({', '.join(self.feature_names[:5])}…), got shape {row.shape}"
            )
        x2 = row.reshape(1, -1)
        per_model = np.empty((len(MEMBERS), 3))
        for i, m in enumerate(MEMBERS):
            per_model[i] = self.members[m].proba(x2)[0]
        w = self.dynamic_weights.weights
        p = (w @ per_model).tolist()
        # Plain-Python scalar logic: for 3 numbers it beats a dozen tiny numpy calls.
        direction = direction_scalar(p)
        chosen = p[direction + 1]
        runner_up = max(v for k, v in enumerate(p) if k != direction + 1)
        member_rows = per_model.tolist()
        agreement = sum(direction_scalar(r) == direction for r in member_rows) / len(MEMBERS)
        ref = volatility_ref if volatility_ref is not None else self.volatility_ref
        ratio = volatility / ref if volatility is not None and ref else None
        prm = self.params
        confidence = confidence_scalar(
            chosen - runner_up,
            agreement,
            ratio,
            trend_strength,
            prm.confidence_margin_weight,
            prm.confidence_agreement_weight,
            prm.confidence_trend_weight,
            prm.volatility_penalty,
        )
        q = self._quantiles(x2)[0]
        return EnsembleOutput(
            p_up=p[2],
            p_down=p[0],
            p_flat=p[1],
            direction=direction,
            probability=chosen,
            agreement=agreement,
            confidence=confidence,
            per_model={m: (r[0], r[1], r[2]) for m, r in zip(MEMBERS, member_rows, strict=True)},
            weights=dict(zip(MEMBERS, w.tolist(), strict=True)),
            q05=float(q[0]),
            q50=float(q[1]),
            q95=float(q[2]),
            contributions=self.explain(x2, direction) if explain else (),
        )

    def explain(self, x2: F64, direction: int) -> tuple[tuple[str, float], ...]:
        """Top-k tree-SHAP contributions (XGBoost member) to the log-odds of ``direction``.

        Exact path-dependent tree SHAP, computed by a compiled kernel on the member's
        trees; equal to ``Booster.predict(DMatrix, pred_contribs=True)`` (tested).
        """
        member = self.members["xgb"]
        classes = member.classes.tolist()
        if direction not in classes:  # the member never saw this class: nothing to explain
            return ()
        if len(classes) > 2:
            values = member.fast.contributions(x2[0], classes.index(direction))
        else:  # binary booster: one margin, the log-odds of the larger class
            values = member.fast.contributions(x2[0], 0)
            if direction == classes[0]:
                values = -values
        top = np.argsort(-np.abs(values), kind="stable")[: self.params.top_k]
        return tuple((self.feature_names[j], float(values[j])) for j in top)

    def confidence(self, margin: Any, agreement: Any, vol_ratio: Any, trend: Any) -> F64:
        """Confidence from margin, agreement, volatility ratio and trend, with this
        ensemble's weights (the formula is :func:`augur.models.confidence_of`)."""
        p = self.params
        return confidence_of(
            margin,
            agreement,
            volatility_ratio=vol_ratio,
            trend_strength=trend,
            margin_weight=p.confidence_margin_weight,
            agreement_weight=p.confidence_agreement_weight,
            trend_weight=p.confidence_trend_weight,
            volatility_penalty=p.volatility_penalty,
        )

    def _check_rows(self, X: Any) -> F64:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.feature_names):
            raise ValueError(
                f"X must have shape (n, {len(self.feature_names)}) (the training features), got {X.shape}"
            )
        return X

    # --- outcomes ----------------------------------------------------------------------

    def update_weights(self, per_model_probs: Any, realised_label: int) -> dict[str, float]:
        """Fold a realised outcome into the member weights; returns the new weights.

        ``per_model_probs``: what the members said when the prediction was made — an
        :class:`EnsembleOutput`, its ``per_model`` dict, or a (members, 3) array.
        """
        if isinstance(per_model_probs, EnsembleOutput):
            per_model_probs = per_model_probs.per_model
        if isinstance(per_model_probs, dict):
            missing = [m for m in MEMBERS if m not in per_model_probs]
            if missing:
                raise ValueError(f"per_model_probs lacks member(s) {missing}")
            per_model_probs = np.array([per_model_probs[m] for m in MEMBERS], dtype=np.float64)
        self.dynamic_weights.update(np.asarray(per_model_probs, dtype=np.float64), realised_label)
        return self.dynamic_weights.as_dict()

    # --- persistence -------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        # Compiled fast paths are rebuilt on load (cheap) rather than pickled.
        state = self.__dict__.copy()
        state["members"] = {m: (mem.calibrated, mem.classes) for m, mem in self.members.items()}
        state["_quantile_fast"] = None
        state["dynamic_weights"] = self.dynamic_weights.state()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        members = state.pop("members")
        state["dynamic_weights"] = DynamicWeights.from_state(state["dynamic_weights"])
        self.__dict__.update(state)
        self.members = {}
        for m, (cal, classes) in members.items():
            self.members[m] = _Member(cal, np.asarray(classes))
            self.members[m].compile(m)
        if self.quantile_model is not None:
            self._quantile_fast = FastXGB(self.quantile_model.get_booster())
        if self.members:
            # Load (or compile) the numba kernels now, not on the first request.
            self.predict_one(np.zeros(len(self.feature_names)))
