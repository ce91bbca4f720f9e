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
    left: NDArray[np.int32],
    right: NDArray[np.int32],
    feature: NDArray[np.int32],
    threshold: NDArray[np.float32],
    leaf_value: F64,
    roots: NDArray[np.int32],
    out: F64,
) -> None:  # pragma: no cover - compiled (numba); equality with sklearn is tested
    n_trees = roots.shape[0]
    n_classes = leaf_value.shape[1]
    for i in range(x.shape[0]):
        for c in range(n_classes):
            out[i, c] = 0.0
        for t in range(n_trees):
            node = roots[t]
            while left[node] != -1:
                node = left[node] if x[i, feature[node]] <= threshold[node] else right[node]
            leaf = right[node]  # a leaf's `right` holds its row in leaf_value
            for c in range(n_classes):
                out[i, c] += leaf_value[leaf, c]
        for c in range(n_classes):
            out[i, c] /= n_trees


@cache
def _forest_kernel() -> Any:
    """The compiled forest kernel (numba is imported on first use, not at import)."""
    import numba

    return numba.njit(cache=True, nogil=True)(_forest_proba_py)


def _round_down_f32(t: F64) -> NDArray[np.float32]:
    """The largest float32 <= each float64 threshold.

    sklearn tests ``float32(x) <= threshold`` with a float64 threshold; for a float32
    ``x`` that is the same test as ``x <= round_down_f32(threshold)``, so the compact
    float32 thresholds decide every split exactly as sklearn does.
    """
    t32 = t.astype(np.float32)
    above = t32.astype(np.float64) > t
    t32[above] = np.nextafter(t32[above], np.float32(-np.inf))
    return t32


class FastForest:
    """A fitted ``RandomForestClassifier`` flattened into compact arrays, walked by numba.

    All trees' nodes are concatenated (child indices made global) as int32 / float32
    arrays (half the memory of sklearn's, so more of the forest stays in cache); leaf
    class frequencies live in a separate leaf table. Trees are averaged exactly like
    ``predict_proba``.
    """

    def __init__(self, forest: Any) -> None:
        lefts, rights, feats, thrs, vals, roots = [], [], [], [], [], []
        offset = n_leaves = 0
        for est in forest.estimators_:
            tree = est.tree_
            left = tree.children_left.astype(np.int64)
            right = tree.children_right.astype(np.int64)
            is_leaf = left == -1
            leaf_ids = np.cumsum(is_leaf) - 1 + n_leaves
            lefts.append(np.where(is_leaf, -1, left + offset))
            rights.append(np.where(is_leaf, leaf_ids, right + offset))
            feats.append(np.maximum(tree.feature, 0))
            thrs.append(_round_down_f32(tree.threshold.astype(np.float64)))
            v = tree.value[is_leaf, 0, :].astype(np.float64)
            total = v.sum(axis=1, keepdims=True)
            total[total == 0] = 1.0
            vals.append(v / total)
            roots.append(offset)
            offset += tree.node_count
            n_leaves += int(is_leaf.sum())
        if offset >= 2**31:  # pragma: no cover - a forest of > 2 billion nodes
            raise ValueError("forest too large for the compact int32 layout")
        self.left = np.concatenate(lefts).astype(np.int32)
        self.right = np.concatenate(rights).astype(np.int32)
        self.feature = np.concatenate(feats).astype(np.int32)
        self.threshold = np.concatenate(thrs).astype(np.float32)
        self.leaf_value = np.ascontiguousarray(np.concatenate(vals))
        self.roots = np.asarray(roots, dtype=np.int32)
        self.n_classes = self.leaf_value.shape[1]

    def raw(self, x: F64) -> F64:
        """Class probabilities (n, n_classes) of a 2-D float array."""
        x32 = np.ascontiguousarray(x, dtype=np.float32)
        out = np.empty((x32.shape[0], self.n_classes))
        _forest_kernel()(
            x32,
            self.left,
            self.right,
            self.feature,
            self.threshold,
            self.leaf_value,
            self.roots,
            out,
        )
        return out


# --- XGBoost --------------------------------------------------------------------------


