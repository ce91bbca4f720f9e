"""What the operator renders for a DecisionService, and the status it reads back."""

from __future__ import annotations

import json
from typing import Any

import pytest

from augur.cluster import DecisionService
from augur.cluster._decisionservice import render_children
from augur.cluster._decisionservice_status import (
    Problem,
    decision_service_status,
    missing_secrets,
    spec_problems,
)
from augur.serving._routing import Router, parse_routing_table

NOW = "2026-12-06T10:00:00Z"
LATER = "2026-12-06T10:05:00Z"


def body(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "augur.dev/v1alpha1",
        "kind": "DecisionService",
        "metadata": {"name": "eurusd", "namespace": "prod", "uid": "u-1", "generation": 3},
        "spec": {
            "versions": [
                {"name": "stable", "modelTag": "augur-ensemble:a1", "weight": 70},
                {"name": "canary", "modelTag": "augur-ensemble:b2", "weight": 30},
            ],
            "shadow": {"modelTag": "augur-ensemble:c3", "mirrorPercent": 40},
            "modelStore": {"uri": "s3://bucket/models"},
            **spec,
        },
    }


def by_kind(children: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["kind"]: c for c in children}


def test_children_are_owned_and_the_config_map_comes_first() -> None:
    children = render_children(body())
    assert [c["kind"] for c in children] == [
        "ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
    ]  # fmt: skip
    for child in children:
        assert child["metadata"]["namespace"] == "prod"
        assert child["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "augur.dev/v1alpha1",
                "kind": "DecisionService",
                "name": "eurusd",
                "uid": "u-1",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]


def test_the_config_map_holds_the_routing_table_contract() -> None:
    cm = by_kind(render_children(body()))["ConfigMap"]
    table = parse_routing_table(cm["data"]["routes.json"])
    assert [(v.name, v.model_tag, v.weight) for v in table.versions] == [
        ("stable", "augur-ensemble:a1", 70.0),
        ("canary", "augur-ensemble:b2", 30.0),
    ]
    assert table.shadow is not None and (table.shadow.model_tag, table.shadow.percent) == (
        "augur-ensemble:c3",
        40.0,
    )
    router = Router(table)
    share = sum(router.route(f"k{i}").name == "canary" for i in range(4000)) / 4000
    assert share == pytest.approx(0.30, abs=0.03)


def test_weights_live_only_in_the_config_map() -> None:
    a = by_kind(render_children(body()))
    moved = body()
    moved["spec"]["versions"][0]["weight"], moved["spec"]["versions"][1]["weight"] = 40, 60
    moved["spec"]["shadow"]["mirrorPercent"] = 5
    b = by_kind(render_children(moved))
    assert a["Deployment"] == b["Deployment"]
    assert a["ConfigMap"] != b["ConfigMap"]


def test_a_new_version_changes_the_pod_template() -> None:
    a = by_kind(render_children(body()))["Deployment"]
    moved = body()
    moved["spec"]["versions"][1]["modelTag"] = "augur-ensemble:d4"
    b = by_kind(render_children(moved))["Deployment"]
    assert a["spec"]["template"] != b["spec"]["template"]
    fetch = b["spec"]["template"]["spec"]["initContainers"][0]["command"]
    assert fetch == [
        "augur", "models", "pull", "augur-ensemble:a1", "augur-ensemble:d4", "augur-ensemble:c3",
        "--from", "s3://bucket/models",
    ]  # fmt: skip


def test_the_deployment_leaves_replicas_to_the_hpa() -> None:
    children = by_kind(render_children(body(autoscaling={"minReplicas": 2, "maxReplicas": 5})))
    assert "replicas" not in children["Deployment"]["spec"]
    hpa = children["HorizontalPodAutoscaler"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 5)
    assert hpa["metrics"][0]["containerResource"]["target"]["averageUtilization"] == 70


def containers(children: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    pod = by_kind(children)["Deployment"]["spec"]["template"]["spec"]
    return {c["name"]: c for c in pod["containers"]}


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container["env"]}


def test_a_shadow_runs_in_its_own_container_with_a_cpu_limit() -> None:
    pod = containers(render_children(body()))
    assert list(pod) == ["decision", "shadow"]
    shadow = pod["shadow"]
    assert shadow["command"] == ["augur", "serve-shadow"]
    assert shadow["image"] == pod["decision"]["image"]
    assert shadow["resources"]["limits"]["cpu"] == "500m"
    # Its /metrics (decisions, agreement with the primary) is its only port and its
    # liveness; it takes no traffic, so it has no readiness probe.
    assert shadow["ports"] == [{"name": "shadow-metrics", "containerPort": 9464}]
    assert env_of(shadow)["AUGUR_SHADOW_METRICS_PORT"]["value"] == "9464"
    assert shadow["livenessProbe"]["httpGet"] == {"path": "/metrics", "port": "shadow-metrics"}
    assert "readinessProbe" not in shadow

    sized = body()
    sized["spec"]["shadow"]["resources"] = {"requests": {"cpu": "50m"}, "limits": {"cpu": "1"}}
    assert containers(render_children(sized))["shadow"]["resources"] == {
        "requests": {"cpu": "50m"},
        "limits": {"cpu": "1"},
    }


