"""The short chaos scenarios ``make test`` runs (``make chaos`` runs them all at full
length): a 20-second soak and Redis SIGKILLed under load, against a real ``augur serve``
(two workers), Redis and PostgreSQL of their own. A failure lists what broke."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos._scenarios import SHORT, redis_kill, soak
from tests.chaos._stack import Stack, running_stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("chaos")) as running:
        yield running


def test_soak_holds_a_fixed_rate_without_errors_or_leaks(stack: Stack, tmp_path: Path) -> None:
    result = soak(stack, SHORT, tmp_path)
    assert result.passed, "\n".join(result.failed + result.notes)


def test_redis_killed_under_load_is_503_then_recovers(stack: Stack, tmp_path: Path) -> None:
    result = redis_kill(stack, SHORT, tmp_path)
    assert result.passed, "\n".join(result.failed + result.notes)
