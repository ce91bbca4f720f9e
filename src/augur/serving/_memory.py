"""In-memory adapters for the request path's ports: the pipeline under unit test, and the
benchmark's no-op server. Each behaves as its real counterpart does at the port (unknown
symbols missing from a read, a store that is down raises, outcomes match only logged ids,
a full shadow drops)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from augur.serving._accounts import AccountState, settle_state
from augur.serving._errors import StoreUnavailableError
from augur.serving._ports import FeatureRow


class MemoryFeatures:
    """Feature rows by symbol; ``down = True`` makes every read fail as an unreachable store."""

    def __init__(self, feature_names: Sequence[str], rows: Mapping[str, FeatureRow]) -> None:
        self.feature_names = list(feature_names)
        self.rows = dict(rows)
        self.down = False
        self.reads = 0

    def get(self, symbols: Sequence[str]) -> dict[str, FeatureRow]:
        self.reads += 1
        if self.down:
            raise StoreUnavailableError("the in-memory store is down")
        return {s: self.rows[s] for s in symbols if s in self.rows}


class MemoryPredictionLog:
    """Predictions and outcomes in lists."""

    def __init__(self) -> None:
        self.predictions: list[Any] = []  # PredictionRecord
        self.outcomes: list[tuple[str, float, str]] = []

    def log_prediction(self, record: Any) -> bool:
        self.predictions.append(record)
        return True

    def log_outcome(self, request_id: str, realized_return: float, caller: str = "") -> bool:
        if not any(r.request_id == request_id for r in self.predictions):
            return False
        self.outcomes.append((request_id, realized_return, caller))
        return True

    def outcome_known(self, request_id: str) -> bool:
        return any(o[0] == request_id for o in self.outcomes)

    def logged_calls(self, request_id: str) -> list[tuple[str, str, int]]:
        """(model version, role, direction) of each logged prediction of ``request_id``."""
        return [
            (r.model_version, r.role, int(r.direction))
            for r in self.predictions
            if r.request_id == request_id
        ]

    def close(self) -> None:
        pass


class MemoryAccounts:
    """Accounts in a dict, each update under one lock (the same accounting as the real
    stores: :func:`~augur.serving._accounts.settle_state`)."""

    def __init__(self) -> None:
        self.accounts: dict[str, AccountState] = {}
        self._lock = threading.Lock()

    def get(self, account_id: str) -> AccountState:
        with self._lock:
            return self.accounts.get(account_id, AccountState())

    def open(self, account_id: str, request_id: str, symbol: str, size: float) -> None:
        with self._lock:
            state = self.accounts.get(account_id, AccountState())
            if request_id not in state.positions:
                self.accounts[account_id] = state.opened(request_id, symbol, size)

    def settle(
        self, account_id: str, request_id: str, realized_return: float, at: datetime
    ) -> AccountState | None:
        with self._lock:
            state = self.accounts.get(account_id, AccountState())
            after = settle_state(state, request_id, realized_return, at)
            if after is not None:
                self.accounts[account_id] = after
            return after

    def close(self) -> None:
        pass


class MemoryShadow:
    """Mirrored tasks in a list of at most ``capacity``; the rest are dropped and counted."""

    def __init__(self, capacity: int = 1024) -> None:
        self.capacity = capacity
        self.tasks: list[Any] = []  # ShadowTask
        self.dropped = 0

    def offer(self, task: Any) -> bool:
        if len(self.tasks) >= self.capacity:
            self.dropped += 1
            return False
        self.tasks.append(task)
        return True

    def stop(self) -> None:
        pass


class MemoryMetrics:
    """Every count the request path makes, in one :class:`~collections.Counter`."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[Any, ...]] = Counter()

    def decided(self, action: str, version: str, role: str, n: int = 1) -> None:
        self.counts[("decided", action, version, role)] += n

    def shadow_compared(self, version: str, agreed: bool) -> None:
        self.counts[("shadow_compared", version, agreed)] += 1

    def outcome_posted(self, matched: bool) -> None:
        self.counts[("outcome", matched)] += 1

    def outcome_realised(
        self, version: str, role: str, direction: int, realized_return: float
    ) -> None:
        self.counts[("outcome_realised", version, role, direction, realized_return)] += 1

    def store_failed(self) -> None:
        self.counts[("store_failed",)] += 1

    def request_served(self, route: str, version: str, status: int, seconds: float) -> None:
        self.counts[("request", route, status)] += 1


class FixedClock:
    """A clock that moves only when told to."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class MemoryDrift:
    """The rows drift monitoring was shown, by model version."""

    def __init__(self) -> None:
        self.rows: dict[str, list[np.ndarray]] = {}

    def observe(self, model_tag: str, x: np.ndarray) -> None:
        self.rows.setdefault(model_tag, []).append(x)


__all__ = [
    "FixedClock",
    "MemoryAccounts",
    "MemoryDrift",
    "MemoryFeatures",
    "MemoryMetrics",
    "MemoryPredictionLog",
    "MemoryShadow",
]
