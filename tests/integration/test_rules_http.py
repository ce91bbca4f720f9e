"""A service given a decision-rule set applies it and reports its version, over real
HTTP: a real ``augur serve`` (two workers), a real Redis online store and one tiny
ensemble whose last bar it enters (as in test_versions_http).

The rule set halves the entry when the bar's regime is known (a KPI the service reads
from the online feature row) and skips it otherwise, so the answer shows both that the
rules ran and that they saw the regime.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from augur.config import Settings
from augur.decision import DecisionConfig
from tests.conftest import RedisServer
from tests.integration._one_symbol import augur_serving, one_symbol_home
from tests.integration.test_service_http import AUTH, _write_json, serve_env

pytestmark = pytest.mark.integration

REDIS_DB = 12  # a database of its own on the session's Redis
SYMBOL = "AAPL"
N_BARS = 400
RULES = """\
name: halve-known-regimes
version: 2
parent: halve-known-regimes@1
created_by: human
rules: |
  if regime >= ranging_calm: size = kelly / 2
  else: act = false
"""


@dataclass
class Ruled:
    url: str
    settings: Settings
    tag: str
    rules_file: str


@pytest.fixture(scope="module")
def ruled(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ruled]:
    from augur.models import save_version

    home = tmp_path_factory.mktemp("rules-home")
    settings, ensemble = one_symbol_home(home, f"{redis_server.url},db={REDIS_DB}", SYMBOL, N_BARS)
    tag = save_version(ensemble, DecisionConfig(), store_dir=home / "bentoml").tag
    routes = home / "routes.json"
    _write_json(routes, {"versions": [{"name": "only", "model_tag": tag, "weight": 100.0}]})
    rules_file = home / "rules.yaml"
    rules_file.write_text(RULES)
    env = serve_env(settings, routes, AUGUR_RULE_SET_FILE=str(rules_file))
    env.pop("AUGUR_DECISION_OVERRIDES", None)
    with augur_serving(env, home / "server.log") as url:
        yield Ruled(url, settings, tag, str(rules_file))


def test_the_service_applies_the_rule_set_and_names_it(ruled: Ruled) -> None:
    from augur.decision import MarketContext, PositionContext, RiskState, decide
    from augur.features.store import OnlineFeatures
    from augur.models import load_version
    from augur.rules import load_rule_set

    with httpx.Client(base_url=ruled.url, headers=AUTH, timeout=30) as client:
        r = client.post("/decide", json={"symbol": SYMBOL})
        assert r.status_code == 200, r.text
        got = r.json()
        models = client.get("/models").json()
    assert got["rule_set"] == "halve-known-regimes@2"
    assert models["rule_set"] == "halve-known-regimes@2"

    version = load_version(ruled.tag, store_dir=ruled.settings.home / "bentoml")
    online = OnlineFeatures(ruled.settings)
    names = list(online.spec.names)
    vec, ts = online.get([SYMBOL])[SYMBOL]
    x = np.array([vec[names.index(n)] for n in version.ensemble.feature_names])
    vol, trend = vec[names.index("vol_20")], vec[names.index("eff_ratio_20")]
    regime = int(vec[names.index("regime")])
    signal = version.ensemble.predict_one(
        x, volatility=vol, trend_strength=trend, explain=False
    ).to_signal(ruled.tag)
    market = MarketContext(
        symbol=SYMBOL,
        price=0.0,
        timestamp=ts,
        volatility=vol,
        volatility_ref=version.volatility_ref,
        trend_strength=trend,
        regime=regime,
    )
    args = (signal, PositionContext(), RiskState(), market, version.decision)
    plain = decide(*args)
    assert plain.action.value in ("enter_long", "enter_short"), plain
    program = load_rule_set(ruled.rules_file).program()
    expected = decide(*args, rules=program)
    assert got["action"] == plain.action.value
    assert got["size"] == pytest.approx(plain.size / 2, rel=1e-9)
    assert got["size"] == pytest.approx(expected.size, rel=1e-12)
    assert [r["code"] for r in got["reasons"]][-1] == "rule_sized"


def test_a_bad_rule_file_stops_augur_serve_before_it_starts(tmp_path) -> None:
    bad = tmp_path / "bad.rules"
    bad.write_text("if confidence > 0.5:\n    size = __import__('os').getpid()\n")
    out = subprocess.run(
        [str(Path(sys.executable).parent / "augur"), "serve", "--rules", str(bad), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "400"},
    )
    assert out.returncode == 2
    assert f"{bad}:2:12: a call: '__import__(…)'" in out.stderr, out.stderr
