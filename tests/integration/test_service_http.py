"""The decision service over real HTTP: a real ``augur serve`` (``bentoml serve``) process,
a real Redis online store, models trained and saved to a real BentoML model store.

One server (module scope) serves every test: canary 30% + shadow 100% from a routing
table file, a bearer token, one worker. Tests that change shared state (the routing table,
Redis) restore it and run last.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from augur.config import Settings
from tests.conftest import RedisServer, free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BENTO_DIR = ROOT / "bentos" / "decision"
TOKEN = "integration-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
REDIS_DB = 7  # a database of its own on the session's Redis
SYMBOLS = ("EURUSD", "AAPL")
# The sample bars are history (2017–2020): the staleness limit is set wide so requests
# without as_of are fresh, and a far-future as_of makes them stale.
MAX_AGE = 60 * 365 * 86400.0
TINY = {
    "rf_n_estimators": 10,
    "xgb_n_estimators": 10,
    "quantile_n_estimators": 10,
    "svm_max_samples": 300,
    "calibration_folds": 2,
    "n_jobs": 1,
}


@dataclass
class Served:
    url: str
    settings: Settings
    tags: list[str]
    routes: Path
    log: Path
    redis: RedisServer
    proc: subprocess.Popen[bytes]
    # Every process under ``augur serve`` once it was ready (bentoml serve, its worker,
    # the shadow process, ...): none of them may outlive a stop.
    tree: list[Any]
    stop_checked: bool = False  # the stop test has asserted the tree gone


def _routes(tags: list[str], canary: float = 30.0, shadow: float = 100.0) -> dict[str, Any]:
    return {
        "versions": [
            {"name": "stable", "model_tag": tags[0], "weight": 100.0 - canary},
            {"name": "canary", "model_tag": tags[1], "weight": canary},
        ],
        "shadow": {"name": "next", "model_tag": tags[2], "percent": shadow},
    }


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _populate(settings: Settings) -> None:
    from augur.features import store as fs

    fs.build_offline_features(settings)
    fs.apply(settings)
    fs.materialize(settings)


@pytest.fixture(scope="module")
def served(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from augur.data import load_sample, write_bars
    from augur.models import EnsembleParams, save_ensemble
    from augur.models._train import train_on_bars

    home = tmp_path_factory.mktemp("serving-home")
    settings = Settings(
        home=home,
        feature_repo=ROOT / "feature_repo",
        online_store="redis",
        redis_url=f"{redis_server.url},db={REDIS_DB}",
    )
    sample = load_sample(list(SYMBOLS))
    bars = pd.concat([df.tail(500) for df in sample.values()], ignore_index=True)
    write_bars(bars, settings.bars_dir)
    _populate(settings)
    store_dir = home / "bentoml"
    # Three versions (stable, canary, shadow): one tiny fit saved three times keeps the
    # fixture fast; routing and logging only care about the tags.
    result = train_on_bars(bars, params=EnsembleParams(**TINY), settings=settings)
    tags = [save_ensemble(result.ensemble, "augur-ensemble", store_dir=store_dir) for _ in range(3)]
    routes = home / "routes.json"
    _write_json(routes, _routes(tags))
    env = serve_env(
        settings, routes, AUGUR_ROUTING_RELOAD_SECONDS="0.2", AUGUR_MAX_BODY_BYTES="8192"
    )
    log = home / "server.log"
    proc, url = start_serving(env, log)
    started: list[Any] = []
    try:
        wait_ready(proc, url, log)
        started = _tree(proc)  # the stop test stops it: its tree is known from here on
        served = Served(url, settings, tags, routes, log, redis_server, proc, started)
        yield served
    finally:
        left = _stop(proc, started)
    # A stop that left processes behind fails here too when no test stopped the server
    # (the stop test names them itself).
    if left and not served.stop_checked:
        pytest.fail(f"processes outlived the server's stop (killed): {left}")


def serve_env(settings: Settings, routes: Path, **extra: str) -> dict[str, str]:
    """``augur serve``'s environment for a test home with Redis features and a table."""
    return {
        **os.environ,
        "AUGUR_HOME": str(settings.home),
        "BENTOML_HOME": str(settings.home / "bentoml"),
        "AUGUR_FEATURE_REPO": str(settings.feature_repo),
        "AUGUR_ONLINE_STORE": "redis",
        "AUGUR_REDIS_URL": settings.redis_url,
        "AUGUR_ROUTING_TABLE": str(routes),
        "AUGUR_SERVING_TOKEN": TOKEN,
        "AUGUR_SERVING_WORKERS": "1",
        "AUGUR_MAX_FEATURE_AGE_SECONDS": str(MAX_AGE),
        "BENTOML_DO_NOT_TRACK": "True",
        **extra,
    }