def test_both_containers_share_the_shadow_socket_and_nothing_else_of_the_route() -> None:
    children = render_children(
        body(
            featureStore={"redisUrl": {"name": "redis", "key": "url"}},
            predictionLog={"url": {"name": "pg", "key": "dsn"}},
            auth={"token": {"name": "tok", "key": "token"}},
            decision={"confidenceThreshold": 0.4},
        )
    )
    pod = by_kind(children)["Deployment"]["spec"]["template"]["spec"]
    (socket_volume,) = [v for v in pod["volumes"] if v["name"] == "shadow-socket"]
    assert socket_volume["emptyDir"]["medium"] == "Memory"
    serve, shadow = containers(children)["decision"], containers(children)["shadow"]
    for container in (serve, shadow):
        assert env_of(container)["AUGUR_SHADOW_SOCKET"]["value"] == "/run/augur-shadow/shadow.sock"
        assert {"name": "shadow-socket", "mountPath": "/run/augur-shadow"} in container[
            "volumeMounts"
        ]
    # The shadow logs where the serving container logs, with the same risk overrides...
    for name in ("AUGUR_PREDICTION_LOG_URL", "AUGUR_DECISION_OVERRIDES", "BENTOML_HOME"):
        assert env_of(shadow)[name] == env_of(serve)[name]
    # ...and gets neither the routing table, the online store nor the token.
    assert set(env_of(shadow)) == {
        "BENTOML_HOME", "AUGUR_PREDICTION_LOG_URL", "AUGUR_DECISION_OVERRIDES",
        "AUGUR_SHADOW_SOCKET", "AUGUR_SHADOW_METRICS_PORT",
    }  # fmt: skip
    assert {m["name"] for m in shadow["volumeMounts"]} == {"models", "shadow-socket"}
    assert {"name": "models", "mountPath": "/var/lib/augur/bentoml", "readOnly": True} in shadow[
        "volumeMounts"
    ]


def test_without_a_prediction_log_both_containers_log_to_one_pod_local_file() -> None:
    children = render_children(body())
    serve, shadow = containers(children)["decision"], containers(children)["shadow"]
    url = "sqlite:////var/lib/augur/prediction-log/predictions.db"
    assert env_of(serve)["AUGUR_PREDICTION_LOG_URL"]["value"] == url
    assert env_of(shadow)["AUGUR_PREDICTION_LOG_URL"]["value"] == url
    for container in (serve, shadow):
        assert {"name": "prediction-log", "mountPath": "/var/lib/augur/prediction-log"} in (
            container["volumeMounts"]
        )


