"""The prediction log on a real PostgreSQL server (tests/conftest.py starts a throwaway
cluster, or uses AUGUR_TEST_POSTGRES_URL): what SQLite does not exercise — timestamptz
and the session time zone, the schema created by racing workers, dropped connections —
and `augur report serving` reading the log from the server.

The behaviour tests shared with SQLite run on both backends in
tests/unit/monitoring/log/; the multi-process test in
tests/integration/test_monitoring_log.py."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
import typer
from typer.testing import CliRunner

from augur.cli.report import register
from augur.monitoring import PredictionLog, summarize, write_serving_report
from tests.unit.monitoring.log.conftest import record
from tests.unit.monitoring.test_report import PLOT_DIV, fill_log_and_drift

pytestmark = pytest.mark.integration


def drift_row(ts: datetime) -> dict[str, object]:
    return {
        "ts": ts,
        "model_version": "v1",
        "feature": "a",
        "n_reference": 10,
        "n_current": 10,
        "ks_statistic": 0.1,
        "ks_pvalue": 0.5,
        "mw_pvalue": 0.5,
        "psi": 0.01,
        "drifted": False,
        "model_drifted": False,
    }


def test_schema_uses_timestamptz(postgres_db: str) -> None:
    """Every time column of every table of the log is stored with its time zone."""
    from augur.monitoring.log._schema import metadata

    with PredictionLog(postgres_db, start=False) as log, log.engine.connect() as conn:
        types = dict(
            conn.execute(
                sa.text(
                    "SELECT table_name || '.' || column_name, data_type "
                    "FROM information_schema.columns WHERE table_schema = current_schema() "
                    "AND data_type LIKE 'timestamp%'"
                )
            ).all()
        )
    times = {
        f"{table.name}.{column.name}"
        for table in metadata.tables.values()
        for column in table.columns
        if isinstance(column.type, sa.DateTime)
    }
    assert {"predictions.ts", "predictions.feature_timestamp", "outcomes.ts"} <= times
    assert types == dict.fromkeys(times, "timestamp with time zone")


def test_times_are_utc_whatever_the_database_time_zone(postgres_db: str) -> None:
    # A server set to local time: aware times keep their instant, naive ones mean UTC (as
    # on SQLite), and everything reads back in UTC.
    admin = sa.create_engine(postgres_db, isolation_level="AUTOCOMMIT")
    name = sa.make_url(postgres_db).database
    with admin.connect() as conn:
        conn.execute(sa.text(f"ALTER DATABASE \"{name}\" SET timezone TO 'Asia/Kolkata'"))
    admin.dispose()
    with sa.create_engine(postgres_db).connect() as conn:
        assert conn.execute(sa.text("SHOW timezone")).scalar() == "Asia/Kolkata"

    cet = timezone(timedelta(hours=1))
    with PredictionLog(postgres_db) as log:
        with log.engine.connect() as conn:
            assert conn.execute(sa.text("SHOW timezone")).scalar() == "UTC"
        log.log_prediction(
            record(
                "r1",
                ts=datetime(2026, 3, 1, 13, 0, tzinfo=cet),
                feature_timestamp=datetime(2026, 3, 1, 12, 0),  # naive: UTC
            )
        )
        assert log.log_outcome("r1", 0.01)
        log.log_drift([drift_row(datetime(2026, 3, 1, 12, 30))])  # naive: UTC
        # 17:00+05:00 is 12:00 UTC, the prediction's own time: ``since`` is inclusive.
        df = log.frame(since=datetime(2026, 3, 1, 17, 0, tzinfo=timezone(timedelta(hours=5))))
        drift = log.drift_frame()
        with log.engine.connect() as conn:
            stored = conn.execute(sa.text("SELECT ts AT TIME ZONE 'UTC' FROM drift")).scalar()
    assert df["request_id"].tolist() == ["r1"]
    assert df["ts"].iloc[0] == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert df["feature_timestamp"].iloc[0] == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert str(df["ts"].dt.tz) == str(df["outcome_ts"].dt.tz) == "UTC"
    assert drift["ts"].iloc[0] == datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    assert stored == datetime(2026, 3, 1, 12, 30)


def test_racing_workers_create_the_schema_once(postgres_db: str) -> None:
    # Eight logs opened at the same instant on an empty database: one creates the tables
    # under the advisory lock, the others find them; none fails.
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []
    logs: list[PredictionLog] = []

    def open_log(k: int) -> None:
        barrier.wait()
        try:
            plog = PredictionLog(postgres_db)
            plog.log_prediction(record(f"w{k}"))
            logs.append(plog)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_log, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for plog in logs:
        plog.close()
    assert errors == []
    assert [p.stats.written for p in logs] == [1] * 8
    with PredictionLog(postgres_db, start=False) as reader:
        assert reader.count() == 8
        with reader.engine.connect() as conn:
            indexes = {i["name"] for i in sa.inspect(conn).get_indexes("predictions") if i["name"]}
    assert {"ix_predictions_ts", "ix_predictions_version_ts", "ix_predictions_symbol_ts"} <= (
        indexes
    )


def test_dropped_connections_cost_a_reconnect_not_rows(postgres_db: str) -> None:
    # A restarted server or a proxy closing idle connections: the pool's connections are
    # dead; pool_pre_ping notices and reconnects before the next batch and outcome.
    with PredictionLog(postgres_db) as log:
        log.log_prediction(record("before"))
        assert log.flush()
        assert log.log_outcome("before", 0.1)
        admin = sa.create_engine(postgres_db, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            killed = conn.execute(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalar()
        admin.dispose()
        assert killed >= 1
        log.log_prediction(record("after"))
        assert log.flush()
        assert log.log_outcome("after", 0.2)
        assert log.stats.failed == 0
        assert log.frame()["realized_return"].tolist() == [0.1, 0.2]


@pytest.fixture
def filled_postgres_log(postgres_db: str) -> str:
    # linger 0: each outcome below waits for its prediction's write, so don't batch.
    with PredictionLog(postgres_db, linger=0.0) as log:
        fill_log_and_drift(log)
    return postgres_db


def test_report_reads_a_postgres_log(filled_postgres_log: str, tmp_path: Path) -> None:
    with PredictionLog(filled_postgres_log, start=False) as log:
        summary = summarize(log.frame(), drift=log.drift_frame())
    assert (summary.n_requests, summary.n_predictions, summary.n_outcomes) == (300, 600, 300)
    text = write_serving_report(summary, tmp_path / "serving.html").read_text()
    assert len(PLOT_DIV.findall(text)) == 6
    assert "v2 (canary) vs v1:" in text
    assert "Drift flagged for: v1" in text


def test_cli_report_serving_on_postgres(filled_postgres_log: str, tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)
    out = tmp_path / "serving.html"
    url = sa.make_url(filled_postgres_log).set(password="not-shown")
    result = CliRunner().invoke(
        app,
        [
            "report",
            "serving",
            "--log-url",
            url.render_as_string(hide_password=False),
            "--out",
            str(out),
            "--since",
            "2000-01-01T00:00",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "300 requests, 600 predictions, 300 outcomes" in result.output
    assert "shadow v3" in result.output
    assert out.exists()
    # The server is gone (a database that does not exist): a one-line error, no password.
    gone = url.set(database="augur_no_such_db").render_as_string(hide_password=False)
    missing = CliRunner().invoke(app, ["report", "serving", "--log-url", gone])
    assert missing.exit_code == 1
    assert "Cannot read the prediction log" in missing.output
    assert "augur_no_such_db" in missing.output
    assert "not-shown" not in missing.output