def start_serving(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``augur serve`` on a free port, output to ``log``; returns it and its URL."""
    port = free_port()
    augur = str(Path(sys.executable).parent / "augur")
    with log.open("wb") as fh, _sigint_not_ignored():
        proc = subprocess.Popen(
            [augur, "serve", "--port", str(port), "--host", "127.0.0.1"],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            # its own process group: teardown removes whatever of it outlives a failed stop
            start_new_session=True,
        )
    return proc, f"http://127.0.0.1:{port}"


def wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path, timeout: float = 240) -> None:
    """Until ``/readyz`` answers 200; fails the test with the log's tail if the service
    exits or is not ready in time."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            pytest.fail(f"the service exited ({proc.returncode}):\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"the service was not ready in {timeout:.0f} s:\n{log.read_text()[-4000:]}")
        time.sleep(0.5)


def _tree(proc: subprocess.Popen[bytes]) -> list[Any]:
    import psutil  # BentoML's own dependency

    try:
        return list(psutil.Process(proc.pid).children(recursive=True))
    except psutil.NoSuchProcess:
        return []


def _running(process: Any) -> bool:
    """Whether a process recorded earlier still runs: the same process (psutil compares
    its start time, so a reused pid is not it) and not a zombie (exited, unreaped)."""
    import psutil

    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _describe(process: Any) -> str:
    try:
        return f"{process.pid} {' '.join(process.cmdline())[:160]!r}"
    except Exception:  # gone meanwhile, or unreadable
        return str(process.pid)


