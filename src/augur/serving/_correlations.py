"""Return correlations for the decision service, so that correlated symbols share one
exposure cap: the matrix the feature pipeline keeps in the online store
(:mod:`augur.features.correlations`), read when a worker starts and re-read every
``AUGUR_CORRELATION_REFRESH_SECONDS``.

A refresh that cannot reach the store keeps the matrix already read and logs a warning;
requests never wait on it. While the online store holds no matrix, the offline feature
table stands in where there is one (one machine); else every pair is uncorrelated.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from augur.features.correlations import RETURN_FEATURE, CorrelationMatrix

log = logging.getLogger(__name__)


class LiveCorrelations:
    """``among`` over the latest matrix ``read_online`` gave (``fallback`` while it gives
    None); :meth:`start` reads it and re-reads it every ``interval`` seconds."""

    def __init__(
        self,
        read_online: Callable[[], CorrelationMatrix | None],
        fallback: Callable[[], CorrelationMatrix] = CorrelationMatrix,
        interval: float = 30.0,
    ) -> None:
        self._read_online = read_online
        self._fallback = fallback
        self._interval = interval
        self.matrix = CorrelationMatrix()
        self._online = False  # the matrix came from the online store
        self._fallen_back = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> bool:
        """Read the online matrix now; False when the store could not be read."""
        try:
            matrix = self._read_online()
        except Exception as exc:
            log.warning(
                "correlations: the online store cannot be read (%s); keeping the %s matrix",
                exc,
                "online" if self._online else "offline" if self._fallen_back else "empty",
            )
            if not self._online:
                self._fall_back()
            return False
        if matrix is not None:
            if not self._online or matrix.as_of != self.matrix.as_of:
                log.info(
                    "return correlations of %d symbol pairs from the online store, as of %s",
                    len(matrix),
                    matrix.as_of,
                )
            self.matrix, self._online = matrix, True
        elif not self._online:
            self._fall_back()
        return True

    def _fall_back(self) -> None:
        if not self._fallen_back:  # the offline table is read once
            self._fallen_back = True
            self.matrix = self._fallback()

    def start(self) -> LiveCorrelations:
        self.refresh()
        self._thread = threading.Thread(target=self._run, name="correlations", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.refresh()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def among(self, symbol: str, others: Iterable[str]) -> dict[tuple[str, str], float]:
        """The correlations of ``symbol`` with each of ``others`` that has one."""
        return self.matrix.among(symbol, others)


__all__ = ["RETURN_FEATURE", "CorrelationMatrix", "LiveCorrelations"]
