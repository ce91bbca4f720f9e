"""What the versions, accounts and weights HTTP tests share: a home with one symbol's
sample bars materialized into Redis and a tiny ensemble trained on them, and ``augur
serve`` started on it (and stopped, failing the test if a process outlives the stop)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
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
    _write_json,
    serve_env,
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


@dataclass
class Served:
    """A running service: its URL, its settings and the one version it serves."""

    url: str
    settings: Settings
    tag: str


@contextlib.contextmanager
def one_version_served(home: Path, redis_url: str, symbol: str, n_bars: int) -> Iterator[Served]:
    """:func:`one_symbol_home`, its ensemble saved as a version with the default decision
    thresholds (the version's own: no overrides), served by two workers."""
    from augur.decision import DecisionConfig
    from augur.models import save_version

    settings, ensemble = one_symbol_home(home, redis_url, symbol, n_bars)
    tag = save_version(ensemble, DecisionConfig(), store_dir=home / "bentoml").tag
    routes = home / "routes.json"
    _write_json(routes, {"versions": [{"name": "only", "model_tag": tag, "weight": 100.0}]})
    env = serve_env(settings, routes, AUGUR_SERVING_WORKERS="2")
    env.pop("AUGUR_DECISION_OVERRIDES", None)
    with augur_serving(env, home / "server.log") as url:
        yield Served(url, settings, tag)


@contextlib.contextmanager
def client_of(served: Served, headers: dict[str, str]) -> Iterator[Any]:
    """An HTTP client of ``served`` that opens a new connection per request: the two
    workers share the port, so both answer."""
    import httpx

    with httpx.Client(
        base_url=served.url,
        headers=headers,
        timeout=60,
        limits=httpx.Limits(max_keepalive_connections=0),
    ) as c:
        yield c
