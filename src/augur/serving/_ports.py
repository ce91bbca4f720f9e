"""The ports of the request path: what :class:`~augur.serving.DecisionPipeline` needs from
the world, as typed protocols.

Each has a real adapter (Feast online store, prediction log, account store, shadow
process, Prometheus, the system clock) wired by :mod:`augur.serving._bootstrap`, and an in-memory one in
:mod:`augur.serving._memory` for unit tests and the benchmark's no-op server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from augur.monitoring import PredictionRecord
    from augur.serving._accounts import AccountState
    from augur.serving._shadow_codec import ShadowTask

# A feature row as the online store gives it: the vector in feature-name order and the
# event time of the bar it was computed from (None: the store has no time for it).
FeatureRow = tuple[np.ndarray, datetime | None]


class FeatureReader(Protocol):
    """Latest online features per symbol. A symbol missing from the answer is unknown;
    raises :class:`~augur.serving.StoreUnavailableError` when the store is down."""

    @property
    def feature_names(self) -> Sequence[str]: ...

    def get(self, symbols: Sequence[str]) -> Mapping[str, FeatureRow]: ...


class PredictionSink(Protocol):
    """Where scored requests and their realised outcomes are written."""

    def log_prediction(self, record: PredictionRecord) -> bool: ...

    def log_outcome(self, request_id: str, realized_return: float, caller: str = "") -> bool: ...


class AccountStore(Protocol):
    """The accounts the service keeps (:mod:`augur.serving._accounts`), shared by every
    worker and replica. Each call is one atomic step on the store; a store that cannot be
    reached raises :class:`~augur.serving._errors.AccountStoreUnavailableError`."""

    def get(self, account_id: str) -> AccountState:
        """The account now (a fresh one when it was never seen)."""
        ...

    def open(self, account_id: str, request_id: str, symbol: str, size: float) -> None:
        """Record an entry: ``size`` signed (negative is short), fraction of equity."""
        ...

    def settle(
        self, account_id: str, request_id: str, realized_return: float, at: datetime
    ) -> AccountState | None:
        """Realise the open position of ``request_id``: the account after, or None when
        it has no position open under that id (nothing changes)."""
        ...


class Correlations(Protocol):
    """Return correlations between symbols (:mod:`augur.serving._correlations`)."""

    def among(self, symbol: str, others: Iterable[str]) -> dict[tuple[str, str], float]:
        """``symbol``'s correlation with each of ``others`` that has one."""
        ...


class ShadowSink(Protocol):
    """Takes mirrored requests to score off the request path. ``offer`` never blocks:
    False means there was no room and the sink has counted the drop."""

    def offer(self, task: ShadowTask) -> bool: ...


class DriftObserver(Protocol):
    """Receives each served feature row once per bar, per model version."""

    def observe(self, model_tag: str, x: np.ndarray) -> None: ...


class Metrics(Protocol):
    """What the request path counts (Prometheus in the service)."""

    def decided(self, action: str, version: str, role: str, n: int = 1) -> None: ...

    def shadow_compared(self, version: str, agreed: bool) -> None: ...

    def outcome_posted(self, matched: bool) -> None: ...

    def outcome_realised(
        self, version: str, role: str, direction: int, realized_return: float
    ) -> None: ...

    def store_failed(self) -> None: ...

    def request_served(self, route: str, version: str, status: int, seconds: float) -> None: ...


# The time decisions are made at (staleness checks, bars held, log rows).
Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


__all__ = [
    "AccountStore",
    "Clock",
    "Correlations",
    "DriftObserver",
    "FeatureReader",
    "FeatureRow",
    "Metrics",
    "PredictionSink",
    "ShadowSink",
    "system_clock",
]