def _trees_margin_py(
    x: NDArray[np.float32],
    left: NDArray[np.int64],
    right: NDArray[np.int64],
    feature: NDArray[np.int64],
    threshold: NDArray[np.float32],
    default_left: NDArray[np.bool_],
    value: NDArray[np.float32],
    roots: NDArray[np.int64],
    group: NDArray[np.int64],
    out: NDArray[np.float32],
) -> None:  # pragma: no cover - compiled (numba); equality with XGBoost is tested
    # out arrives holding the base margin; trees add in XGBoost's order, in float32.
    for i in range(x.shape[0]):
        for t in range(roots.shape[0]):
            node = roots[t]
            while left[node] != -1:
                v = x[i, feature[node]]
                if np.isnan(v):
                    node = left[node] if default_left[node] else right[node]
                elif v < threshold[node]:  # XGBoost goes left on "<"
                    node = left[node]
                else:
                    node = right[node]
            out[i, group[t]] += value[node]


@cache
def _trees_kernel() -> Any:
    import numba

    return numba.njit(cache=True, nogil=True)(_trees_margin_py)


def _tree_shap_py(
    x: NDArray[np.float32],
    left: NDArray[np.int64],
    right: NDArray[np.int64],
    feature: NDArray[np.int64],
    threshold: NDArray[np.float32],
    default_left: NDArray[np.bool_],
    value: NDArray[np.float32],
    cover: F64,
    roots: NDArray[np.int64],
    group: NDArray[np.int64],
    target: int,
    max_depth: int,
    phi: F64,
) -> None:  # pragma: no cover - compiled (numba); equality with XGBoost is tested
    """Path-dependent tree SHAP (Lundberg et al. 2018, Algorithm 2) for one row.

    The recursion of the reference implementation (shap's ``tree_shap.h``, XGBoost's
    ``TreeShap``) runs on an explicit stack; each recursion level owns one row of the
    ``path_*`` arrays (its unique path), as the reference gives each call its own slice.
    Adds the contributions of the trees of output ``target`` to ``phi[:n_features]``.
    """
    size = max_depth + 2
    p_feat = np.empty((size + 1, size + 1), dtype=np.int64)
    p_zero = np.empty((size + 1, size + 1))
    p_one = np.empty((size + 1, size + 1))
    p_w = np.empty((size + 1, size + 1))
    s_node = np.empty(2 * size + 2, dtype=np.int64)
    s_level = np.empty(2 * size + 2, dtype=np.int64)
    s_depth = np.empty(2 * size + 2, dtype=np.int64)
    s_zero = np.empty(2 * size + 2)
    s_one = np.empty(2 * size + 2)
    s_feat = np.empty(2 * size + 2, dtype=np.int64)
    for t in range(roots.shape[0]):
        if group[t] != target:
            continue
        sp = 0
        s_node[0], s_level[0], s_depth[0], s_zero[0], s_one[0], s_feat[0] = (
            roots[t],
            0,
            0,
            1.0,
            1.0,
            -1,
        )
        sp = 1
        while sp > 0:
            sp -= 1
            node, lv, ud = s_node[sp], s_level[sp], s_depth[sp]
            # copy the parent's unique path, then extend it with this split (ExtendPath)
            for k in range(ud):
                p_feat[lv, k] = p_feat[lv - 1, k]
                p_zero[lv, k] = p_zero[lv - 1, k]
                p_one[lv, k] = p_one[lv - 1, k]
                p_w[lv, k] = p_w[lv - 1, k]
            zf, of = s_zero[sp], s_one[sp]
            p_feat[lv, ud], p_zero[lv, ud], p_one[lv, ud] = s_feat[sp], zf, of
            p_w[lv, ud] = 1.0 if ud == 0 else 0.0
            for i in range(ud - 1, -1, -1):
                p_w[lv, i + 1] += of * p_w[lv, i] * (i + 1) / (ud + 1)
                p_w[lv, i] = zf * p_w[lv, i] * (ud - i) / (ud + 1)
            if left[node] == -1:
                for j in range(1, ud + 1):  # UnwoundPathSum for each feature on the path
                    one, zero = p_one[lv, j], p_zero[lv, j]
                    nxt = p_w[lv, ud]
                    total = 0.0
                    for i in range(ud - 1, -1, -1):
                        if one != 0.0:
                            tmp = nxt * (ud + 1) / ((i + 1) * one)
                            total += tmp
                            nxt = p_w[lv, i] - tmp * zero * ((ud - i) / (ud + 1))
                        else:
                            total += (p_w[lv, i] / zero) / ((ud - i) / (ud + 1))
                    phi[p_feat[lv, j]] += total * (one - zero) * value[node]
                continue
            f = feature[node]
            v = x[f]
            go_left = default_left[node] if np.isnan(v) else v < threshold[node]
            hot = left[node] if go_left else right[node]
            cold = right[node] if go_left else left[node]
            in_zero, in_one = 1.0, 1.0
            k = 0
            while k <= ud and p_feat[lv, k] != f:
                k += 1
            if k <= ud:  # the feature split before on this path: undo it (UnwindPath)
                in_zero, in_one = p_zero[lv, k], p_one[lv, k]
                nxt = p_w[lv, ud]
                for i in range(ud - 1, -1, -1):
                    if in_one != 0.0:
                        tmp = p_w[lv, i]
                        p_w[lv, i] = nxt * (ud + 1) / ((i + 1) * in_one)
                        nxt = tmp - p_w[lv, i] * in_zero * (ud - i) / (ud + 1)
                    else:
                        p_w[lv, i] = (p_w[lv, i] * (ud + 1)) / (in_zero * (ud - i))
                for i in range(k, ud):
                    p_feat[lv, i] = p_feat[lv, i + 1]
                    p_zero[lv, i] = p_zero[lv, i + 1]
                    p_one[lv, i] = p_one[lv, i + 1]
                ud -= 1
            for child, one in ((cold, 0.0), (hot, in_one)):
                s_node[sp], s_level[sp], s_depth[sp] = child, lv + 1, ud + 1
                s_zero[sp] = in_zero * cover[child] / cover[node]
                s_one[sp], s_feat[sp] = one, f
                sp += 1