def _survivors(tree: list[Any], timeout: float) -> list[Any]:
    """The processes of ``tree`` still running once ``timeout`` seconds passed (polled:
    returns as soon as none is left)."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [p for p in tree if _running(p)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


def _stop(proc: subprocess.Popen[bytes], started: list[Any] | None = None) -> list[str]:
    """Stop the server as Ctrl-C does, then kill whatever of its process tree is left
    (``bentoml serve``, its worker in a session of its own, the shadow process): a safety
    net, so that nothing outlives the module. Returns what it had to kill."""
    import psutil

    tree = list(started or [])
    tree += [p for p in _tree(proc) if p not in tree]  # and any started since
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    left = _survivors(tree, timeout=30)
    killed = [_describe(p) for p in left]
    for child in left:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()  # psutil checks it is still the same process, not a reused pid
    return killed


@contextlib.contextmanager
def _sigint_not_ignored() -> Iterator[None]:
    """A process started meanwhile does not inherit an ignored SIGINT.

    The stop test stops the server with SIGINT, as Ctrl-C does. A shell's background job
    (``make test &``) runs with SIGINT ignored; the ignore passes through ``exec`` to every
    child, and the server would never see the signal (the test then timed out). An
    installed handler does not pass through ``exec``: the child starts with the default."""
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.fixture(scope="module")
def client(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, headers=AUTH, timeout=30) as c:
        yield c


def _predictions(served: Served, request_id: str, want: int, timeout: float = 60.0) -> list[tuple]:
    """Rows of the prediction log for a request id (waits for the buffered writer)."""
    db = served.settings.home / "serving" / "predictions.db"
    deadline = time.monotonic() + timeout
    rows: list[tuple] = []
    while time.monotonic() < deadline:
        if db.exists():
            with sqlite3.connect(db) as conn:
                rows = conn.execute(
                    "SELECT role, model_version, action FROM predictions WHERE request_id = ?",
                    (request_id,),
                ).fetchall()
            if len(rows) >= want:
                return rows
        time.sleep(0.1)
    return rows


# --------------------------------------------------------------------------- decisions


def test_decisions_match_the_in_process_engine(served: Served, client: httpx.Client) -> None:
    from augur.decision import (
        DecisionConfig,
        MarketContext,
        PositionContext,
        RiskState,
        decide,
    )
    from augur.features.store import OnlineFeatures
    from augur.models import load_ensemble

    online = OnlineFeatures(served.settings)
    names = list(online.spec.names)
    rows = online.get(list(SYMBOLS))
    account = {"equity": 9_500.0, "peak_equity": 10_000.0, "consecutive_losses": 1}
    for symbol in SYMBOLS:
        vec, ts = rows[symbol]
        as_of = ts + timedelta(minutes=30)
        r = client.post(
            "/decide",
            json={"symbol": symbol, "as_of": as_of.isoformat(), "account": account},
            headers={"X-Request-ID": f"parity-{symbol}"},
        )
        assert r.status_code == 200, r.text
        got = r.json()
        assert r.headers["x-request-id"] == got["request_id"] == f"parity-{symbol}"
        assert pd.Timestamp(got["feature_timestamp"]) == pd.Timestamp(ts)
        tag = got["model_version"]
        assert tag in served.tags[:2]
        model = load_ensemble(tag, store_dir=served.settings.home / "bentoml")
        x = np.array([vec[names.index(n)] for n in model.feature_names])
        vol, trend = vec[names.index("vol_20")], vec[names.index("eff_ratio_20")]
        signal = model.predict_one(
            x, volatility=vol, trend_strength=trend, explain=False
        ).to_signal(tag)
        expected = decide(
            signal,
            PositionContext(),
            RiskState(equity=9_500.0, peak_equity=10_000.0, consecutive_losses=1),
            MarketContext(
                symbol=symbol,
                price=0.0,
                timestamp=ts,
                volatility=vol,
                volatility_ref=model.volatility_ref or 0.0,
                trend_strength=trend,
            ),
            DecisionConfig(),
            f"parity-{symbol}",
        ).to_dict()
        for key in ("action", "size", "direction", "model_version", "request_id"):
            assert got[key] == expected[key], key
        for key in ("probability", "confidence", "agreement"):
            assert got[key] == pytest.approx(expected[key], rel=1e-9, abs=1e-12), key
        assert got["reasons"] == expected["reasons"]


def test_the_documented_examples_work(client: httpx.Client) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("augur_bento_service", BENTO_DIR / "service.py")
    assert spec is not None and spec.loader is not None
    bento = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bento)
    doc = client.get("/openapi.json").json()
    media = doc["paths"]["/decide"]["post"]["requestBody"]["content"]["application/json"]
    assert media["example"] == bento.EXAMPLE_INPUT
    r = client.post("/decide", json=bento.EXAMPLE_INPUT)
    assert r.status_code == 200, r.text
    assert client.post("/decide_batch", json=bento.EXAMPLE_BATCH).status_code == 200


def test_stale_features_give_no_action(client: httpx.Client) -> None:
    r = client.post("/decide", json={"symbol": "EURUSD", "as_of": "2300-01-01T00:00:00Z"})
    assert r.status_code == 200
    assert r.json()["action"] == "no_action"
    assert [x["code"] for x in r.json()["reasons"]] == ["stale_features"]


def test_batch(client: httpx.Client) -> None:
    r = client.post("/decide_batch", json={"symbols": ["EURUSD", "AAPL", "NOSUCH"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [d["symbol"] for d in body["decisions"]] == ["EURUSD", "AAPL"]
    assert body["errors"][0]["symbol"] == "NOSUCH"


# ------------------------------------------------------------------------------ traffic


def test_canary_share_and_stickiness_over_http(served: Served, client: httpx.Client) -> None:
    n = 300
    seen: dict[str, str] = {}
    for i in range(n):
        r = client.post("/decide", json={"symbol": "EURUSD", "routing_key": f"client-{i}"})
        assert r.status_code == 200
        seen[f"client-{i}"] = r.json()["model_version"]
    canary = sum(v == served.tags[1] for v in seen.values())
    # Binomial(300, 0.3): mean 90, sd 7.9 — 4 sd either side.
    assert abs(canary - 0.3 * n) <= 4 * math.sqrt(n * 0.3 * 0.7), canary
    assert set(seen.values()) == set(served.tags[:2])  # the shadow never answers
    for key in list(seen)[:40]:
        r = client.post("/decide", json={"symbol": "AAPL", "routing_key": key})
        assert r.json()["model_version"] == seen[key]  # sticky per key, whatever the symbol


def _shadow_account(served: Served, client: httpx.Client) -> tuple[int, int, int, set[str]]:
    """(mirrored, scored, dropped, shadow versions): every request the service scored is
    mirrored (shadow 100 %) — its served row in the log; the shadow rows the shadow process
    logged, and their versions; the mirrored requests counted as dropped on /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    db = served.settings.home / "serving" / "predictions.db"
    with sqlite3.connect(db) as conn:
        mirrored = conn.execute("SELECT COUNT(*) FROM predictions WHERE role != 'shadow'")
        scored = conn.execute(
            "SELECT model_version, COUNT(*) FROM predictions WHERE role = 'shadow' "
            "GROUP BY model_version"
        ).fetchall()
        n_mirrored = mirrored.fetchone()[0]
    dropped = sum(
        sample.value
        for family in text_string_to_metric_families(client.get("/metrics").text)
        for sample in family.samples
        if sample.name == "augur_shadow_queue_dropped_total"
    )
    return n_mirrored, sum(n for _, n in scored), int(dropped), {v for v, _ in scored}


