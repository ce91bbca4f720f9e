"""Ensemble behaviour a user of its predictions would notice."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from augur.decision import Signal
from augur.models import MEMBERS, Ensemble
from tests.conftest import ar1_bars
from tests.unit.models._ensemble_fixtures import small_params


def test_probabilities_sum_to_one(fitted, xy) -> None:
    pred = fitted.predict(xy[0])
    np.testing.assert_allclose(pred.proba.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(pred.per_model.sum(axis=2), 1.0, atol=1e-12)
    assert np.all((pred.proba >= 0) & (pred.proba <= 1))
    np.testing.assert_allclose(pred.weights.sum(), 1.0)


def test_direction_probability_agreement_consistent(fitted, xy) -> None:
    pred = fitted.predict(xy[0])
    idx = pred.direction + 1
    np.testing.assert_allclose(pred.probability, pred.proba[np.arange(len(idx)), idx])
    assert np.all(pred.probability >= pred.proba.max(axis=1) - 1e-12)
    assert np.all((pred.agreement >= 0) & (pred.agreement <= 1))
    assert np.all((pred.confidence >= 0) & (pred.confidence <= 1))
    assert set(np.unique(pred.direction)) <= {-1, 0, 1}


def test_quantiles_are_ordered(fitted, xy) -> None:
    q = fitted.predict(xy[0]).quantiles
    assert np.all(q[:, 0] <= q[:, 1]) and np.all(q[:, 1] <= q[:, 2])


def test_predict_one_output_and_signal(fitted, xy) -> None:
    out = fitted.predict_one(xy[0][5], volatility=2.0, trend_strength=0.7)
    assert out.p_up + out.p_down + out.p_flat == pytest.approx(1.0)
    assert set(out.per_model) == set(MEMBERS)
    assert sum(out.weights.values()) == pytest.approx(1.0)
    assert len(out.contributions) == 3
    assert all(name in fitted.feature_names for name, _ in out.contributions)
    mags = [abs(c) for _, c in out.contributions]
    assert mags == sorted(mags, reverse=True)
    sig = out.to_signal("augur-ensemble:v1")
    assert isinstance(sig, Signal)
    assert (sig.direction, sig.probability, sig.model_version) == (
        out.direction,
        out.probability,
        "augur-ensemble:v1",
    )
    d = out.to_dict()
    assert d["per_model"]["rf"]["up"] == out.per_model["rf"][2]
    # higher volatility than the reference lowers confidence
    calm = fitted.predict_one(xy[0][5], volatility=1.0, trend_strength=0.7, explain=False)
    assert calm.confidence > out.confidence


def test_validation_metrics_recorded(fitted) -> None:
    m = fitted.metrics
    for name in (*MEMBERS, "ensemble", "ensemble_equal_weights"):
        assert 0.0 <= m[name]["accuracy"] <= 1.0
        assert m[name]["log_loss"] > 0
    assert 0 <= m["quantile_coverage_90"] <= 1
    assert m["n_validation"] == 80
    assert sum(m["weights_after_validation"].values()) == pytest.approx(1.0)


def test_update_weights_rewards_the_member_that_was_right(fitted) -> None:
    import copy

    ens = copy.deepcopy(fitted)
    before = ens.dynamic_weights.as_dict()
    probs = {m: (0.3, 0.4, 0.3) for m in MEMBERS}
    probs["svm"] = (0.05, 0.05, 0.9)  # svm alone said "up" strongly
    after = ens.update_weights(probs, 1)
    assert after["svm"] > before["svm"]
    assert all(after[m] < before[m] for m in MEMBERS if m != "svm")
    assert sum(after.values()) == pytest.approx(1.0)
    out = ens.predict_one(np.zeros(6), explain=False)
    again = ens.update_weights(out, -1)
    assert sum(again.values()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="lacks member"):
        ens.update_weights({"rf": (0.2, 0.3, 0.5)}, 1)


def test_bad_input_is_rejected_with_clear_errors(fitted, xy) -> None:
    X, y, r = xy
    names = [f"f{i}" for i in range(X.shape[1])]
    ens = Ensemble(small_params())
    with pytest.raises(RuntimeError, match="not fitted"):
        ens.predict(X)
    with pytest.raises(ValueError, match="feature_names"):
        ens.fit(X, y, r, names[:-1])
    with pytest.raises(ValueError, match="labels must be"):
        ens.fit(X, np.where(y == 0, 2, y), r, names)
    with pytest.raises(ValueError, match="two classes"):
        ens.fit(X, np.ones_like(y), r, names)
    Xn = X.copy()
    Xn[7, 2] = np.nan
    with pytest.raises(ValueError, match="row 7"):
        ens.fit(Xn, y, r, names)
    with pytest.raises(ValueError, match="at least"):
        ens.fit(X[:10], y[:10], r[:10], names)
    with pytest.raises(ValueError, match="rows left"):
        Ensemble(small_params(validation_fraction=0.8)).fit(X[:70], y[:70], r[:70], names, purge=5)
    with pytest.raises(ValueError, match="one row of 6"):
        fitted.predict_one(X[:2])
    with pytest.raises(ValueError, match="shape"):
        fitted.predict(X[:, :3])
    with pytest.raises(ValueError, match="one value per row"):
        fitted.evaluate(X[:5], y[:4], r[:5])


def test_evaluate_updates_weights_out_of_sample(fitted, xy) -> None:
    import copy

    ens = copy.deepcopy(fitted)
    X, y, r = xy
    n0 = ens.dynamic_weights.n_updates
    rep = ens.evaluate(X[-50:], y[-50:], r[-50:])
    assert ens.dynamic_weights.n_updates == n0 + 50
    assert 0 <= rep["ensemble"]["accuracy"] <= 1


# --- out-of-sample skill: an edge where there is one, none where there is none -----------

#: bars per process: ~1150 labelled rows, 60 % to fit, the last 40 % held out
N_BARS = 1200
HORIZON = 1  # one-bar-ahead labels: AR(1) sign persistence is what there is to learn


def process_bars(phi: float, n: int = N_BARS, seed: int = 0) -> pd.DataFrame:
    """Bars of an AR(1) process with coefficient ``phi`` (0: nothing to predict)."""
    return ar1_bars(n, phi, seed=seed)


def out_of_sample_skill(bars: pd.DataFrame) -> dict[str, float]:
    """Fit on the first 60 % of the labelled rows (purged by the horizon), predict the rest:
    the ensemble's accuracy there and the best constant guess's (the majority class of the
    held-out labels themselves, so the baseline is never handicapped)."""
    from augur.features import default_spec, training_frame

    spec = default_spec()
    names = list(spec.names)
    frame = training_frame(bars, spec, HORIZON, 0.25)
    X, y = frame[names].to_numpy(), frame["label"].to_numpy()
    r = frame["forward_return"].to_numpy()
    cut = int(len(frame) * 0.6)
    fit_end = cut - HORIZON  # no training label reaches into the held-out rows
    ensemble = Ensemble(small_params(refit=False)).fit(
        X[:fit_end], y[:fit_end], r[:fit_end], names, purge=HORIZON
    )
    held_out = y[cut:]
    accuracy = float(np.mean(ensemble.predict(X[cut:]).direction == held_out))
    majority = float(np.unique(held_out, return_counts=True)[1].max() / len(held_out))
    return {"accuracy": accuracy, "majority": majority, "n": float(len(held_out))}


def test_ensemble_beats_the_majority_class_out_of_sample_on_a_predictable_process() -> None:
    """Returns with sign persistence (AR(1), phi = 0.6) are learnable from the features:
    out of sample the ensemble beats chance and the best constant guess by a clear margin
    (~14 points here; a few standard errors ~0.02 of 460 held-out rows)."""
    skill = out_of_sample_skill(process_bars(phi=0.6))
    assert skill["n"] > 400
    assert skill["accuracy"] > max(skill["majority"], 1 / 3) + 0.08, (
        f"out-of-sample accuracy {skill['accuracy']:.3f} is not clearly above the majority "
        f"class's {skill['majority']:.3f}: the ensemble did not learn a learnable process"
    )


def test_ensemble_claims_no_edge_on_unpredictable_returns() -> None:
    """Independent returns: out of sample the ensemble is no better than the best constant
    guess (accuracy within a band around the majority-class share)."""
    skill = out_of_sample_skill(process_bars(phi=0.0))
    assert skill["n"] > 400
    assert skill["majority"] - 0.07 <= skill["accuracy"] <= skill["majority"] + 0.04, (
        f"out-of-sample accuracy {skill['accuracy']:.3f} vs the majority class's "
        f"{skill['majority']:.3f} on pure noise"
    )


@pytest.mark.parametrize("calibration", ["cv", "holdout"])
def test_balanced_class_weight_raises_the_rare_classes_recall(calibration: str) -> None:
    # A wide dead zone: flat is ~75% of the labels, up and down ~12% each.
    rng = np.random.default_rng(3)
    n, k = 1200, 6
    X = rng.normal(size=(n, k))
    signal = 0.8 * X[:, 0] - 0.5 * X[:, 1] + rng.normal(0.0, 1.0, n)
    y = np.where(signal > 1.6, 1, np.where(signal < -1.6, -1, 0))
    fit, test = slice(0, 900), slice(900, n)
    rare = y[test] != 0
    names = [f"f{i}" for i in range(k)]
    extra = {"refit": False, "calibration": "holdout"} if calibration == "holdout" else {}

    def rare_recall(class_weight: str) -> float:
        params = small_params(class_weight=class_weight, **extra)
        ens = Ensemble(params).fit(X[fit], y[fit], 0.01 * signal[fit], names, purge=2)
        direction = ens.predict(X[test]).direction
        return float((direction[rare] == y[test][rare]).mean())

    unweighted, balanced = rare_recall("none"), rare_recall("balanced")
    assert balanced > unweighted + 0.2


def test_predict_walk_scores_each_row_with_the_weights_known_at_its_time(fitted, xy) -> None:
    """The backtest's bar-by-bar rule: row t mixes the members with the weights after the
    outcomes whose labels were known by t (here two rows later: the label horizon)."""
    from augur.models import DynamicWeights

    X, y, _ = xy
    X, y = X[-40:], y[-40:]
    times = np.arange(40)
    before = fitted.dynamic_weights.weights.copy()
    walk = fitted.predict_walk(X, y, times, times + 2, volatility_ratio=np.ones(40))
    np.testing.assert_array_equal(fitted.dynamic_weights.weights, before)  # left as it was
    plain = fitted.predict(X, volatility_ratio=np.ones(40))
    # the first two rows know no outcome yet: the trained weights
    np.testing.assert_allclose(walk.proba[:2], plain.proba[:2], rtol=1e-12)
    dw = DynamicWeights.from_state(fitted.dynamic_weights.state())
    for t in range(40):
        if t >= 2:
            dw.update(plain.per_model[:, t - 2, :], int(y[t - 2]))
        np.testing.assert_allclose(walk.proba[t], dw.weights @ plain.per_model[:, t, :], rtol=1e-12)
    np.testing.assert_allclose(walk.weights, dw.weights, rtol=1e-12)
    idx = walk.direction + 1
    np.testing.assert_allclose(walk.probability, walk.proba[np.arange(40), idx])
    # no label known within the rows: the plain prediction
    never = fitted.predict_walk(X, y, times, times + 100, volatility_ratio=np.ones(40))
    np.testing.assert_allclose(never.proba, plain.proba, rtol=1e-12)
    np.testing.assert_allclose(never.confidence, plain.confidence, rtol=1e-12)
    with pytest.raises(ValueError, match="label_times"):
        fitted.predict_walk(X, y, times, times[:5])
