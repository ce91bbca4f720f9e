"""The fast single-row paths reproduce each library's own predictions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.svm import SVC
from sklearn.utils.multiclass import _ovr_decision_function

from augur.models import MEMBERS, Ensemble
from augur.models._fast import FastPlatt, FastSVC, _OvR, ovr_from_ovo
from tests.unit.models._ensemble_fixtures import small_params, synthetic_xy


def test_fast_paths_equal_library_predict_proba(fitted, xy) -> None:
    X = xy[0][:120]
    fast = fitted.predict(X).per_model
    lib = fitted.predict_library(X)
    for i, m in enumerate(MEMBERS):
        # XGBoost itself computes in float32: its member agrees to float32 precision
        np.testing.assert_allclose(fast[i], lib[i], atol=1e-6 if m == "xgb" else 1e-9, err_msg=m)


def test_single_row_equals_batch_row(fitted, xy) -> None:
    X = xy[0]
    batch = fitted.predict(X[:10])
    for i in range(10):
        one = fitted.predict_one(X[i], explain=False)
        np.testing.assert_allclose([one.p_down, one.p_flat, one.p_up], batch.proba[i], atol=1e-12)
        assert one.direction == batch.direction[i]
        np.testing.assert_allclose([one.q05, one.q50, one.q95], batch.quantiles[i], atol=1e-12)
        lib = fitted.predict_library(X[i : i + 1])[:, 0, :]
        np.testing.assert_allclose(np.array(list(one.per_model.values())), lib, atol=1e-6)


def test_quantile_fast_path_equals_xgboost_predict(fitted, xy) -> None:
    X = xy[0][:50]
    lib = np.sort(fitted.quantile_model.predict(X), axis=1)
    np.testing.assert_allclose(fitted.predict(X).quantiles, lib, rtol=1e-6, atol=1e-7)


def test_two_class_labels_fast_equals_library() -> None:
    X, y, r = synthetic_xy(n=300, classes=(-1, 1), seed=3)
    ens = Ensemble(small_params(validation_fraction=0.0)).fit(X, y, r, [f"f{i}" for i in range(6)])
    fast = ens.predict(X[:60]).per_model
    lib = ens.predict_library(X[:60])
    np.testing.assert_allclose(fast, lib, atol=1e-6)
    assert np.all(fast[:, :, 1] == 0.0), "no flat class in training → P(flat) = 0"
    out = ens.predict_one(X[0])
    assert len(out.contributions) == 3


def test_ovr_aggregation_matches_sklearn() -> None:
    rng = np.random.default_rng(1)
    dec = rng.normal(size=(50, 3))
    dec[0] = 0.0  # ties
    np.testing.assert_allclose(ovr_from_ovo(dec, 3), _ovr_decision_function(dec < 0, -dec, 3))
    np.testing.assert_allclose(_OvR(3)(dec), _ovr_decision_function(dec < 0, -dec, 3))


@pytest.mark.filterwarnings("ignore:overflow encountered in exp")
def test_platt_all_sigmoids_underflowing_gives_uniform(fitted) -> None:
    platt = FastPlatt(fitted.members["logreg"].calibrated)
    a_sign = np.sign(platt.a)
    raw = np.vstack([a_sign * 1e6, np.zeros(3)])  # a*f + b -> +inf for every class in row 0
    out = platt(raw)
    np.testing.assert_allclose(out[0], 1 / 3)
    np.testing.assert_allclose(out.sum(axis=1), 1.0)


def test_fast_svc_matches_decision_function() -> None:
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(2)
    X = rng.normal(size=(200, 4))
    for y in (rng.integers(0, 3, 200), rng.integers(0, 2, 200)):
        pipe = Pipeline([("s", StandardScaler()), ("svc", SVC(gamma="scale"))]).fit(X, y)
        np.testing.assert_allclose(
            FastSVC(pipe).raw(X[:30]), pipe.decision_function(X[:30]), atol=1e-9
        )
    with pytest.raises(ValueError, match="rbf"):
        FastSVC(Pipeline([("s", StandardScaler()), ("svc", SVC(kernel="linear"))]).fit(X, y))


def test_tree_shap_equals_xgboost_pred_contribs(fitted, xy) -> None:
    import xgboost as xgb

    X = xy[0][:25].copy()
    X[3, 1] = np.nan  # missing values follow the default branch
    fast = fitted.members["xgb"].fast
    lib = fast.booster.predict(xgb.DMatrix(X), pred_contribs=True)
    for i in range(len(X)):
        for c in range(3):
            np.testing.assert_allclose(fast.contributions(X[i], c), lib[i, c, :-1], atol=1e-5)
    out = fitted.predict_one(xy[0][0])
    by_name = dict(out.contributions)
    row = lib[0, out.direction + 1, :-1]
    for j, name in enumerate(fitted.feature_names):
        if name in by_name:
            assert by_name[name] == pytest.approx(row[j], abs=1e-5)


def test_fast_xgb_equals_deeper_booster_with_missing_values() -> None:
    from xgboost import XGBClassifier, XGBRegressor

    from augur.models._fast import FastXGB

    rng = np.random.default_rng(4)
    X = rng.normal(size=(600, 5))
    X[rng.random(X.shape) < 0.05] = np.nan
    y = (np.nan_to_num(X[:, 0]) * np.nan_to_num(X[:, 1]) > 0).astype(int)
    clf = XGBClassifier(n_estimators=12, max_depth=6, n_jobs=1).fit(X, y)
    fast = FastXGB(clf.get_booster())
    np.testing.assert_allclose(fast.raw(X), clf.predict_proba(X), atol=1e-6)
    reg = XGBRegressor(n_estimators=12, max_depth=4, n_jobs=1).fit(X, np.nan_to_num(X[:, 2]))
    np.testing.assert_allclose(FastXGB(reg.get_booster()).raw(X)[:, 0], reg.predict(X), atol=1e-5)


def test_holdout_calibration_fits_platt_on_the_tail_and_fast_paths_agree() -> None:
    """calibration="holdout": each member is fitted once and its Platt scaling is fitted
    on the validation tail; the fast paths still equal the libraries' predict_proba, and
    the result survives a pickle round trip (what the model store does)."""
    import pickle

    X, y, r = synthetic_xy(n=500, seed=5)
    params = small_params(calibration="holdout", refit=False, xgb_max_bin=32)
    ens = Ensemble(params).fit(X, y, r, [f"f{i}" for i in range(6)], purge=2)
    assert ens.metrics["calibration"] == "holdout"
    rf = ens.members["rf"].calibrated
    assert rf.calibrated_classifiers_[0].estimator.estimator.n_estimators == 15
    # the Platt scaling is the one of the tail: refitting it there gives the same a, b
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    n_val = round(500 * params.validation_fraction)
    tail = CalibratedClassifierCV(
        FrozenEstimator(rf.calibrated_classifiers_[0].estimator.estimator),
        method="sigmoid",
        ensemble=False,
    ).fit(X[-n_val:], y[-n_val:] + 1)
    a = [c.a_ for c in rf.calibrated_classifiers_[0].calibrators]
    np.testing.assert_allclose(a, [c.a_ for c in tail.calibrated_classifiers_[0].calibrators])
    again = pickle.loads(pickle.dumps(ens))
    for model in (ens, again):
        fast = model.predict(X[:80]).per_model
        lib = model.predict_library(X[:80])
        np.testing.assert_allclose(fast, lib, atol=1e-6)
    assert (
        ens.members["xgb"]
        .calibrated.calibrated_classifiers_[0]
        .estimator.estimator.get_params()["max_bin"]
        == 32
    )


def test_holdout_calibration_falls_back_to_cv_when_the_tail_lacks_a_class() -> None:
    X, y, r = synthetic_xy(n=400, seed=6)
    y = y.copy()
    y[-80:] = np.where(y[-80:] == 1, 0, y[-80:])  # no "up" in the validation tail
    ens = Ensemble(small_params(calibration="holdout", refit=False)).fit(
        X, y, r, [f"f{i}" for i in range(6)], purge=2
    )
    assert ens.metrics["calibration"] == "cv"
    np.testing.assert_allclose(
        ens.predict(X[:40]).per_model, ens.predict_library(X[:40]), atol=1e-6
    )
