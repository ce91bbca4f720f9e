"""The honest evaluation: purged walk-forward, the decision rules bar by bar, baselines, CIs.

For each symbol (one model per symbol — see :func:`evaluate`):

1. features and labels come from :func:`augur.features.training_frame` (features of bar
   ``t`` use bars ``<= t``; the label is the forward return ``t -> t+h``);
2. :class:`~augur.backtest.walkforward.WalkForward` cuts purged folds; for each fold the
   ensemble is fitted on the training rows only (its own validation tail, inside the
   training rows, sets the dynamic weights and chooses the *best single model*) and
   predicts the test rows bar by bar, as the service does while outcomes arrive: each
   bar with the member weights after the outcomes known by then (labels whose
   ``label_time`` has come), folded in by the service's rule
   (:meth:`augur.models.Ensemble.predict_walk`);
3. the out-of-sample predictions of all folds, in time order, are passed bar by bar
   through :func:`augur.decision.decide` — the same function the service calls — with
   the position, the account's equity, drawdown and loss streak carried from bar to bar;
4. the same is done for the baselines, in the same table: the ensemble *without* the
   confidence gate (threshold 0, every other rule unchanged), the best single model
   (through the same rules; its confidence is the ensemble's formula for a one-member
   ensemble, i.e. agreement = 1), always flat, and buy and hold (full equity long);
5. two figures are measured with circular block bootstrap CIs over time (blocks of
   consecutive bars, at least the label horizon long, because labels overlap): the
   accuracy gain of the ensemble over the best single model, and the change in false-
   positive entries (entries whose realised label was not the entered direction) from
   the confidence gate. They are reported whatever their sign.

A position decided at bar ``t`` (at its close) is held over ``t -> t+1``; costs are paid
on every change of position (commission + slippage, bps of the traded size).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from augur.backtest.metrics import (
    BootstrapCI,
    block_bootstrap_ci,
    calibration_table,
    classification_metrics,
    periods_per_year,
    trading_metrics,
)
from augur.backtest.regimes import regime_table
from augur.backtest.walkforward import WalkForward

__all__ = [
    "PREDICTION_COLUMNS",
    "STRATEGIES",
    "EvaluationConfig",
    "EvaluationResult",
    "SymbolEvaluation",
    "evaluate",
    "evaluate_symbol",
    "run_decisions",
    "save_outputs",
]

#: Rows of the comparison table, in order: the product first, then the baselines.
STRATEGIES: tuple[str, ...] = (
    "ensemble",
    "ensemble_ungated",
    "best_single",
    "always_flat",
    "buy_and_hold",
)
STRATEGY_LABELS = {
    "ensemble": "ensemble + confidence gate (product)",
    "ensemble_ungated": "ensemble, no confidence gate",
    "best_single": "best single model",
    "always_flat": "always flat",
    "buy_and_hold": "buy and hold",
}


@dataclass(frozen=True)
class EvaluationConfig:
    """How the walk-forward is run and costed.

    ``embargo_bars`` defaults to the label horizon. ``commission_bps``/``slippage_bps`` are
    charged per unit of position traded. ``bootstrap_reps``/``ci_level`` shape the CIs.
    """

    n_folds: int = 5
    window: str = "expanding"
    min_train_fraction: float = 0.4
    train_bars: int | None = None
    embargo_bars: int | None = None
    horizon: int = 5
    dead_zone: float = 0.25
    commission_bps: float = 1.0
    slippage_bps: float = 1.0
    bootstrap_reps: int = 1000
    ci_level: float = 0.90
    seed: int = 7

    def walk_forward(self) -> WalkForward:
        """The splitter this config describes."""
        return WalkForward(
            n_folds=self.n_folds,
            window=self.window,  # type: ignore[arg-type]
            min_train_fraction=self.min_train_fraction,
            train_bars=self.train_bars,
            embargo_bars=self.horizon if self.embargo_bars is None else self.embargo_bars,
        )


@dataclass
class SymbolEvaluation:
    """Everything measured for one symbol."""

    symbol: str
    periods_per_year: float
    predictions: pd.DataFrame  # one row per out-of-sample bar (see _predict_folds)
    positions: pd.DataFrame  # one column per strategy, indexed like predictions
    table: pd.DataFrame  # one row per strategy: classification + trading metrics
    folds: pd.DataFrame  # one row per fold
    calibration: pd.DataFrame
    confusion: pd.DataFrame  # rows: realised label, columns: ensemble direction
    accuracy_gain: BootstrapCI
    false_positive_entries: dict[str, Any]
    regimes: pd.DataFrame = field(default_factory=pd.DataFrame)  # see backtest.regimes


@dataclass
class EvaluationResult:
    """The evaluation over all symbols."""

    config: EvaluationConfig
    symbols: dict[str, SymbolEvaluation] = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        """All symbols' comparison tables stacked (``symbol`` and ``strategy`` columns)."""
        return pd.concat(
            [s.table.assign(symbol=name) for name, s in self.symbols.items()], ignore_index=True
        )[["symbol", *next(iter(self.symbols.values())).table.columns]]

    def predictions(self) -> pd.DataFrame:
        """All out-of-sample predictions (symbol, timestamp, probabilities, …)."""
        return pd.concat([s.predictions for s in self.symbols.values()], ignore_index=True)

    def headline(self) -> pd.DataFrame:
        """Per symbol: accuracy gain over the best single model and the gate's false-positive
        figures, with their CIs."""
        rows = []
        for name, s in self.symbols.items():
            fp = s.false_positive_entries
            rows.append(
                {
                    "symbol": name,
                    "accuracy_gain": s.accuracy_gain.estimate,
                    "accuracy_gain_low": s.accuracy_gain.low,
                    "accuracy_gain_high": s.accuracy_gain.high,
                    "fp_entries_gated": fp["gated"],
                    "fp_entries_ungated": fp["ungated"],
                    "fp_reduction": fp["reduction"].estimate,
                    "fp_reduction_low": fp["reduction"].low,
                    "fp_reduction_high": fp["reduction"].high,
                    "fp_rate_gated": fp["rate_gated"],
                    "fp_rate_ungated": fp["rate_ungated"],
                    "fp_rate_change": fp["rate_change"].estimate,
                    "fp_rate_change_low": fp["rate_change"].low,
                    "fp_rate_change_high": fp["rate_change"].high,
                    "block": s.accuracy_gain.block,
                }
            )
        return pd.DataFrame(rows)


