"""The service's return correlations: read from the online store at start and re-read as
the pipeline writes new ones; an unreachable store keeps the last matrix (and says so);
the offline table stands in only while the online store has none."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from augur.config import Settings
from augur.features.correlations import (
    CorrelationMatrix,
    SqliteCorrelationStore,
    keep_correlations,
)
from augur.serving import _bootstrap
from augur.serving._correlations import LiveCorrelations

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _matrix(corr: float, hour: int = 0) -> CorrelationMatrix:
    return CorrelationMatrix({("AAA", "BBB"): corr}, as_of=T0.replace(hour=hour))


class _Online:
    """An online store whose matrix the test sets, and which it can take down."""

    def __init__(self, matrix: CorrelationMatrix | None = None) -> None:
        self.matrix = matrix
        self.down = False

    def read(self) -> CorrelationMatrix | None:
        if self.down:
            raise ConnectionError("redis is down")
        return self.matrix


def test_the_online_matrix_is_read_at_start_and_a_newer_one_on_refresh() -> None:
    online = _Online(_matrix(0.9))
    live = LiveCorrelations(online.read, interval=0.05).start()
    try:
        assert live.among("AAA", ["BBB"]) == {("AAA", "BBB"): 0.9}
        online.matrix = _matrix(0.1, hour=1)
        deadline = time.monotonic() + 5
        while live.among("AAA", ["BBB"])[("AAA", "BBB")] != 0.1:
            assert time.monotonic() < deadline, "the refresh never picked up the new matrix"
            time.sleep(0.02)
    finally:
        live.stop()


def test_an_unreachable_store_keeps_the_last_matrix_and_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    online = _Online(_matrix(0.9))
    live = LiveCorrelations(online.read, interval=3600)
    live.refresh()
    online.down = True
    with caplog.at_level(logging.WARNING, logger="augur.serving._correlations"):
        assert live.refresh() is False
    assert live.among("BBB", ["AAA"]) == {("BBB", "AAA"): 0.9}
    assert "cannot be read" in caplog.text and "redis is down" in caplog.text
    online.down, online.matrix = False, _matrix(0.2, hour=2)
    assert live.refresh() and live.among("AAA", ["BBB"]) == {("AAA", "BBB"): 0.2}


def test_the_offline_table_stands_in_only_while_the_online_store_has_none() -> None:
    online = _Online(None)
    reads: list[int] = []

    def offline() -> CorrelationMatrix:
        reads.append(1)
        return _matrix(0.5)

    live = LiveCorrelations(online.read, offline, interval=3600)
    live.refresh()
    live.refresh()
    assert live.among("AAA", ["BBB"]) == {("AAA", "BBB"): 0.5} and len(reads) == 1
    online.matrix = _matrix(0.95, hour=3)
    live.refresh()
    assert live.among("AAA", ["BBB"]) == {("AAA", "BBB"): 0.95}
    online.matrix = None  # the online one, once read, is kept
    live.refresh()
    assert live.among("AAA", ["BBB"]) == {("AAA", "BBB"): 0.95} and len(reads) == 1


def test_the_service_reads_the_matrix_the_pipeline_kept_without_an_offline_table(
    tmp_path: Path,
) -> None:
    """Wired from settings (SQLite here): no offline parquet under the home, the matrix
    in the online store's file is what ``among`` answers from."""
    from augur.features.store import offline_features_path, sqlite_online_path

    settings = Settings(home=tmp_path, correlation_refresh_seconds=3600)
    assert not offline_features_path(settings).exists()
    rng = np.random.default_rng(0)
    common = rng.normal(size=100)
    times = pd.date_range("2024-01-01", periods=100, freq="h", tz="UTC")
    frame = pd.concat(
        [
            pd.DataFrame(
                {"timestamp": times, "symbol": s, "ret_1": common + 0.1 * rng.normal(size=100)}
            )
            for s in ("AAA", "BBB")
        ],
        ignore_index=True,
    )
    keep_correlations(SqliteCorrelationStore(sqlite_online_path(settings)), frame, 100, 30)
    live = _bootstrap._correlations(settings)
    try:
        assert live.among("AAA", ["BBB"])[("AAA", "BBB")] > 0.9
    finally:
        live.stop()
    assert _bootstrap._correlations(settings.model_copy(update={"correlation_window": 0})) is None
