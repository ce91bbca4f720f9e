"""The pure scoring function of a trial: parameters → walk-forward out-of-sample metrics.

One trial = one FeatureSpec + one EnsembleParams + a grid of DecisionConfigs. For each
walk-forward fold (purged, embargoed: :class:`augur.backtest.walkforward.WalkForward`) the
ensemble is fitted on the fold's training rows and predicts its test rows; the decision
grid is then scored on all out-of-sample predictions so far (cumulative, so the figure
after fold k is comparable across trials at fold k — what ASHA compares). The best grid
combination's metrics are the fold's report.

Studies that search only ``decision.*`` thresholds do not refit anything: the fixed
model's out-of-sample predictions are computed once per process and cached on disk next
to the study, and every trial only re-runs the decisions over them.

Per process, the training frame and walk-forward folds of each feature set are kept
(a reused Ray actor runs many trials on the same bars), and :func:`limit_threads` pins
BLAS/OpenMP/numba to the trial's CPU share so concurrent trials do not oversubscribe.

Nothing here imports Ray: the same function is run by the Ray trainable, the placebo
check, promotion and plain-Optuna benchmark workers.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from augur.models._confidence import confidence_features
from augur.tuning._space import TrialConfigs, resolve
from augur.tuning._study import StudyConfig

__all__ = [
    "FoldReport",
    "TrialScorer",
    "decision_of",
    "evaluate",
    "limit_threads",
    "load_study_bars",
]

#: Metrics every fold report carries (besides ``fold`` and the decision choice).
METRIC_KEYS = (
    "score",
    "total_return",
    "max_drawdown_pct",
    "sharpe",
    "win_rate",
    "avg_profit_pct",
    "n_trades",
)
#: The model's output columns of an out-of-sample prediction frame; the other columns
#: (time, symbol, price, forward return, volatility) are data, rebuilt from the bars, so
#: a trial checkpoint stores only these.
PREDICTION_COLUMNS = (
    "p_up",
    "p_down",
    "probability",
    "confidence",
    "direction",
    "q05",
    "q50",
    "q95",
)
#: Small, fast ensemble defaults for tuning; a study's ``model.*`` overrides them.
TUNING_MODEL_DEFAULTS: dict[str, Any] = {
    "rf_n_estimators": 60,
    "xgb_n_estimators": 60,
    "quantile_n_estimators": 40,
    "svm_max_samples": 800,
    "xgb_max_bin": 64,
    # a validation tail sets the dynamic weights (so weight_decay matters) and the
    # members' Platt scaling (one fit per member instead of three); no refit
    "validation_fraction": 0.2,
    "refit": False,
    "calibration": "holdout",
}


@dataclass(frozen=True)
class FoldReport:
    """What a trial reports after one fold (cumulative out-of-sample figures)."""

    fold: int
    metrics: dict[str, float]
    decision: dict[str, Any]
    #: composite score of every decision-grid row (the best one is ``metrics``)
    grid_scores: tuple[float, ...] = ()

    def as_result(self) -> dict[str, Any]:
        """The fold's result as reported to Tune: ``fold``, the metrics and the chosen
        decision combination as one JSON string (``decision``; see :func:`decision_of`)."""
        out: dict[str, Any] = {"fold": self.fold, **self.metrics}
        out["decision"] = json.dumps(self.decision, sort_keys=True, default=str)
        return out


def decision_of(result: dict[str, Any]) -> dict[str, Any]:
    """The decision combination a reported result chose."""
    raw = result.get("decision")
    if isinstance(raw, str) and raw:
        out: dict[str, Any] = json.loads(raw)
        return out
    return {}


def load_study_bars(study: StudyConfig) -> pd.DataFrame:
    """The study's bars (symbols, date range, last N bars), the Bars contract."""
    from augur.data import read_bars

    bars = read_bars(study.data.symbols, root=study.data.root)
    if study.data.start:
        bars = bars[bars["timestamp"] >= pd.Timestamp(study.data.start, tz="UTC")]
    if study.data.end:
        bars = bars[bars["timestamp"] <= pd.Timestamp(study.data.end, tz="UTC")]
    if study.data.last_bars:
        bars = bars.groupby("symbol", group_keys=False).tail(study.data.last_bars)
    if bars.empty:
        raise ValueError(
            f"data: no bars for {study.data.symbols} between {study.data.start} and "
            f"{study.data.end}; widen the range"
        )
    return bars.reset_index(drop=True)