def test_every_mirrored_request_is_scored_by_the_shadow_or_counted_as_dropped(
    served: Served, client: httpx.Client
) -> None:
    """The shadow version never shows in an answer; each request the service scored is
    either scored by the shadow and logged under its request id as role 'shadow', or
    counted as dropped. The shadow process may still be working through the requests the
    tests before mirrored (hundreds; it scores at idle priority, on CPU the workers
    leave): the log is polled until every one is accounted for."""
    r = client.post("/decide", json={"symbol": "AAPL"}, headers={"X-Request-ID": "shadow-check-1"})
    assert r.status_code == 200
    assert served.tags[2] not in r.text, (served.tags, r.text)
    assert not {"shadow", "role"} & set(r.json()), r.text
    # The last request so far: once its served row is written, so is every earlier one.
    assert _predictions(served, "shadow-check-1", want=1, timeout=60.0)
    # The shadow scores at idle priority: other jobs saturating the machine hold it back,
    # by design. So it fails when nothing more was accounted for over 180 s, or when not
    # all is after 900 s.
    start = changed = time.monotonic()
    account = None
    while True:
        mirrored, scored, dropped, versions = _shadow_account(served, client)
        if scored + dropped >= mirrored:
            break
        now = time.monotonic()
        if (scored, dropped) != account:
            account, changed = (scored, dropped), now
        assert now - changed < 180 and now - start < 900, (
            f"of {mirrored} mirrored requests {scored} were scored and {dropped} dropped "
            f"after {now - start:.0f} s ({now - changed:.0f} s without a change)"
        )
        time.sleep(0.5)
    assert scored + dropped == mirrored, (mirrored, scored, dropped)
    assert scored > 0 and versions == {served.tags[2]}, (scored, versions)
    rows = _predictions(served, "shadow-check-1", want=2 if dropped == 0 else 1)
    roles = {role: version for role, version, _ in rows}
    assert set(roles) - {"shadow"} in ({"primary"}, {"canary"}), rows
    if dropped == 0:  # nothing was shed: this request's shadow row is there
        assert roles.get("shadow") == served.tags[2], rows
    metrics = client.get("/metrics").text
    assert "augur_shadow_comparisons_total" in metrics
    assert 'augur_request_latency_seconds_count{route="/decide"' in metrics
    assert "augur_decisions_total" in metrics