# --- the decision rules, bar by bar ---------------------------------------------------------


#: The per-bar columns :func:`run_decisions` reads.
DECISION_COLUMNS: tuple[str, ...] = (
    "direction",
    "probability",
    "p_up",
    "p_down",
    "confidence",
    "agreement",
    "q05",
    "q50",
    "q95",
    "close",
    "next_return",
    "volatility",
    "trend",
)


def run_decisions(
    frame: pd.DataFrame,
    config: Any,
    *,
    symbol: str,
    volatility_ref: float | np.ndarray = 0.0,
    rules: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Positions from :func:`augur.decision.decide` applied bar by bar (with ``rules``, a
    compiled ``augur.rules`` rule set, when given).

    ``frame`` has, per bar in time order: ``direction``, ``probability``, ``p_up``,
    ``p_down``, ``confidence``, ``agreement``, ``q05``, ``q50``, ``q95``, ``close``,
    ``next_return`` (close-to-next-close simple return), ``volatility`` and ``trend``;
    ``regime`` and ``timestamp`` when it has them (the rules' KPIs read them).
    The account (equity, peak, loss streak) starts at 1 and follows the position's
    net-of-cost-free returns (costs are applied by the metrics). Returns the signed
    position held after each bar's decision and an entry flag per bar (+1/-1 entered,
    0 none).
    """
    from augur.decision import MarketContext, PositionContext, RiskState, Signal, decide

    n = len(frame)
    cols = {c: frame[c].to_numpy(dtype=float) for c in DECISION_COLUMNS}
    vol_ref = np.broadcast_to(np.asarray(volatility_ref, dtype=float), (n,))
    regimes = (
        np.nan_to_num(frame["regime"].to_numpy(dtype=float), nan=-1).astype(np.int64)
        if "regime" in frame
        else np.full(n, -1)
    )
    times = list(frame["timestamp"]) if "timestamp" in frame else [None] * n
    positions = np.zeros(n)
    entries = np.zeros(n, dtype=np.int64)
    side, size, entry_price, held = 0, 0.0, 0.0, 0
    equity, peak, losses, since_loss = 1.0, 1.0, 0, 10**9
    for t in range(n):
        signal = Signal(
            direction=int(cols["direction"][t]),
            probability=cols["probability"][t],
            p_up=cols["p_up"][t],
            p_down=cols["p_down"][t],
            confidence=cols["confidence"][t],
            agreement=cols["agreement"][t],
            q05=cols["q05"][t],
            q50=cols["q50"][t],
            q95=cols["q95"][t],
        )
        position = PositionContext(
            side={1: "long", -1: "short", 0: "flat"}[side],
            size=size,
            entry_price=entry_price,
            bars_held=held,
        )
        risk = RiskState(
            equity=equity,
            peak_equity=peak,
            consecutive_losses=losses,
            bars_since_last_loss=since_loss,
            open_exposure={symbol: side * size} if side else {},
        )
        market = MarketContext(
            symbol=symbol,
            price=cols["close"][t],
            volatility=cols["volatility"][t],
            volatility_ref=float(vol_ref[t]),
            trend_strength=cols["trend"][t],
            regime=int(regimes[t]),
            timestamp=times[t],
        )
        decision = decide(signal, position, risk, market, config, rules=rules)
        action = decision.action.value
        since_loss += 1
        if action == "exit_position":
            trade = side * (cols["close"][t] / entry_price - 1.0)
            if trade < 0:
                losses, since_loss = losses + 1, 0
            else:
                losses = 0
            side, size, entry_price, held = 0, 0.0, 0.0, 0
        elif action in ("enter_long", "enter_short"):
            side = 1 if action == "enter_long" else -1
            size, entry_price, held = float(decision.size), cols["close"][t], 0
            entries[t] = side
        positions[t] = side * size
        if side:
            held += 1
        step = positions[t] * cols["next_return"][t]
        equity *= 1.0 + step
        peak = max(peak, equity)
    return positions, entries


# --- fitting and predicting each fold ------------------------------------------------------


def _single_model_signal(
    proba: np.ndarray, ensemble: Any, vol_ratio: np.ndarray, trend: np.ndarray | None
) -> dict[str, np.ndarray]:
    """Direction, probability and confidence of one member, by the ensemble's own rules."""
    # The ensemble's direction/margin rules (ties go to flat), reused so both agree exactly.
    from augur.models import direction_of, margin_of

    direction = direction_of(proba)
    probability = np.take_along_axis(proba, (direction + 1)[:, None], axis=1)[:, 0]
    agreement = np.ones(len(proba))  # a one-member ensemble agrees with itself
    confidence = ensemble.confidence(margin_of(proba, direction), agreement, vol_ratio, trend)
    return {
        "direction": direction,
        "probability": probability,
        "agreement": agreement,
        "confidence": confidence,
    }


def _best_member(ensemble: Any) -> str:
    """The member with the best accuracy on the ensemble's validation tail (train data only)."""
    from augur.models import MEMBERS

    scores = {m: ensemble.metrics.get(m, {}).get("accuracy", float("nan")) for m in MEMBERS}
    valid = {m: s for m, s in scores.items() if np.isfinite(s)}
    if not valid:
        return MEMBERS[0]
    return max(valid, key=lambda m: valid[m])


def _rewalk_columns(
    part: pd.DataFrame, ensemble: Any, vol_ratio: np.ndarray | None, *, trend_known: bool
) -> None:
    """What the Monte Carlo needs to re-walk this fold's member weights along its paths
    (:class:`augur.backtest.simulation.MemberOutcomes`): the confidence's inputs and
    weights, the weight rule and the scores the fold's walk started from."""
    from augur.models import MEMBERS

    dw, p = ensemble.dynamic_weights, ensemble.params  # predict_walk starts from dw
    part["volatility_ratio"] = 1.0 if vol_ratio is None else vol_ratio  # 1: no penalty
    part["confidence_margin_weight"] = p.confidence_margin_weight
    part["confidence_agreement_weight"] = p.confidence_agreement_weight
    # an unknown trend drops its term (the same as weighing it 0)
    part["confidence_trend_weight"] = p.confidence_trend_weight if trend_known else 0.0
    part["volatility_penalty"] = p.volatility_penalty
    part["weight_decay"] = dw.decay
    part["weight_floor"] = dw.floor
    part["weight_max_step"] = 0.0 if dw.max_step is None else dw.max_step  # 0: unbounded
    part["weights_frozen"] = float(dw.frozen)
    for i, m in enumerate(MEMBERS):
        part[f"weight_score_{m}"] = float(dw.perf[i])


def _predict_folds(
    frame: pd.DataFrame,
    feature_names: Sequence[str],
    config: EvaluationConfig,
    params: Any,
    progress: Callable[[str], None],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit per fold on train, predict test; returns (OOS predictions, per-fold rows)."""
    from augur.models import MEMBERS, Ensemble

    folds = config.walk_forward().split_frame(frame)
    X = frame[list(feature_names)].to_numpy(dtype=float)
    y = frame["label"].to_numpy(dtype=np.int64)
    r = frame["forward_return"].to_numpy(dtype=float)
    from augur.models import confidence_features

    vol_col, trend_col = confidence_features(feature_names)
    vol = frame[vol_col].to_numpy(dtype=float) if vol_col else np.zeros(len(frame))
    trend = frame[trend_col].to_numpy(dtype=float) if trend_col else np.zeros(len(frame))
    # when each bar is decided, and when its label (the outcome) becomes known
    times = pd.to_datetime(frame["timestamp"], utc=True).to_numpy(dtype="datetime64[ns]")
    label_times = pd.to_datetime(frame["label_time"], utc=True).to_numpy(dtype="datetime64[ns]")
    parts, fold_rows = [], []
    for fold in folds:
        progress(f"fold {fold.index + 1}/{len(folds)}")
        tr, te = fold.train, fold.test
        vol_ref = float(np.median(vol[tr])) if vol_col else None
        ensemble = Ensemble(params).fit(
            X[tr], y[tr], r[tr], list(feature_names), purge=config.horizon, volatility_ref=vol_ref
        )
        vol_ratio = vol[te] / vol_ref if vol_ref else None
        pred = ensemble.predict_walk(
            X[te],
            y[te],
            times[te],
            label_times[te],
            volatility_ratio=vol_ratio,
            trend_strength=trend[te] if trend_col else None,
        )
        best = _best_member(ensemble)
        best_proba = pred.per_model[list(MEMBERS).index(best)]
        single = _single_model_signal(
            best_proba,
            ensemble,
            vol_ratio if vol_ratio is not None else np.ones(len(te)),
            trend[te] if trend_col else None,
        )
        part = frame.iloc[te][
            ["symbol", "timestamp", "label_time", "label", "forward_return"]
        ].copy()
        part["fold"] = fold.index
        part["p_down"], part["p_flat"], part["p_up"] = pred.p_down, pred.p_flat, pred.p_up
        part["direction"] = pred.direction
        part["probability"] = pred.probability
        part["agreement"] = pred.agreement
        part["confidence"] = pred.confidence
        part["q05"], part["q50"], part["q95"] = pred.quantiles.T
        for i, m in enumerate(MEMBERS):
            part[f"p_up_{m}"] = pred.per_model[i][:, 2]
            part[f"p_down_{m}"] = pred.per_model[i][:, 0]
            part[f"p_flat_{m}"] = pred.per_model[i][:, 1]
        _rewalk_columns(part, ensemble, vol_ratio, trend_known=trend_col is not None)
        part["best_model"] = best
        part["best_p_down"], part["best_p_flat"], part["best_p_up"] = best_proba.T
        for k, v in single.items():
            part[f"best_{k}"] = v
        part["volatility"] = vol[te]
        part["volatility_ref"] = vol_ref or 0.0
        part["trend"] = trend[te]
        if "regime" in frame.columns:
            part["regime"] = frame["regime"].to_numpy()[te]
        parts.append(part)
        fold_rows.append(
            {
                "fold": fold.index,
                "test_start": fold.test_start,
                "test_end": fold.test_end,
                "train_rows": len(tr),
                "test_rows": len(te),
                "best_model": best,
                "best_model_validation_accuracy": ensemble.metrics.get(best, {}).get("accuracy"),
                "ensemble_validation_accuracy": ensemble.metrics.get("ensemble", {}).get(
                    "accuracy"
                ),
                "fit_seconds": ensemble.training_seconds,
            }
        )
    return pd.concat(parts, ignore_index=True), pd.DataFrame(fold_rows)


# --- one symbol -----------------------------------------------------------------------------


def evaluate_symbol(
    bars: pd.DataFrame,
    symbol: str,
    *,
    spec: Any = None,
    params: Any = None,
    decision_config: Any = None,
    config: EvaluationConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> SymbolEvaluation:
    """Walk-forward evaluation of one symbol's bars (see the module doc)."""
    from augur.decision import DecisionConfig
    from augur.features import default_spec, training_frame

    config = config or EvaluationConfig()
    spec = spec or default_spec()
    decision_config = decision_config or DecisionConfig()
    say = progress or (lambda _m: None)
    one = bars.loc[bars["symbol"] == symbol]
    if one.empty:
        raise ValueError(
            f"no bars for symbol {symbol!r}: import or sample it first (`augur data sample`)"
        )
    frame = training_frame(one, spec, config.horizon, config.dead_zone)
    if len(frame) < 200:
        raise ValueError(
            f"{symbol}: only {len(frame)} labelled rows after the feature warm-up; "
            "a walk-forward needs at least 200"
        )
    from threadpoolctl import threadpool_limits

    # One BLAS thread: the members' own n_jobs use the cores; a multi-threaded BLAS on top
    # (logistic regression, SVM) oversubscribes a small machine and runs ~5x slower.
    with threadpool_limits(limits=1, user_api="blas"):
        preds, folds = _predict_folds(frame, spec.model_names, config, params, say)

    # Prices and next-bar returns from the bars themselves (the label uses h bars ahead).
    px = one.sort_values("timestamp")[["timestamp", "close"]].reset_index(drop=True)
    px["next_return"] = px["close"].shift(-1) / px["close"] - 1.0
    preds = preds.merge(px, on="timestamp", how="left")
    preds["next_return"] = preds["next_return"].fillna(0.0)
    ppy = periods_per_year(one["timestamp"])

    positions, entries = _strategy_paths(preds, decision_config, symbol)
    table = _comparison_table(preds, positions, ppy, config)
    folds = _fold_table(folds, preds, positions, ppy, config)
    gain = _accuracy_gain(preds, config)
    fp = _false_positive_entries(preds, entries, config)
    regimes = (
        regime_table(
            preds, positions, entries["ensemble"], config.commission_bps, config.slippage_bps
        )
        if "regime" in preds.columns
        else pd.DataFrame()
    )
    hit = preds["direction"].to_numpy() == preds["label"].to_numpy()
    moved = preds["direction"].to_numpy() != 0
    calib = calibration_table(preds["probability"].to_numpy()[moved], hit[moved])
    confusion = pd.crosstab(
        preds["label"].rename("realised"), preds["direction"].rename("predicted")
    ).reindex(index=[-1, 0, 1], columns=[-1, 0, 1], fill_value=0)
    return SymbolEvaluation(
        symbol=symbol,
        periods_per_year=ppy,
        predictions=preds,
        positions=positions,
        table=table,
        folds=folds,
        calibration=calib,
        confusion=confusion,
        accuracy_gain=gain,
        false_positive_entries=fp,
        regimes=regimes,
    )


def _strategy_paths(
    preds: pd.DataFrame, decision_config: Any, symbol: str
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    ungated_config = dataclasses.replace(decision_config, confidence_threshold=0.0)
    vol_ref = preds["volatility_ref"].to_numpy()
    pos_g, ent_g = run_decisions(preds, decision_config, symbol=symbol, volatility_ref=vol_ref)
    pos_u, ent_u = run_decisions(preds, ungated_config, symbol=symbol, volatility_ref=vol_ref)
    single = preds.assign(
        direction=preds["best_direction"],
        probability=preds["best_probability"],
        p_up=preds["best_p_up"],
        p_down=preds["best_p_down"],
        confidence=preds["best_confidence"],
        agreement=preds["best_agreement"],
    )
    pos_b, ent_b = run_decisions(single, decision_config, symbol=symbol, volatility_ref=vol_ref)
    n = len(preds)
    positions = pd.DataFrame(
        {
            "ensemble": pos_g,
            "ensemble_ungated": pos_u,
            "best_single": pos_b,
            "always_flat": np.zeros(n),
            "buy_and_hold": np.ones(n),
        }
    )
    entries = {"ensemble": ent_g, "ensemble_ungated": ent_u, "best_single": ent_b}
    return positions, entries


def _class_row(preds: pd.DataFrame, strategy: str) -> dict[str, Any]:
    y = preds["label"].to_numpy()
    if strategy in ("ensemble", "ensemble_ungated"):
        # The gate changes trades, not the model's predictions: same classification figures.
        proba = preds[["p_down", "p_flat", "p_up"]].to_numpy()
        return classification_metrics(y, proba, preds["direction"].to_numpy()).as_dict()
    if strategy == "best_single":
        proba = preds[["best_p_down", "best_p_flat", "best_p_up"]].to_numpy()
        return classification_metrics(y, proba, preds["best_direction"].to_numpy()).as_dict()
    # Constant predictors: accuracy is the share of their constant class; no probabilities.
    constant = 0 if strategy == "always_flat" else 1
    return {"n": len(y), "accuracy": float(np.mean(y == constant))}


def _comparison_table(
    preds: pd.DataFrame, positions: pd.DataFrame, ppy: float, config: EvaluationConfig
) -> pd.DataFrame:
    rows = []
    asset = preds["next_return"].to_numpy()
    for strategy in STRATEGIES:
        row: dict[str, Any] = {"strategy": strategy}
        row.update(_class_row(preds, strategy))
        row.update(
            trading_metrics(
                positions[strategy].to_numpy(),
                asset,
                ppy,
                config.commission_bps,
                config.slippage_bps,
            ).as_dict()
        )
        rows.append(row)
    return pd.DataFrame(rows)


def _fold_table(
    folds: pd.DataFrame,
    preds: pd.DataFrame,
    positions: pd.DataFrame,
    ppy: float,
    config: EvaluationConfig,
) -> pd.DataFrame:
    out = []
    asset = preds["next_return"].to_numpy()
    for row in folds.to_dict("records"):
        m = (preds["fold"] == row["fold"]).to_numpy()
        y = preds["label"].to_numpy()[m]
        row["accuracy_ensemble"] = float(np.mean(preds["direction"].to_numpy()[m] == y))
        row["accuracy_best_single"] = float(np.mean(preds["best_direction"].to_numpy()[m] == y))
        for s in ("ensemble", "buy_and_hold"):
            tm = trading_metrics(
                positions[s].to_numpy()[m],
                asset[m],
                ppy,
                config.commission_bps,
                config.slippage_bps,
            )
            row[f"return_{s}"] = tm.total_return
            row[f"sharpe_{s}"] = tm.sharpe
            if s == "ensemble":
                row["trades_ensemble"] = tm.n_trades
        out.append(row)
    return pd.DataFrame(out)


def _accuracy_gain(preds: pd.DataFrame, config: EvaluationConfig) -> BootstrapCI:
    y = preds["label"].to_numpy()
    diff = (preds["direction"].to_numpy() == y).astype(float) - (
        preds["best_direction"].to_numpy() == y
    ).astype(float)
    return block_bootstrap_ci(
        lambda d: d.mean(axis=1),
        diff,
        level=config.ci_level,
        reps=config.bootstrap_reps,
        min_block=config.horizon,
        seed=config.seed,
    )


def _false_positive_entries(
    preds: pd.DataFrame, entries: dict[str, np.ndarray], config: EvaluationConfig
) -> dict[str, Any]:
    """Entries whose realised label was not the entered direction, gated vs ungated."""
    y = preds["label"].to_numpy()
    eg, eu = entries["ensemble"], entries["ensemble_ungated"]
    fg = ((eg != 0) & (eg != y)).astype(float)
    fu = ((eu != 0) & (eu != y)).astype(float)
    ng, nu = (eg != 0).astype(float), (eu != 0).astype(float)
    kw: dict[str, Any] = {
        "level": config.ci_level,
        "reps": config.bootstrap_reps,
        "min_block": config.horizon,
        "seed": config.seed,
    }
    reduction = block_bootstrap_ci(lambda a, b: a.sum(axis=1) - b.sum(axis=1), fu, fg, **kw)

    def rate_change(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return a.sum(axis=1) / b.sum(axis=1) - c.sum(axis=1) / d.sum(axis=1)

    change = block_bootstrap_ci(rate_change, fg, ng, fu, nu, **kw)
    return {
        "gated": int(fg.sum()),
        "ungated": int(fu.sum()),
        "entries_gated": int(ng.sum()),
        "entries_ungated": int(nu.sum()),
        "rate_gated": float(fg.sum() / ng.sum()) if ng.sum() else float("nan"),
        "rate_ungated": float(fu.sum() / nu.sum()) if nu.sum() else float("nan"),
        "reduction": reduction,  # ungated minus gated false-positive entries (count)
        "rate_change": change,  # gated minus ungated false-positive rate (negative = better)
    }


# --- all symbols ----------------------------------------------------------------------------


def evaluate(
    bars: pd.DataFrame,
    symbols: Sequence[str] | None = None,
    *,
    spec: Any = None,
    params: Any = None,
    decision_config: Any = None,
    config: EvaluationConfig | None = None,
    progress: Callable[[str, str], None] | None = None,
) -> EvaluationResult:
    """Evaluate each symbol with its own models (per-symbol, not pooled).

    Per-symbol because the sample mixes hourly FX with daily equities: the label horizon
    is counted in bars, so a pooled model would mix 5-hour and 5-day labels, and the
    volatility regimes differ by an order of magnitude. ``progress(symbol, message)`` is
    called as folds complete.
    """
    config = config or EvaluationConfig()
    symbols = list(symbols) if symbols else sorted(bars["symbol"].unique())
    result = EvaluationResult(config=config)
    for sym in symbols:

        def say(msg: str, _sym: str = sym) -> None:
            if progress:
                progress(_sym, msg)

        result.symbols[sym] = evaluate_symbol(
            bars,
            sym,
            spec=spec,
            params=params,
            decision_config=decision_config,
            config=config,
            progress=say,
        )
    return result


#: Columns of ``oos_predictions.parquet`` (the tuning sweeps decision thresholds over it).
PREDICTION_COLUMNS: tuple[str, ...] = (
    "symbol",
    "timestamp",
    "label_time",
    "fold",
    "p_up",
    "p_down",
    "p_flat",
    "direction",
    "probability",
    "agreement",
    "confidence",
    "q05",
    "q50",
    "q95",
    "forward_return",
    "label",
    "close",
    "next_return",
    "volatility",
    "volatility_ref",
    "trend",
)


def save_outputs(result: EvaluationResult, reports_dir: Path) -> dict[str, Path]:
    """Write ``oos_predictions.parquet`` and ``oos_outcomes.parquet`` (atomically).

    The outcomes (the Monte Carlo's input, :class:`augur.backtest.simulation.OutOfSampleOutcomes`)
    are all symbols' out-of-sample bars, grouped by symbol and in time order within each,
    with the member columns the Monte Carlo re-walks the weights from.
    """
    from augur.backtest.simulation import OutOfSampleOutcomes

    reports_dir = Path(reports_dir)
    reports_dir.mkdir(parents=True, exist_ok=True)
    preds = result.predictions()[list(PREDICTION_COLUMNS)]
    pred_path = reports_dir / "oos_predictions.parquet"
    tmp = pred_path.with_name(f".{pred_path.name}.{os.getpid()}.tmp")
    preds.to_parquet(tmp, index=False)
    os.replace(tmp, pred_path)
    # from every prediction column: the member columns re-walk the weights
    outcomes = OutOfSampleOutcomes.from_predictions(result.predictions())
    out_path = outcomes.save(reports_dir / OutOfSampleOutcomes.FILE_NAME)
    return {"predictions": pred_path, "outcomes": out_path}
