"""A mirrored request on its way to the shadow: everything scoring it needs, as bytes.

The shadow runs in another process (a child of the worker on one machine, its own
container in a cluster), so a task crosses a pipe or a socket: :meth:`ShadowTask.pack`
and :meth:`ShadowTask.unpack` are the wire format (a pickle; both ends run the same
code, and only the service's own processes write to the channel).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from augur.decision import MarketContext, PositionContext, RiskState
from augur.serving._routing import Route


@dataclass(frozen=True, slots=True)
class ShadowTask:
    """One request mirrored to the shadow version, with the primary's answer to compare."""

    route: Route
    symbol: str
    x: np.ndarray  # the feature row, in the service's feature order
    ts: datetime | None  # event time of the features
    market: MarketContext
    pos: PositionContext
    risk: RiskState
    routing_key: str
    request_id: str
    primary_action: str
    digest: str  # features_digest(x), logged with the shadow's row

    def pack(self) -> bytes:
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def unpack(cls, payload: bytes) -> ShadowTask:
        task = pickle.loads(payload)
        if not isinstance(task, cls):
            raise ValueError(f"not a shadow task: {type(task).__name__}")
        return task


__all__ = ["ShadowTask"]