def model_searched(study: StudyConfig) -> bool:
    return any(not k.startswith("decision.") for k in study.search_space)


_THREADS = threading.local()
_CONTROLLER: Any = None


def limit_threads(n: int = 1) -> None:
    """At most ``n`` BLAS / OpenMP / numba threads for the calling thread's trials.

    Two trials on two cores must not each start a thread per core: the threads then
    fight over the cores and every trial slows down. Limits are per thread for OpenMP
    and numba, so a runner calls this at the start of every trial; repeated calls in
    one thread are free.
    """
    global _CONTROLLER
    n = max(1, int(n))
    if getattr(_THREADS, "limit", None) == n:
        return
    import numba

    if _CONTROLLER is None:
        import scipy.linalg  # noqa: F401  (load the BLAS libraries before limiting them)
        import sklearn.ensemble  # noqa: F401  (and scikit-learn's OpenMP runtime)
        import xgboost  # noqa: F401
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()  # finds the loaded libraries once
    _CONTROLLER.limit(limits=n)
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
    _THREADS.limit = n


def _bars_fingerprint(bars: pd.DataFrame) -> list[Any]:
    """Cheap identity of a bars frame (cache keys must not outlive a data change)."""
    if bars.empty:
        return [0]
    ts = bars["timestamp"]
    return [len(bars), str(ts.min()), str(ts.max()), round(float(bars["close"].sum()), 6)]


