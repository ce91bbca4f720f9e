"""Monitoring: the prediction/outcome log, feature drift, A/B and shadow analysis, the
serving report.

Public names are loaded on first use (PEP 562), so ``import augur.monitoring`` costs
nothing and prometheus_client is not imported before a BentoML worker has set up its
multiprocess directory.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from augur.monitoring._report import write_serving_report
    from augur.monitoring.analysis import ServingSummary, summarize
    from augur.monitoring.drift import (
        REFERENCE_FILENAME,
        DriftResult,
        detect_drift,
        load_reference,
        reference_sample,
        save_reference,
    )
    from augur.monitoring.drift_monitor import DriftGauges, DriftMonitor
    from augur.monitoring.log import (
        ROLES,
        LogStats,
        LogUnavailable,
        PredictionLog,
        PredictionRecord,
        UnknownRequestIdError,
        default_log_url,
        features_digest,
    )

_EXPORTS: dict[str, str] = {
    "ROLES": "augur.monitoring.log",
    "LogStats": "augur.monitoring.log",
    "LogUnavailable": "augur.monitoring.log",
    "PredictionLog": "augur.monitoring.log",
    "PredictionRecord": "augur.monitoring.log",
    "UnknownRequestIdError": "augur.monitoring.log",
    "default_log_url": "augur.monitoring.log",
    "features_digest": "augur.monitoring.log",
    "REFERENCE_FILENAME": "augur.monitoring.drift",
    "DriftGauges": "augur.monitoring.drift_monitor",
    "DriftMonitor": "augur.monitoring.drift_monitor",
    "DriftResult": "augur.monitoring.drift",
    "detect_drift": "augur.monitoring.drift",
    "load_reference": "augur.monitoring.drift",
    "reference_sample": "augur.monitoring.drift",
    "save_reference": "augur.monitoring.drift",
    "ServingSummary": "augur.monitoring.analysis",
    "summarize": "augur.monitoring.analysis",
    "write_serving_report": "augur.monitoring._report",
}

__all__ = [
    "REFERENCE_FILENAME",
    "ROLES",
    "DriftGauges",
    "DriftMonitor",
    "DriftResult",
    "LogStats",
    "LogUnavailable",
    "PredictionLog",
    "PredictionRecord",
    "ServingSummary",
    "UnknownRequestIdError",
    "default_log_url",
    "detect_drift",
    "features_digest",
    "load_reference",
    "reference_sample",
    "save_reference",
    "summarize",
    "write_serving_report",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'augur.monitoring' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