@cache
def _shap_kernel() -> Any:
    import numba

    return numba.njit(cache=True, nogil=True)(_tree_shap_py)


class FastXGB:
    """An XGBoost booster's trees flattened into arrays and walked by numba.

    Reads the trees from the booster's JSON model; the base margin per output is taken
    from the booster itself (its margin on a reference row minus the trees' sum), so
    however XGBoost stores ``base_score`` the result equals ``inplace_predict``. Output:
    probabilities for ``multi:softprob`` / ``binary:logistic`` (binary as two columns),
    the raw values otherwise (e.g. the three quantiles of ``reg:quantileerror``).
    ``booster`` stays available (tree SHAP uses it).
    """

    def __init__(self, booster: Any) -> None:
        import json

        self.booster = booster
        self.booster.set_param({"nthread": 1})
        model = json.loads(bytes(booster.save_raw("json")))
        learner = model["learner"]
        self.objective = learner["objective"]["name"]
        trees = learner["gradient_booster"]["model"]["trees"]
        self.n_outputs = max(
            int(learner["learner_model_param"]["num_class"]),
            int(learner["learner_model_param"]["num_target"]),
            1,
        )
        lefts, rights, feats, thrs, dls, vals, roots, covers = [], [], [], [], [], [], [], []
        offset = 0
        self.max_depth = 0
        for tree in trees:
            covers.append(np.asarray(tree["sum_hessian"], dtype=np.float64))
            self.max_depth = max(
                self.max_depth, _depth(tree["left_children"], tree["right_children"])
            )
            left = np.asarray(tree["left_children"], dtype=np.int64)
            right = np.asarray(tree["right_children"], dtype=np.int64)
            is_leaf = left == -1
            lefts.append(np.where(is_leaf, -1, left + offset))
            rights.append(np.where(is_leaf, -1, right + offset))
            feats.append(np.asarray(tree["split_indices"], dtype=np.int64))
            cond = np.asarray(tree["split_conditions"], dtype=np.float32)
            thrs.append(cond)
            vals.append(
                np.where(is_leaf, cond, np.float32(0))
            )  # a leaf's value sits in split_conditions
            dls.append(np.asarray(tree["default_left"], dtype=bool))
            roots.append(offset)
            offset += len(left)
        self.left = np.concatenate(lefts)
        self.right = np.concatenate(rights)
        self.feature = np.concatenate(feats)
        self.threshold = np.concatenate(thrs).astype(np.float32)
        self.default_left = np.concatenate(dls)
        self.value = np.concatenate(vals).astype(np.float32)
        self.cover = np.concatenate(covers)
        self.n_features = int(learner["learner_model_param"]["num_feature"])
        self.roots = np.asarray(roots, dtype=np.int64)
        self.group = np.asarray(learner["gradient_booster"]["model"]["tree_info"], dtype=np.int64)
        self.base = np.zeros(self.n_outputs, dtype=np.float32)
        n_features = int(learner["learner_model_param"]["num_feature"])
        probe = np.zeros((1, n_features))
        lib = np.asarray(
            booster.inplace_predict(probe, predict_type="margin"), dtype=np.float64
        ).reshape(-1)
        self.base = (lib - self.margin(probe)[0].astype(np.float64)).astype(np.float32)

    def margin(self, x: F64) -> NDArray[np.float32]:
        """Raw margins (n, outputs), in float32 as XGBoost computes them."""
        x32 = np.ascontiguousarray(x, dtype=np.float32)
        out = np.empty((x32.shape[0], self.n_outputs), dtype=np.float32)
        out[:] = self.base
        _trees_kernel()(
            x32,
            self.left,
            self.right,
            self.feature,
            self.threshold,
            self.default_left,
            self.value,
            self.roots,
            self.group,
            out,
        )
        return out

    def contributions(self, row: F64, output: int = 0) -> F64:
        """Tree-SHAP contributions (n_features,) of one row to output ``output``'s margin,
        as ``Booster.predict(DMatrix, pred_contribs=True)`` gives them (bias left out)."""
        x32 = np.ascontiguousarray(row, dtype=np.float32).reshape(-1)
        phi = np.zeros(self.n_features + 1)
        _shap_kernel()(
            x32,
            self.left,
            self.right,
            self.feature,
            self.threshold,
            self.default_left,
            self.value,
            self.cover,
            self.roots,
            self.group,
            output,
            self.max_depth,
            phi,
        )
        return phi[: self.n_features]

    def raw(self, x: F64) -> F64:
        """Predictions (probabilities for classifiers, values for regressors), 2-D."""
        m = self.margin(x).astype(np.float64)
        if self.objective == "multi:softprob":
            e = np.exp(m - m.max(axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)
        if self.objective == "binary:logistic":
            p1 = 1.0 / (1.0 + np.exp(-m[:, 0]))
            return np.column_stack([1.0 - p1, p1])
        return m


def _depth(left: list[int], right: list[int]) -> int:
    """Depth (edges on the longest root-to-leaf path) of one tree."""
    depth = np.zeros(len(left), dtype=np.int64)
    for node in range(len(left)):  # children always come after their parent in XGBoost's arrays
        if left[node] != -1:
            depth[left[node]] = depth[right[node]] = depth[node] + 1
    return int(depth.max())


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
        # Folded constants: exp(-g|z - s|^2) = exp(z·(2g s) - g|s|^2 - g|z|^2).
        self.sv_2g_t = np.ascontiguousarray(2.0 * self.gamma * self.sv.T)
        self.sv_sq_g = self.gamma * self.sv_sq
        self.ovr = _OvR(self.n_classes) if self.n_classes > 2 else None

    def raw(self, x: F64) -> F64:
        """Decision values: (n, n_classes) one-vs-rest, or (n,) for a binary model."""
        z = (x - self.mean) / self.scale
        arg = z @ self.sv_2g_t - self.sv_sq_g - self.gamma * (z * z).sum(axis=1)[:, None]
        kernel = np.exp(np.minimum(arg, 0.0))  # squared distances are >= 0
        ovo = kernel @ self.pair_coef + self.intercept
        if self.ovr is None:
            return ovo[:, 0]
        return self.ovr(ovo)


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


class _OvR:
    """:func:`ovr_from_ovo` as two small matrix products (the single-row fast path)."""

    def __init__(self, n_classes: int) -> None:
        pairs = [(i, j) for i in range(n_classes) for j in range(i + 1, n_classes)]
        self.sign = np.zeros((len(pairs), n_classes))  # +1 for class i, -1 for class j
        self.win_i = np.zeros((len(pairs), n_classes))
        for k, (i, j) in enumerate(pairs):
            self.sign[k, i], self.sign[k, j] = 1.0, -1.0
            self.win_i[k, i] = 1.0
        self.win_j = np.abs(self.sign) - self.win_i

    def __call__(self, ovo: F64) -> F64:
        conf = ovo @ self.sign
        pos = (ovo >= 0).astype(np.float64)
        votes = pos @ self.win_i + (1.0 - pos) @ self.win_j
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
        if (total > 0).all():  # always, unless every sigmoid underflows to 0
            return p / total
        uniform = np.full_like(p, 1.0 / self.n_classes)
        return np.divide(p, total, out=uniform, where=total > 0)
