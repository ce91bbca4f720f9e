"""A DecisionService's status: what keeps it from being applied, what was applied, and
what its Deployment reports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from augur.cluster._base import SecretKeyRef
from augur.cluster._conditions import ConditionBook
from augur.cluster._decisionservice import routes_config_map_name
from augur.cluster._decisionservice_resource import (
    DecisionService,
    DecisionServiceStatus,
    TrafficShare,
)


def referenced_secrets(ds: DecisionService) -> list[tuple[str, SecretKeyRef | None]]:
    """(what for, secret) for every Secret the pods need; key None = the whole Secret."""
    spec = ds.spec
    refs: list[tuple[str, SecretKeyRef | None]] = []
    if spec.feature_store is not None:
        refs.append(("featureStore.redisUrl", spec.feature_store.redis_url))
    if spec.prediction_log is not None:
        refs.append(("predictionLog.url", spec.prediction_log.url))
    if spec.auth is not None:
        refs.append(("auth.token", spec.auth.token))
    if spec.model_store.credentials_secret:
        name = spec.model_store.credentials_secret
        refs.append(("modelStore.credentialsSecret", SecretKeyRef(name=name, key="*")))
    return refs


@dataclass(frozen=True)
class Problem:
    """A permanent error in a DecisionService: nothing is applied until it is fixed."""

    reason: str  # the conditions' reason, e.g. SecretNotFound
    message: str


def spec_problems(ds: DecisionService, secrets: dict[str, set[str]]) -> list[Problem]:
    """Everything that keeps the pods from starting, given {Secret name: its keys} in the
    namespace: missing Secrets or keys, and decision settings the engine refuses."""
    problems = [Problem("SecretNotFound", text) for text in missing_secrets(ds, secrets)]
    if ds.spec.decision is not None:
        from augur.decision import DecisionConfig

        overrides = ds.spec.decision.model_dump(exclude_none=True)
        try:
            DecisionConfig.from_dict({**DecisionConfig().to_dict(), **overrides})
        except ValueError as exc:
            problems.append(Problem("InvalidDecisionSettings", f"spec.decision: {exc}"))
    return problems


def missing_secrets(ds: DecisionService, secrets: dict[str, set[str]]) -> list[str]:
    """Problems with referenced Secrets, given {secret name: its keys} in the namespace."""
    problems = []
    for field, ref in referenced_secrets(ds):
        assert ref is not None
        if ref.name not in secrets:
            problems.append(f"{field}: Secret {ref.name!r} not found in the namespace")
        elif ref.key != "*" and ref.key not in secrets[ref.name]:
            keys = ", ".join(sorted(secrets[ref.name])) or "none"
            problems.append(f"{field}: Secret {ref.name!r} has no key {ref.key!r} (it has: {keys})")
    return problems


def traffic(ds: DecisionService) -> list[TrafficShare]:
    """The routes with their roles and shares, as the status reports them."""
    shares = [
        TrafficShare(
            name=v.name,
            model_tag=v.model_tag,
            role="primary" if i == 0 else "canary",
            percent=float(v.weight),
        )
        for i, v in enumerate(ds.spec.versions)
    ]
    if ds.spec.shadow is not None:
        shares.append(
            TrafficShare(
                name=ds.spec.shadow.name,
                model_tag=ds.spec.shadow.model_tag,
                role="shadow",
                percent=float(ds.spec.shadow.mirror_percent),
            )
        )
    return shares


def decision_service_status(
    body: dict[str, Any],
    deployment: dict[str, Any] | None,
    problems: list[Problem],
    now: str,
) -> DecisionServiceStatus:
    """The status to record: what was applied, what the Deployment reports, and why not
    ready. ``problems`` are permanent errors found before applying (e.g. a missing Secret);
    with any, nothing was applied and ``Ready``/``RoutesReady`` say why."""
    ds = DecisionService.model_validate(body)
    generation = ds.metadata.get("generation")
    book = ConditionBook(ds.status.conditions if ds.status else [], generation, now)
    dep_status = (deployment or {}).get("status", {})
    dep_spec = (deployment or {}).get("spec", {})
    desired = int(dep_spec.get("replicas") or 0)
    ready = int(dep_status.get("readyReplicas") or 0)
    updated = int(dep_status.get("updatedReplicas") or 0)
    rolled_out = (
        deployment is not None
        and dep_status.get("observedGeneration", 0) >= deployment["metadata"].get("generation", 0)
        and updated >= desired
        and int(dep_status.get("replicas") or 0) == updated
    )

    if problems:
        reason, text = problems[0].reason, "; ".join(p.message for p in problems)
        book.set("RoutesReady", False, reason, text)
        book.set("Ready", False, reason, text)
        if ds.spec.shadow is not None:
            book.set("ShadowReady", False, reason, text)
    else:
        shares = ", ".join(f"{v.name}={v.weight}%" for v in ds.spec.versions)
        book.set(
            "RoutesReady",
            True,
            "RoutingTableApplied",
            f"ConfigMap {routes_config_map_name(ds.metadata['name'])}: {shares}",
        )
        if deployment is None:
            book.set("Ready", False, "DeploymentMissing", "the Deployment is being created")
        elif ready >= 1 and rolled_out:
            book.set("Ready", True, "ReplicasReady", f"{ready}/{desired} pods ready")
        elif ready >= 1:
            book.set(
                "Ready", False, "RollingOut", f"{updated}/{desired} pods updated, {ready} ready"
            )
        else:
            book.set("Ready", False, "NoReadyReplicas", f"0/{desired} pods ready")
        if ds.spec.shadow is None:
            book.set("ShadowReady", False, "NoShadow", "no shadow version is configured")
        else:
            shadow = ds.spec.shadow
            book.set(
                "ShadowReady",
                ready >= 1,
                "ShadowMirrored" if ready >= 1 else "NoReadyReplicas",
                f"{shadow.model_tag} scores {shadow.mirror_percent}% of requests off the request "
                f"path, in each pod's shadow container (CPU limit "
                f"{shadow.resources.limits.get('cpu', 'none')})",
            )
    primary = ds.spec.versions[0]
    return DecisionServiceStatus(
        observed_generation=generation,
        replicas=int(dep_status.get("replicas") or 0),
        ready_replicas=ready,
        ready=f"{ready}/{desired}",
        primary=primary.model_tag,
        canary_percent=sum(v.weight for v in ds.spec.versions[1:]),
        shadow=ds.spec.shadow.model_tag if ds.spec.shadow else "",
        traffic=traffic(ds) if not problems else [],
        routing_table=routes_config_map_name(ds.metadata["name"]) if not problems else "",
        last_promotion=ds.status.last_promotion if ds.status else None,
        conditions=book.items,
    )


__all__ = [
    "Problem",
    "decision_service_status",
    "missing_secrets",
    "referenced_secrets",
    "spec_problems",
    "traffic",
]
