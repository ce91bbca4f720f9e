"""Parts for the serving unit tests: an in-memory feature table and a small linear model.

The integration tests (tests/integration/test_service_*.py) use the real online store
(Redis) and a trained ensemble; here the pipeline's own logic is under test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from augur.decision import Signal
from augur.serving._memory import MemoryFeatures

NAMES = ["ret_mean_20", "vol_20", "eff_ratio_20", "mom_20"]
NOW = datetime(2024, 1, 2, 12, tzinfo=UTC)


class SampleFeatures(MemoryFeatures):
    """Four symbols: two fresh rows, a stale one and one with a missing value."""

    def __init__(self) -> None:
        super().__init__(
            NAMES,
            {
                "AAA": (np.array([0.002, 0.01, 0.6, 0.03]), NOW - timedelta(minutes=30)),
                "BBB": (np.array([-0.003, 0.02, 0.4, -0.05]), NOW - timedelta(minutes=30)),
                "OLD": (np.array([0.001, 0.01, 0.5, 0.01]), NOW - timedelta(days=2)),
                "NAN": (np.array([np.nan, 0.01, 0.5, 0.01]), NOW - timedelta(minutes=5)),
            },
        )


@dataclass
class Output:
    p_up: float
    p_down: float
    p_flat: float
    direction: int
    probability: float
    agreement: float
    confidence: float

    def to_signal(self, model_version: str = "") -> Signal:
        return Signal(
            direction=self.direction,
            probability=self.probability,
            p_up=self.p_up,
            p_down=self.p_down,
            confidence=self.confidence,
            agreement=self.agreement,
            q05=-0.02,
            q50=0.001,
            q95=0.03,
            model_version=model_version,
        )


class LinearModel:
    """A logistic model on a weighted feature sum (``scale`` makes versions differ)."""

    def __init__(self, scale: float = 1.0, names: Sequence[str] = tuple(NAMES)) -> None:
        self.feature_names = tuple(names)
        self.scale = scale
        self.calls = 0

    def predict_one(self, x, *, volatility=None, trend_strength=None, explain=True) -> Output:
        self.calls += 1
        z = self.scale * (300 * x[0] + 20 * x[-1])
        p_up = 1 / (1 + math.exp(-z))
        direction = 1 if p_up >= 0.5 else -1
        prob = max(p_up, 1 - p_up)
        return Output(p_up, 1 - p_up, 0.0, direction, prob, 1.0, prob)


@dataclass
class BatchPrediction:
    proba: np.ndarray
    quantiles: np.ndarray
    direction: np.ndarray
    probability: np.ndarray
    confidence: np.ndarray
    agreement: np.ndarray


def _predict(
    self: LinearModel, X, *, volatility_ratio=None, trend_strength=None
) -> BatchPrediction:
    """Batch form of ``predict_one`` (same numbers row by row)."""
    self.batch_calls += 1
    outs = [self.predict_one(row) for row in np.asarray(X)]
    self.calls -= len(outs)
    return BatchPrediction(
        proba=np.array([[o.p_down, o.p_flat, o.p_up] for o in outs]),
        quantiles=np.tile([-0.02, 0.001, 0.03], (len(outs), 1)),
        direction=np.array([o.direction for o in outs]),
        probability=np.array([o.probability for o in outs]),
        confidence=np.array([o.confidence for o in outs]),
        agreement=np.array([o.agreement for o in outs]),
    )


LinearModel.predict = _predict  # type: ignore[attr-defined]
LinearModel.batch_calls = 0  # type: ignore[attr-defined]
LinearModel.volatility_ref = 0.01  # type: ignore[attr-defined]


@pytest.fixture
def memory_features() -> SampleFeatures:
    return SampleFeatures()


@pytest.fixture
def models() -> dict[str, LinearModel]:
    return {"m:1": LinearModel(1.0), "m:2": LinearModel(-1.0), "m:3": LinearModel(0.5)}
