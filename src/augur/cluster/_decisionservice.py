"""What a DecisionService becomes in the cluster.

One Deployment (every pod loads every version of the routing table, as ``augur serve``
does), a Service, an ``autoscaling/v2`` HPA, a PodDisruptionBudget and the routing-table
ConfigMap the pods mount. Weights and the shadow's share live only in the ConfigMap, which
the service re-reads: changing them never restarts a pod. The model tags the pods fetch
live in the pod template, so a version to fetch rolls the Deployment.

With a shadow, each pod has a second container, ``shadow`` (``augur serve-shadow``), with
its own CPU limit: the serving container sends it the mirrored requests as datagrams on a
Unix socket in a volume only the two share.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from augur.cluster import _constants as c
from augur.cluster._base import SecretKeyRef
from augur.cluster._decisionservice_resource import DecisionService
from augur.serving import RoutingTable

MODEL_STORE_MOUNT = "/var/lib/augur/model-store"


def owner_reference(resource: dict[str, Any]) -> dict[str, Any]:
    """The ownerReference that makes a child garbage-collected with ``resource``."""
    meta = resource["metadata"]
    return {
        "apiVersion": resource["apiVersion"],
        "kind": resource["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def labels(ds_name: str, component: str = "serving") -> dict[str, str]:
    """Labels on every child of a DecisionService (and its pods)."""
    return {
        c.NAME: "augur-decision",
        c.INSTANCE: ds_name,
        c.COMPONENT: component,
        c.PART_OF: "augur",
        c.MANAGED_BY: c.FIELD_MANAGER,
        c.DECISION_SERVICE_LABEL: ds_name,
    }


def selector(ds_name: str) -> dict[str, str]:
    """The pod selector of the Deployment, the Service and the PDB (immutable: keep it small)."""
    return {c.INSTANCE: ds_name, c.DECISION_SERVICE_LABEL: ds_name}


def routes_config_map_name(ds_name: str) -> str:
    return f"{ds_name}-routes"


def routing_table(ds: DecisionService) -> RoutingTable:
    """The routing-table contract (``augur.serving.RoutingTable``) for the spec."""
    spec = ds.spec
    table: dict[str, Any] = {
        "versions": [
            {"name": v.name, "model_tag": v.model_tag, "weight": float(v.weight)}
            for v in spec.versions
        ]
    }
    if spec.shadow is not None:
        table["shadow"] = {
            "name": spec.shadow.name,
            "model_tag": spec.shadow.model_tag,
            "percent": float(spec.shadow.mirror_percent),
        }
    return RoutingTable.model_validate(table)


def _model_store_uri(ds: DecisionService) -> str:
    store = ds.spec.model_store
    if store.pvc is not None:
        sub = store.pvc.sub_path.strip("/")
        return f"{MODEL_STORE_MOUNT}/{sub}" if sub else MODEL_STORE_MOUNT
    assert store.uri is not None
    return store.uri


def _secret_env(name: str, ref: SecretKeyRef) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}


def _prediction_log_env(ds: DecisionService) -> list[dict[str, Any]]:
    """Where both containers log. Without a configured log each container would keep its
    own SQLite file, so with a shadow they share one on a pod volume."""
    spec = ds.spec
    if spec.prediction_log is not None:
        return [_secret_env("AUGUR_PREDICTION_LOG_URL", spec.prediction_log.url)]
    if spec.shadow is not None:
        url = f"sqlite:///{c.PREDICTION_LOG_DIR}/predictions.db"
        return [{"name": "AUGUR_PREDICTION_LOG_URL", "value": url}]
    return []


def _overrides_env(ds: DecisionService) -> list[dict[str, Any]]:
    decision = ds.spec.decision
    overrides: dict[str, Any] = decision.model_dump(exclude_none=True) if decision else {}
    if not overrides:
        return []
    return [{"name": "AUGUR_DECISION_OVERRIDES", "value": json.dumps(overrides)}]


def _shadow_socket_env() -> dict[str, Any]:
    return {"name": "AUGUR_SHADOW_SOCKET", "value": c.SHADOW_SOCKET}


def _with_extra(env: list[dict[str, Any]], extra: Mapping[str, str]) -> list[dict[str, Any]]:
    """``env`` and the operator's extra variables for every serving and shadow container
    (its ``AUGUR_OPERATOR_SERVING_ENV``, e.g. the OpenTelemetry settings), sorted by name;
    a name the container sets already keeps its own value (server-side apply refuses an
    env list naming a variable twice)."""
    own = {e["name"] for e in env}
    return env + [{"name": k, "value": extra[k]} for k in sorted(extra) if k not in own]


def _env(ds: DecisionService, extra: Mapping[str, str]) -> list[dict[str, Any]]:
    """The serving container's environment."""
    spec = ds.spec
    env: list[dict[str, Any]] = [
        {"name": "AUGUR_ROUTING_TABLE", "value": f"{c.ROUTES_DIR}/{c.ROUTES_FILE}"},
        {"name": "AUGUR_ROUTING_KEY", "value": spec.routing_key},
        {"name": "BENTOML_HOME", "value": c.MODELS_DIR},
    ]
    if spec.feature_store is not None:
        env += [
            {"name": "AUGUR_ONLINE_STORE", "value": "redis"},
            _secret_env("AUGUR_REDIS_URL", spec.feature_store.redis_url),
        ]
    env += _prediction_log_env(ds)
    if spec.auth is not None:
        env.append(
            {"name": "AUGUR_SERVING_TOKEN_FILE", "value": f"{c.TOKEN_DIR}/{spec.auth.token.key}"}
        )
    env += _overrides_env(ds)
    env += _rules_env(ds)
    if spec.shadow is not None:
        env.append(_shadow_socket_env())
    return _with_extra(env, extra)


