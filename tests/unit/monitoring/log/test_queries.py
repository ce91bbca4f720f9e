"""Reading the log and retention: the prediction/outcome join, a time window, the
latest drift snapshot per version, counting and pruning — times always in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from augur.monitoring.log import PredictionLog
from tests.unit.monitoring.log.conftest import record


def drift_row(ts: datetime, version: str, feature: str, psi: float) -> dict[str, object]:
    return {
        "ts": ts,
        "model_version": version,
        "feature": feature,
        "n_reference": 100,
        "n_current": 50,
        "ks_statistic": 0.2,
        "ks_pvalue": 0.01,
        "mw_pvalue": 0.02,
        "psi": psi,
        "drifted": psi > 0.2,
        "model_drifted": psi > 0.2,
    }


def test_round_trip_prediction_outcome_join(log: PredictionLog) -> None:
    feature_ts = datetime(2026, 1, 2, 3, 0, tzinfo=UTC)
    log.log_prediction(
        record(
            "r1",
            features_digest="abc",
            feature_timestamp=feature_ts,
            routing_key="AAA",
            model_tag="augur-ensemble:v1",
        )
    )
    log.log_prediction(record("r1", role="shadow", version="v2", action="no_action", direction=0))
    log.log_prediction(record("r2", role="canary", version="v3"))
    assert log.flush()
    assert log.log_outcome("r1", -0.012, caller="alice") is True

    df = log.frame()
    assert len(df) == 3
    r1 = df[df["request_id"] == "r1"].set_index("role")
    # The outcome belongs to the request: both the served and the shadow row see it.
    assert r1.loc["primary", "realized_return"] == pytest.approx(-0.012)
    assert r1.loc["shadow", "realized_return"] == pytest.approx(-0.012)
    assert r1.loc["primary", "caller"] == "alice"
    assert r1.loc["primary", "features_digest"] == "abc"
    assert r1.loc["primary", "feature_timestamp"] == feature_ts
    assert r1.loc["primary", "model_tag"] == "augur-ensemble:v1"
    assert r1.loc["primary", "routing_key"] == "AAA"
    assert r1.loc["shadow", "direction"] == 0
    assert df.loc[df["request_id"] == "r2", "realized_return"].isna().all()
    assert str(df["ts"].dt.tz) == str(df["outcome_ts"].dt.tz) == "UTC"
    assert log.count() == 3


def test_frame_since_filters_and_requires_tz(log: PredictionLog) -> None:
    old = datetime(2026, 1, 1, tzinfo=UTC)
    new = datetime(2026, 1, 5, 12, tzinfo=timezone(timedelta(hours=2)))  # 10:00 UTC
    log.log_prediction(record("old", ts=old))
    log.log_prediction(record("new", ts=new))
    log.flush()
    df = log.frame(since=datetime(2026, 1, 5, 9, 30, tzinfo=UTC))
    assert df["request_id"].tolist() == ["new"]
    assert df["ts"].iloc[0] == datetime(2026, 1, 5, 10, tzinfo=UTC)
    assert log.frame(since=datetime(2026, 1, 5, 10, tzinfo=UTC))["request_id"].tolist() == ["new"]
    with pytest.raises(ValueError, match="since must be timezone-aware"):
        log.frame(since=datetime(2026, 1, 1))


def test_empty_frames(log: PredictionLog) -> None:
    df = log.frame()
    assert df.empty
    assert "realized_return" in df.columns
    assert log.drift_frame().empty
    assert log.count() == 0


def test_drift_frame_keeps_the_latest_snapshot_per_version(log: PredictionLog) -> None:
    t0 = datetime(2026, 2, 1, 12, tzinfo=UTC)
    t1 = datetime(2026, 2, 1, 13, 30, tzinfo=timezone(timedelta(hours=1)))  # 12:30 UTC
    assert log.log_drift(drift_row(t0, "v1", f, 0.1) for f in ("a", "b")) == 2
    assert log.log_drift(drift_row(t1, "v1", f, 0.3) for f in ("a", "b")) == 2
    # Naive means UTC, as everywhere in the log.
    assert log.log_drift([drift_row(datetime(2026, 2, 1, 11), "v2", "a", 0.05)]) == 1
    assert log.log_drift([]) == 0
    df = log.drift_frame()
    assert "id" not in df.columns
    assert list(zip(df["model_version"], df["feature"], df["psi"], strict=True)) == [
        ("v1", "a", 0.3),
        ("v1", "b", 0.3),
        ("v2", "a", 0.05),
    ]
    assert df["ts"].tolist() == [
        datetime(2026, 2, 1, 12, 30, tzinfo=UTC),
        datetime(2026, 2, 1, 12, 30, tzinfo=UTC),
        datetime(2026, 2, 1, 11, tzinfo=UTC),
    ]
    assert df["drifted"].tolist() == [True, True, False]


def test_prune_drops_old_predictions_with_their_outcomes(log: PredictionLog) -> None:
    old = datetime(2026, 1, 1, tzinfo=UTC)
    log.log_prediction(record("old", ts=old))
    log.log_prediction(record("old", role="shadow", ts=old))
    log.log_prediction(record("new"))
    assert log.log_outcome("old", 0.1)
    assert log.log_outcome("new", 0.2)
    log.log_drift([drift_row(old, "v1", "a", 0.0)])
    assert log.prune(datetime(2026, 1, 2, tzinfo=UTC)) == 2
    df = log.frame()
    assert df["request_id"].tolist() == ["new"]
    assert df["realized_return"].tolist() == [0.2]
    assert log.drift_frame().empty
    with log.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM outcomes")).scalar() == 1
    assert log.prune(datetime(2026, 1, 2, tzinfo=UTC)) == 0
    with pytest.raises(ValueError, match="before must be timezone-aware"):
        log.prune(datetime(2026, 1, 2))
