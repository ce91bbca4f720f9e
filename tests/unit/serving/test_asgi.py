"""The HTTP layer in-process (ASGI): every error mapping, auth, request ids, metrics."""

from __future__ import annotations

import json

import httpx
import pytest
from prometheus_client import CollectorRegistry

from augur.decision import DecisionConfig, decide
from augur.monitoring import PredictionLog
from augur.serving._asgi import DecisionApp, entry_app
from augur.serving._auth import BearerAuth
from augur.serving._openapi import openapi_document
from augur.serving._pipeline import DecisionPipeline
from augur.serving._registry import ModelRegistry
from augur.serving._routing import RoutingTable, StaticRouting
from augur.serving._telemetry import ServingMetrics
from tests.unit.serving.conftest import NOW

EXAMPLE = {"symbol": "AAA", "as_of": NOW.isoformat()}

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def rest_app(scope, receive, send):
    """What BentoML answers for its own routes (health, /metrics)."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def one_version_pipeline(features, models, plog=None) -> DecisionPipeline:
    registry = ModelRegistry(models.__getitem__, features.feature_names, DecisionConfig())
    return DecisionPipeline(
        features=features,
        models=registry,
        routing=StaticRouting(RoutingTable.single("m:1")),
        decide=decide,
        max_feature_age_seconds=3 * 3600,
        prediction_log=plog,
    )


@pytest.fixture
def parts(tmp_path, memory_features, models):
    plog = PredictionLog(f"sqlite:///{tmp_path / 'p.db'}")
    pipeline = one_version_pipeline(memory_features, models, plog)
    metrics = ServingMetrics(CollectorRegistry())
    app = DecisionApp(
        pipeline,
        max_body_bytes=2048,
        max_batch_symbols=3,
        metrics=metrics,
        openapi=openapi_document({"DecideRequest": EXAMPLE}),
    )
    yield app, metrics, memory_features
    plog.close()


def client(app, auth: BearerAuth | None = None) -> httpx.AsyncClient:
    asgi = entry_app(app, rest_app, auth or BearerAuth())
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://t")


async def test_decide_ok_with_request_id(parts) -> None:
    app, metrics, _ = parts
    async with client(app) as c:
        r = await c.post("/decide", json=EXAMPLE, headers={"X-Request-ID": "abc-123"})
        assert r.status_code == 200, r.text
        assert r.headers["x-request-id"] == "abc-123" and r.json()["request_id"] == "abc-123"
        r2 = await c.post("/decide", json=EXAMPLE, headers={"X-Request-ID": "bad id!" * 20})
        assert len(r2.headers["x-request-id"]) == 32  # an unusable id is replaced
    assert metrics.latency.labels("/decide", "m:1")._sum.get() > 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "symbol"),
        ({"symbol": ""}, "symbol"),
        ({"symbol": "AAA", "position": {"side": "sideways"}}, "position.side"),
        ({"symbol": "AAA", "account": {"equity": -1}}, "account.equity"),
        ({"symbol": "AAA", "as_of": "2024-01-01T00:00:00"}, "as_of"),  # no time zone
        ({"symbol": "AAA", "colour": "red"}, "colour"),
    ],
)
async def test_malformed_body_is_422_naming_the_field(parts, body, field) -> None:
    async with client(parts[0]) as c:
        r = await c.post("/decide", json=body)
    assert r.status_code == 422
    data = r.json()
    assert data["error"] == "validation_error" and field in data["detail"]
    assert any(f["field"] == field for f in data["fields"])


async def test_not_json_is_422(parts) -> None:
    async with client(parts[0]) as c:
        r = await c.post(
            "/decide", content=b"{not json", headers={"content-type": "application/json"}
        )
    assert r.status_code == 422 and "invalid request body" in r.json()["detail"]


async def test_unknown_symbol_is_404_naming_it(parts) -> None:
    async with client(parts[0]) as c:
        r = await c.post("/decide", json={"symbol": "ZZZ"})
    assert (
        r.status_code == 404
        and r.json()["error"] == "unknown_symbol"
        and "ZZZ" in r.json()["detail"]
    )


async def test_body_over_limit_is_413(parts) -> None:
    big = json.dumps({"symbol": "AAA", "routing_key": "x" * 4000}).encode()
    async with client(parts[0]) as c:
        r = await c.post("/decide", content=big)
        assert r.status_code == 413 and "2048" in r.json()["detail"]

        async def chunks():  # no Content-Length: the limit holds while streaming
            for _ in range(5):
                yield b"x" * 1000

        r = await c.post("/decide", content=chunks())
        assert r.status_code == 413
        r = await c.post("/decide", content=b"{}", headers={"content-length": "abc"})
        assert r.status_code == 400


async def test_store_down_is_503_with_retry_after_then_recovers(parts) -> None:
    app, metrics, features = parts
    async with client(app) as c:
        features.down = True
        r = await c.post("/decide", json=EXAMPLE)
        assert r.status_code == 503 and r.headers["retry-after"] == "2"
        assert r.json()["error"] == "store_unavailable"
        r = await c.post("/decide_batch", json={"symbols": ["AAA"]})
        assert r.status_code == 503
        features.down = False
        assert (await c.post("/decide", json=EXAMPLE)).status_code == 200
    assert metrics.store_errors._value.get() == 2


async def test_unexpected_error_is_500_without_a_traceback(parts, caplog) -> None:
    app, _, features = parts

    def broken(symbols):
        raise ZeroDivisionError("secret internals")

    features.get = broken
    async with client(app) as c:
        r = await c.post("/decide", json=EXAMPLE, headers={"X-Request-ID": "r-500"})
    assert r.status_code == 500
    assert "secret" not in r.text and "Traceback" not in r.text and "r-500" in r.json()["detail"]
    assert "ZeroDivisionError" in caplog.text


async def test_routes_methods_and_docs(parts) -> None:
    async with client(parts[0]) as c:
        assert (await c.get("/decide")).status_code == 405
        models = (await c.get("/models")).json()
        assert models["versions"][0]["model_tag"] == "m:1" and models["source"] == "embedded"
        doc = (await c.get("/openapi.json")).json()
        media = doc["paths"]["/decide"]["post"]["requestBody"]["content"]["application/json"]
        assert media["example"] == EXAMPLE
        assert (await c.get("/healthz")).text == "ok"  # BentoML's own routes go through
        assert (await parts[0]({"type": "lifespan"}, None, None)) is None
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=parts[0]), base_url="http://t"
    ) as c:
        assert (await c.get("/elsewhere")).status_code == 404


async def test_batch_limits_and_symbol_check(parts) -> None:
    async with client(parts[0]) as c:
        r = await c.post(
            "/decide_batch", json={"symbols": ["AAA", "BBB", "ZZZ"], "as_of": NOW.isoformat()}
        )
        assert r.status_code == 200
        assert [d["symbol"] for d in r.json()["decisions"]] == ["AAA", "BBB"]
        r = await c.post("/decide_batch", json={"symbols": ["A", "B", "C", "D"]})
        assert r.status_code == 422 and "at most 3" in r.json()["detail"]
        r = await c.post("/decide_batch", json={"symbols": ["AAA", "bad symbol"]})
        assert r.status_code == 422 and "symbols.1" in r.json()["detail"]


async def test_outcome_audit_logged_with_caller(parts, caplog) -> None:
    auth = BearerAuth((("desk", b"tok"),))
    hdr = {"Authorization": "Bearer tok"}
    async with client(parts[0], auth) as c:
        rid = (await c.post("/decide", json=EXAMPLE, headers=hdr)).json()["request_id"]
        with caplog.at_level("INFO", logger="augur.audit"):
            r = await c.post(
                "/outcome", json={"request_id": rid, "realized_return": 0.01}, headers=hdr
            )
        assert r.status_code == 200 and r.json() == {"request_id": rid, "recorded": True}
        assert f"request_id={rid}" in caplog.text and "caller=desk@" in caplog.text
        assert "tok" not in caplog.text.replace("request_id", "")
        r = await c.post(
            "/outcome", json={"request_id": "never", "realized_return": 0.0}, headers=hdr
        )
        assert r.status_code == 404 and r.json()["error"] == "unknown_request_id"


async def test_bearer_token_required_except_health(parts) -> None:
    auth = BearerAuth((("desk", b"s3cret"),))
    async with client(parts[0], auth) as c:
        for method, path in (
            ("POST", "/decide"),
            ("GET", "/models"),
            ("GET", "/metrics"),
            ("GET", "/openapi.json"),
        ):
            r = await c.request(method, path, json=EXAMPLE)
            assert r.status_code == 401, path
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert r.json()["error"] == "unauthorized"
        r = await c.post("/decide", json=EXAMPLE, headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401
        for path in ("/healthz", "/livez", "/readyz"):
            assert (await c.get(path)).status_code == 200
        r = await c.post("/decide", json=EXAMPLE, headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 200


async def test_concurrent_requests_are_batched(parts) -> None:
    import asyncio

    app = parts[0]
    async with client(app) as c:
        answers = await asyncio.gather(
            *[c.post("/decide", json={**EXAMPLE, "routing_key": f"k{i}"}) for i in range(8)]
        )
    assert all(r.status_code == 200 for r in answers)
    assert len({r.json()["request_id"] for r in answers}) == 8
    assert app.batcher.items == 8 and app.batcher.batches < 8


async def test_batcher_waits_its_loop_turns_for_later_requests() -> None:
    """A request parsed one loop turn after the first joins its batch when the batcher
    waits two turns, and makes a batch of its own when it waits one."""
    import asyncio

    from augur.serving._batcher import NaturalBatcher

    for turns, expected in ((1, [[0], [1]]), (2, [[0, 1]])):
        seen: list[list[int]] = []

        def decide(items: list[int], seen: list[list[int]] = seen) -> list[int]:
            seen.append(list(items))
            return [i * 10 for i in items]

        batcher = NaturalBatcher(decide, turns=turns)

        async def later(batcher: NaturalBatcher = batcher) -> int:
            await asyncio.sleep(0)  # read and parsed one loop turn later
            return int(await batcher.submit(1))

        assert await asyncio.gather(batcher.submit(0), later()) == [0, 10]
        assert seen == expected, turns
    with pytest.raises(ValueError, match="turns"):
        NaturalBatcher(decide, turns=0)


def test_fresh_request_ids_are_time_ordered_uuid7() -> None:
    import time
    import uuid

    from augur.serving._asgi import new_request_id

    ids = [new_request_id() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)  # new rows land at the end of the log's primary-key index
    first = uuid.UUID(ids[0])
    assert (first.version, first.variant) == (7, uuid.RFC_4122)
    assert abs(int(ids[0][:12], 16) - time.time() * 1000) < 60_000  # Unix milliseconds


async def test_batching_off_answers_each_request_alone(memory_features, models) -> None:
    """AUGUR_DECIDE_BATCH_MAX=1: no batcher; every request is its own feature read."""
    app = DecisionApp(one_version_pipeline(memory_features, models), max_batch_requests=1)
    assert app.batcher is None
    import asyncio

    async with client(app) as c:
        answers = await asyncio.gather(*[c.post("/decide", json=EXAMPLE) for _ in range(4)])
    assert [r.status_code for r in answers] == [200] * 4 and memory_features.reads == 4


async def test_account_id_over_http_settles_refuses_a_body_too_and_503_without_a_store(
    parts, tmp_path
) -> None:
    from augur.serving._accounts import SqliteAccounts

    app = parts[0]
    async with client(app) as c:
        # no account store: a request naming an account cannot honour its limits
        r = await c.post("/decide", json={**EXAMPLE, "account_id": "desk-1"})
        assert r.status_code == 503 and "no accounts" in r.json()["detail"]
        assert "account store" in r.json()["detail"]

        app.pipeline.accounts = accounts = SqliteAccounts(tmp_path / "accounts.db")
        r = await c.post("/decide", json={**EXAMPLE, "account_id": "desk-1"})
        assert r.status_code == 200 and r.json()["action"] == "enter_long", r.text
        size, rid = r.json()["size"], r.json()["request_id"]
        r = await c.post(
            "/outcome", json={"request_id": rid, "realized_return": -0.01, "account_id": "desk-1"}
        )
        assert r.status_code == 200, r.text
        assert r.json()["position_closed"] is True
        assert r.json()["account"] == {
            "account_id": "desk-1",
            "equity": pytest.approx(1 - size * 0.01),
            "peak_equity": 1.0,
            "consecutive_losses": 1,
            "open_exposure": {},
        }
        for path, body in (
            ("/decide", {**EXAMPLE, "account_id": "desk-1", "account": {"equity": 0.5}}),
            ("/decide_batch", {"symbols": ["AAA"], "account_id": "a", "account": {}}),
        ):
            r = await c.post(path, json=body)
            assert r.status_code == 422, r.text
            assert "either account_id" in r.json()["detail"]
        accounts.close()
