"""Each served version decides with its own thresholds, over real HTTP: a real ``augur
serve`` process, a real Redis online store, and two versions of one tiny ensemble saved
to a real BentoML model store, one with a stricter confidence gate than the default.

A request key routed to each version asks about the same bar: its confidence lies
between the two gates, so one version enters and the other refuses. The entered size is
scaled by the version's volatility reference, as the backtest scales it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import numpy as np
import pandas as pd
import pytest

from augur.config import Settings
from augur.decision import DecisionConfig
from tests.conftest import RedisServer
from tests.integration._one_symbol import augur_serving, one_symbol_home
from tests.integration.test_service_http import (
    AUTH,
    _write_json,
    serve_env,
)

pytestmark = pytest.mark.integration

REDIS_DB = 8  # a database of its own on the session's Redis
# One symbol, 400 daily bars: the tiny ensemble's confidence on the last bar (~0.40) lies
# between the default gate and STRICT, and its Kelly size is positive.
SYMBOL = "AAPL"
N_BARS = 400
STRICT = 0.6


@dataclass
class Versions:
    url: str
    settings: Settings
    default_tag: str
    strict_tag: str
    keys: dict[str, str]  # model tag -> a routing key the table sends to it


@pytest.fixture(scope="module")
def versions(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Versions]:
    from augur.models import save_version
    from augur.serving import Router, RoutingTable

    home = tmp_path_factory.mktemp("versions-home")
    settings, ensemble = one_symbol_home(home, f"{redis_server.url},db={REDIS_DB}", SYMBOL, N_BARS)
    store_dir = home / "bentoml"
    default_tag = save_version(ensemble, DecisionConfig(), store_dir=store_dir).tag
    strict = DecisionConfig(confidence_threshold=STRICT)
    strict_tag = save_version(ensemble, strict, store_dir=store_dir).tag
    table = {
        "versions": [
            {"name": "default", "model_tag": default_tag, "weight": 50.0},
            {"name": "strict", "model_tag": strict_tag, "weight": 50.0},
        ]
    }
    router = Router(RoutingTable.model_validate(table))
    keys: dict[str, str] = {}
    for key in (f"client-{i}" for i in range(100)):
        keys.setdefault(router.pick(key)[0].model_tag, key)
    assert set(keys) == {default_tag, strict_tag}
    routes = home / "routes.json"
    _write_json(routes, table)
    env = serve_env(settings, routes)
    env.pop("AUGUR_DECISION_OVERRIDES", None)  # each version's own thresholds, nothing on top
    with augur_serving(env, home / "server.log") as url:
        yield Versions(url, settings, default_tag, strict_tag, keys)


@pytest.fixture(scope="module")
def client(versions: Versions) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=versions.url, headers=AUTH, timeout=30) as c:
        yield c


def test_each_version_decides_with_its_own_confidence_gate(
    versions: Versions, client: httpx.Client
) -> None:
    from augur.decision import MarketContext, PositionContext, RiskState, decide
    from augur.features.store import OnlineFeatures
    from augur.models import load_version

    got = {}
    for tag, key in versions.keys.items():
        r = client.post("/decide", json={"symbol": SYMBOL, "routing_key": key})
        assert r.status_code == 200, r.text
        got[tag] = r.json()
        assert got[tag]["model_version"] == tag
    entered, refused = got[versions.default_tag], got[versions.strict_tag]
    # the same bar and the same ensemble: the same confidence, between the two gates
    assert entered["confidence"] == pytest.approx(refused["confidence"], rel=1e-12)
    assert DecisionConfig().confidence_threshold < entered["confidence"] < STRICT
    assert entered["action"] in ("enter_long", "enter_short"), entered
    assert refused["action"] == "no_action" and refused["size"] == 0.0
    assert [r["code"] for r in refused["reasons"]] == ["confidence_below_threshold"]

    # The entered size is the engine's with the version's volatility reference.
    version = load_version(versions.default_tag, store_dir=versions.settings.home / "bentoml")
    online = OnlineFeatures(versions.settings)
    names = list(online.spec.names)
    vec, ts = online.get([SYMBOL])[SYMBOL]
    x = np.array([vec[names.index(n)] for n in version.ensemble.feature_names])
    vol, trend = vec[names.index("vol_20")], vec[names.index("eff_ratio_20")]
    signal = version.ensemble.predict_one(
        x, volatility=vol, trend_strength=trend, explain=False
    ).to_signal(versions.default_tag)
    assert version.volatility_ref is not None and version.volatility_ref != vol
    expected = decide(
        signal,
        PositionContext(),
        RiskState(),
        MarketContext(
            symbol=SYMBOL,
            price=0.0,
            timestamp=ts,
            volatility=vol,
            volatility_ref=version.volatility_ref,
            trend_strength=trend,
        ),
        version.decision,
        "expected",
    )
    assert entered["action"] == expected.action.value
    assert entered["size"] == pytest.approx(expected.size, rel=1e-9)
    assert "volatility_scaling" in [r["code"] for r in entered["reasons"]]
    assert pd.Timestamp(entered["feature_timestamp"]) == pd.Timestamp(ts)


def test_models_shows_each_versions_thresholds(versions: Versions, client: httpx.Client) -> None:
    body = client.get("/models").json()
    shown = {
        v["model_tag"]: (v["loaded"], v["decision_config"]["confidence_threshold"])
        for v in body["versions"]
    }
    assert shown == {
        versions.default_tag: (True, DecisionConfig().confidence_threshold),
        versions.strict_tag: (True, STRICT),
    }
