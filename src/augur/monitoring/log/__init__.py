"""The prediction/outcome log: every scored request (primary, canary and shadow) and the
realised outcome reported later, joined on the request id, plus the drift monitor's
statistics.

SQLAlchemy 2 Core, so the same code and schema run on SQLite (one machine) and
PostgreSQL (a cluster). Writes never sit on the request path: a prediction is appended
to a bounded buffer that a background thread writes in batches.
"""

from __future__ import annotations

from augur.monitoring.log._engine import default_log_url
from augur.monitoring.log._log import PredictionLog, UnknownRequestIdError
from augur.monitoring.log._schema import ROLES, PredictionRecord, features_digest
from augur.monitoring.log._writer import LogStats, LogUnavailable

__all__ = [
    "ROLES",
    "LogStats",
    "LogUnavailable",
    "PredictionLog",
    "PredictionRecord",
    "UnknownRequestIdError",
    "default_log_url",
    "features_digest",
]
