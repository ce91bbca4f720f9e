"""Single-row fast paths for the fitted ensemble members.

Each ``Fast*`` class is built once from a fitted scikit-learn / XGBoost model and then
evaluates it with plain numpy (or a small numba kernel) — no input validation, no
DMatrix, no joblib — so one row costs microseconds instead of the library's per-call
overhead. Every fast path reproduces the library's ``predict_proba`` /
``decision_function`` to floating-point precision (``tests/unit/models/test_fast.py``).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]


# --- random forest --------------------------------------------------------------------


def _forest_proba_py(
    x: NDArray[np.float32],
    left: NDArray[np.int64],
    right: NDArray[np.int64],
    feature: NDArray[np.int64],
    threshold: F64,
    value: F64,
    roots: NDArray[np.int64],
    out: F64,
) -> None:  # pragma: no cover - compiled (numba); equality with sklearn is tested
    n_trees = roots.shape[0]
    n_classes = value.shape[1]
    for i in range(x.shape[0]):
        for c in range(n_classes):
            out[i, c] = 0.0
        for t in range(n_trees):
            node = roots[t]
            while left[node] != -1:
                # sklearn compares the float32-cast feature with a float64 threshold
                node = left[node] if x[i, feature[node]] <= threshold[node] else right[node]
            for c in range(n_classes):
                out[i, c] += value[node, c]
        for c in range(n_classes):
            out[i, c] /= n_trees


@cache
def _forest_kernel() -> Any:
    """The compiled forest kernel (numba is imported on first use, not at import)."""
    import numba

    return numba.njit(cache=True, nogil=True)(_forest_proba_py)


class FastForest:
    """A fitted ``RandomForestClassifier`` flattened into arrays and walked by numba.

    All trees' nodes are concatenated (child indices made global); leaf values are the
    per-tree class frequencies, averaged over trees exactly like ``predict_proba``.
    """

    def __init__(self, forest: Any) -> None:
        lefts, rights, feats, thrs, vals, roots = [], [], [], [], [], []
        offset = 0
        for est in forest.estimators_:
            tree = est.tree_
            left = tree.children_left.astype(np.int64)
            right = tree.children_right.astype(np.int64)
            is_leaf = left == -1
            lefts.append(np.where(is_leaf, -1, left + offset))
            rights.append(np.where(is_leaf, -1, right + offset))
            feats.append(np.maximum(tree.feature, 0).astype(np.int64))
            thrs.append(tree.threshold.astype(np.float64))
            v = tree.value[:, 0, :].astype(np.float64)
            total = v.sum(axis=1, keepdims=True)
            total[total == 0] = 1.0
            vals.append(v / total)
            roots.append(offset)
            offset += tree.node_count
        self.left = np.concatenate(lefts)
        self.right = np.concatenate(rights)
        self.feature = np.concatenate(feats)
        self.threshold = np.concatenate(thrs)
        self.value = np.ascontiguousarray(np.concatenate(vals))
        self.roots = np.asarray(roots, dtype=np.int64)
        self.n_classes = self.value.shape[1]

    def raw(self, x: F64) -> F64:
        """Class probabilities (n, n_classes) of a 2-D float array."""
        x32 = np.ascontiguousarray(x, dtype=np.float32)
        out = np.empty((x32.shape[0], self.n_classes))
        _forest_kernel()(
            x32, self.left, self.right, self.feature, self.threshold, self.value, self.roots, out
        )
        return out


# --- XGBoost --------------------------------------------------------------------------


class FastBooster:
    """An XGBoost booster evaluated with ``inplace_predict`` (no DMatrix), one thread."""

    def __init__(self, booster: Any) -> None:
        self.booster = booster
        self.booster.set_param({"nthread": 1})

    def raw(self, x: F64) -> F64:
        """The booster's output (probabilities for a classifier), always 2-D."""
        out = np.asarray(self.booster.inplace_predict(x, validate_features=False))
        if out.ndim == 1:  # binary: P(class 1) only
            out = np.column_stack([1.0 - out, out])
        return out


# --- scaled linear model (logistic regression) ----------------------------------------


class FastLinear:
    """``Pipeline(StandardScaler, LogisticRegression)`` decision function as one affine map.

    The scaler is folded into the coefficients: ``W' = W / scale``,
    ``b' = b - W' · mean``, so a row costs one small matrix-vector product.
    """

    def __init__(self, pipeline: Any) -> None:
        scaler, linear = pipeline[0], pipeline[-1]
        mean = np.zeros(linear.coef_.shape[1]) if scaler.mean_ is None else scaler.mean_
        scale = np.ones_like(mean) if scaler.scale_ is None else scaler.scale_
        self.coef = np.ascontiguousarray((linear.coef_ / scale).T)
        self.intercept = linear.intercept_ - (linear.coef_ / scale) @ mean

    def raw(self, x: F64) -> F64:
        """Decision values: (n, n_classes), or (n,) for a binary model."""
        out = x @ self.coef + self.intercept
        return out[:, 0] if out.shape[1] == 1 else out


