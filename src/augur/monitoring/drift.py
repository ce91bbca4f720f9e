"""Feature drift: does what the service sees now look like what the model was trained on?

For each feature we compare the model's **training reference** (a bounded random sample
of its training features, saved next to the model) with a **window of recently served
features** (a ring buffer per model version) using

* the two-sample Kolmogorov–Smirnov test (``scipy.stats.ks_2samp``) — any change of shape;
* the Mann–Whitney U test (``scipy.stats.mannwhitneyu``) — a shift in location;
* the population stability index (PSI) over deciles of the reference — a size of the
  change that does not grow with the sample size the way p-values do.

**Drift rule** (per feature; a model version drifts when any feature does), with at least
``min_rows`` served rows in the window:

    PSI > psi_threshold (0.2)   or   KS p-value < alpha / n_features (alpha = 0.01, Bonferroni)

Mann–Whitney is reported but not part of the rule (KS already reacts to a location
shift). Caveat: served features are autocorrelated in time while both tests assume
independent draws, so p-values over a short window are optimistic; PSI is the sturdier
signal and the thresholds are settings, not truths.

The Prometheus gauges (``augur_feature_drift_psi``, ``augur_feature_drift_ks_pvalue``,
``augur_feature_drift_mw_pvalue``, ``augur_model_drift``) are refreshed off the request
path: :meth:`DriftMonitor.observe` only copies a row into the ring buffer.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from augur.config import Settings
    from augur.monitoring.log import PredictionLog

from augur.models import REFERENCE_FILENAME, load_reference, reference_sample, save_reference

log = logging.getLogger(__name__)

PSI_THRESHOLD = 0.2
ALPHA = 0.01
MIN_ROWS = 100
_PSI_EPS = 1e-4  # floor for empty bins: log(0) would make PSI infinite


# --- statistics -------------------------------------------------------------------------
def psi_from_proportions(expected: Sequence[float], actual: Sequence[float]) -> float:
    """PSI = Σ (a − e) · ln(a / e) over bins (proportions; empty bins floored at 1e-4)."""
    e = np.clip(np.asarray(expected, dtype="float64"), _PSI_EPS, None)
    a = np.clip(np.asarray(actual, dtype="float64"), _PSI_EPS, None)
    if e.shape != a.shape:
        raise ValueError("psi: expected and actual need the same number of bins")
    return float(np.sum((a - e) * np.log(a / e)))


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """Population stability index of ``current`` against ``reference``.

    Bins are quantiles of the reference (deciles by default; duplicate edges merged, so
    a feature with few distinct values gets fewer bins), open at both ends so every
    current value falls in a bin. Conventional reading: < 0.1 stable, 0.1–0.2 some
    change, > 0.2 a significant shift.
    """
    ref = np.asarray(reference, dtype="float64")
    cur = np.asarray(current, dtype="float64")
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    if ref.size == 0 or cur.size == 0:
        return math.nan
    inner = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    # side="right": a value equal to an edge goes to the bin above it, for both samples.
    ref_counts = np.bincount(np.searchsorted(inner, ref, side="right"), minlength=inner.size + 1)
    cur_counts = np.bincount(np.searchsorted(inner, cur, side="right"), minlength=inner.size + 1)
    return psi_from_proportions(ref_counts / ref.size, cur_counts / cur.size)


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    """Drift statistics of one feature."""

    feature: str
    n_reference: int
    n_current: int
    ks_statistic: float
    ks_pvalue: float
    mw_pvalue: float
    psi: float
    drifted: bool


@dataclass(frozen=True, slots=True)
class DriftResult:
    """Drift of one model version: per-feature statistics and the overall flag."""

    model_version: str
    features: tuple[FeatureDrift, ...]
    drifted: bool
    n_current: int
    enough_data: bool
    rule: str
    ts: datetime

    def to_frame(self) -> pd.DataFrame:
        """One row per feature (for reports and tests)."""
        rows = [
            {"model_version": self.model_version, **_feature_dict(f), "model_drifted": self.drifted}
            for f in self.features
        ]
        return pd.DataFrame(rows)

    def rows(self) -> list[dict[str, Any]]:
        """Rows for :meth:`PredictionLog.log_drift`."""
        return [
            {
                "ts": self.ts,
                "model_version": self.model_version,
                **_feature_dict(f),
                "model_drifted": self.drifted,
            }
            for f in self.features
        ]


def _feature_dict(f: FeatureDrift) -> dict[str, Any]:
    return {
        "feature": f.feature,
        "n_reference": f.n_reference,
        "n_current": f.n_current,
        "ks_statistic": f.ks_statistic,
        "ks_pvalue": f.ks_pvalue,
        "mw_pvalue": f.mw_pvalue,
        "psi": f.psi,
        "drifted": f.drifted,
    }


def detect_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    model_version: str = "",
    psi_threshold: float = PSI_THRESHOLD,
    alpha: float = ALPHA,
    min_rows: int = MIN_ROWS,
    bins: int = 10,
) -> DriftResult:
    """Compare served features (``current``) with the training ``reference``, per feature.

    Features are the reference's columns; ``current`` must contain them all. With fewer
    than ``min_rows`` current rows the statistics are still computed but nothing is
    flagged (``enough_data`` False): small windows make PSI noisy.
    """
    from scipy import stats

    missing = [c for c in reference.columns if c not in current.columns]
    if missing:
        raise ValueError(f"detect_drift: served features lack reference columns {missing}")
    n_features = max(len(reference.columns), 1)
    ks_cut = alpha / n_features
    n_current = len(current)
    enough = n_current >= min_rows
    results = []
    for name in reference.columns:
        ref = reference[name].to_numpy(dtype="float64")
        cur = current[name].to_numpy(dtype="float64")
        ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
        if ref.size == 0 or cur.size == 0:
            ks_stat, ks_p, mw_p, value = math.nan, math.nan, math.nan, math.nan
        else:
            ks = stats.ks_2samp(ref, cur, method="asymp")
            ks_stat, ks_p = float(ks.statistic), float(ks.pvalue)
            mw_p = float(stats.mannwhitneyu(ref, cur, alternative="two-sided").pvalue)
            value = psi(ref, cur, bins=bins)
        flagged = enough and ((value > psi_threshold) or (ks_p < ks_cut))
        results.append(
            FeatureDrift(
                feature=str(name),
                n_reference=int(ref.size),
                n_current=int(cur.size),
                ks_statistic=ks_stat,
                ks_pvalue=ks_p,
                mw_pvalue=mw_p,
                psi=value,
                drifted=bool(flagged),
            )
        )
    return DriftResult(
        model_version=model_version,
        features=tuple(results),
        drifted=any(f.drifted for f in results),
        n_current=n_current,
        enough_data=enough,
        rule=_rule(psi_threshold, alpha, n_features, min_rows),
        ts=datetime.now(UTC),
    )


def _rule(psi_threshold: float, alpha: float, n_features: int, min_rows: int) -> str:
    return (
        f"PSI > {psi_threshold:g} or KS p < {alpha:g}/{n_features} (Bonferroni), "
        f"with >= {min_rows} served rows"
    )


def stored_drift(
    frame: pd.DataFrame, model_version: str, *, min_rows: int = MIN_ROWS
) -> DriftResult | None:
    """A version's latest drift result as the service stored it in the prediction log.

    ``frame`` is :meth:`PredictionLog.drift_frame` (the latest statistics per version);
    None when it holds none for ``model_version``. The flag is the one the service
    computed, under the default rule (the service's monitor uses it); ``n_current`` is
    the most served rows any feature was tested on.
    """
    rows = frame[frame["model_version"] == model_version] if not frame.empty else frame
    if rows.empty:
        return None
    features = tuple(
        FeatureDrift(
            feature=str(r["feature"]),
            n_reference=int(r["n_reference"]),
            n_current=int(r["n_current"]),
            ks_statistic=float(r["ks_statistic"]),
            ks_pvalue=float(r["ks_pvalue"]),
            mw_pvalue=float(r["mw_pvalue"]),
            psi=float(r["psi"]),
            drifted=bool(r["drifted"]),
        )
        for r in rows.to_dict("records")
    )
    n_current = max(f.n_current for f in features)
    return DriftResult(
        model_version=model_version,
        features=features,
        drifted=bool(rows["model_drifted"].any()),
        n_current=n_current,
        enough_data=n_current >= min_rows,
        rule=_rule(PSI_THRESHOLD, ALPHA, len(features), min_rows),
        ts=pd.Timestamp(rows["ts"].max()).to_pydatetime(),
    )


# --- the served window ------------------------------------------------------------------
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


__all__ = [
    "ALPHA",
    "MIN_ROWS",
    "PSI_THRESHOLD",
    "REFERENCE_FILENAME",
    "DriftGauges",
    "DriftMonitor",
    "DriftResult",
    "FeatureDrift",
    "FeatureWindow",
    "detect_drift",
    "load_reference",
    "psi",
    "psi_from_proportions",
    "reference_sample",
    "save_reference",
    "stored_drift",
]
