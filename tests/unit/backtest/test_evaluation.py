"""End-to-end walk-forward on small synthetic bars with tiny models: every baseline is in the
table with finite figures, the decision rules are the product's, the outputs are written."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from augur.backtest.evaluation import (
    PREDICTION_COLUMNS,
    STRATEGIES,
    EvaluationConfig,
    evaluate,
    run_decisions,
    save_outputs,
)
from augur.backtest.report import write_report
from augur.decision import DecisionConfig
from tests.conftest import ar1_bars

TINY = {
    "rf_n_estimators": 8,
    "rf_max_depth": 4,
    "xgb_n_estimators": 8,
    "svm_max_samples": 200,
    "quantile_n_estimators": 8,
    "calibration_folds": 2,
    "refit": False,
}


def momentum_bars(
    n: int = 700, symbol: str = "AAA", seed: int = 1, phi: float = 0.35
) -> pd.DataFrame:
    """Hourly bars whose 1-bar returns are AR(1): a little predictable, like a real edge."""
    return ar1_bars(n, phi, seed=seed, symbol=symbol)


def evaluate_recording_fits(bars: pd.DataFrame, config: EvaluationConfig):
    """``evaluate`` with tiny models, recording the feature rows each fold's fit was given."""
    from augur.models import Ensemble, EnsembleParams

    fits: list[np.ndarray] = []
    real_fit = Ensemble.fit

    def recording_fit(self, X, *args, **kwargs):
        fits.append(np.array(X, dtype=float, copy=True))
        return real_fit(self, X, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Ensemble, "fit", recording_fit)
        result = evaluate(
            bars,
            params=EnsembleParams(**TINY),
            decision_config=DecisionConfig(confidence_threshold=0.3),
            config=config,
        )
    return result, fits


def labelled_frame(bars: pd.DataFrame, config: EvaluationConfig) -> pd.DataFrame:
    """The training frame the evaluation builds from ``bars`` (rebuilt independently)."""
    from augur.features import default_spec, training_frame

    return training_frame(bars, default_spec(), config.horizon, config.dead_zone)


def fitted_rows(frame: pd.DataFrame, X: np.ndarray) -> pd.DataFrame:
    """The rows of ``frame`` (timestamp, label_time) whose features are the rows of ``X``."""
    from augur.features import default_spec

    features = frame[list(default_spec().model_names)].to_numpy(dtype=float)
    where = {row.tobytes(): i for i, row in enumerate(features)}
    assert len(where) == len(frame), "feature rows must identify their training-frame row"
    idx = [where[row.tobytes()] for row in np.ascontiguousarray(X, dtype=float)]
    return frame.iloc[idx][["timestamp", "label_time"]].reset_index(drop=True)


def assert_folds_purged_and_embargoed(bars, config, result, fits) -> None:
    """Every row each fold was fitted on has its label realised before that fold's test
    start, and lies at least ``embargo`` distinct timestamps before it."""
    s = result.symbols["AAA"]
    # documented: the embargo defaults to the label horizon
    embargo = config.horizon if config.embargo_bars is None else config.embargo_bars
    frame = labelled_frame(bars, config)
    grid = np.sort(frame["timestamp"].unique())
    assert len(fits) == len(s.folds) == config.n_folds
    for fold, X in zip(s.folds.itertuples(), fits, strict=True):
        rows = fitted_rows(frame, X)
        test = s.predictions.loc[s.predictions["fold"] == fold.fold, "timestamp"]
        assert len(rows) == fold.train_rows > 0
        assert test.min() == fold.test_start
        last_label = rows["label_time"].max()
        assert last_label < fold.test_start, (
            f"fold {fold.fold}: a training label is realised at {last_label}, "
            f"inside the test fold starting {fold.test_start}"
        )
        between = int(((grid > rows["timestamp"].max()) & (grid < fold.test_start)).sum())
        assert between >= embargo, (
            f"fold {fold.fold}: only {between} timestamps between the last training row and "
            f"the test start; the embargo is {embargo}"
        )


@pytest.fixture(scope="module")
def recorded():
    config = EvaluationConfig(n_folds=2, horizon=3, bootstrap_reps=200, min_train_fraction=0.5)
    return config, *evaluate_recording_fits(momentum_bars(), config)


@pytest.fixture(scope="module")
def result(recorded):
    return recorded[1]


