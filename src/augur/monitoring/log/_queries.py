"""Reading the log and keeping it small: every prediction with its outcome (``frame``),
the latest drift statistics per model version (``drift_frame``), the number of
predictions (``count``), and deleting what is older than a cut-off (``prune``). Times
come back as UTC, whatever the backend stored."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from augur.monitoring.log._schema import (
    drift_table,
    member_probs_table,
    outcomes_table,
    predictions_table,
    weights_outcomes_table,
)

if TYPE_CHECKING:
    import pandas as pd


def frame(engine: sa.Engine, since: datetime | None = None) -> pd.DataFrame:
    """Every logged prediction (since ``since``, inclusive) with its outcome, if any,
    sorted by ``ts``: the prediction fields, plus ``realized_return``, ``outcome_ts`` and
    ``caller`` (NaN/None where no outcome was reported)."""
    p, o = predictions_table, outcomes_table
    query = sa.select(
        *p.c,
        o.c.realized_return,
        o.c.ts.label("outcome_ts"),
        o.c.caller,
    ).select_from(p.outerjoin(o, p.c.request_id == o.c.request_id))
    if since is not None:
        query = query.where(p.c.ts >= _utc_cutoff(since, "since"))
    df = _read(engine, query.order_by(p.c.ts, p.c.request_id, p.c.role))
    for col in ("ts", "feature_timestamp", "outcome_ts"):
        df[col] = _utc_times(df[col])
    df["realized_return"] = df["realized_return"].astype(float)
    df["direction"] = df["direction"].astype(int)
    return df


def drift_frame(engine: sa.Engine) -> pd.DataFrame:
    """The latest drift statistics per model version (an empty frame when none)."""
    d = drift_table
    latest = (
        sa.select(d.c.model_version, sa.func.max(d.c.ts).label("ts"))
        .group_by(d.c.model_version)
        .subquery()
    )
    query = (
        sa.select(*[c for c in d.c if c.name != "id"])
        .join(latest, sa.and_(d.c.model_version == latest.c.model_version, d.c.ts == latest.c.ts))
        .order_by(d.c.model_version, d.c.feature)
    )
    df = _read(engine, query)
    if not df.empty:
        df["ts"] = _utc_times(df["ts"])
    return df


def prediction_inputs(engine: sa.Engine, request_id: str) -> list[tuple[str, str, str]]:
    """(model version, role, features digest) of each logged prediction of a request."""
    t = predictions_table
    query = sa.select(t.c.model_version, t.c.role, t.c.features_digest).where(
        t.c.request_id == request_id
    )
    with engine.connect() as conn:
        return [(str(v), str(r), str(d)) for v, r, d in conn.execute(query)]


def count(engine: sa.Engine) -> int:
    """Number of logged predictions (all roles)."""
    with engine.connect() as conn:
        query = sa.select(sa.func.count()).select_from(predictions_table)
        return int(conn.execute(query).scalar_one())


def prune(engine: sa.Engine, before: datetime) -> int:
    """Delete predictions older than ``before``, the outcomes no prediction is left for,
    drift rows and member probabilities older than ``before``; returns the number of
    predictions deleted."""
    cutoff = _utc_cutoff(before, "before")
    p, o = predictions_table, outcomes_table
    with engine.begin() as conn:
        deleted = conn.execute(p.delete().where(p.c.ts < cutoff)).rowcount
        orphans = ~sa.exists().where(p.c.request_id == o.c.request_id)
        conn.execute(o.delete().where(orphans))
        conn.execute(drift_table.delete().where(drift_table.c.ts < cutoff))
        conn.execute(member_probs_table.delete().where(member_probs_table.c.ts < cutoff))
        conn.execute(weights_outcomes_table.delete().where(weights_outcomes_table.c.ts < cutoff))
    return int(deleted or 0)


def _utc_cutoff(when: datetime, name: str) -> datetime:
    if when.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware (UTC)")
    return when.astimezone(UTC)


def _read(engine: sa.Engine, query: sa.Select[Any]) -> pd.DataFrame:
    import pandas as pd

    with engine.connect() as conn:
        result = conn.execute(query)
        return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def _utc_times(column: pd.Series) -> pd.Series:
    import pandas as pd

    # SQLite hands back naive datetimes; every timestamp the log stores is UTC.
    return pd.to_datetime(column.map(_as_utc), utc=True)


def _as_utc(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value
