"""A replay on the feed clock: ``augur serve`` with ``AUGUR_CLOCK=feed`` decides on old
sample bars as they arrive, the features' time following the replay."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from tests.conftest import RedisServer
from tests.integration._one_symbol import augur_serving, one_symbol_home
from tests.integration.test_service_http import AUTH, _populate, serve_env

pytestmark = pytest.mark.integration

SYMBOL = "EURUSD"
HELD_BACK = 5  # the last bars of the sample, replayed
REDIS_DB = 22  # a database of its own on the session's Redis


def _settled(client: Any, stream: str) -> bool:
    last = client.xinfo_stream(stream)["last-generated-id"]
    groups = client.xinfo_groups(stream)
    return bool(groups) and all(
        g["last-delivered-id"] == last and g["pending"] == 0 for g in groups
    )


def test_a_service_on_the_feed_clock_decides_on_a_replay_as_it_arrives(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    from augur.data import read_bars, write_bars
    from augur.decision import DecisionConfig
    from augur.models import save_version
    from augur.stream import BarConsumer, StreamKeys, redis_client, replay

    url = f"{redis_server.url},db={REDIS_DB}"
    client = redis_client(url)
    client.flushdb()
    home = tmp_path / "home"
    settings, ensemble = one_symbol_home(home, url, SYMBOL, 400)
    # the service starts with the history up to the replay: its last bars held back
    bars = read_bars([SYMBOL], settings.bars_dir)
    held = bars.tail(HELD_BACK).reset_index(drop=True)
    write_bars(bars.iloc[:-HELD_BACK], settings.bars_dir)
    client.flushdb()
    _populate(settings)
    tag = save_version(ensemble, DecisionConfig(), store_dir=home / "bentoml").tag
    routes = home / "routes.json"
    routes.write_text(
        json.dumps({"versions": [{"name": "only", "model_tag": tag, "weight": 100.0}]})
    )
    env = serve_env(
        settings,
        routes,
        AUGUR_CLOCK="feed",
        AUGUR_MAX_FEATURE_AGE_SECONDS=str(2 * 3600),  # two hourly bars
    )
    env.pop("AUGUR_DECISION_OVERRIDES", None)

    consumer = BarConsumer.from_settings(
        settings.model_copy(update={"stream_block_ms": 50, "stream_metrics_port": 0}), "replay"
    )
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    seen: list[dict[str, Any]] = []
    with (
        augur_serving(env, home / "server.log") as base,
        httpx.Client(base_url=base, headers=AUTH, timeout=30) as http,
    ):

        def decide() -> dict[str, Any]:
            r = http.post("/decide", json={"symbol": SYMBOL})
            assert r.status_code == 200, r.text
            return dict(r.json())

        # before the feed has a time, the system clock says the 2017 features are stale
        assert [r["code"] for r in decide()["reasons"]] == ["stale_features"]
        thread.start()

        def after_each(ts: pd.Timestamp, _sent: int) -> None:
            deadline = time.monotonic() + 30
            while not _settled(client, settings.stream_key):
                assert time.monotonic() < deadline, "the consumer did not apply the bar"
                time.sleep(0.02)
            seen.append({"bar": ts, **decide()})

        keys = StreamKeys.from_settings(settings)
        assert replay(client, keys, held, speed=36_000, on_step=after_each) == HELD_BACK
    stop.set()
    thread.join(30)

    assert [pd.Timestamp(d["feature_timestamp"]) for d in seen] == list(held["timestamp"])
    for d in seen:
        codes = [r["code"] for r in d["reasons"]]
        assert "stale_features" not in codes and "features_after_as_of" not in codes, d
        assert d["action"] in ("no_action", "enter_long", "enter_short", "risk_rejected"), d
