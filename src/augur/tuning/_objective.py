"""The pure scoring function of a trial: parameters → walk-forward out-of-sample metrics.

One trial = one FeatureSpec + one EnsembleParams + a grid of DecisionConfigs. For each
walk-forward fold (purged, embargoed: :class:`augur.backtest.walkforward.WalkForward`) the
ensemble is fitted on the fold's training rows and predicts its test rows; the decision
grid is then scored on all out-of-sample predictions so far (cumulative, so the figure
after fold k is comparable across trials at fold k — what ASHA compares). The best grid
combination's metrics are the fold's report.

Studies that search only ``decision.*`` thresholds do not refit anything: the fixed
model's out-of-sample predictions are computed once per process and cached on disk next
to the study, and every trial only re-runs the decisions over them (the cheap path the
benchmark measures).

Nothing here imports Ray: the same function is run by the Ray trainable, the placebo
check, promotion and plain-Optuna benchmark workers.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from augur.tuning._space import TrialConfigs, resolve
from augur.tuning._study import StudyConfig

__all__ = [
    "FoldReport",
    "TrialScorer",
    "evaluate",
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
#: Small, fast ensemble defaults for tuning; a study's ``model.*`` overrides them.
TUNING_MODEL_DEFAULTS: dict[str, Any] = {
    "rf_n_estimators": 60,
    "xgb_n_estimators": 60,
    "quantile_n_estimators": 40,
    "svm_max_samples": 800,
    "calibration_folds": 2,
    # a validation tail sets the dynamic weights (so weight_decay matters); no refit
    "validation_fraction": 0.2,
    "refit": False,
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
        out: dict[str, Any] = {"fold": self.fold, **self.metrics}
        out.update({f"decision_{k}": v for k, v in self.decision.items()})
        return out


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
            self._frame = frame.sort_values(["timestamp", "symbol"], kind="stable").reset_index(
                drop=True
            )
        return self._frame

    def _fold_list(self) -> list[Any]:
        if self._folds is None:
            from augur.backtest.walkforward import WalkForward

            wf = WalkForward(
                n_folds=self.n_folds,
                min_train_fraction=self.study.data.min_train_fraction,
                embargo_bars=self.study.data.horizon,
            )
            self._folds = wf.split_frame(self._training_frame())
        return self._folds

    def predict_fold(self, k: int) -> pd.DataFrame:
        """Fit on fold k's training rows, predict its test rows (out of sample).

        Memoised per process on (data, features, model, fold): trials that differ only
        in decision thresholds share the fit (a small LRU bounds the memory)."""
        key = f"{_cache_key(self.study, self.configs)}:{k}"
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
        names = spec.names
        params = self.configs.ensemble_params(
            **{k2: v for k2, v in TUNING_MODEL_DEFAULTS.items() if k2 not in self.configs.model},
            n_jobs=1,
            seed=self.study.seed,
        )
        train = frame.iloc[fold.train]
        test = frame.iloc[fold.test]
        model = Ensemble(params).fit(
            train[names].to_numpy(),
            train["label"].to_numpy(),
            train["forward_return"].to_numpy(),
            names,
            feature_spec_hash=spec.hash,
            purge=self.study.data.horizon,
        )
        pred = model.predict(test[names].to_numpy())
        return pd.DataFrame(
            {
                "fold": k,
                "timestamp": test["timestamp"].to_numpy(),
                "symbol": test["symbol"].to_numpy(),
                "close": test["close"].to_numpy(),
                "p_up": pred.p_up,
                "p_down": pred.p_down,
                "probability": pred.probability,
                "confidence": pred.confidence,
                "direction": pred.direction,
                "q05": pred.quantiles[:, 0],
                "q50": pred.quantiles[:, 1],
                "q95": pred.quantiles[:, 2],
                "forward_return": test["forward_return"].to_numpy(),
                # per-bar volatility: stop-loss / take-profit in volatility units need it
                "volatility": _volatility(test, names),
            }
        )

    def fixed_model_predictions(self) -> pd.DataFrame:
        """All folds' OOS predictions of the study's fixed model, cached (decision-only
        studies)."""
        if self._cached is not None:
            return self._cached
        key = _cache_key(self.study, self.configs)
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
    from augur.models._train import VOLATILITY_FEATURES

    name = next((n for n in VOLATILITY_FEATURES if n in names), None)
    if name is None:
        return np.zeros(len(rows))
    return rows[name].to_numpy(dtype=float)


_PROCESS_CACHE: OrderedDict[str, pd.DataFrame] = OrderedDict()
_CACHE_ENTRIES = 32


def _cache_key(study: StudyConfig, configs: TrialConfigs) -> str:
    blob = json.dumps(
        {
            "data": study.data.model_dump(mode="json"),
            "features": configs.features,
            "model": configs.model,
            "seed": study.seed,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


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
