"""What the prediction log stores: its tables (predictions, outcomes, drift, and the
member probabilities and shared member weights of :mod:`._weights`) in
SQLAlchemy Core, and :class:`PredictionRecord`, one scored request, checked field by
field when it is made, so that a bad value is refused where it was produced, naming the
field, and the writer only ever holds rows the tables accept."""

from __future__ import annotations

import hashlib
import math
import numbers
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import numpy as np
import sqlalchemy as sa

ROLES: tuple[str, ...] = ("primary", "canary", "shadow")
"""The roles a prediction is logged under: the serving version (primary or canary) and
the shadow that scored the same request."""

MAX_REQUEST_ID = 128

metadata = sa.MetaData()

predictions_table = sa.Table(
    "predictions",
    metadata,
    sa.Column("request_id", sa.String(MAX_REQUEST_ID), primary_key=True),
    # A request is scored by one serving version (primary or canary) and maybe a shadow:
    # the role is part of the key so both rows share the request id.
    sa.Column("role", sa.String(16), primary_key=True),
    sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
    sa.Column("symbol", sa.String(64), nullable=False),
    sa.Column("model_version", sa.String(128), nullable=False),
    sa.Column("model_tag", sa.String(256), nullable=False, default=""),
    sa.Column("features_digest", sa.String(64), nullable=False, default=""),
    sa.Column("p_up", sa.Float, nullable=False),
    sa.Column("p_down", sa.Float, nullable=False),
    sa.Column("p_flat", sa.Float, nullable=False),
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("agreement", sa.Float, nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("size", sa.Float, nullable=False),
    sa.Column("direction", sa.Integer, nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("feature_timestamp", sa.DateTime(timezone=True), nullable=True),
    sa.Column("routing_key", sa.String(256), nullable=False, default=""),
    # The log's own reads: by request id (the key: outcomes) and by time (reports since
    # a time, retention).
    sa.Index("ix_predictions_ts", "ts"),
    # Analysts' per-version and per-symbol windows, on PostgreSQL only, where the log is
    # a database on its own node. On one machine SQLite's writer shares the service's
    # cores, and every index is more work per row there.
    sa.Index("ix_predictions_version_ts", "model_version", "ts").ddl_if(dialect="postgresql"),
    sa.Index("ix_predictions_symbol_ts", "symbol", "ts").ddl_if(dialect="postgresql"),
)

outcomes_table = sa.Table(
    "outcomes",
    metadata,
    sa.Column("request_id", sa.String(MAX_REQUEST_ID), primary_key=True),
    sa.Column("realized_return", sa.Float, nullable=False),
    sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
    sa.Column("caller", sa.String(256), nullable=False, default=""),
)

# The drift monitor's latest statistics, so the offline report can show them.
drift_table = sa.Table(
    "drift",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
    sa.Column("model_version", sa.String(128), nullable=False),
    sa.Column("feature", sa.String(128), nullable=False),
    sa.Column("n_reference", sa.Integer, nullable=False),
    sa.Column("n_current", sa.Integer, nullable=False),
    sa.Column("ks_statistic", sa.Float, nullable=False),
    sa.Column("ks_pvalue", sa.Float, nullable=False),
    sa.Column("mw_pvalue", sa.Float, nullable=False),
    sa.Column("psi", sa.Float, nullable=False),
    sa.Column("drifted", sa.Boolean, nullable=False),
    sa.Column("model_drifted", sa.Boolean, nullable=False),
    sa.Index("ix_drift_version_ts", "model_version", "ts"),
)

# What each member of a version said about a feature row, written once per (version,
# feature row) when the service scores that row (not per request: the predictions table
# ties a request to its row by features_digest), so an outcome can update the member
# weights with the probabilities the prediction was made with.
member_probs_table = sa.Table(
    "member_probabilities",
    metadata,
    sa.Column("model_version", sa.String(128), primary_key=True),
    sa.Column("features_digest", sa.String(64), primary_key=True),
    # JSON: {"member": [p_down, p_flat, p_up], ...}
    sa.Column("probs", sa.Text, nullable=False),
    # The realised return's flat band for this row: |return| <= label_threshold is the
    # flat class (training's labelling rule); NULL when the row has no volatility.
    sa.Column("label_threshold", sa.Float, nullable=True),
    sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
)

# Each version's member weights as outcomes have moved them, shared by every worker and
# replica: the members' log-score averages (JSON list, in ``names`` order), how many
# outcomes were folded in, whether the version's weights are frozen, and a revision that
# every write raises (the writers' compare-and-set, the readers' change test).
weights_table = sa.Table(
    "ensemble_weights",
    metadata,
    sa.Column("model_version", sa.String(128), primary_key=True),
    sa.Column("names", sa.Text, nullable=False),
    # JSON: the rule's settings, {"decay": ..., "floor": ..., "max_step": ...} (the
    # version's own), so a worker that has not loaded the version can still update it
    sa.Column("settings", sa.Text, nullable=False),
    sa.Column("perf", sa.Text, nullable=False),
    sa.Column("n_updates", sa.Integer, nullable=False),
    sa.Column("frozen", sa.Boolean, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# The outcomes folded into each version's shared weights, written in the same transaction
# as the weights: a retried outcome (or one whose first answer was lost) moves them once.
weights_outcomes_table = sa.Table(
    "weights_outcomes",
    metadata,
    sa.Column("request_id", sa.String(MAX_REQUEST_ID), primary_key=True),
    sa.Column("model_version", sa.String(128), primary_key=True),
    sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
)


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_utc(value: Any) -> Any:
    """Every stored timestamp is UTC: SQLite keeps no zone (an aware time would lose its
    offset), so aware times are converted and naive ones are taken to be UTC already."""
    if isinstance(value, datetime):
        if value.tzinfo is UTC:
            return value
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


def features_digest(values: np.ndarray | Sequence[float]) -> str:
    """A fingerprint of a feature vector: 32 hex characters, the BLAKE2b hash of its
    values as float64, in order.

    Logged with each prediction in place of the features themselves: two rows with the
    same digest scored the same input (a shadow and its primary; a request replayed), and
    a logged prediction can be matched to the feature vector it was made from.
    """
    data = np.ascontiguousarray(values, dtype=np.float64).tobytes()
    return hashlib.blake2b(data, digest_size=16).hexdigest()


# Not frozen: one is made per request, and a frozen dataclass's __init__ sets each field
# through object.__setattr__ (the serving bench's request path noticed). Nothing changes a
# record once it is made.
@dataclass(slots=True)
class PredictionRecord:
    """One scored request as logged (one row per request id and role).

    ``p_up``/``p_down``/``p_flat`` are the ensemble's class probabilities; ``direction``
    is +1/-1/0; ``action`` is the ``Decision.action`` value; ``latency_ms`` is the time
    spent scoring (for a shadow: its own scoring time, off the request path);
    ``features_digest`` is :func:`features_digest` of the scored vector. Times are stored
    in UTC (a naive time is taken to be UTC).

    Raises ``ValueError`` naming the field when a value cannot be stored: a request id
    outside 1..128 characters, an unknown role, a number that is not finite, a text longer
    than its column.
    """

    request_id: str
    symbol: str
    model_version: str
    role: str
    action: str
    p_up: float
    p_down: float
    p_flat: float
    confidence: float
    agreement: float
    size: float
    direction: int
    latency_ms: float
    model_tag: str = ""
    features_digest: str = ""
    feature_timestamp: datetime | None = None
    routing_key: str = ""
    ts: datetime = field(default_factory=utcnow)

    def __post_init__(self) -> None:
        problem = _problem(self)
        if problem is not None:
            raise ValueError(f"PredictionRecord.{problem}")


_NUMBERS = ("p_up", "p_down", "p_flat", "confidence", "agreement", "size", "latency_ms")
# Each text field and the longest text its column holds (PostgreSQL refuses a longer one,
# SQLite would keep it: checked here, both backends keep the same rows).
_TEXTS: tuple[tuple[str, int], ...] = tuple(
    (name, cast(sa.String, predictions_table.c[name].type).length or 0)
    for name in ("symbol", "model_version", "action", "model_tag", "features_digest", "routing_key")
)


def _problem(record: PredictionRecord) -> str | None:
    """What is wrong with a record, naming the field (``None``: nothing)."""
    request_id = record.request_id
    if not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_REQUEST_ID:
        return f"request_id must be 1..{MAX_REQUEST_ID} characters, got {request_id!r:.40}"
    if record.role not in ROLES:
        return f"role must be one of {ROLES}, got {record.role!r:.40}"
    for name in _NUMBERS:
        value = getattr(record, name)
        if not _finite(value):
            return f"{name} must be a finite number, got {value!r:.40}"
    if not isinstance(record.direction, numbers.Integral):
        return f"direction must be an integer, got {record.direction!r:.40}"
    for name, longest in _TEXTS:
        value = getattr(record, name)
        if not isinstance(value, str):
            return f"{name} must be a string, got {value!r:.40}"
        if len(value) > longest:
            return f"{name} must be at most {longest} characters, got {len(value)}"
    if not isinstance(record.ts, datetime):
        return f"ts must be a datetime, got {record.ts!r:.40}"
    feature_ts = record.feature_timestamp
    if feature_ts is not None and not isinstance(feature_ts, datetime):
        return f"feature_timestamp must be a datetime or None, got {feature_ts!r:.40}"
    return None


def _finite(value: object) -> bool:
    """A finite float, or an int a float can hold (a bool counts: 0 or 1)."""
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int) and abs(value) <= sys.float_info.max
