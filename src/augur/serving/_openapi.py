"""The OpenAPI 3.1 document of the decision service, generated from the pydantic schemas
(the same models that validate requests) with the examples the tests also send."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from augur.serving._schemas import (
    DecideBatchRequest,
    DecideBatchResponse,
    DecideRequest,
    DecisionOut,
    ErrorOut,
    ModelsResponse,
    OutcomeRequest,
    OutcomeResponse,
)

_REF = "#/components/schemas/{model}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        401: "Missing or invalid bearer token (when the service has one configured).",
        404: "Unknown symbol or request id.",
        413: "Request body over the size limit.",
        422: "Malformed body; `fields` names the offending field(s).",
        503: "Online feature store unreachable; retry after `Retry-After` seconds.",
    }
    out: dict[str, Any] = {}
    for c in codes:
        entry: dict[str, Any] = {
            "description": text[c],
            "content": {"application/json": {"schema": _ref("ErrorOut")}},
        }
        if c == 503:
            entry["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
        out[str(c)] = entry
    return out


def _ok(name: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {"X-Request-ID": {"schema": {"type": "string"}}},
        "content": {"application/json": {"schema": _ref(name)}},
    }


def openapi_document(
    examples: dict[str, dict[str, Any]] | None = None, version: str = "0.1.0"
) -> dict[str, Any]:
    """The document; ``examples`` maps a request model name (``DecideRequest``, …) to an
    example body shown in the docs."""
    examples = examples or {}
    _, schemas = models_json_schema(
        [
            (m, "validation")
            for m in (
                DecideRequest,
                DecideBatchRequest,
                OutcomeRequest,
                DecisionOut,
                DecideBatchResponse,
                OutcomeResponse,
                ModelsResponse,
                ErrorOut,
            )
        ],
        ref_template=_REF,
    )
    components = schemas.get("$defs", {})

    def body(name: str) -> dict[str, Any]:
        media: dict[str, Any] = {"schema": _ref(name)}
        if name in examples:
            media["example"] = examples[name]
        return {"required": True, "content": {"application/json": media}}

    security: list[dict[str, list[str]]] = [{"bearer": []}]
    paths = {
        "/decide": {
            "post": {
                "summary": "Decision for one symbol now",
                "operationId": "decide",
                "requestBody": body("DecideRequest"),
                "responses": {
                    "200": _ok("DecisionOut", "The decision."),
                    **_errors(401, 404, 413, 422, 503),
                },
                "security": security,
            }
        },
        "/decide_batch": {
            "post": {
                "summary": "Decisions for many symbols in one call",
                "operationId": "decide_batch",
                "requestBody": body("DecideBatchRequest"),
                "responses": {
                    "200": _ok("DecideBatchResponse", "One decision per known symbol."),
                    **_errors(401, 413, 422, 503),
                },
                "security": security,
            }
        },
        "/outcome": {
            "post": {
                "summary": "Report the realised return of an earlier decision",
                "operationId": "outcome",
                "requestBody": body("OutcomeRequest"),
                "responses": {
                    "200": _ok("OutcomeResponse", "Outcome recorded."),
                    **_errors(401, 404, 413, 422, 503),
                },
                "security": security,
            }
        },
        "/models": {
            "get": {
                "summary": "Routing table in force and loaded model versions",
                "operationId": "models",
                "responses": {"200": _ok("ModelsResponse", "The routing table."), **_errors(401)},
                "security": security,
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Augur decision service",
            "version": version,
            "description": "Risk-managed decisions from online features and a model ensemble. "
            "Send `X-Request-ID` to choose the request id (else one is made); every answer "
            "echoes it.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


__all__ = ["openapi_document"]