def _outcomes(served: Served) -> list[tuple]:
    """The outcomes table of the service's prediction log, joined to the predictions it
    names: (request_id, role, realized_return, caller) per prediction row."""
    db = served.settings.home / "serving" / "predictions.db"
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT o.request_id, p.role, o.realized_return, o.caller FROM outcomes o "
            "LEFT JOIN predictions p ON p.request_id = o.request_id "
            "ORDER BY o.request_id, p.role"
        ).fetchall()


def test_outcome_is_stored_against_its_request_and_an_unknown_id_is_404(
    served: Served, client: httpx.Client
) -> None:
    """The realized return posted for a request is read back from the log, joined to that
    request's served row (and to no other request); an unknown request id is 404 and
    stores nothing."""
    rid = client.post("/decide", json={"symbol": "EURUSD"}).json()["request_id"]
    other = client.post("/decide", json={"symbol": "AAPL"}).json()["request_id"]
    assert _predictions(served, rid, want=1) and _predictions(served, other, want=1)
    before = _outcomes(served)
    r = client.post("/outcome", json={"request_id": rid, "realized_return": 0.0031})
    assert r.status_code == 200 and r.json() == {"request_id": rid, "recorded": True}
    added = sorted(set(_outcomes(served)) - set(before))
    assert added, f"no outcome stored for {rid}"
    assert {(req, ret) for req, _, ret, _ in added} == {(rid, 0.0031)}, added
    served_roles = {role for _, role, _, _ in added} - {"shadow"}
    assert len(served_roles) == 1 and served_roles <= {"primary", "canary"}, added
    callers = {caller for *_, caller in added}
    assert len(callers) == 1 and callers.pop().endswith("@127.0.0.1"), added
    assert not [row for row in _outcomes(served) if row[0] == other]

    stored = _outcomes(served)
    r = client.post("/outcome", json={"request_id": "never-issued", "realized_return": 0.0})
    assert r.status_code == 404 and r.json()["error"] == "unknown_request_id"
    assert _outcomes(served) == stored  # nothing stored for it
    assert f"request_id={rid}" in served.log.read_text()  # audit line with the caller


def test_models_lists_the_table_and_loaded_versions(served: Served, client: httpx.Client) -> None:
    body = client.get("/models").json()
    assert [(v["role"], v["model_tag"], v["loaded"]) for v in body["versions"]] == [
        ("primary", served.tags[0], True),
        ("canary", served.tags[1], True),
        ("shadow", served.tags[2], True),
    ]
    assert body["source"] == str(served.routes)
    # Redis rows are cached while its invalidations are subscribed; predictions always.
    assert body["caches"]["features"]["enabled"] is True, body["caches"]
    assert body["caches"]["predictions"]["enabled"] is True
    # Plain requests on one row: the same answer with its own id.
    a, b = (client.post("/decide", json={"symbol": "EURUSD"}).json() for _ in range(2))
    assert a.pop("request_id") != b.pop("request_id") and a == b


