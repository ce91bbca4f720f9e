"""Drift monitoring in the service: a window of recently served feature rows per model
version, the drift statistics (:func:`augur.monitoring.drift.detect_drift`) recomputed
off the request path, the Prometheus gauges (``augur_feature_drift_psi``,
``augur_feature_drift_ks_pvalue``, ``augur_feature_drift_mw_pvalue``,
``augur_model_drift``) and the statistics stored in the prediction log.
:meth:`DriftMonitor.observe` only copies a row into the ring buffer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from augur.monitoring.drift import ALPHA, MIN_ROWS, PSI_THRESHOLD, DriftResult, detect_drift

if TYPE_CHECKING:
    from augur.config import Settings
    from augur.monitoring.log import PredictionLog

log = logging.getLogger(__name__)


class FeatureWindow:
    """A bounded ring buffer of the most recent feature rows of one model version."""

    def __init__(self, feature_names: Sequence[str], capacity: int) -> None:
        if capacity < 1:
            raise ValueError("FeatureWindow capacity must be >= 1")
        self.feature_names = list(feature_names)
        self._index = {n: i for i, n in enumerate(self.feature_names)}
        self._buf = np.full((capacity, len(self.feature_names)), np.nan)
        self._next = 0
        self._size = 0

    def append(self, row: Mapping[str, float] | Sequence[float] | np.ndarray) -> None:
        """Add one row (a mapping by feature name, or values in feature order)."""
        slot = self._buf[self._next]
        if isinstance(row, Mapping):
            slot.fill(np.nan)
            for name, value in row.items():
                i = self._index.get(name)
                if i is not None:
                    slot[i] = value
        else:
            values = np.asarray(row, dtype="float64").ravel()
            if values.size != slot.size:
                raise ValueError(
                    f"feature row has {values.size} values, expected {slot.size} "
                    f"({self.feature_names})"
                )
            slot[:] = values
        self._next = (self._next + 1) % self._buf.shape[0]
        self._size = min(self._size + 1, self._buf.shape[0])

    def __len__(self) -> int:
        return self._size

    def frame(self) -> pd.DataFrame:
        """The window's rows, oldest first."""
        if self._size < self._buf.shape[0]:
            data = self._buf[: self._size]
        else:
            data = np.roll(self._buf, -self._next, axis=0)
        return pd.DataFrame(data.copy(), columns=self.feature_names)


