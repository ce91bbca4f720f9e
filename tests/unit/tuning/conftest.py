"""Fixtures for the tuning tests: small bars with a learnable signal in a real bars dataset."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.tuning.helpers import trending_bars


@pytest.fixture(scope="session")
def bars_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from augur.data import write_bars

    root = tmp_path_factory.mktemp("tuning-bars")
    write_bars(trending_bars(), root)
    return root