def test_without_a_shadow_the_pod_has_only_the_serving_container() -> None:
    no_shadow = body()
    del no_shadow["spec"]["shadow"]
    children = render_children(no_shadow)
    pod = by_kind(children)["Deployment"]["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["decision"]
    assert {v["name"] for v in pod["volumes"]} == {"routes", "models"}
    serve = pod["containers"][0]
    assert not {"AUGUR_SHADOW_SOCKET", "AUGUR_PREDICTION_LOG_URL"} & set(env_of(serve))
    assert {m["name"] for m in serve["volumeMounts"]} == {"routes", "models"}


def test_the_hpa_scales_on_the_serving_container_cpu_alone() -> None:
    (metric,) = by_kind(render_children(body()))["HorizontalPodAutoscaler"]["spec"]["metrics"]
    assert metric["type"] == "ContainerResource"
    assert metric["containerResource"]["name"] == "cpu"
    assert metric["containerResource"]["container"] == "decision"


def test_secrets_and_settings_reach_the_serving_container() -> None:
    d = by_kind(
        render_children(
            body(
                featureStore={"redisUrl": {"name": "redis", "key": "url"}},
                predictionLog={"url": {"name": "pg", "key": "dsn"}},
                auth={"token": {"name": "tok", "key": "token"}},
                decision={"confidenceThreshold": 0.4, "maxDrawdown": 0.1},
                routingKey="symbol",
                modelStore={"pvc": {"claimName": "models", "subPath": "augur"}},
            )
        )
    )["Deployment"]
    pod = d["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["AUGUR_ONLINE_STORE"]["value"] == "redis"
    assert env["AUGUR_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": "redis", "key": "url"}
    assert env["AUGUR_PREDICTION_LOG_URL"]["valueFrom"]["secretKeyRef"]["name"] == "pg"
    assert env["AUGUR_SERVING_TOKEN_FILE"]["value"] == "/etc/augur/token/token"
    assert env["AUGUR_ROUTING_KEY"]["value"] == "symbol"
    assert json.loads(env["AUGUR_DECISION_OVERRIDES"]["value"]) == {
        "confidence_threshold": 0.4,
        "max_drawdown": 0.1,
    }
    assert pod["initContainers"][0]["command"][-1] == "/var/lib/augur/model-store/augur"
    claims = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert claims[0]["persistentVolumeClaim"] == {"claimName": "models", "readOnly": True}


def test_missing_secrets_and_keys_are_named() -> None:
    ds = DecisionService.model_validate(
        body(
            featureStore={"redisUrl": {"name": "redis", "key": "url"}},
            auth={"token": {"name": "tok", "key": "token"}},
        )
    )
    assert missing_secrets(ds, {"redis": {"url"}, "tok": {"token"}}) == []
    problems = missing_secrets(ds, {"redis": {"host"}})
    assert problems == [
        "featureStore.redisUrl: Secret 'redis' has no key 'url' (it has: host)",
        "auth.token: Secret 'tok' not found in the namespace",
    ]


def deployment(desired: int, ready: int, updated: int, generation: int = 1) -> dict[str, Any]:
    return {
        "metadata": {"generation": generation},
        "spec": {"replicas": desired},
        "status": {
            "observedGeneration": generation,
            "replicas": updated,
            "readyReplicas": ready,
            "updatedReplicas": updated,
        },
    }


def conditions(status: Any) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in status.conditions}


def test_status_follows_the_deployment() -> None:
    pending = decision_service_status(body(), deployment(2, 0, 2), [], NOW)
    assert conditions(pending)["Ready"] == ("False", "NoReadyReplicas")
    assert pending.ready == "0/2"
    ready = decision_service_status(body(), deployment(2, 2, 2), [], NOW)
    assert conditions(ready) == {
        "RoutesReady": ("True", "RoutingTableApplied"),
        "Ready": ("True", "ReplicasReady"),
        "ShadowReady": ("True", "ShadowMirrored"),
    }
    assert (ready.ready, ready.primary, ready.canary_percent, ready.shadow) == (
        "2/2",
        "augur-ensemble:a1",
        30,
        "augur-ensemble:c3",
    )
    assert ready.observed_generation == 3
    rolling = decision_service_status(body(), deployment(2, 2, 1, generation=2), [], NOW)
    assert conditions(rolling)["Ready"] == ("False", "RollingOut")


def test_a_transition_time_moves_only_when_the_status_changes() -> None:
    first = body()
    first["status"] = decision_service_status(first, deployment(2, 2, 2), [], NOW).model_dump(
        by_alias=True, mode="json"
    )
    same = decision_service_status(first, deployment(2, 2, 2), [], LATER)
    assert {c.last_transition_time for c in same.conditions} == {NOW}
    down = decision_service_status(first, deployment(2, 0, 2), [], LATER)
    times = {c.type: c.last_transition_time for c in down.conditions}
    assert times["Ready"] == LATER and times["RoutesReady"] == NOW


def test_problems_make_every_condition_false_with_the_reason() -> None:
    problem = Problem("SecretNotFound", "auth.token: Secret 'tok' not found")
    status = decision_service_status(body(), None, [problem], NOW)
    assert conditions(status)["Ready"] == ("False", "SecretNotFound")
    assert conditions(status)["RoutesReady"] == ("False", "SecretNotFound")
    assert status.traffic == []


def test_decision_settings_the_engine_refuses_are_a_problem() -> None:
    ok = DecisionService.model_validate(body(decision={"confidenceThreshold": 0.4}))
    assert spec_problems(ok, {}) == []
    # max_drawdown at or below the default drawdown_scale_start (0.1) is refused by the engine
    bad = DecisionService.model_validate(body(decision={"maxDrawdown": 0.05}))
    (problem,) = spec_problems(bad, {})
    assert problem.reason == "InvalidDecisionSettings"
    assert "drawdown_scale_start" in problem.message and problem.message.startswith("spec.decision")


def test_a_rule_set_reaches_the_serving_and_shadow_containers() -> None:
    d = by_kind(render_children(body(ruleSet={"configMap": "eurusd-rules", "key": "v3.yaml"})))
    pod = d["Deployment"]["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "rules"]
    assert volume["configMap"] == {
        "name": "eurusd-rules",
        "items": [{"key": "v3.yaml", "path": "v3.yaml"}],
    }
    for container in pod["containers"]:  # the serving container and the shadow's
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["AUGUR_RULE_SET_FILE"] == "/etc/augur/rules/v3.yaml", container["name"]
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        assert mounts["rules"] == {
            "name": "rules", "mountPath": "/etc/augur/rules", "readOnly": True,
        }  # fmt: skip
    plain = by_kind(render_children(body()))["Deployment"]["spec"]["template"]["spec"]
    assert "rules" not in [v["name"] for v in plain["volumes"]]


def test_a_rule_set_key_must_be_a_file_name() -> None:
    with pytest.raises(ValueError, match="key"):
        DecisionService.model_validate(body(ruleSet={"configMap": "r", "key": "../etc/passwd"}))
