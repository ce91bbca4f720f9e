"""DecisionService → ConfigMap, Deployment, Service, HPA, PDB; status from the Deployment.

Level-triggered: every event and a periodic resync run the same ``reconcile``, which
renders the children (``augur.cluster``), server-side applies them and records the status.
Re-running it changes nothing. Deleting the resource deletes its children through their
owner references (the garbage collector), so there is no delete handler and no finalizer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kopf

from augur.cluster import GROUP, VERSION
from augur.cluster._constants import DECISION_SERVICE_LABEL
from augur.cluster._decisionservice import render_children
from augur.cluster._decisionservice_status import Problem, decision_service_status, spec_problems
from augur.config import get_settings
from operators._kube import Kube, event

PLURAL = "decisionservices"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def reconcile(body: dict[str, Any], kube: Kube, logger: kopf.Logger) -> None:
    """Apply the children of one DecisionService and record its status."""
    meta = body["metadata"]
    namespace, _name = meta["namespace"], meta["name"]
    problems = spec_problems(_parsed(body), kube.secret_keys(namespace))
    if problems:
        # A permanent error: say so in the status and an Event; the resync re-checks.
        text = "; ".join(p.message for p in problems)
        event(body, reason=problems[0].reason, message=text, warning=True)
        logger.warning("not applied: %s", text)
    else:
        for manifest in render_children(body, get_settings().operator_serving_env):
            _, outcome = kube.apply(manifest)
            if outcome != "unchanged":
                event(
                    body,
                    reason=outcome.capitalize(),
                    message=f"{outcome} {manifest['kind']} {manifest['metadata']['name']}",
                )
    record_status(body, kube)


def record_status(body: dict[str, Any], kube: Kube, problems: list[Problem] | None = None) -> None:
    """Read the Deployment and write the DecisionService's status."""
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    if problems is None:
        problems = spec_problems(_parsed(body), kube.secret_keys(namespace))
    deployment = kube.get("apps/v1", "Deployment", namespace, name)
    status = decision_service_status(body, deployment, problems, now())
    # lastPromotion is written by the TuningJob handler alone: never overwrite it from a
    # body read before a promotion landed.
    recorded = status.model_dump(by_alias=True, mode="json", exclude={"last_promotion"})
    kube.patch_status(PLURAL, namespace, name, recorded)


def _parsed(body: dict[str, Any]) -> Any:
    from augur.cluster import DecisionService

    return DecisionService.model_validate(body)


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
def on_change(body: kopf.Body, memo: Any, logger: kopf.Logger, **_: Any) -> None:
    reconcile(dict(body), memo.kube, logger)


@kopf.timer(
    GROUP,
    VERSION,
    PLURAL,
    interval=get_settings().operator_resync_seconds,
    initial_delay=get_settings().operator_resync_seconds,
)
def resync(body: kopf.Body, memo: Any, logger: kopf.Logger, **_: Any) -> None:
    """Periodic reconcile: repairs drift (a child edited or deleted by hand) and picks up
    Secrets created after the DecisionService."""
    reconcile(dict(body), memo.kube, logger)


@kopf.on.event("apps", "v1", "deployments", labels={DECISION_SERVICE_LABEL: kopf.PRESENT})
def deployment_changed(
    body: kopf.Body, namespace: str | None, memo: Any, type: str, **_: Any
) -> None:
    """A child Deployment moved (pods became ready, a rollout ended): refresh the status."""
    owner = body["metadata"]["labels"][DECISION_SERVICE_LABEL]
    parent = memo.kube.get(f"{GROUP}/{VERSION}", "DecisionService", namespace, owner)
    if parent is not None and type != "DELETED":
        record_status(parent, memo.kube)
