"""Train an ensemble on bars: training frame → purged held-out tail → fit → evaluate.

This is ``augur train``'s core (the CLI only parses and prints). The honest
walk-forward evaluation lives in :mod:`augur.backtest`; here one held-out tail gives
a quick out-of-sample check of the version about to be saved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from augur.models._confidence import confidence_features
from augur.models._ensemble import Ensemble
from augur.models._params import EnsembleParams


@dataclass
class TrainResult:
    """A fitted ensemble and its held-out figures."""

    ensemble: Ensemble
    holdout: dict[str, Any]
    n_train: int
    n_holdout: int
    context: dict[str, Any] = field(default_factory=dict)
    #: the training features (for the drift reference saved with the model)
    reference: pd.DataFrame | None = None


def train_on_bars(
    bars: pd.DataFrame,
    *,
    params: EnsembleParams | None = None,
    settings: Any = None,
    holdout_fraction: float = 0.2,
    progress: Callable[[str], None] | None = None,
) -> TrainResult:
    """Fit an ensemble on ``bars`` (the Bars contract; one or more symbols).

    Rows of all symbols are pooled in time order. The last ``holdout_fraction`` of
    timestamps is held out; training keeps only rows whose label was known before the
    held-out period starts (``label_time < start``: a purge, so no training label
    overlaps it). The held-out rows are then replayed through the ensemble as outcomes
    would arrive in serving (weights update after each), giving its figures and the
    weights the saved version starts with.
    """
    from augur.features import FeatureSpec, training_frame

    if settings is None:
        from augur.config import get_settings

        settings = get_settings()
    if not 0.0 <= holdout_fraction < 0.9:
        raise ValueError(f"holdout_fraction must be in [0, 0.9), got {holdout_fraction}")
    say = progress or (lambda _msg: None)
    spec = FeatureSpec.from_settings(settings)
    horizon, dead_zone = settings.label_horizon, settings.label_dead_zone
    say("computing features and labels")
    frame = training_frame(bars, spec, horizon, dead_zone)
    if frame.empty:
        raise ValueError(
            f"no training rows from {len(bars)} bars: each symbol needs more bars than the "
            f"features' warm-up plus the label horizon ({horizon})"
        )
    frame = frame.sort_values(["timestamp", "symbol"], kind="mergesort").reset_index(drop=True)
    names = list(spec.model_names)
    times = np.sort(frame["timestamp"].unique())
    if holdout_fraction > 0:
        start = times[min(int(len(times) * (1 - holdout_fraction)), len(times) - 1)]
        test_mask = (frame["timestamp"] >= start).to_numpy()
        train_mask = (frame["label_time"] < start).to_numpy()
    else:
        test_mask = np.zeros(len(frame), dtype=bool)
        train_mask = np.ones(len(frame), dtype=bool)
    train, test = frame.loc[train_mask], frame.loc[test_mask]
    vol_name, trend_name = confidence_features(names)
    volatility_ref = (
        float(train[vol_name].median()) if vol_name is not None and len(train) else None
    )
    symbols = sorted(frame["symbol"].astype(str).unique().tolist())
    context: dict[str, Any] = {
        "data_start": train["timestamp"].min() if len(train) else None,
        "data_end": train["timestamp"].max() if len(train) else None,
        "holdout_start": test["timestamp"].min() if len(test) else None,
        "holdout_end": test["timestamp"].max() if len(test) else None,
        "symbols": symbols,
        "label_horizon": horizon,
        "label_dead_zone": dead_zone,
        "n_train": len(train),
        "n_holdout": len(test),
        "volatility_feature": vol_name,
        "trend_feature": trend_name,
    }
    ensemble = Ensemble(params or EnsembleParams(seed=settings.seed))
    ensemble.fit(
        train[names].to_numpy(),
        train["label"].to_numpy(),
        train["forward_return"].to_numpy(),
        names,
        feature_spec_hash=spec.hash,
        purge=horizon * len(symbols),
        volatility_ref=volatility_ref,
        context=context,
        progress=say,
    )
    holdout: dict[str, Any] = {}
    if len(test):
        say(f"evaluating on the held-out {len(test)} rows")
        holdout = ensemble.evaluate(
            test[names].to_numpy(), test["label"].to_numpy(), test["forward_return"].to_numpy()
        )
        ensemble.metrics["holdout"] = holdout
    return TrainResult(ensemble, holdout, len(train), len(test), context, train[names])
