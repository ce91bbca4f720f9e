"""The log's INSERTs: a batch in one transaction, the rows the database refuses skipped
and named while the others are kept, values stored as given (times in UTC), outcomes
replaced, drift rows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
import sqlalchemy as sa

from augur.monitoring.log._engine import open_engine
from augur.monitoring.log._insert import (
    insert_drift,
    insert_outcome,
    insert_predictions,
    prediction_row,
)
from augur.monitoring.log._schema import PredictionRecord, drift_table, predictions_table
from tests.unit.monitoring.log.conftest import record


@pytest.fixture
def engine(url: str) -> Iterator[sa.Engine]:
    engine = open_engine(url)
    yield engine
    engine.dispose()


def _stored_ids(engine: sa.Engine) -> list[tuple[str, str]]:
    p = predictions_table
    query = sa.select(p.c.request_id, p.c.role).order_by(p.c.request_id, p.c.role)
    with engine.connect() as conn:
        return [(r.request_id, r.role) for r in conn.execute(query)]


def test_a_batch_is_one_transaction(engine: sa.Engine) -> None:
    commits: list[int] = []
    sa.event.listen(engine, "commit", lambda conn: commits.append(1))
    batch = [record(f"r{i}") for i in range(10)]
    assert insert_predictions(engine, batch) == (10, 0)
    assert len(commits) == 1
    assert len(_stored_ids(engine)) == 10
    assert insert_predictions(engine, []) == (0, 0)
    assert len(commits) == 1  # nothing to write: no transaction


def test_values_are_stored_as_given_with_times_in_utc(engine: sa.Engine) -> None:
    when = datetime(2024, 3, 1, 0, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    r = record(
        "r1",
        direction=np.int64(-1),
        ts=when,
        feature_timestamp=datetime(2024, 2, 29, 21, 0),  # naive: UTC
        model_tag="augur-ensemble:v1",
        features_digest="f" * 32,
        routing_key="client-7",
    )
    assert insert_predictions(engine, [r]) == (1, 0)
    with engine.connect() as conn:
        row = conn.execute(sa.select(predictions_table)).one()._asdict()

    def utc(value: datetime) -> datetime:  # SQLite hands back naive UTC times
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    assert utc(row.pop("ts")) == datetime(2024, 2, 29, 22, 30, 15, 123456, tzinfo=UTC)
    assert utc(row.pop("feature_timestamp")) == datetime(2024, 2, 29, 21, 0, tzinfo=UTC)
    expected = prediction_row(r)
    del expected["ts"], expected["feature_timestamp"]
    assert row == expected
    assert type(row["direction"]) is int and row["direction"] == -1


def test_refused_rows_are_skipped_and_named_not_the_batch(
    engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    assert insert_predictions(engine, [record("a")]) == (1, 0)
    broken = record("n")
    object.__setattr__(broken, "symbol", None)  # past the record's checks: NOT NULL refuses it
    batch: list[PredictionRecord] = [
        record("a"),  # logged before
        record("b"),
        record("b"),  # twice in this batch
        record("b", role="shadow"),  # another role: a row of its own
        broken,
        record("c"),
    ]
    with caplog.at_level("WARNING", logger="augur.monitoring.log"):
        assert insert_predictions(engine, batch) == (3, 3)
    assert _stored_ids(engine) == [
        ("a", "primary"),
        ("b", "primary"),
        ("b", "shadow"),
        ("c", "primary"),
    ]
    named = [r.getMessage() for r in caplog.records if r.name.startswith("augur.")]
    assert len(named) == 3
    assert named[0].startswith("prediction log: request a role primary not written")
    assert "request n role primary" in named[2]


def test_a_database_error_fails_the_batch_with_an_exception(engine: sa.Engine) -> None:
    predictions_table.drop(engine)  # the table is gone
    with pytest.raises(sa.exc.DBAPIError):
        insert_predictions(engine, [record("r1"), record("r2")])


def test_an_outcome_joins_a_logged_request_and_replaces_an_earlier_one(engine: sa.Engine) -> None:
    insert_predictions(engine, [record("r1")])
    assert insert_outcome(engine, "r1", 0.01, "alice")
    assert insert_outcome(engine, "r1", 0.02, "bob")
    assert not insert_outcome(engine, "nope", 0.03, "carol")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT request_id, realized_return, caller FROM outcomes")
        ).all()
    assert [tuple(r) for r in rows] == [("r1", 0.02, "bob")]


def test_drift_rows_are_stored_with_times_in_utc(engine: sa.Engine) -> None:
    row = {
        "ts": datetime(2026, 2, 1, 13, 30, tzinfo=timezone(timedelta(hours=1))),
        "model_version": "v1",
        "feature": "a",
        "n_reference": 100,
        "n_current": 50,
        "ks_statistic": 0.2,
        "ks_pvalue": 0.01,
        "mw_pvalue": 0.02,
        "psi": 0.3,
        "drifted": True,
        "model_drifted": True,
    }
    assert insert_drift(engine, iter([row, {**row, "feature": "b"}])) == 2
    assert insert_drift(engine, []) == 0
    with engine.connect() as conn:
        stored = conn.execute(sa.select(drift_table.c.ts)).scalars().all()
    assert [t.replace(tzinfo=None) for t in stored] == [datetime(2026, 2, 1, 12, 30)] * 2
