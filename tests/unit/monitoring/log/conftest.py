"""Shared by the prediction log's tests: a valid record, the log on each backend, and a
wait for a condition."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from augur.monitoring.log import PredictionLog, PredictionRecord


def record(
    request_id: str, role: str = "primary", version: str = "v1", **kw: object
) -> PredictionRecord:
    """A valid record; ``kw`` replaces any field."""
    base: dict[str, object] = dict(
        request_id=request_id,
        symbol="AAA",
        model_version=version,
        role=role,
        action="enter_long",
        p_up=0.6,
        p_down=0.25,
        p_flat=0.15,
        confidence=0.4,
        agreement=0.75,
        size=0.05,
        direction=1,
        latency_ms=1.5,
    )
    base.update(kw)
    return PredictionRecord(**base)  # type: ignore[arg-type]


def until(condition: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    """Wait for ``condition`` (polled), failing the test with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.005)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The log's URL on each backend: a SQLite file, and an empty database on a real
    PostgreSQL server (tests/conftest.py starts a throwaway one)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'log.db'}"
    return str(request.getfixturevalue("postgres_db"))


@pytest.fixture
def log(url: str) -> Iterator[PredictionLog]:
    plog = PredictionLog(url)
    yield plog
    plog.close()