class DriftGauges:
    """The Prometheus drift gauges. ``registry`` None uses prometheus_client's default.

    prometheus_client is imported here, not at module import, so a BentoML worker that
    sets ``PROMETHEUS_MULTIPROC_DIR`` at start-up gets multiprocess-aware gauges.
    """

    _default: DriftGauges | None = None
    _default_lock = threading.Lock()

    def __init__(self, registry: Any = None) -> None:
        from prometheus_client import REGISTRY, Gauge

        registry = REGISTRY if registry is None else registry
        labels = ["model_version", "feature"]
        # mostrecent: with several worker processes, show the latest computed value.
        self.psi = Gauge(
            "augur_feature_drift_psi",
            "Population stability index of a served feature vs the model's training reference",
            labels,
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.ks_pvalue = Gauge(
            "augur_feature_drift_ks_pvalue",
            "Kolmogorov-Smirnov p-value, served feature vs training reference",
            labels,
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.mw_pvalue = Gauge(
            "augur_feature_drift_mw_pvalue",
            "Mann-Whitney U p-value, served feature vs training reference",
            labels,
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.model_drift = Gauge(
            "augur_model_drift",
            "1 when any feature of this model version drifted (see the drift rule), else 0",
            ["model_version"],
            registry=registry,
            multiprocess_mode="mostrecent",
        )

    @classmethod
    def default(cls) -> DriftGauges:
        """Gauges on the default registry, made once per process (names must be unique)."""
        with cls._default_lock:
            if cls._default is None:
                cls._default = cls()
            return cls._default

    def update(self, result: DriftResult) -> None:
        """Set the gauges from one version's drift result."""
        for f in result.features:
            self.psi.labels(result.model_version, f.feature).set(f.psi)
            self.ks_pvalue.labels(result.model_version, f.feature).set(f.ks_pvalue)
            self.mw_pvalue.labels(result.model_version, f.feature).set(f.mw_pvalue)
        self.model_drift.labels(result.model_version).set(1.0 if result.drifted else 0.0)


class DriftMonitor:
    """Per-version served-feature windows, drift tests and gauges.

    ``observe`` is what the request path calls: it copies one row into the version's
    ring buffer (microseconds) and counts. Statistics are recomputed by a background
    thread (``start()``) when ``update_every`` new rows arrived or ``update_seconds``
    passed since the last computation, never sooner than ``min_interval_seconds`` after
    it (under load rows arrive far faster than drift can change, and a recompute costs
    ~0.2 s of CPU) — or synchronously by ``update()``. Each result
    sets the gauges and, when a ``log`` is given, is stored for ``augur report serving``.
    Versions without a reference are observed for nothing (ignored).
    """

    def __init__(
        self,
        *,
        window: int = 500,
        update_every: int = 100,
        update_seconds: float = 30.0,
        min_interval_seconds: float = 0.0,
        gauges: DriftGauges | None = None,
        log: PredictionLog | None = None,
        psi_threshold: float = PSI_THRESHOLD,
        alpha: float = ALPHA,
        min_rows: int = MIN_ROWS,
        on_result: Callable[[DriftResult], None] | None = None,
    ) -> None:
        self.window = window
        self.update_every = update_every
        self.update_seconds = update_seconds
        self.min_interval_seconds = min_interval_seconds
        self.gauges = gauges
        self.log = log
        self.psi_threshold = psi_threshold
        self.alpha = alpha
        self.min_rows = min_rows
        self.on_result = on_result
        self._references: dict[str, pd.DataFrame] = {}
        self._windows: dict[str, FeatureWindow] = {}
        self._new_rows: dict[str, int] = {}
        self._last_update: dict[str, float] = {}
        self._results: dict[str, DriftResult] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings | None = None,
        *,
        gauges: DriftGauges | None = None,
        log: PredictionLog | None = None,
    ) -> DriftMonitor:
        """A monitor sized by ``AUGUR_DRIFT_WINDOW`` / ``AUGUR_DRIFT_UPDATE_ROWS`` /
        ``AUGUR_DRIFT_UPDATE_SECONDS``."""
        if settings is None:
            from augur.config import get_settings

            settings = get_settings()
        return cls(
            window=settings.drift_window,
            update_every=settings.drift_update_rows,
            update_seconds=settings.drift_update_seconds,
            min_interval_seconds=settings.drift_min_interval_seconds,
            gauges=gauges,
            log=log,
        )

    def set_reference(self, model_version: str, reference: pd.DataFrame) -> None:
        """Register (or replace) a version's training reference; resets its window."""
        if reference.empty:
            raise ValueError(f"drift reference for {model_version!r} is empty")
        with self._lock:
            self._references[model_version] = reference.astype("float64").reset_index(drop=True)
            self._windows[model_version] = FeatureWindow(list(reference.columns), self.window)
            self._new_rows[model_version] = 0
            self._last_update[model_version] = time.monotonic()

    def feature_names(self, model_version: str) -> list[str] | None:
        """The reference's feature order for a version (None when it has no reference)."""
        window = self._windows.get(model_version)
        return None if window is None else list(window.feature_names)

    def observe(
        self, model_version: str, features: Mapping[str, float] | Sequence[float] | np.ndarray
    ) -> None:
        """Record one served feature row for a version (cheap; call on the request path)."""
        with self._lock:
            window = self._windows.get(model_version)
            if window is None:
                return
            window.append(features)
            self._new_rows[model_version] += 1
            due = self._new_rows[model_version] >= self.update_every and (
                not self.min_interval_seconds
                or time.monotonic() - self._last_update[model_version] >= self.min_interval_seconds
            )
        if due:
            self._wake.set()

    def due_versions(self) -> list[str]:
        """Versions whose statistics should be recomputed now."""
        now = time.monotonic()
        with self._lock:
            return [
                v
                for v, n in self._new_rows.items()
                if now - self._last_update[v] >= self.min_interval_seconds
                and (
                    n >= self.update_every
                    or (n > 0 and now - self._last_update[v] >= self.update_seconds)
                )
            ]

    def update(self, model_version: str | None = None) -> dict[str, DriftResult]:
        """Recompute drift now (one version, or every version with a reference)."""
        with self._lock:
            versions = [model_version] if model_version else list(self._references)
            snapshots = {}
            for v in versions:
                if v not in self._references:
                    raise KeyError(f"no drift reference for model version {v!r}")
                snapshots[v] = (self._references[v], self._windows[v].frame())
                self._new_rows[v] = 0
                self._last_update[v] = time.monotonic()
        results = {}
        # The tests run outside the lock: observe() must never wait for scipy.
        for v, (reference, current) in snapshots.items():
            result = detect_drift(
                reference,
                current,
                model_version=v,
                psi_threshold=self.psi_threshold,
                alpha=self.alpha,
                min_rows=self.min_rows,
            )
            results[v] = result
            self._publish(result)
        with self._lock:
            self._results.update(results)
        return results

    def _publish(self, result: DriftResult) -> None:
        if self.gauges is not None:
            self.gauges.update(result)
        if self.log is not None and result.n_current > 0:
            try:
                self.log.log_drift(result.rows())
            except Exception:
                log.exception("drift: storing statistics for %s failed", result.model_version)
        if self.on_result is not None:
            self.on_result(result)

    def results(self) -> dict[str, DriftResult]:
        """The latest result per version."""
        with self._lock:
            return dict(self._results)

    # --- background refresh ---------------------------------------------------------------
    def start(self) -> None:
        """Recompute in a daemon thread whenever a version is due."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="augur-drift", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the background thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        tick = min(self.update_seconds, 1.0)
        while not self._stop.is_set():
            self._wake.wait(timeout=tick)
            self._wake.clear()
            if self._stop.is_set():
                return
            for v in self.due_versions():
                try:
                    self.update(v)
                except Exception:
                    log.exception("drift: update for %s failed", v)


__all__ = ["DriftGauges", "DriftMonitor", "FeatureWindow"]