def test_table_has_every_baseline_with_finite_figures(result):
    table = result.table()
    assert table["strategy"].tolist() == list(STRATEGIES)
    for col in (
        "accuracy",
        "total_return",
        "sharpe",
        "sortino",
        "max_drawdown_pct",
        "composite",
        "turnover",
        "costs_pct",
    ):
        assert np.isfinite(table[col].to_numpy(dtype=float)).all(), col
    t = table.set_index("strategy")
    assert t.loc["always_flat", "n_trades"] == 0 and t.loc["always_flat", "total_return"] == 0
    assert t.loc["buy_and_hold", "n_trades"] == 1 and t.loc["buy_and_hold", "exposure"] == 1
    # buy and hold's return is the asset's own over the out-of-sample bars (less one entry cost)
    s = result.symbols["AAA"]
    asset = np.prod(1 + s.predictions["next_return"]) - 1
    assert t.loc["buy_and_hold", "total_return"] == pytest.approx(asset, abs=5e-4)
    # the model-based rows carry probability scores; gating does not change predictions
    assert np.isfinite(t.loc[["ensemble", "best_single"], ["brier", "log_loss"]].to_numpy()).all()
    assert t.loc["ensemble", "accuracy"] == t.loc["ensemble_ungated", "accuracy"]


def test_predictions_are_out_of_sample_and_ordered(result):
    s = result.symbols["AAA"]
    p = s.predictions
    assert p["timestamp"].is_monotonic_increasing and p["timestamp"].is_unique
    assert set(p["fold"]) == {0, 1} and len(s.folds) == 2
    assert np.allclose(p[["p_down", "p_flat", "p_up"]].sum(axis=1), 1.0)
    assert (p["q05"] <= p["q95"]).all()
    assert p["best_model"].isin(["rf", "xgb", "svm", "logreg"]).all()


def test_each_fold_was_fitted_only_on_rows_labelled_before_its_test_start(recorded):
    """Purge and embargo on the folds the evaluation fitted (default embargo = horizon)."""
    config, result, fits = recorded
    assert_folds_purged_and_embargoed(momentum_bars(), config, result, fits)


@pytest.mark.parametrize("embargo", [0, 6])
def test_training_stops_where_the_purge_or_a_longer_embargo_says(embargo):
    """With no embargo only the purge separates training labels from the test fold: it
    drops exactly the ``horizon`` rows whose labels straddle each test start. An embargo
    longer than the horizon widens that gap to ``embargo`` timestamps."""
    bars = momentum_bars(n=330)
    config = EvaluationConfig(
        n_folds=2, horizon=3, embargo_bars=embargo, bootstrap_reps=50, min_train_fraction=0.5
    )
    result, fits = evaluate_recording_fits(bars, config)
    assert_folds_purged_and_embargoed(bars, config, result, fits)
    frame = labelled_frame(bars, config)
    gap = max(config.horizon, embargo)  # hourly bars without holes
    for fold, X in zip(result.symbols["AAA"].folds.itertuples(), fits, strict=True):
        last_trained = fitted_rows(frame, X)["timestamp"].max()
        assert last_trained == fold.test_start - pd.Timedelta(hours=gap + 1)


def test_headline_figures_have_cis(result):
    h = result.headline().iloc[0]
    assert h["accuracy_gain_low"] <= h["accuracy_gain"] <= h["accuracy_gain_high"]
    assert h["fp_entries_ungated"] >= 0 and h["fp_entries_gated"] >= 0
    assert h["fp_reduction"] == h["fp_entries_ungated"] - h["fp_entries_gated"]
    assert h["block"] >= 3  # at least the label horizon


def test_gate_blocks_low_confidence_entries_and_sizes_stay_capped(result):
    p = result.symbols["AAA"].predictions
    strict = DecisionConfig(confidence_threshold=0.3, max_position_size=0.1)
    pos, entries = run_decisions(
        p, strict, symbol="AAA", volatility_ref=p["volatility_ref"].to_numpy()
    )
    assert (np.abs(pos) <= 0.1 + 1e-12).all()
    assert (p["confidence"].to_numpy()[entries != 0] >= 0.3).all()
    assert (entries[entries != 0] == p["direction"].to_numpy()[entries != 0]).all()
    closed = DecisionConfig(confidence_threshold=1.0)
    pos, entries = run_decisions(p, closed, symbol="AAA", volatility_ref=1.0)
    assert not entries.any() and not pos.any()
    ungated = DecisionConfig(confidence_threshold=0.0)
    _, e_all = run_decisions(
        p, ungated, symbol="AAA", volatility_ref=p["volatility_ref"].to_numpy()
    )
    assert (e_all != 0).sum() > 0