def _rules_env(ds: DecisionService) -> list[dict[str, Any]]:
    ref = ds.spec.rule_set
    if ref is None:
        return []
    return [{"name": "AUGUR_RULE_SET_FILE", "value": f"{c.RULES_DIR}/{ref.key}"}]


_RULES_MOUNT = {"name": "rules", "mountPath": c.RULES_DIR, "readOnly": True}


def _shadow_container(ds: DecisionService, extra: Mapping[str, str]) -> dict[str, Any]:
    """``augur serve-shadow``: the model store, prediction log and decision overrides of
    the serving container, but not its routing table (each mirrored request names its
    version), online store (it carries its features) or token."""
    spec = ds.spec
    assert spec.shadow is not None
    mounts = [
        # Read-only: the shadow cannot alter the versions the serving container loads.
        {"name": "models", "mountPath": c.MODELS_DIR, "readOnly": True},
        {"name": "shadow-socket", "mountPath": c.SHADOW_SOCKET_DIR},
    ]
    if spec.prediction_log is None:
        mounts.append({"name": "prediction-log", "mountPath": c.PREDICTION_LOG_DIR})
    if spec.rule_set is not None:  # the shadow version's entries pass the same rules
        mounts.append(_RULES_MOUNT)
    # Its /metrics is its liveness: a shadow that stops answering is restarted (and
    # meanwhile the serving container drops and counts what it mirrors).
    return {
        "name": c.SHADOW_CONTAINER,
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "command": ["augur", "serve-shadow"],
        "env": _with_extra(
            [
                {"name": "BENTOML_HOME", "value": c.MODELS_DIR},
                *_prediction_log_env(ds),
                *_overrides_env(ds),
                *_rules_env(ds),
                _shadow_socket_env(),
                {"name": "AUGUR_SHADOW_METRICS_PORT", "value": str(c.SHADOW_METRICS_PORT)},
            ],
            extra,
        ),
        "ports": [{"name": "shadow-metrics", "containerPort": c.SHADOW_METRICS_PORT}],
        "livenessProbe": {
            "httpGet": {"path": "/metrics", "port": "shadow-metrics"},
            "initialDelaySeconds": 10,
            "periodSeconds": 20,
        },
        "volumeMounts": mounts,
        "resources": spec.shadow.resources.model_dump(),
    }


