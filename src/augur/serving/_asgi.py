"""The HTTP layer of the decision service: a plain ASGI app (routes, request ids, body
limits, error → status, metrics), mounted into the Bento, whose entry point also sends the
hot routes straight here (see ``bentos/decision``). Plain ASGI because the request path
is short: a framework's per-request work would be a visible share of it.

Error mapping (never a stack trace in a response): malformed body → 422 naming the field;
unknown symbol or request id → 404; body over the limit → 413; online store unreachable
→ 503 with ``Retry-After``; missing/invalid bearer token → 401; anything else → 500 with
the request id to look up in the log.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uuid_utils
from pydantic import BaseModel, ValidationError

from augur.monitoring import UnknownRequestIdError
from augur.serving._auth import OPEN_PATHS, BearerAuth
from augur.serving._batcher import NaturalBatcher
from augur.serving._errors import (
    AccountStoreUnavailableError,
    PredictionLogOffError,
    PredictionLogUnavailableError,
    StoreUnavailableError,
    UnknownSymbolError,
    WeightsUnavailableError,
)
from augur.serving._pipeline import DecisionPipeline
from augur.serving._schemas import (
    DecideBatchRequest,
    DecideRequest,
    ErrorOut,
    OutcomeRequest,
    describe_validation_error,
)

log = logging.getLogger("augur.serving")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,64}$")
_JSON = (b"content-type", b"application/json")

# Routes served by this app: path -> (method, handler name, metric route label).
ROUTES: dict[str, tuple[str, str]] = {
    "/decide": ("POST", "_decide"),
    "/decide_batch": ("POST", "_decide_batch"),
    "/outcome": ("POST", "_outcome"),
    "/models": ("GET", "_models"),
    "/openapi.json": ("GET", "_openapi"),
}


class HTTPError(Exception):
    """An error answer: status, code, readable detail, optional extra headers/fields."""

    def __init__(
        self,
        status: int,
        error: str,
        detail: str,
        headers: list[tuple[bytes, bytes]] | None = None,
        fields: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers or []
        self.fields = fields


def _header(scope: Scope, name: bytes) -> bytes | None:
    for k, v in scope["headers"]:
        if k == name:
            return v
    return None


def new_request_id() -> str:
    """A fresh request id: a UUIDv7 (RFC 9562) as 32 hex digits. Time-ordered, so the
    prediction log's primary key grows at the end of its index."""
    return uuid_utils.uuid7().hex


def request_id_of(scope: Scope) -> str:
    """The client's ``X-Request-ID`` when it is sane, else a fresh one."""
    given = _header(scope, b"x-request-id")
    if given is not None and _REQUEST_ID.match(given):
        return given.decode()
    return new_request_id()


