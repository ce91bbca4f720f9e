"""``GET /models``: the routing table in force, which versions are loaded, the decision
thresholds and member weights each decides with, and the answering worker (its process
id) and its caches."""

from __future__ import annotations

import os
from typing import Any

from augur.serving._registry import ModelRegistry
from augur.serving._routing import RoutingTableFile, StaticRouting
from augur.serving._schemas import CacheStats, ModelsResponse, VersionOut
from augur.serving._scoring import Scorer


def _members(models: ModelRegistry, weights: Any, tag: str) -> dict[str, Any]:
    """The version's member weights, their frozen flag and outcome count (empty: none)."""
    if weights is not None:
        view = weights.view(tag)
    else:
        dw = getattr(models[tag].model, "dynamic_weights", None) if tag in models else None
        view = (
            None
            if dw is None
            else {"weights": dw.as_dict(), "frozen": dw.frozen, "n_updates": dw.n_updates}
        )
    if view is None:
        return {}
    return {
        "member_weights": view["weights"],
        "weights_frozen": view["frozen"],
        "weight_updates": view["n_updates"],
    }


def models_view(
    routing: RoutingTableFile | StaticRouting,
    models: ModelRegistry,
    features: Any,
    scorer: Scorer,
    weights: Any = None,
    rule_set: str | None = None,
) -> ModelsResponse:
    table = routing.table
    versions = [
        VersionOut(
            name=v.name,
            model_tag=v.model_tag,
            weight=v.weight,
            role="primary" if i == 0 else "canary",
            loaded=v.model_tag in models,
            decision_config=models.thresholds(v.model_tag),
            **_members(models, weights, v.model_tag),
        )
        for i, v in enumerate(table.versions)
    ]
    if table.shadow is not None:
        versions.append(
            VersionOut(
                name=table.shadow.name,
                model_tag=table.shadow.model_tag,
                percent=table.shadow.percent,
                role="shadow",
                loaded=table.shadow.model_tag in models,
                decision_config=models.thresholds(table.shadow.model_tag),
                **_members(models, weights, table.shadow.model_tag),
            )
        )
    stats = getattr(features, "cache_stats", None)  # only the online store's reader has one
    enabled, hits, misses = stats() if stats is not None else (False, 0, 0)
    return ModelsResponse(
        routing_table=table.model_dump(exclude_none=True),
        versions=versions,
        rule_set=rule_set,
        source=str(routing.path) if routing.path else "embedded",
        loaded_at=routing.loaded_at,
        worker=os.getpid(),
        caches={
            "features": CacheStats(enabled=enabled, hits=hits, misses=misses),
            "predictions": CacheStats(
                enabled=scorer.memo_size > 0, hits=scorer.hits, misses=scorer.misses
            ),
        },
    )


__all__ = ["models_view"]
