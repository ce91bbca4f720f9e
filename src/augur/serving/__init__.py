"""Serving: the request path of the decision service, framework-free.

- :func:`build_service` → :class:`DecisionService` (the wired ASGI app, auth, pipeline).
- :class:`DecisionPipeline`: route → online features → ensemble → decision → log/shadow.
- :class:`RoutingTable`, :class:`Router`, :class:`RoutingTableFile` (hot reload),
  :func:`write_routing_table`, :func:`bucket_of` (stable split).
- :class:`ShadowQueue` (bounded, drops counted), :class:`BearerAuth` / :func:`load_auth`.
- Schemas: :class:`DecideRequest`, :class:`DecisionOut`, … ; :func:`openapi_document`.

Names load on first use (PEP 562): importing the package stays cheap, and
prometheus_client is not imported before a BentoML worker set up its metrics directory.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "DecisionApp": "augur.serving._asgi",
    "entry_app": "augur.serving._asgi",
    "ROUTES": "augur.serving._asgi",
    "BearerAuth": "augur.serving._auth",
    "load_auth": "augur.serving._auth",
    "OPEN_PATHS": "augur.serving._auth",
    "openapi_document": "augur.serving._openapi",
    "DecisionPipeline": "augur.serving._pipeline",
    "ModelRegistry": "augur.serving._pipeline",
    "StaticRouting": "augur.serving._pipeline",
    "StoreUnavailableError": "augur.serving._pipeline",
    "UnknownSymbolError": "augur.serving._pipeline",
    "UnknownRequestIdError": "augur.serving._pipeline",
    "Route": "augur.serving._routing",
    "Router": "augur.serving._routing",
    "RoutingTable": "augur.serving._routing",
    "RoutingTableError": "augur.serving._routing",
    "RoutingTableFile": "augur.serving._routing",
    "bucket_of": "augur.serving._routing",
    "load_routing_table": "augur.serving._routing",
    "write_routing_table": "augur.serving._routing",
    "DecideBatchRequest": "augur.serving._schemas",
    "DecideRequest": "augur.serving._schemas",
    "DecisionOut": "augur.serving._schemas",
    "OutcomeRequest": "augur.serving._schemas",
    "DecisionService": "augur.serving._service",
    "build_service": "augur.serving._service",
    "ShadowQueue": "augur.serving._shadow",
    "ServingMetrics": "augur.serving._telemetry",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'augur.serving' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