def test_in_process_wiring_on_the_real_stores(
    served: Served, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """build_service with its real defaults (Feast reader, model store, log, drift, watcher)."""
    from augur.serving import DecideBatchRequest, DecideRequest, UnknownSymbolError, build_service

    monkeypatch.setenv("BENTOML_HOME", str(served.settings.home / "bentoml"))
    settings = served.settings.model_copy(
        update={
            "routing_table": served.routes,
            "prediction_log_url": f"sqlite:///{tmp_path / 'p.db'}",
            "serving_token": TOKEN,
            "max_feature_age_seconds": MAX_AGE,
        }
    )
    svc = build_service(settings)
    try:
        assert svc.ready() and svc.auth.enabled
        plog = svc.pipeline.log
        assert plog is not None and svc.app.metrics is not None
        # The shadow is a child process (at idle priority once its model is loaded).
        assert type(svc.pipeline.shadow).__name__ == "ShadowProcess"
        out = svc.pipeline.decide(DecideRequest(symbol="EURUSD"), "inproc-1")
        assert out.model_version in served.tags[:2]
        with pytest.raises(UnknownSymbolError):
            svc.pipeline.decide(DecideRequest(symbol="NOSUCH"), "inproc-2")
        batch = svc.pipeline.decide_batch(
            DecideBatchRequest(symbols=["EURUSD", "AAPL", "NOSUCH"]), "inproc-b"
        )
        assert len(batch.decisions) == 2 and batch.errors[0].symbol == "NOSUCH"
    finally:
        svc.close()
    # No routing table: everything to the latest version in the model store.
    embedded = build_service(
        settings.model_copy(update={"routing_table": None}), prediction_log=None, drift=None
    )
    try:
        assert embedded.pipeline.routing.table.versions[0].model_tag == served.tags[-1]
    finally:
        embedded.close()
    # `augur serve --canary … --shadow …` writes the table from tags in the store.
    from rich.console import Console

    from augur.cli.serving import _write_table
    from augur.serving import load_routing_table

    written = load_routing_table(
        _write_table(settings, None, served.tags[1], 20.0, served.tags[2], 50.0, Console())
    )
    assert [(v.model_tag, v.weight) for v in written.versions] == [
        (served.tags[-1], 80.0),
        (served.tags[1], 20.0),
    ]
    assert written.shadow is not None and written.shadow.percent == 50.0
    # A table naming a model that is not in the store fails at start, naming it.
    missing = tmp_path / "missing.json"
    _write_json(
        missing, {"versions": [{"name": "x", "model_tag": "augur-ensemble:nope", "weight": 100}]}
    )
    with pytest.raises(ValueError, match="augur-ensemble:nope"):
        build_service(settings.model_copy(update={"routing_table": missing}), drift=None)


# ---------------------------------------------------------------------- bad input, auth


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "symbol"),
        ({"symbol": "EURUSD", "position": {"side": "up"}}, "position.side"),
        ({"symbol": "EURUSD", "account": {"equity": 0}}, "account.equity"),
        ({"symbol": "EURUSD", "as_of": "yesterday"}, "as_of"),
        ({"symbol": "EURUSD", "extra": 1}, "extra"),
    ],
)
def test_malformed_body_is_422_naming_the_field(
    client: httpx.Client, body: dict, field: str
) -> None:
    r = client.post("/decide", json=body)
    assert r.status_code == 422
    assert field in r.json()["detail"] and "Traceback" not in r.text


def test_unknown_symbol_404_and_oversized_body_413(client: httpx.Client) -> None:
    r = client.post("/decide", json={"symbol": "NOSUCH"})
    assert r.status_code == 404 and "NOSUCH" in r.json()["detail"]
    r = client.post("/decide", content=json.dumps({"symbol": "EURUSD", "pad": "x" * 10_000}))
    assert r.status_code == 413 and "8192" in r.json()["detail"]
    r = client.post("/decide", content=b"\x00\xff not json")
    assert r.status_code == 422


