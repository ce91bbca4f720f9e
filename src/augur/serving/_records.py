"""What a decision becomes: the prediction log's row (primary or shadow alike) and the
body ``POST /decide`` answers with."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Protocol

import numpy as np

from augur.decision import Decision
from augur.monitoring import PredictionRecord
from augur.serving._ports import PredictionSink
from augur.serving._routing import Route
from augur.serving._schemas import DecisionOut
from augur.serving._scoring import Scored

log = logging.getLogger(__name__)


class Scoreable(Protocol):
    """What a logged request carries (a job on the request path, or a shadow task)."""

    @property
    def symbol(self) -> str: ...
    @property
    def x(self) -> np.ndarray: ...
    @property
    def ts(self) -> datetime | None: ...
    @property
    def routing_key(self) -> str: ...
    @property
    def request_id(self) -> str: ...
    @property
    def digest(self) -> str: ...


def record_prediction(
    sink: PredictionSink,
    route: Route,
    item: Scoreable,
    decision: Decision,
    scored: Scored,
    latency_ms: float,
    now: datetime,
) -> None:
    """Write the row; a log that fails is reported and never fails the decision."""
    signal = scored.signal
    try:
        sink.log_prediction(
            PredictionRecord(
                request_id=item.request_id,
                symbol=item.symbol,
                model_version=route.model_tag,
                role=route.role,
                action=decision.action.value,
                p_up=signal.p_up,
                p_down=signal.p_down,
                p_flat=scored.p_flat,
                confidence=signal.confidence,
                agreement=signal.agreement,
                size=decision.size,
                direction=decision.direction,
                latency_ms=latency_ms,
                model_tag=route.model_tag,
                features_digest=item.digest,
                feature_timestamp=item.ts,
                routing_key=item.routing_key,
                ts=now,
            )
        )
    except Exception:
        log.exception("request %s: prediction not logged", item.request_id)


def answer_of(
    symbol: str, decision: Decision | None, request_id: str, ts: datetime | None
) -> DecisionOut:
    """The decision as the HTTP answer: the Decision contract plus the symbol and the
    event time of the features it was made on."""
    assert decision is not None, "every job is decided before it is answered"
    # Validated from plain data in one compiled pass (reasons included).
    return DecisionOut.model_validate(
        {
            "symbol": symbol,
            "action": decision.action.value,
            "size": decision.size,
            "direction": decision.direction,
            "probability": decision.probability,
            "confidence": decision.confidence,
            "agreement": decision.agreement,
            "reasons": [{"code": r.code, "text": r.text} for r in decision.reasons],
            "model_version": decision.model_version,
            "request_id": request_id,
            "feature_timestamp": ts,
            "rule_set": decision.rule_set or None,
        }
    )


__all__ = ["Scoreable", "answer_of", "record_prediction"]
