"""Correlated symbols share one exposure cap in a cluster-like service, over real HTTP: a
real ``augur serve`` (two workers) reading features from a real Redis, and NO offline
feature table under its home, as in a serving pod.

``augur features materialize`` wrote the return correlation matrix into Redis next to the
features. Three symbols whose last bars look alike to the model (the tiny ensemble enters
on each): AAPL; TWIN, whose returns are AAPL's plus a little noise; SOLO, whose returns
are AAPL's plus much more noise except over the bars the features look at. An account
that holds AAPL up to its symbol cap is refused TWIN by the correlated-exposure cap,
and enters SOLO as if it held nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from augur.config import Settings
from tests.conftest import RedisServer
from tests.integration._one_symbol import augur_serving
from tests.integration.test_service_http import (
    AUTH,
    ROOT,
    TINY,
    _populate,
    _write_json,
    serve_env,
)

pytestmark = pytest.mark.integration

REDIS_DB = 13  # a database of its own on the session's Redis
N_BARS = 400
SAME_TAIL = 60  # bars at the end where all three move alike (beyond the features' lookback)
# Caps a little above one entry of the tiny ensemble (~0.003), so two entries fill
# AAPL; the correlated cap equal to the symbol cap, so an account full in AAPL has no
# room left in TWIN.
CAP = 0.005
OVERRIDES = {"max_correlated_exposure": CAP, "max_symbol_exposure": CAP}


def _moved(bars: pd.DataFrame, symbol: str, noise_sd: float, seed: int) -> pd.DataFrame:
    """``bars`` with ``noise_sd`` of extra 1-bar log return, none over the last
    ``SAME_TAIL`` bars (so the model sees the same last row)."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, noise_sd, len(bars))
    noise[-SAME_TAIL:] = 0.0
    factor = np.exp(np.cumsum(noise))
    out = bars.copy()
    for col in ("open", "high", "low", "close"):
        out[col] = bars[col].to_numpy() * factor
    out["symbol"] = symbol
    return out


@dataclass
class Served:
    url: str
    settings: Settings


@pytest.fixture(scope="module")
def served(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from augur.data import load_sample, write_bars
    from augur.decision import DecisionConfig
    from augur.features.store import offline_features_path
    from augur.models import EnsembleParams, save_version
    from augur.models._train import train_on_bars

    home = tmp_path_factory.mktemp("correlations-home")
    settings = Settings(
        home=home,
        feature_repo=ROOT / "feature_repo",
        online_store="redis",
        redis_url=f"{redis_server.url},db={REDIS_DB}",
        correlation_window=N_BARS,
    )
    aapl = load_sample(["AAPL"])["AAPL"].tail(N_BARS).reset_index(drop=True)
    sd = float(np.log(aapl["close"]).diff().std())
    bars = pd.concat(
        [aapl, _moved(aapl, "TWIN", 0.1 * sd, 1), _moved(aapl, "SOLO", 4.0 * sd, 2)],
        ignore_index=True,
    )
    write_bars(bars, settings.bars_dir)
    _populate(settings)  # build, apply, materialize: features and correlations in Redis
    offline_features_path(settings).unlink()  # a serving pod has no offline table
    ensemble = train_on_bars(aapl, params=EnsembleParams(**TINY), settings=settings).ensemble
    tag = save_version(ensemble, DecisionConfig(), store_dir=home / "bentoml").tag
    routes = home / "routes.json"
    _write_json(routes, {"versions": [{"name": "only", "model_tag": tag, "weight": 100.0}]})
    env = serve_env(
        settings,
        routes,
        AUGUR_SERVING_WORKERS="2",
        AUGUR_DECISION_OVERRIDES=json.dumps(OVERRIDES),
    )
    with augur_serving(env, home / "server.log") as url:
        yield Served(url, settings)


@pytest.fixture(scope="module")
def client(served: Served) -> Iterator[httpx.Client]:
    # A new connection per request: the two workers share the port, so both answer.
    with httpx.Client(
        base_url=served.url,
        headers=AUTH,
        timeout=60,
        limits=httpx.Limits(max_keepalive_connections=0),
    ) as c:
        yield c


def _codes(decision: dict[str, Any]) -> list[str]:
    return [r["code"] for r in decision["reasons"]]


def test_the_pipeline_kept_the_matrix_in_redis(served: Served) -> None:
    from augur.features.correlations import RedisCorrelationStore, read_correlations
    from augur.serving._accounts import redis_client

    client = redis_client(served.settings.redis_url)
    matrix = read_correlations(RedisCorrelationStore(client))
    client.close()
    assert matrix is not None and matrix.window == N_BARS
    assert matrix.among("AAPL", ["TWIN"])[("AAPL", "TWIN")] > 0.95
    assert abs(matrix.among("AAPL", ["SOLO"])[("AAPL", "SOLO")]) < 0.5


def test_a_correlated_symbol_shares_the_cap_and_an_uncorrelated_one_does_not(
    client: httpx.Client,
) -> None:
    plain = {s: client.post("/decide", json={"symbol": s}).json() for s in ("TWIN", "SOLO")}
    for symbol, decision in plain.items():  # without an account both enter, under the cap
        assert decision["action"] in ("enter_long", "enter_short"), (symbol, decision)
        assert 0 < decision["size"] < CAP, (symbol, decision)

    account = f"desk-{uuid.uuid4().hex[:8]}"
    held = 0.0
    for _ in range(10):  # fill AAPL up to its symbol cap
        r = client.post("/decide", json={"symbol": "AAPL", "account_id": account})
        assert r.status_code == 200, r.text
        decision = r.json()
        if decision["action"] not in ("enter_long", "enter_short"):
            break
        held += decision["size"]
    assert held == pytest.approx(CAP), decision

    twin = client.post("/decide", json={"symbol": "TWIN", "account_id": account}).json()
    assert twin["action"] == "risk_rejected", twin
    assert "correlated_exposure" in _codes(twin), twin

    solo = client.post("/decide", json={"symbol": "SOLO", "account_id": account}).json()
    assert solo["action"] == plain["SOLO"]["action"], solo
    assert solo["size"] == pytest.approx(plain["SOLO"]["size"]), solo
