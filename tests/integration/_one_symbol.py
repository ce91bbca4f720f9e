"""What the versions and accounts HTTP tests share: a home with one symbol's sample bars
materialized into Redis and a tiny ensemble trained on them, and ``augur serve`` started
on it (and stopped, failing the test if a process outlives the stop)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from augur.config import Settings
from tests.integration.test_service_http import (
    ROOT,
    TINY,
    _populate,
    _stop,
    _tree,
    start_serving,
    wait_ready,
)


def one_symbol_home(home: Path, redis_url: str, symbol: str, n_bars: int) -> tuple[Settings, Any]:
    """Settings for ``home`` (Redis online store at ``redis_url``), the symbol's last
    ``n_bars`` sample bars materialized, and a tiny ensemble trained on them."""
    from augur.data import load_sample, write_bars
    from augur.models import EnsembleParams
    from augur.models._train import train_on_bars

    settings = Settings(
        home=home, feature_repo=ROOT / "feature_repo", online_store="redis", redis_url=redis_url
    )
    bars = load_sample([symbol])[symbol].tail(n_bars).reset_index(drop=True)
    write_bars(bars, settings.bars_dir)
    _populate(settings)
    return settings, train_on_bars(bars, params=EnsembleParams(**TINY), settings=settings).ensemble


@contextlib.contextmanager
def augur_serving(env: dict[str, str], log: Path) -> Iterator[str]:
    """``augur serve`` with ``env``, ready; yields its URL."""
    proc, url = start_serving(env, log)
    started: list[Any] = []
    left: list[str] = []
    try:
        wait_ready(proc, url, log)
        started = _tree(proc)
        yield url
    finally:
        left = _stop(proc, started)
    if left:
        pytest.fail(f"processes outlived the server's stop (killed): {left}")
