"""The pure scoring function: walk-forward folds, cumulative reports, caching, sweep."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from augur.tuning import _objective as objective
from augur.tuning import evaluate, load_study_bars, parse_study
from augur.tuning._objective import TrialScorer
from tests.unit.tuning.helpers import make_study


@pytest.fixture
def study(bars_root: Path, tmp_path: Path):
    return parse_study(make_study(bars_root, tmp_path))


def test_reports_one_cumulative_result_per_fold(study) -> None:
    bars = load_study_bars(study)
    params = {"decision.confidence_threshold": 0.1, "decision.kelly_fraction": 0.5}
    reports = list(TrialScorer(study, bars, params).folds())
    assert [r.fold for r in reports] == [0, 1]
    for r in reports:
        assert set(objective.METRIC_KEYS) <= set(r.metrics)
        assert r.decision == {"confidence_threshold": 0.1, "kelly_fraction": 0.5}
    # cumulative: the second report counts the first fold's trades too
    assert reports[1].metrics["n_trades"] >= reports[0].metrics["n_trades"]
    assert evaluate(study, bars, params).metrics == reports[-1].metrics


def test_decision_only_study_fits_the_model_once(study, tmp_path: Path, monkeypatch) -> None:
    bars = load_study_bars(study)
    objective._PROCESS_CACHE.clear()
    fits = []
    real = TrialScorer._fit_predict
    monkeypatch.setattr(
        TrialScorer, "_fit_predict", lambda self, k: fits.append(k) or real(self, k)
    )
    cache = tmp_path / "cache"
    a = TrialScorer(
        study,
        bars,
        {"decision.confidence_threshold": 0.0, "decision.kelly_fraction": 1.0},
        cache_dir=cache,
    )
    b = TrialScorer(
        study,
        bars,
        {"decision.confidence_threshold": 0.6, "decision.kelly_fraction": 0.05},
        cache_dir=cache,
    )
    ra, rb = list(a.folds())[-1], list(b.folds())[-1]
    assert fits == [0, 1]
    assert list(cache.glob("oos-*.parquet"))
    assert ra.metrics != rb.metrics  # thresholds move the result
    # a new process would read the parquet, not refit
    objective._PROCESS_CACHE.clear()
    c = TrialScorer(
        study,
        bars,
        {"decision.confidence_threshold": 0.0, "decision.kelly_fraction": 1.0},
        cache_dir=cache,
    )
    assert list(c.folds())[-1].metrics == ra.metrics
    assert fits == [0, 1]


def test_sweep_picks_the_best_grid_row(bars_root: Path, tmp_path: Path) -> None:
    raw = make_study(bars_root, tmp_path, sweep={"decision.cooldown_losses": [0, 1, 3]})
    study = parse_study(raw)
    bars = load_study_bars(study)
    params = {"decision.confidence_threshold": 0.1, "decision.kelly_fraction": 0.5}
    best = evaluate(study, bars, params)
    singles = []
    for c in (0, 1, 3):
        s = parse_study(
            make_study(bars_root, tmp_path, fixed={**raw["fixed"], "decision.cooldown_losses": c})
        )
        singles.append(evaluate(s, bars, params).metrics["score"])
    assert best.metrics["score"] == pytest.approx(max(singles))
    assert best.decision["cooldown_losses"] in (0, 1, 3)


def test_model_search_runs_folds_in_order(bars_root: Path, tmp_path: Path) -> None:
    raw = make_study(bars_root, tmp_path)
    raw["search_space"]["features.windows"] = {
        "type": "categorical",
        "choices": [[5, 10], [5, 10, 20]],
    }
    study = parse_study(raw)
    bars = load_study_bars(study)
    scorer = TrialScorer(
        study,
        bars,
        {
            "decision.confidence_threshold": 0.1,
            "decision.kelly_fraction": 0.5,
            "features.windows": "5,10",
        },
    )
    with pytest.raises(RuntimeError, match="out of order"):
        scorer.run_fold(1)
    first = scorer.run_fold(0)
    assert first.fold == 0 and len(scorer.oos) == 1


def test_data_range_must_leave_bars(bars_root: Path, tmp_path: Path) -> None:
    raw = make_study(bars_root, tmp_path)
    raw["data"]["start"] = "2030-01-01"
    with pytest.raises(ValueError, match="no bars"):
        load_study_bars(parse_study(raw))


def test_checkpoint_state_resumes_to_the_same_result(bars_root: Path, tmp_path: Path) -> None:
    raw = make_study(bars_root, tmp_path)
    raw["search_space"]["model.rf_max_depth"] = {"type": "int", "low": 2, "high": 6}
    study = parse_study(raw)
    bars = load_study_bars(study)
    params = {
        "decision.confidence_threshold": 0.1,
        "decision.kelly_fraction": 0.5,
        "model.rf_max_depth": 3,
    }
    whole = TrialScorer(study, bars, params)
    reports = list(whole.folds())
    first = TrialScorer(study, bars, params)
    first.run_fold(0)
    state = first.oos_state()
    # a checkpoint keeps only the model's outputs; the data columns come from the bars
    assert set(state.columns) == {"fold", *objective.PREDICTION_COLUMNS}
    resumed = TrialScorer(study, bars, params)
    resumed.restore_oos(state)
    pd.testing.assert_frame_equal(resumed.oos[0], first.oos[0])
    assert resumed.run_fold(1).metrics == reports[1].metrics


def test_limit_threads_pins_blas_and_numba_in_the_calling_thread() -> None:
    import threading

    import numba
    from threadpoolctl import threadpool_info

    seen: dict[str, object] = {}

    def trial() -> None:
        objective.limit_threads(1)
        seen["numba"] = numba.get_num_threads()
        seen["blas"] = {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    worker = threading.Thread(target=trial)
    worker.start()
    worker.join()
    assert seen == {"numba": 1, "blas": {1}}


def test_folds_size_by_the_volatility_regime_as_the_service_does(study) -> None:
    """Each fold's rows carry its model's volatility reference (the training rows'
    median), so the sweep scales sizes by volatility as decide() does when serving."""
    from augur.models import confidence_features

    bars = load_study_bars(study)
    params = {"decision.confidence_threshold": 0.1, "decision.kelly_fraction": 0.5}
    scorer = TrialScorer(study, bars, params)
    preds = scorer.fixed_model_predictions()
    rows = preds[preds["fold"] == 0]
    vol = confidence_features(scorer.configs.feature_spec().names)[0]
    assert vol is not None
    train = scorer._training_frame().iloc[scorer._fold_list()[0].train]
    assert rows["volatility_ref"].nunique() == 1
    assert rows["volatility_ref"].iloc[0] == pytest.approx(float(train[vol].median()))
    assert rows["volatility_ref"].iloc[0] > 0


def test_fold_predictions_follow_the_outcomes_as_the_backtest_does(
    study, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trials score with member weights that move outcome by outcome
    (``Ensemble.predict_walk``, the walk-forward's and the service's rule), never with
    the weights frozen at the fold's training end."""
    from augur.models import Ensemble

    def frozen(*_a, **_k):
        raise AssertionError("a fold was predicted with fixed weights")

    monkeypatch.setattr(Ensemble, "predict", frozen)
    bars = load_study_bars(study)
    params = {"decision.confidence_threshold": 0.1, "decision.kelly_fraction": 0.5}
    preds = TrialScorer(study, bars, params).predict_fold(0)
    assert len(preds) > 0 and preds["p_up"].between(0, 1).all()
