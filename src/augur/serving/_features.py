"""Adapter from the Feast online store (:class:`augur.features.store.OnlineFeatures`) to the
pipeline's :class:`~augur.serving._ports.FeatureReader`: same vectors, the service's
own error types (unknown symbol → 404, store unreachable → 503)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from augur.serving._errors import StoreUnavailableError

if TYPE_CHECKING:
    from augur.config import Settings


class OnlineFeatureReader:
    """Latest feature vectors per symbol, in spec order, from Feast (SQLite or Redis)."""

    def __init__(self, settings: Settings, online: Any = None) -> None:
        from augur.features.store import OnlineFeatures, OnlineStoreUnavailable, UnknownSymbolError

        if online is None:
            online = OnlineFeatures(
                settings, cache=settings.feature_cache, timeout=settings.feature_timeout_seconds
            )
        self._online = online
        # looked up once here, not per request (the store module imports Feast)
        self._unknown = UnknownSymbolError
        self._down = (OnlineStoreUnavailable, ConnectionError, TimeoutError)
        self.feature_names: list[str] = list(online.spec.names)

    @property
    def caching(self) -> bool:
        return bool(getattr(self._online, "caching", False))

    def cache_stats(self) -> tuple[bool, int, int]:
        """(caching now, hits, misses) of the online store's row cache."""
        stats = getattr(self._online, "cache_stats", None)
        return stats() if stats is not None else (False, 0, 0)

    def close(self) -> None:
        close = getattr(self._online, "close", None)
        if close is not None:
            close()

    def get(self, symbols: Sequence[str]) -> Mapping[str, tuple[np.ndarray, datetime | None]]:
        """Known symbols only (a missing key means unknown); StoreUnavailableError when down."""
        wanted = list(symbols)
        # Two rounds at most: the store names the unknown symbols, the rest are read again.
        for _ in range(2):
            if not wanted:
                return {}
            try:
                return self._online.get(wanted)
            except self._unknown as exc:
                unknown = set(exc.symbols)
                wanted = [s for s in wanted if s not in unknown]
            except self._down as exc:
                raise StoreUnavailableError(str(exc)) from None
        return {}


__all__ = ["OnlineFeatureReader"]
