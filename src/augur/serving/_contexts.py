"""What the decision engine is told about one request: whether its features may be used
at all, the market as the feature row describes it, and the caller's position and account.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

import numpy as np

from augur.decision import Action, Decision, MarketContext, PositionContext, Reason, RiskState
from augur.models import confidence_features
from augur.serving._schemas import AccountIn, PositionIn

# Frozen, never mutated by the decision engine: shared by every request without a
# position or an account.
FLAT_POSITION = PositionContext()
NO_ACCOUNT = RiskState()

# Where a bar's price is read from when the request gives none (the first present wins).
PRICE_FEATURES = ("close", "price")


def refusal(complete: bool, ts: datetime | None, now: datetime, max_age: float) -> Reason | None:
    """Why no model may look at a feature row (stale, from the future, or ``complete``
    false: missing values)."""
    if ts is None:
        return Reason("stale_features", "the online store has no event time for the features")
    age = (now - ts).total_seconds()
    if age > max_age:
        return Reason("stale_features", f"features are {age:.0f}s old, the limit is {max_age:.0f}s")
    if age < 0:
        return Reason(
            "features_after_as_of",
            f"features are from {ts.isoformat()}, after as_of {now.isoformat()}",
        )
    if not complete:
        return Reason("missing_features", "some features are missing (warm-up or gaps)")
    return None


def refused_decision(reason: Reason, model_tag: str, request_id: str) -> Decision:
    """``no_action`` for a request no model may score, with the refusal as its reason."""
    return Decision(
        action=Action.NO_ACTION,
        size=0.0,
        direction=0,
        probability=0.0,
        confidence=0.0,
        agreement=0.0,
        reasons=(reason,),
        model_version=model_tag,
        request_id=request_id,
    )


class MarketReader:
    """The market context of a feature row: its volatility and trend features (the ones
    the ensemble's confidence reads, one choice for training, tuning and serving), its
    price unless the request gives one, and the deciding version's volatility reference
    (so sizes scale by volatility as in the backtest)."""

    def __init__(self, feature_names: Sequence[str]) -> None:
        names = list(feature_names)
        self._vol, self._trend = (
            names.index(name) if name else None for name in confidence_features(names)
        )
        self._price = next((names.index(n) for n in PRICE_FEATURES if n in names), None)
        self._regime = names.index("regime") if "regime" in names else None

    def __call__(
        self,
        symbol: str,
        x: np.ndarray,
        ts: datetime | None,
        price: float | None,
        volatility_ref: float = 0.0,
    ) -> MarketContext:
        if price is None:
            price = float(x[self._price]) if self._price is not None else 0.0
        return MarketContext(
            symbol=symbol,
            price=price,
            timestamp=ts,
            volatility=float(x[self._vol]) if self._vol is not None else 0.0,
            volatility_ref=volatility_ref,
            trend_strength=float(x[self._trend]) if self._trend is not None else 0.0,
            regime=_regime(x[self._regime]) if self._regime is not None else -1,
        )


def _regime(value: float) -> int:
    return int(value) if math.isfinite(value) else -1


def position_context(
    position: PositionIn | None, now: datetime, bar_seconds: float
) -> PositionContext:
    """The caller's position; ``bars_held`` counts whole bars since it was opened."""
    if position is None:
        return FLAT_POSITION
    held = 0
    if position.opened_at is not None:
        held = max(0, math.floor((now - position.opened_at).total_seconds() / bar_seconds))
    return PositionContext(
        position.side, position.size, position.entry_price, position.opened_at, held
    )


def risk_state(account: AccountIn | None) -> RiskState:
    """The caller's account as the risk manager reads it (a fresh account when none)."""
    if account is None:
        return NO_ACCOUNT
    since_loss = account.bars_since_last_loss
    return RiskState(
        account.equity,
        account.peak_equity,
        account.consecutive_losses,
        # not sent: the engine's "long ago"
        NO_ACCOUNT.bars_since_last_loss if since_loss is None else since_loss,
        dict(account.open_exposure),
    )


__all__ = [
    "FLAT_POSITION",
    "NO_ACCOUNT",
    "PRICE_FEATURES",
    "MarketReader",
    "position_context",
    "refusal",
    "refused_decision",
    "risk_state",
]
