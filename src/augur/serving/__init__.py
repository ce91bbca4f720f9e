"""Serving: the request path of the decision service, framework-free.

- :func:`build_service` → :class:`ServingApp` (the wired ASGI app, auth, pipeline), the
  composition root in ``_bootstrap``.
- :class:`DecisionPipeline`: route → features → score → decide → record → mirror, over the
  ports in ``_ports`` (:class:`FeatureReader`, :class:`PredictionSink`, :class:`ShadowSink`,
  :class:`Metrics`, :class:`Clock`); in-memory adapters in ``_memory``.
- :class:`ModelRegistry` (versions by tag with their decision settings).
- :class:`RoutingTable`, :class:`Router`, :class:`RoutingTableFile` (hot reload),
  :func:`write_routing_table`, :func:`bucket_of` (stable split).
- Shadow runners: :class:`ShadowProcess`, :class:`ShadowSocket` (+ :func:`serve_socket`),
  :class:`ShadowQueue`; :class:`ShadowTask` (the wire format).
- :class:`BearerAuth` / :func:`load_auth`; schemas :class:`DecideRequest`,
  :class:`DecisionOut`, … ; :func:`openapi_document`.

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
    "ServingApp": "augur.serving._bootstrap",
    "build_service": "augur.serving._bootstrap",
    "shadow_scorer": "augur.serving._bootstrap",
    "PredictionLogOffError": "augur.serving._errors",
    "StoreUnavailableError": "augur.serving._errors",
    "UnknownSymbolError": "augur.serving._errors",
    "openapi_document": "augur.serving._openapi",
    "DecisionPipeline": "augur.serving._pipeline",
    "Clock": "augur.serving._ports",
    "FeatureReader": "augur.serving._ports",
    "Metrics": "augur.serving._ports",
    "PredictionSink": "augur.serving._ports",
    "ShadowSink": "augur.serving._ports",
    "ModelRegistry": "augur.serving._registry",
    "resolve_tag": "augur.serving._registry",
    "Route": "augur.serving._routing",
    "Router": "augur.serving._routing",
    "RoutingTable": "augur.serving._routing",
    "RoutingTableError": "augur.serving._routing",
    "RoutingTableFile": "augur.serving._routing",
    "StaticRouting": "augur.serving._routing",
    "bucket_of": "augur.serving._routing",
    "load_routing_table": "augur.serving._routing",
    "write_routing_table": "augur.serving._routing",
    "DecideBatchRequest": "augur.serving._schemas",
    "DecideRequest": "augur.serving._schemas",
    "DecisionOut": "augur.serving._schemas",
    "OutcomeRequest": "augur.serving._schemas",
    "ShadowProcess": "augur.serving._shadow",
    "ShadowQueue": "augur.serving._shadow",
    "ShadowSocket": "augur.serving._shadow",
    "serve_socket": "augur.serving._shadow",
    "ShadowTask": "augur.serving._shadow_codec",
    "ShadowScorer": "augur.serving._shadow_scorer",
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