def test_report_and_outputs_are_written(result, tmp_path):
    path = write_report(result, tmp_path / "r" / "backtest.html")
    text = path.read_text()
    assert text.count("plotly-graph-div") >= 4  # equity, drawdown, calibration, confusion
    assert "buy and hold" in text and "Per fold" in text and "periods per year" in text
    assert "The gated ensemble" in text
    paths = save_outputs(result, tmp_path / "reports")
    preds = pd.read_parquet(paths["predictions"])
    assert list(preds.columns) == list(PREDICTION_COLUMNS)
    assert len(preds) == len(result.symbols["AAA"].predictions)
    from augur.backtest.simulation import OutOfSampleOutcomes

    outcomes = OutOfSampleOutcomes.load(paths["outcomes"])
    assert len(outcomes) == len(preds)
    # what the Monte Carlo re-walks the member weights from
    assert outcomes.members is not None
    np.testing.assert_array_equal(outcomes.members.label, preds["label"])
    assert outcomes.members.per_model.shape == (len(preds), 4, 3)
    np.testing.assert_allclose(outcomes.members.per_model.sum(axis=2), 1.0, atol=1e-9)
    assert 0 < outcomes.members.decay < 1


def test_bad_input_names_the_symbol():
    with pytest.raises(ValueError, match="ZZZ"):
        evaluate(momentum_bars(n=300), symbols=["ZZZ"])
    with pytest.raises(ValueError, match="at least 200"):
        evaluate(momentum_bars(n=150))


def test_test_bars_follow_the_member_weights_outcome_by_outcome() -> None:
    """The serving rule bar by bar: each out-of-sample bar mixes the members with the
    weights after the outcomes whose labels were known by its time (DynamicWeights'
    update, bound included), not with the weights the fold's fit ended with."""
    from augur.features import default_spec
    from augur.models import MEMBERS, DynamicWeights, Ensemble, EnsembleParams

    bars = momentum_bars(500)
    config = EvaluationConfig(n_folds=2, horizon=3, bootstrap_reps=50, min_train_fraction=0.5)
    fitted: list[Ensemble] = []
    real_fit = Ensemble.fit

    def keeping_fit(self, *args, **kwargs):
        fitted.append(real_fit(self, *args, **kwargs))
        return fitted[-1]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Ensemble, "fit", keeping_fit)
        result = evaluate(
            bars,
            params=EnsembleParams(**TINY),
            decision_config=DecisionConfig(confidence_threshold=0.3),
            config=config,
        )
    preds = result.predictions()
    frame = labelled_frame(bars, config).set_index("timestamp")
    names = list(default_spec().model_names)
    for k, ensemble in enumerate(fitted):
        rows = preds[preds["fold"] == k].sort_values("timestamp")
        test = frame.loc[rows["timestamp"]]
        per_model = ensemble.predict(test[names].to_numpy(dtype=float)).per_model
        dw = DynamicWeights.from_state(ensemble.dynamic_weights.state())
        assert dw.max_step == EnsembleParams().weight_max_step
        # the outcomes carry the scores this fold's walk started from, and its members
        starts = rows[[f"weight_score_{m}" for m in MEMBERS]].to_numpy()
        np.testing.assert_array_equal(starts, np.broadcast_to(dw.perf, starts.shape))
        for i, m in enumerate(MEMBERS):
            got = rows[[f"p_down_{m}", f"p_flat_{m}", f"p_up_{m}"]].to_numpy()
            np.testing.assert_allclose(got, per_model[i], rtol=1e-12)
        label_times = test["label_time"].to_numpy()
        labels = test["label"].to_numpy()
        folded, moved = 0, False
        for t, ts in enumerate(test.index.to_numpy()):
            while folded < len(test) and label_times[folded] <= ts:
                dw.update(per_model[:, folded, :], int(labels[folded]))
                folded += 1
            want = dw.weights @ per_model[:, t, :]
            got = rows.iloc[t][["p_down", "p_flat", "p_up"]].to_numpy(dtype=float)
            np.testing.assert_allclose(got, want, rtol=1e-9)
            moved |= folded > 0
        assert moved, "some outcome must be known within the fold's test bars"
        assert len(MEMBERS) == per_model.shape[0]