@dataclass
class TrialScorer:
    """Runs one trial fold by fold; ``state`` (OOS predictions so far) is checkpointable."""

    study: StudyConfig
    bars: pd.DataFrame
    params: dict[str, Any]
    cache_dir: Path | None = None
    configs: TrialConfigs = field(init=False)
    oos: list[pd.DataFrame] = field(default_factory=list)
    _frame: pd.DataFrame | None = field(default=None, init=False)
    _folds: list[Any] | None = field(default=None, init=False)
    _cached: pd.DataFrame | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.configs = resolve(self.study, self.params)
        # build the decision configs now so an invalid combination fails the trial at once
        self._decisions = self.configs.decision_configs()

    @property
    def n_folds(self) -> int:
        return self.study.data.n_folds

    # --- predictions ----------------------------------------------------------------

    def _training_frame(self) -> pd.DataFrame:
        if self._frame is None:
            self._frame, self._folds = self._frame_and_folds()
        return self._frame

    def _fold_list(self) -> list[Any]:
        if self._folds is None:
            self._frame, self._folds = self._frame_and_folds()
        return self._folds

    def _frame_and_folds(self) -> tuple[pd.DataFrame, list[Any]]:
        """Features, labels and walk-forward folds of this trial's feature set; kept per
        process (trials of one study share a handful of feature sets)."""
        key = _frame_key(self.study, self.configs, self.bars)
        hit = _FRAME_CACHE.get(key)
        if hit is not None:
            _FRAME_CACHE.move_to_end(key)
            return hit
        from augur.backtest.walkforward import WalkForward
        from augur.features import training_frame

        frame = training_frame(
            self.bars,
            self.configs.feature_spec(),
            self.study.data.horizon,
            self.study.data.dead_zone,
        )
        close = self.bars.set_index(["symbol", "timestamp"])["close"]
        frame["close"] = close.reindex(
            pd.MultiIndex.from_arrays([frame["symbol"], frame["timestamp"]])
        ).to_numpy()
        # pooled symbols: order rows by time so folds and trades run chronologically
        frame = frame.sort_values(["timestamp", "symbol"], kind="stable").reset_index(drop=True)
        wf = WalkForward(
            n_folds=self.n_folds,
            min_train_fraction=self.study.data.min_train_fraction,
            embargo_bars=self.study.data.horizon,
        )
        out = (frame, wf.split_frame(frame))
        _FRAME_CACHE[key] = out
        while len(_FRAME_CACHE) > _FRAME_ENTRIES:
            _FRAME_CACHE.popitem(last=False)
        return out

    def predict_fold(self, k: int) -> pd.DataFrame:
        """Fit on fold k's training rows, predict its test rows (out of sample).

        Memoised per process on (data, features, model, fold): trials that differ only
        in decision thresholds share the fit (a small LRU bounds the memory)."""
        key = f"{_cache_key(self.study, self.configs, self.bars)}:{k}"
        hit = _PROCESS_CACHE.get(key)
        if hit is not None:
            _PROCESS_CACHE.move_to_end(key)
            return hit
        out = self._fit_predict(k)
        _PROCESS_CACHE[key] = out
        while len(_PROCESS_CACHE) > _CACHE_ENTRIES:
            _PROCESS_CACHE.popitem(last=False)
        return out

    def _fit_predict(self, k: int) -> pd.DataFrame:
        from augur.models._ensemble import Ensemble

        frame = self._training_frame()
        fold = self._fold_list()[k]
        spec = self.configs.feature_spec()
        names = spec.model_names
        params = self.configs.ensemble_params(
            **{k2: v for k2, v in TUNING_MODEL_DEFAULTS.items() if k2 not in self.configs.model},
            n_jobs=1,
            seed=self.study.seed,
        )
        train = frame.iloc[fold.train]
        test = frame.iloc[fold.test]
        # confidence as served: the volatility penalty against the training rows' median
        # volatility, and the trend strength (as augur.backtest.evaluation does per fold)
        vol, trend = confidence_features(names)
        vol_ref = _volatility_ref(train, names) or None
        model = Ensemble(params).fit(
            train[names].to_numpy(),
            train["label"].to_numpy(),
            train["forward_return"].to_numpy(),
            names,
            feature_spec_hash=spec.hash,
            purge=self.study.data.horizon,
            volatility_ref=vol_ref,
        )
        # member weights follow the outcomes bar by bar, as in the backtest and serving
        pred = model.predict_walk(
            test[names].to_numpy(),
            test["label"].to_numpy(),
            test["timestamp"].to_numpy(),
            test["label_time"].to_numpy(),
            volatility_ratio=test[vol].to_numpy() / vol_ref if vol and vol_ref else None,
            trend_strength=test[trend].to_numpy() if trend else None,
        )
        return self._with_data(
            k,
            {
                "p_up": pred.p_up,
                "p_down": pred.p_down,
                "probability": pred.probability,
                "confidence": pred.confidence,
                "direction": pred.direction,
                "q05": pred.quantiles[:, 0],
                "q50": pred.quantiles[:, 1],
                "q95": pred.quantiles[:, 2],
            },
        )

    def _with_data(self, k: int, predictions: Any) -> pd.DataFrame:
        """Fold ``k``'s test rows (time, symbol, price, forward return, volatility) next
        to the model's predictions for them (:data:`PREDICTION_COLUMNS`)."""
        test = self._training_frame().iloc[self._fold_list()[k].test]
        names = self.configs.feature_spec().names
        out = {
            "fold": k,
            "timestamp": test["timestamp"].to_numpy(),
            "symbol": test["symbol"].to_numpy(),
            "close": test["close"].to_numpy(),
        }
        out.update({c: np.asarray(predictions[c]) for c in PREDICTION_COLUMNS})
        out["forward_return"] = test["forward_return"].to_numpy()
        # per-bar volatility: stop-loss / take-profit in volatility units need it; and the
        # fold model's reference (its training rows' median), so sizes scale by the
        # volatility regime as in the backtest and the service
        out["volatility"] = _volatility(test, names)
        train = self._training_frame().iloc[self._fold_list()[k].train]
        out["volatility_ref"] = _volatility_ref(train, names)
        return pd.DataFrame(out)

    # --- checkpoint state -----------------------------------------------------------

    def oos_state(self) -> pd.DataFrame:
        """The model outputs of the folds run so far (fold + :data:`PREDICTION_COLUMNS`):
        what a checkpoint must keep to resume at the next fold."""
        cols = ["fold", *PREDICTION_COLUMNS]
        if not self.oos:
            return pd.DataFrame(columns=cols)
        return pd.concat([part[cols] for part in self.oos], ignore_index=True)

    def restore_oos(self, state: pd.DataFrame) -> None:
        """Resume from :meth:`oos_state`: the data columns are rebuilt from the bars."""
        self.oos = []
        for k, part in state.groupby("fold", sort=True):
            k = int(k)
            if k != len(self.oos):
                raise ValueError(f"checkpoint holds fold {k} but not fold {len(self.oos)}")
            self.oos.append(self._with_data(k, part.reset_index(drop=True)))

    def fixed_model_predictions(self) -> pd.DataFrame:
        """All folds' OOS predictions of the study's fixed model, cached (decision-only
        studies)."""
        if self._cached is not None:
            return self._cached
        key = _cache_key(self.study, self.configs, self.bars)
        hit = _PROCESS_CACHE.get(f"{key}:all")
        path = self.cache_dir / f"oos-{key}.parquet" if self.cache_dir else None
        if hit is None and path is not None and path.exists():
            hit = pd.read_parquet(path)
        if hit is None:
            hit = pd.concat([self.predict_fold(k) for k in range(self.n_folds)], ignore_index=True)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
                hit.to_parquet(tmp, index=False)
                os.replace(tmp, path)
        _PROCESS_CACHE[f"{key}:all"] = hit
        self._cached = hit
        return hit

    # --- scoring --------------------------------------------------------------------

    def run_fold(self, k: int) -> FoldReport:
        """Evaluate fold ``k`` (folds run in order) and score everything so far."""
        if model_searched(self.study):
            if len(self.oos) != k:
                raise RuntimeError(f"fold {k} evaluated out of order (have {len(self.oos)})")
            self.oos.append(self.predict_fold(k))
            preds = pd.concat(self.oos, ignore_index=True)
        else:
            cached = self.fixed_model_predictions()
            preds = cached[cached["fold"] <= k]
        best_i, rows = _score_decisions(
            preds, self._decisions, self.study, self.configs.decision_grid
        )
        return FoldReport(
            fold=k,
            metrics=rows[best_i],
            decision=self.configs.decision_grid[best_i],
            grid_scores=tuple(r["score"] for r in rows),
        )

    def folds(self, start: int = 0) -> Iterator[FoldReport]:
        for k in range(start, self.n_folds):
            yield self.run_fold(k)