def _pod_template(ds: DecisionService, extra: Mapping[str, str]) -> dict[str, Any]:
    spec, name = ds.spec, ds.metadata["name"]
    table = routing_table(ds)
    volumes: list[dict[str, Any]] = [
        {"name": "routes", "configMap": {"name": routes_config_map_name(name)}},
        {"name": "models", "emptyDir": {}},
    ]
    fetch_mounts: list[dict[str, Any]] = [{"name": "models", "mountPath": c.MODELS_DIR}]
    serve_mounts = [
        {"name": "routes", "mountPath": c.ROUTES_DIR, "readOnly": True},
        {"name": "models", "mountPath": c.MODELS_DIR},
    ]
    if spec.model_store.pvc is not None:
        volumes.append(
            {
                "name": "model-store",
                "persistentVolumeClaim": {
                    "claimName": spec.model_store.pvc.claim_name,
                    "readOnly": True,
                },
            }
        )
        fetch_mounts.append(
            {"name": "model-store", "mountPath": MODEL_STORE_MOUNT, "readOnly": True}
        )
    if spec.auth is not None:
        volumes.append({"name": "token", "secret": {"secretName": spec.auth.token.name}})
        serve_mounts.append({"name": "token", "mountPath": c.TOKEN_DIR, "readOnly": True})
    if spec.rule_set is not None:
        ref = spec.rule_set
        volumes.append(
            {
                "name": "rules",
                "configMap": {"name": ref.config_map, "items": [{"key": ref.key, "path": ref.key}]},
            }
        )
        serve_mounts.append(_RULES_MOUNT)
    if spec.shadow is not None:
        # Only the socket, in memory; only these two containers mount it (it carries pickles).
        volumes.append(
            {"name": "shadow-socket", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}
        )
        serve_mounts.append({"name": "shadow-socket", "mountPath": c.SHADOW_SOCKET_DIR})
        if spec.prediction_log is None:
            volumes.append({"name": "prediction-log", "emptyDir": {}})
            serve_mounts.append({"name": "prediction-log", "mountPath": c.PREDICTION_LOG_DIR})
    fetch: dict[str, Any] = {
        "name": "fetch-models",
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        # Every version of the table, serving and shadow: a new one rolls the pods.
        "command": ["augur", "models", "pull", *table.model_tags(), "--from", _model_store_uri(ds)],
        "env": [{"name": "BENTOML_HOME", "value": c.MODELS_DIR}],
        "volumeMounts": fetch_mounts,
    }
    if spec.model_store.credentials_secret:
        fetch["envFrom"] = [{"secretRef": {"name": spec.model_store.credentials_secret}}]
    probe = {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 5}
    serve = {
        "name": c.SERVING_CONTAINER,
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "ports": [{"name": "http", "containerPort": c.SERVING_PORT, "protocol": "TCP"}],
        "env": _env(ds, extra),
        "volumeMounts": serve_mounts,
        "resources": spec.resources.model_dump(exclude_defaults=False),
        "readinessProbe": probe,
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": 6,
        },
    }
    containers = [serve]
    if spec.shadow is not None:
        containers.append(_shadow_container(ds, extra))
    return {
        "metadata": {"labels": labels(name)},
        "spec": {
            "initContainers": [fetch],
            "containers": containers,
            "volumes": volumes,
            "terminationGracePeriodSeconds": 30,
        },
    }


def _child(kind: str, api_version: str, ds: dict[str, Any], name: str) -> dict[str, Any]:
    meta = ds["metadata"]
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": labels(meta["name"]),
            "ownerReferences": [owner_reference(ds)],
        },
    }


def render_children(
    body: dict[str, Any], extra_env: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """Every child object of the DecisionService ``body`` (as the API server returned it),
    in the order to apply them: the ConfigMap before the pods that mount it. ``extra_env``
    is added to the serving and shadow containers' environment (the operator's
    ``AUGUR_OPERATOR_SERVING_ENV``: settings of the cluster, such as tracing, that no
    DecisionService spec carries)."""
    ds = DecisionService.model_validate(body)
    name = ds.metadata["name"]
    spec = ds.spec
    table = routing_table(ds)

    routes = _child("ConfigMap", "v1", body, routes_config_map_name(name))
    routes["data"] = {
        c.ROUTES_FILE: json.dumps(table.model_dump(exclude_none=True), indent=2) + "\n"
    }

    deployment = _child("Deployment", "apps/v1", body, name)
    deployment["spec"] = {
        # No replicas: the HPA owns them.
        "selector": {"matchLabels": selector(name)},
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
        },
        "template": _pod_template(ds, extra_env or {}),
    }

    service = _child("Service", "v1", body, name)
    service["spec"] = {
        "type": "ClusterIP",
        "selector": selector(name),
        "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
    }

    hpa = _child("HorizontalPodAutoscaler", "autoscaling/v2", body, name)
    hpa["spec"] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
        "minReplicas": spec.autoscaling.min_replicas,
        "maxReplicas": spec.autoscaling.max_replicas,
        # The serving container's CPU alone: a busy shadow must not add pods.
        "metrics": [
            {
                "type": "ContainerResource",
                "containerResource": {
                    "name": "cpu",
                    "container": c.SERVING_CONTAINER,
                    "target": {
                        "type": "Utilization",
                        "averageUtilization": spec.autoscaling.target_cpu_utilization_percentage,
                    },
                },
            }
        ],
    }

    pdb = _child("PodDisruptionBudget", "policy/v1", body, name)
    pdb["spec"] = {"maxUnavailable": 1, "selector": {"matchLabels": selector(name)}}
    return [routes, deployment, service, hpa, pdb]


__all__ = [
    "MODEL_STORE_MOUNT",
    "labels",
    "owner_reference",
    "render_children",
    "routes_config_map_name",
    "routing_table",
    "selector",
]