def test_bearer_token_required_except_health(served: Served) -> None:
    with httpx.Client(base_url=served.url, timeout=10) as anon:
        for method, path in (
            ("POST", "/decide"),
            ("GET", "/models"),
            ("GET", "/metrics"),
            ("POST", "/outcome"),
        ):
            r = anon.request(method, path, json={"symbol": "EURUSD"})
            assert r.status_code == 401, path
        r = anon.post(
            "/decide", json={"symbol": "EURUSD"}, headers={"Authorization": "Bearer nope"}
        )
        assert r.status_code == 401
        for path in ("/healthz", "/livez", "/readyz"):
            assert anon.get(path).status_code == 200, path
    assert TOKEN not in served.log.read_text()


def test_openapi_schema_conformance(served: Served) -> None:
    """schemathesis: generated requests for every operation → no 5xx, answers match the schema."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.core.result import Err
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    schema = schemathesis.openapi.from_url(f"{served.url}/openapi.json", headers=AUTH)
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    failures = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):  # an operation schemathesis cannot read from the schema
            failures.append(f"unreadable operation in the schema: {result.err()}")
            continue
        operation = result.ok()

        @settings(
            max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            case.call_and_validate(base_url=served.url, headers=AUTH, checks=checks)

        try:
            check()
        except Exception as exc:  # collect, to report every operation at once
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n".join(failures)


# ------------------------------------------------- shared-state changes (run last)


def test_routing_table_hot_reload_and_invalid_table(served: Served, client: httpx.Client) -> None:
    try:
        _write_json(served.routes, _routes(served.tags, canary=100.0, shadow=0.0))
        deadline = time.monotonic() + 60
        while client.get("/models").json()["versions"][1]["weight"] != 100.0:
            assert time.monotonic() < deadline, "the new table was not picked up"
            time.sleep(0.1)
        versions = {
            client.post("/decide", json={"symbol": "EURUSD", "routing_key": f"k{i}"}).json()[
                "model_version"
            ]
            for i in range(30)
        }
        assert versions == {served.tags[1]}  # everything on the canary now, no restart

        bad = _routes(served.tags, canary=100.0)
        bad["versions"][0]["weight"] = 50.0  # sums to 150
        _write_json(served.routes, bad)
        deadline = time.monotonic() + 60
        while "routing table refused" not in served.log.read_text():
            assert time.monotonic() < deadline, "no log line for the invalid table"
            time.sleep(0.1)
        assert "sum to 100" in served.log.read_text()
        assert client.get("/models").json()["versions"][1]["weight"] == 100.0  # last good kept
    finally:
        _write_json(served.routes, _routes(served.tags))
        deadline = time.monotonic() + 60
        while client.get("/models").json()["versions"][1]["weight"] != 30.0:
            assert time.monotonic() < deadline
            time.sleep(0.1)


def test_redis_down_gives_503_then_recovers(served: Served, client: httpx.Client) -> None:
    served.redis.stop()
    try:
        r = client.post("/decide", json={"symbol": "EURUSD"})
        assert r.status_code == 503, r.text
        assert int(r.headers["retry-after"]) >= 1 and r.json()["error"] == "store_unavailable"
        assert "Traceback" not in r.text
        assert client.get("/healthz").status_code == 200  # the service stays up
    finally:
        served.redis.start()
    # Our Redis keeps nothing on disk: put the features back, as a feature job would.
    _populate(served.settings)
    deadline = time.monotonic() + 60
    while True:
        r = client.post("/decide", json={"symbol": "EURUSD"})
        if r.status_code == 200:
            break
        assert time.monotonic() < deadline, f"no recovery: {r.status_code} {r.text}"
        time.sleep(0.2)
    assert served.proc.poll() is None


def test_the_shadow_container_scores_mirrored_requests_and_stops_on_sigterm(
    served: Served, tmp_path: Path
) -> None:
    """``augur serve-shadow`` (the pod's shadow container) on the served stores: each
    mirrored request a worker sends is decided by the shadow version and logged under its
    request id with role 'shadow'; SIGTERM stops it after what it holds, exit code 0."""
    import numpy as np

    from augur.decision import MarketContext, PositionContext, RiskState
    from augur.features import FeatureSpec
    from augur.serving import Route, ShadowSocket, ShadowTask

    socket = tmp_path / "shadow.sock"
    db = tmp_path / "shadow.db"
    env = {
        **os.environ,
        "AUGUR_HOME": str(served.settings.home),
        "BENTOML_HOME": str(served.settings.home / "bentoml"),
        "AUGUR_PREDICTION_LOG_URL": f"sqlite:///{db}",
    }
    augur = str(Path(sys.executable).parent / "augur")
    metrics_port = free_port()
    proc = subprocess.Popen(
        [augur, "serve-shadow", "--socket", str(socket), "--metrics-port", str(metrics_port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not socket.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
            time.sleep(0.1)
        names = list(FeatureSpec.from_settings(served.settings).names)
        sender = ShadowSocket(socket)
        ids = [f"container-{i}" for i in range(5)]
        for rid in ids:
            task = ShadowTask(
                route=Route("next", served.tags[2], "shadow"),
                symbol="EURUSD",
                x=np.full(len(names), 0.01),
                ts=None,
                market=MarketContext(symbol="EURUSD", price=1.1, volatility=0.01),
                pos=PositionContext(),
                risk=RiskState(),
                routing_key="k",
                request_id=rid,
                primary_action="no_action",
                digest="d",
            )
            assert sender.offer(task)
            time.sleep(0.05)
        sender.stop()
        # Its own /metrics: every mirrored request compared with the primary's action.
        deadline = time.monotonic() + 30
        while True:
            text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
            compared = sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("augur_shadow_comparisons_total{")
            )
            if compared == len(ids) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert compared == len(ids), text
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert "stopped after scoring 5 mirrored requests" in out, out
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT request_id, role, model_version FROM predictions ORDER BY request_id"
        ).fetchall()
    assert rows == [(rid, "shadow", served.tags[2]) for rid in sorted(ids)]


def test_stopping_the_service_keeps_the_mirrored_requests_and_leaves_no_process(
    served: Served, client: httpx.Client
) -> None:
    """Requests mirrored just before a stop are scored, not lost, and every process of the
    service is gone afterwards. The stop goes the way a supervisor or Kubernetes stops
    it: SIGTERM to ``augur serve``, and BentoML's process manager sends its stop signal to
    every worker's children too — the shadow process among them, which then must still
    score its backlog, flush its log and exit. Runs last: the server is gone afterwards."""
    ids = [f"stop-{i}" for i in range(300)]
    for rid in ids:  # faster than the idle-priority shadow scores them: a backlog forms
        r = client.post("/decide", json={"symbol": "EURUSD"}, headers={"X-Request-ID": rid})
        assert r.status_code == 200, r.text
    tree = served.tree + [p for p in _tree(served.proc) if p not in served.tree]
    assert tree, "no process under augur serve was recorded"
    served.proc.send_signal(signal.SIGTERM)
    served.proc.wait(timeout=120)
    # Generous: the shadow process scores its backlog at full speed before it exits.
    survivors = _survivors(tree, timeout=120)
    served.stop_checked = True
    assert not survivors, (
        "still running 120 s after augur serve exited: "
        + "; ".join(_describe(p) for p in survivors)
        + f" (of the service's processes: {'; '.join(_describe(p) for p in tree)})"
    )
    db = served.settings.home / "serving" / "predictions.db"
    with sqlite3.connect(db) as conn:
        roles = dict(
            conn.execute(
                "SELECT role, COUNT(*) FROM predictions WHERE request_id LIKE 'stop-%' "
                "GROUP BY role"
            ).fetchall()
        )
    scored = sum(n for role, n in roles.items() if role == "shadow")
    served_rows = sum(n for role, n in roles.items() if role != "shadow")
    assert served_rows == len(ids)
    assert scored == len(ids), f"{scored} of {len(ids)} mirrored requests reached the log"
