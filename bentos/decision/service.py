"""The decision service (BentoML 1.4): one entry service, ``DecisionService``.

Thin adapter: the request path lives in :mod:`augur.serving` (a plain ASGI app); this
module wires it into BentoML:

- ``@bentoml.asgi_app`` mounts the routes (``/decide``, ``/decide_batch``, ``/outcome``,
  ``/models``, ``/openapi.json``) next to BentoML's own (``/healthz``, ``/livez``,
  ``/readyz``, ``/metrics``, ``/docs.json``);
- the entry ASGI app (``_EntryService.to_asgi``) checks the bearer token for every path
  except health/readiness and sends the hot routes straight to the mounted app, around
  BentoML's generic per-request middlewares (access log, OTel, timeout, traffic metrics);
  the service does its own request id, metrics and tracing for them.

Run: ``augur serve`` (or ``bentoml serve service:DecisionService`` in this directory).
Settings: ``AUGUR_*`` environment variables (see ``augur.config.Settings``).
"""

from __future__ import annotations

from typing import Any

import bentoml

with bentoml.importing():
    from augur.config import get_settings
    from augur.serving import ROUTES, entry_app

# One example body per endpoint: shown in the OpenAPI docs and sent by the tests.
EXAMPLE_INPUT: dict[str, Any] = {
    "symbol": "EURUSD",
    "position": {
        "side": "long",
        "size": 0.05,
        "entry_price": 1.0850,
        "opened_at": "2024-01-02T09:00:00Z",
    },
    "account": {"equity": 10_000.0, "peak_equity": 10_500.0, "consecutive_losses": 1},
}
EXAMPLE_BATCH: dict[str, Any] = {"symbols": ["EURUSD", "AAPL"], "account": {"equity": 10_000.0}}
EXAMPLE_OUTCOME: dict[str, Any] = {"request_id": "3f2b9c0e6a1d4e5f", "realized_return": 0.0042}

# Per-worker state: the wired service, set by DecisionService.__init__ (BentoML builds the
# ASGI app before it creates the service instance).
_current: dict[str, Any] = {}


class _MountedRoutes:
    """ASGI endpoint of the mounted routes: forwards to the worker's decision app."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await _current["service"].app(scope, receive, send)


def _mounted_app() -> Any:
    from starlette.applications import Starlette
    from starlette.routing import Route

    endpoint = _MountedRoutes()
    return Starlette(routes=[Route(path, endpoint) for path in ROUTES])


class _EntryService(bentoml.Service):  # type: ignore[misc]
    """BentoML's service with an entry ASGI app in front (auth + fast path, see above)."""

    def to_asgi(self, is_main: bool = True) -> Any:
        rest = super().to_asgi(is_main)
        composed: dict[int, Any] = {}

        async def app(scope: Any, receive: Any, send: Any) -> None:
            svc = _current.get("service")
            if svc is None or scope["type"] != "http":  # lifespan, or still starting
                await rest(scope, receive, send)
                return
            entry = composed.get(id(svc))
            if entry is None:
                entry = composed[id(svc)] = entry_app(svc.app, rest, svc.auth)
            await entry(scope, receive, send)

        return app


_settings = get_settings()


@bentoml.asgi_app(_mounted_app(), path="/", name="decision")
@bentoml.service(
    name="augur_decision",
    service_class=_EntryService,
    # Processes per replica; each runs its own event loop (the request path is CPU-bound).
    workers=_settings.serving_workers,
    # timeout/max_concurrency bound BentoML's own routes; the hot routes answer inline
    # (no awaits between parsing and answering), so their concurrency per worker is 1 and
    # the socket backlog queues the rest. ``concurrency`` is the autoscaling target.
    traffic={"timeout": 10, "concurrency": 32, "max_concurrency": 512},
    # What one replica asks of the cluster (the Helm chart copies these).
    resources={"cpu": "2", "memory": "1Gi"},
    endpoints={"livez": "/healthz", "readyz": "/readyz"},
)
class DecisionService:
    """Risk-managed decisions: online features → ensemble → decision engine."""

    def __init__(self) -> None:
        import logging

        from augur.serving import build_service

        # BentoML's worker logging passes warnings only; our info lines (table reloads,
        # the outcome audit trail with the caller) must reach the log too.
        logging.getLogger("augur").setLevel(logging.INFO)
        # One BLAS thread per worker: the workers already use the cores, and a threaded
        # BLAS (numpy's gemm in the SVM member) fights them for it under load.
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1)
        # Background threads (shadow scoring, the prediction-log writer, drift tests) may
        # hold the GIL for the whole switch interval (5 ms by default) while a request
        # waits; 1 ms bounds what they add to the request path's latency tail.
        import sys

        sys.setswitchinterval(0.001)

        self.service = build_service(
            get_settings(),
            examples={
                "DecideRequest": EXAMPLE_INPUT,
                "DecideBatchRequest": EXAMPLE_BATCH,
                "OutcomeRequest": EXAMPLE_OUTCOME,
            },
        )
        _current["service"] = self.service

    def __is_ready__(self) -> bool:
        """Ready when every version the routing table names is loaded."""
        return self.service.ready()

    @bentoml.on_shutdown
    def close(self) -> None:
        """Flush the prediction log, stop the shadow worker and the table watcher."""
        self.service.close()
        _current.pop("service", None)