async def send_json(
    send: Send,
    status: int,
    body: bytes,
    request_id: str,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Send a complete JSON response with ``X-Request-ID``."""
    headers = [
        _JSON,
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode()),
    ]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def error_body(err: HTTPError, request_id: str) -> bytes:
    return (
        ErrorOut(error=err.error, detail=err.detail, request_id=request_id, fields=err.fields)
        .model_dump_json(exclude_none=True)
        .encode()
    )


class DecisionApp:
    """ASGI app serving ``/decide``, ``/decide_batch``, ``/outcome``, ``/models``,
    ``/openapi.json``. Any other path answers 404 (the Bento routes those elsewhere)."""

    def __init__(
        self,
        pipeline: DecisionPipeline,
        *,
        max_body_bytes: int = 64 * 1024,
        max_batch_symbols: int = 256,
        max_batch_requests: int = 32,
        retry_after_seconds: int = 2,
        metrics: Any = None,
        openapi: dict[str, Any] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.max_body = max_body_bytes
        self.max_batch = max_batch_symbols
        self.retry_after = str(retry_after_seconds).encode()
        self.metrics = metrics
        self._openapi_json = json.dumps(openapi or {}).encode()
        self._handlers = {
            path: (method, getattr(self, name)) for path, (method, name) in ROUTES.items()
        }
        self.batcher = (
            NaturalBatcher(pipeline.decide_many, max_batch=max_batch_requests)
            if max_batch_requests > 1
            else None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        request_id = request_id_of(scope)
        t0 = time.perf_counter()
        version = ""
        entry = self._handlers.get(path)
        try:
            if entry is None:
                raise HTTPError(404, "not_found", f"no route {path}")
            method, handler = entry
            if scope["method"] != method:
                raise HTTPError(405, "method_not_allowed", f"{path} accepts {method} only")
            body = await self._read_body(scope, receive) if method == "POST" else b""
            status, payload, version = await handler(scope, body, request_id)
            await send_json(send, status, payload, request_id)
        except HTTPError as err:
            status = err.status
            await send_json(send, status, error_body(err, request_id), request_id, err.headers)
        except Exception:
            status = 500
            log.exception("request %s %s failed", request_id, path)
            internal = HTTPError(
                500,
                "internal_error",
                f"unexpected error; the server log has the details under request id {request_id}",
            )
            await send_json(send, 500, error_body(internal, request_id), request_id)
        if self.metrics is not None and entry is not None:
            self.metrics.request_served(path, version, status, time.perf_counter() - t0)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        declared = _header(scope, b"content-length")
        if declared is not None:
            try:
                n = int(declared)
            except ValueError:
                raise HTTPError(400, "bad_request", "Content-Length is not a number") from None
            if n > self.max_body:
                raise self._too_large(n)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise HTTPError(400, "client_disconnected", "the client went away")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise self._too_large(size)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _too_large(self, n: int) -> HTTPError:
        return HTTPError(
            413,
            "body_too_large",
            f"request body of {n} bytes exceeds the limit of {self.max_body} bytes "
            "(for many symbols use /decide_batch in several calls)",
        )

    @staticmethod
    def _parse(model: type[BaseModel], body: bytes) -> Any:
        try:
            return model.model_validate_json(body)
        except ValidationError as exc:
            detail, fields = describe_validation_error(exc)
            raise HTTPError(422, "validation_error", detail, fields=fields) from None

    def _store_down(self, exc: Exception) -> HTTPError:
        if self.metrics is not None:
            self.metrics.store_failed()
        log.warning("store unavailable: %s", exc)
        if isinstance(exc, AccountStoreUnavailableError):
            store = "account store"
        elif isinstance(exc, WeightsUnavailableError):
            store = "prediction log (member weights)"
        elif isinstance(exc, PredictionLogUnavailableError):
            store = "prediction log"
        else:
            store = "online feature store"
        return HTTPError(
            503,
            "store_unavailable",
            f"the {store} is unreachable ({exc}); retry shortly",
            headers=[(b"retry-after", self.retry_after)],
        )

    # --- handlers: (scope, body, request_id) -> (status, json bytes, version label) ---------
    async def _decide(self, scope: Scope, body: bytes, request_id: str) -> tuple[int, bytes, str]:
        req = self._parse(DecideRequest, body)
        if self.batcher is not None:
            out = await self.batcher.submit((req, request_id))
        else:
            (out,) = self.pipeline.decide_many([(req, request_id)])
        if isinstance(out, UnknownSymbolError):
            raise HTTPError(404, "unknown_symbol", str(out))
        if isinstance(out, StoreUnavailableError):
            raise self._store_down(out)
        if isinstance(out, Exception):
            raise out
        return 200, out.model_dump_json().encode(), out.model_version

    async def _decide_batch(
        self, scope: Scope, body: bytes, request_id: str
    ) -> tuple[int, bytes, str]:
        req = self._parse(DecideBatchRequest, body)
        if len(req.symbols) > self.max_batch:
            raise HTTPError(
                422,
                "validation_error",
                f"symbols: {len(req.symbols)} symbols, at most {self.max_batch} per call",
                fields=[{"field": "symbols", "message": f"at most {self.max_batch} symbols"}],
            )
        from augur.serving._schemas import SYMBOL_PATTERN

        pattern = re.compile(SYMBOL_PATTERN)
        for i, s in enumerate(req.symbols):
            if not pattern.match(s):
                raise HTTPError(
                    422,
                    "validation_error",
                    f"symbols.{i}: {s!r} is not a valid symbol",
                    fields=[{"field": f"symbols.{i}", "message": "not a valid symbol"}],
                )
        try:
            out = self.pipeline.decide_batch(req, request_id)
        except StoreUnavailableError as exc:
            raise self._store_down(exc) from None
        return 200, out.model_dump_json().encode(), "batch"

    async def _outcome(self, scope: Scope, body: bytes, request_id: str) -> tuple[int, bytes, str]:
        req = self._parse(OutcomeRequest, body)
        caller = scope.get("augur.caller") or "anonymous"
        client = scope.get("client")
        who = f"{caller}@{client[0]}" if client else caller
        import anyio.to_thread

        try:
            # A synchronous database write: off the event loop, other requests keep flowing.
            out = await anyio.to_thread.run_sync(self.pipeline.record_outcome, req, who)
        except (UnknownRequestIdError, PredictionLogOffError) as exc:
            raise HTTPError(404, "unknown_request_id", str(exc)) from None
        except (
            AccountStoreUnavailableError,
            WeightsUnavailableError,
            PredictionLogUnavailableError,
        ) as exc:
            raise self._store_down(exc) from None
        except ValueError as exc:
            raise HTTPError(422, "validation_error", f"realized_return: {exc}") from None
        # without an account_id, the answer is what it always was
        return 200, out.model_dump_json(exclude_none=True).encode(), ""

    async def _models(self, scope: Scope, body: bytes, request_id: str) -> tuple[int, bytes, str]:
        return 200, self.pipeline.models_info().model_dump_json().encode(), ""

    async def _openapi(self, scope: Scope, body: bytes, request_id: str) -> tuple[int, bytes, str]:
        return 200, self._openapi_json, ""


def unauthorized(request_id: str) -> bytes:
    return (
        ErrorOut(
            error="unauthorized",
            detail="missing or invalid bearer token: send 'Authorization: Bearer <token>'",
            request_id=request_id,
        )
        .model_dump_json(exclude_none=True)
        .encode()
    )


def entry_app(hot: DecisionApp, rest: ASGIApp, auth: BearerAuth) -> ASGIApp:
    """The service's outermost ASGI app: the bearer check for every path except health and
    readiness, then ``hot``'s routes go straight to ``hot`` and everything else (health,
    ``/metrics``, BentoML's docs) to ``rest``.

    Sending the hot routes around ``rest``'s generic middlewares (access log, tracing,
    timeout, metrics) is what lifts the served throughput: ``hot`` does its own request id,
    metrics and tracing at a fraction of their cost.
    """
    hot_paths = frozenset(ROUTES)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if auth.enabled and path not in OPEN_PATHS:
                caller = auth.caller(_header(scope, b"authorization"))
                if caller is None:
                    rid = request_id_of(scope)
                    await send_json(
                        send,
                        401,
                        unauthorized(rid),
                        rid,
                        [(b"www-authenticate", b'Bearer realm="augur"')],
                    )
                    return
                scope["augur.caller"] = caller
            if path in hot_paths:
                await hot(scope, receive, send)
                return
        await rest(scope, receive, send)

    return app


__all__ = [
    "ROUTES",
    "DecisionApp",
    "HTTPError",
    "entry_app",
    "new_request_id",
    "request_id_of",
    "send_json",
]