# --- RBF support vector machine -------------------------------------------------------


class FastSVC:
    """``Pipeline(StandardScaler, SVC(kernel='rbf'))`` decision function in numpy.

    Computes the RBF kernel against the support vectors, the one-vs-one decision values
    from libsvm's dual coefficients (layout as documented for ``SVC.dual_coef_``) and,
    for three classes, sklearn's one-vs-rest aggregation of them (votes + bounded
    confidences), i.e. ``SVC.decision_function`` with ``decision_function_shape='ovr'``.
    """

    def __init__(self, pipeline: Any) -> None:
        scaler, svc = pipeline[0], pipeline[-1]
        if svc.kernel != "rbf":
            raise ValueError(f"FastSVC supports kernel='rbf' only, got {svc.kernel!r}")
        self.mean = np.asarray(scaler.mean_, dtype=np.float64)
        self.scale = np.asarray(scaler.scale_, dtype=np.float64)
        self.gamma = float(svc._gamma)
        self.sv = np.ascontiguousarray(svc.support_vectors_, dtype=np.float64)
        self.sv_sq = (self.sv**2).sum(axis=1)
        self.n_classes = len(svc.classes_)
        starts = np.r_[0, np.cumsum(svc.n_support_)]
        dual = svc.dual_coef_
        # One coefficient vector over all support vectors per class pair: only the two
        # classes' own support vectors are non-zero, so a pair is one dot product.
        pairs = []
        for i in range(self.n_classes):
            for j in range(i + 1, self.n_classes):
                w = np.zeros(self.sv.shape[0])
                w[starts[i] : starts[i + 1]] = dual[j - 1, starts[i] : starts[i + 1]]
                w[starts[j] : starts[j + 1]] = dual[i, starts[j] : starts[j + 1]]
                pairs.append(w)
        if self.n_classes == 2:
            pairs = [dual[0]]
        self.pair_coef = np.ascontiguousarray(np.array(pairs).T)
        self.intercept = np.asarray(svc.intercept_, dtype=np.float64)

    def raw(self, x: F64) -> F64:
        """Decision values: (n, n_classes) one-vs-rest, or (n,) for a binary model."""
        z = (x - self.mean) / self.scale
        sq = self.sv_sq[None, :] - 2.0 * (z @ self.sv.T) + (z**2).sum(axis=1)[:, None]
        kernel = np.exp(-self.gamma * np.maximum(sq, 0.0))
        ovo = kernel @ self.pair_coef + self.intercept
        if self.n_classes == 2:
            return ovo[:, 0]
        return ovr_from_ovo(ovo, self.n_classes)


def ovr_from_ovo(ovo: F64, n_classes: int) -> F64:
    """sklearn's one-vs-rest aggregation of one-vs-one decision values.

    Votes per class plus the summed pairwise confidences squashed into (-1/3, 1/3) so
    they break ties without overturning a vote (``sklearn.utils.multiclass``).
    """
    n = ovo.shape[0]
    votes = np.zeros((n, n_classes))
    conf = np.zeros((n, n_classes))
    k = 0
    for i in range(n_classes):
        for j in range(i + 1, n_classes):
            d = ovo[:, k]
            conf[:, i] += d
            conf[:, j] -= d
            votes[:, i] += d >= 0
            votes[:, j] += d < 0
            k += 1
    return votes + conf / (3.0 * (np.abs(conf) + 1.0))


# --- Platt calibration ----------------------------------------------------------------


class FastPlatt:
    """The calibration of a ``CalibratedClassifierCV(method='sigmoid', ensemble=False)``.

    One-vs-rest Platt scaling: ``p_k = 1 / (1 + exp(a_k f_k + b_k))`` on the base
    model's raw output ``f_k`` (decision value or probability), then renormalised to sum
    to one (uniform when every ``p_k`` is 0) — as ``_CalibratedClassifier.predict_proba``.
    """

    def __init__(self, calibrated: Any) -> None:
        if (
            getattr(calibrated, "method", None) != "sigmoid"
            or len(calibrated.calibrated_classifiers_) != 1
        ):
            raise ValueError(
                "FastPlatt needs CalibratedClassifierCV(method='sigmoid', ensemble=False)"
            )
        cc = calibrated.calibrated_classifiers_[0]
        self.a = np.array([c.a_ for c in cc.calibrators], dtype=np.float64)
        self.b = np.array([c.b_ for c in cc.calibrators], dtype=np.float64)
        self.n_classes = len(cc.classes)

    def __call__(self, raw: F64) -> F64:
        """Calibrated probabilities (n, n_classes) from the base model's raw output."""
        if self.n_classes == 2:
            f = raw[:, 1] if raw.ndim == 2 else raw
            p1 = 1.0 / (1.0 + np.exp(self.a[0] * f + self.b[0]))
            return np.column_stack([1.0 - p1, p1])
        p = 1.0 / (1.0 + np.exp(raw * self.a + self.b))
        total = p.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(total > 0, p / total, 1.0 / self.n_classes)
        return out