def _volatility(rows: pd.DataFrame, names: list[str]) -> np.ndarray:
    name = confidence_features(names)[0]
    if name is None:
        return np.zeros(len(rows))
    return rows[name].to_numpy(dtype=float)


def _volatility_ref(train: pd.DataFrame, names: list[str]) -> float:
    """A fold model's volatility reference: its training rows' median volatility (what
    ``Ensemble.fit`` is given; 0, no scaling, without a volatility feature)."""
    name = confidence_features(names)[0]
    return float(train[name].median()) if name is not None else 0.0


_PROCESS_CACHE: OrderedDict[str, pd.DataFrame] = OrderedDict()
_CACHE_ENTRIES = 32
_FRAME_CACHE: OrderedDict[str, tuple[pd.DataFrame, list[Any]]] = OrderedDict()
_FRAME_ENTRIES = 8


def _digest(payload: dict[str, Any]) -> str:
    blob = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _frame_key(study: StudyConfig, configs: TrialConfigs, bars: pd.DataFrame) -> str:
    return _digest(
        {
            "data": study.data.model_dump(mode="json"),
            "bars": _bars_fingerprint(bars),
            "features": configs.features,
        }
    )


def _cache_key(study: StudyConfig, configs: TrialConfigs, bars: pd.DataFrame) -> str:
    return _digest(
        {
            "data": study.data.model_dump(mode="json"),
            "bars": _bars_fingerprint(bars),
            "features": configs.features,
            "model": configs.model,
            "seed": study.seed,
            # how predictions are made: bump when that changes, so no cached file outlives
            # it (2: confidence with the volatility penalty and trend, as served; 3: each
            # fold's volatility reference beside its rows; 4: member weights that follow
            # the outcomes bar by bar)
            "predictions": _PREDICTIONS_VERSION,
        }
    )


_PREDICTIONS_VERSION = 4


def _score_decisions(
    preds: pd.DataFrame,
    decisions: list[Any],
    study: StudyConfig,
    grid: list[dict[str, Any]],
) -> tuple[int, list[dict[str, float]]]:
    """Metrics of every decision config over the predictions; index of the best one."""
    from augur.tuning._decisions import score_decision_grid

    rows = score_decision_grid(preds, grid, study.data.commission_bps)
    if study.multi_objective:
        # pick by return, ties broken by drawdown (the grid's own Pareto front is not
        # exposed: one trial = one point)
        key = [(r["total_return"], -r["max_drawdown_pct"]) for r in rows]
        best = max(range(len(rows)), key=lambda i: key[i])
    else:
        best = int(np.argmax([r["score"] for r in rows]))
    return best, rows


def evaluate(study: StudyConfig, bars: pd.DataFrame, params: dict[str, Any]) -> FoldReport:
    """Run all folds of one parameter set; the last (cumulative) report."""
    reports = list(TrialScorer(study, bars, params).folds())
    return reports[-1]
