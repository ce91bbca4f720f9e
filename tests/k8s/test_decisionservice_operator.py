"""The DecisionService operator against a real API server, controller-manager, scheduler
and kwok Nodes: children, status, traffic changes, garbage collection, crash recovery."""

from __future__ import annotations

import json
import signal
from typing import Any

import pytest

from tests.k8s.conftest import Kubectl, Operator, wait_for

TAGS = ["augur-ensemble:aaaa1111", "augur-ensemble:bbbb2222", "augur-ensemble:cccc3333"]
CHILDREN = [
    ("configmap", "{name}-routes"),
    ("deployment", "{name}"),
    ("service", "{name}"),
    ("hpa", "{name}"),
    ("pdb", "{name}"),
]


def decision_service(
    name: str, namespace: str, canary: int = 20, shadow: bool = True, **spec: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "augur.dev/v1alpha1",
        "kind": "DecisionService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "versions": [
                {"name": "stable", "modelTag": TAGS[0], "weight": 100 - canary},
                {"name": "canary", "modelTag": TAGS[1], "weight": canary},
            ],
            "modelStore": {"uri": "s3://models/augur"},
            "autoscaling": {"minReplicas": 2, "maxReplicas": 4},
            **spec,
        },
    }
    if shadow:
        body["spec"]["shadow"] = {"modelTag": TAGS[2], "mirrorPercent": 50}
    return body


def condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
    for cond in ((obj or {}).get("status") or {}).get("conditions", []):
        if cond["type"] == kind:
            return cond
    return None


def wait_ready(kubectl: Kubectl, name: str, namespace: str, timeout: float = 90) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        ds = kubectl.get("decisionservice", name, namespace)
        cond = condition(ds, "Ready")
        seen.append(cond)
        gen_ok = (
            ds
            and (ds.get("status") or {}).get("observedGeneration") == ds["metadata"]["generation"]
        )
        return ds if cond and cond["status"] == "True" and gen_ok else None

    seen: list[Any] = []
    try:
        return wait_for(f"DecisionService {namespace}/{name} Ready", ready, timeout=timeout)
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}; its last Ready condition: {seen[-1] if seen else None}"
        ) from None


def routes(kubectl: Kubectl, name: str, namespace: str) -> dict[str, Any]:
    cm = kubectl.get("configmap", f"{name}-routes", namespace)
    assert cm is not None
    return json.loads(cm["data"]["routes.json"])


def test_a_decision_service_becomes_ready_pods_on_kwok_nodes(
    kubectl: Kubectl, operator: Operator, namespace: str
) -> None:
    kubectl.apply(decision_service("eurusd", namespace))
    ds = wait_ready(kubectl, "eurusd", namespace)

    uid = ds["metadata"]["uid"]
    for kind, pattern in CHILDREN:
        child = kubectl.get(kind, pattern.format(name="eurusd"), namespace)
        assert child is not None, f"{kind} missing"
        owners = child["metadata"]["ownerReferences"]
        assert [(o["kind"], o["uid"], o.get("controller")) for o in owners] == [
            ("DecisionService", uid, True)
        ], kind

    # The HPA's minReplicas reaches the Deployment; the scheduler puts the pods on the
    # kwok Nodes and kwok runs them.
    def running_pods() -> list[dict[str, Any]] | None:
        pods = kubectl.list("pods", namespace, "augur.dev/decisionservice=eurusd")
        ok = [p for p in pods if p["status"].get("phase") == "Running"]
        return ok if len(ok) == 2 else None

    pods = wait_for("2 Running pods", running_pods, timeout=90)
    assert {p["spec"]["nodeName"] for p in pods} <= {"kwok-node-0", "kwok-node-1"}
    init = pods[0]["spec"]["initContainers"][0]
    assert init["command"][:3] == ["augur", "models", "pull"]
    assert set(TAGS) <= set(init["command"])

    ds = wait_for(
        "2/2 ready with every condition True",
        lambda: (
            d
            if (d := kubectl.get("decisionservice", "eurusd", namespace))
            and d["status"].get("ready") == "2/2"
            and all(
                (condition(d, k) or {}).get("status") == "True"
                for k in ("Ready", "RoutesReady", "ShadowReady")
            )
            else None
        ),
        timeout=90,
    )
    status = ds["status"]
    assert status["primary"] == TAGS[0]
    assert status["canaryPercent"] == 20
    assert status["shadow"] == TAGS[2]
    assert [(t["name"], t["role"], t["percent"]) for t in status["traffic"]] == [
        ("stable", "primary", 80.0),
        ("canary", "canary", 20.0),
        ("shadow", "shadow", 50.0),
    ]

    table = kubectl.run("get", "decisionservices", "-n", namespace).stdout
    header, row = table.splitlines()[:2]
    assert header.split() == ["NAME", "READY", "PRIMARY", "CANARY", "%", "SHADOW", "AGE"]
    assert row.split()[:5] == ["eurusd", "2/2", TAGS[0], "20", TAGS[2]]

    events = kubectl.run(
        "get", "events", "-n", namespace, "--field-selector",
        "involvedObject.kind=DecisionService", "-o", "json",
    )  # fmt: skip
    reasons = {e["reason"] for e in json.loads(events.stdout)["items"]}
    assert "Created" in reasons


def test_changing_weights_changes_only_the_routing_table(
    kubectl: Kubectl, operator: Operator, namespace: str
) -> None:
    kubectl.apply(decision_service("w", namespace, canary=20))
    wait_ready(kubectl, "w", namespace)
    before = kubectl.get("deployment", "w", namespace)
    assert before is not None
    rs_before = {r["metadata"]["name"] for r in kubectl.list("replicasets", namespace)}

    kubectl.apply(decision_service("w", namespace, canary=50))
    wait_for(
        "the new weights in the ConfigMap",
        lambda: [v["weight"] for v in routes(kubectl, "w", namespace)["versions"]] == [50.0, 50.0],
    )
    ds = wait_ready(kubectl, "w", namespace)
    assert ds["status"]["canaryPercent"] == 50

    after = kubectl.get("deployment", "w", namespace)
    assert after is not None
    # Same pod template: no new generation, no new ReplicaSet, no pod restarted.
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"]["template"] == before["spec"]["template"]
    assert {r["metadata"]["name"] for r in kubectl.list("replicasets", namespace)} == rs_before

    # A version the pods must fetch rolls the Deployment.
    body = decision_service("w", namespace, canary=50)
    body["spec"]["versions"][1]["modelTag"] = "augur-ensemble:dddd4444"
    kubectl.apply(body)
    rolled = wait_for(
        "a new pod template",
        lambda: (
            (d := kubectl.get("deployment", "w", namespace))
            and d["metadata"]["generation"] > before["metadata"]["generation"]
            and d
        ),
    )
    assert (
        "augur-ensemble:dddd4444"
        in rolled["spec"]["template"]["spec"]["initContainers"][0]["command"]
    )


def test_the_shadow_runs_in_its_own_container_until_it_is_removed(
    kubectl: Kubectl, operator: Operator, namespace: str
) -> None:
    body = decision_service("sh", namespace)
    body["spec"]["shadow"]["resources"] = {
        "requests": {"cpu": "50m", "memory": "256Mi"},
        "limits": {"cpu": "250m", "memory": "512Mi"},
    }
    kubectl.apply(body)
    wait_ready(kubectl, "sh", namespace)
    socket = {"name": "AUGUR_SHADOW_SOCKET", "value": "/run/augur-shadow/shadow.sock"}

    def pod_spec() -> dict[str, Any]:
        dep = kubectl.get("deployment", "sh", namespace)
        assert dep is not None
        return dep["spec"]["template"]["spec"]

    pod = pod_spec()
    serve, shadow = pod["containers"]
    assert (serve["name"], shadow["name"]) == ("decision", "shadow")
    assert shadow["command"] == ["augur", "serve-shadow"]
    assert shadow["resources"]["limits"]["cpu"] == "250m"
    assert socket in serve["env"] and socket in shadow["env"]
    assert "shadow-socket" in {v["name"] for v in pod["volumes"]}
    # The pods the scheduler placed carry the shadow container and its limit too.
    pods = wait_for(
        "a pod with the shadow container",
        lambda: [
            p
            for p in kubectl.list("pods", namespace, "augur.dev/decisionservice=sh")
            if [c["name"] for c in p["spec"]["containers"]] == ["decision", "shadow"]
        ],
    )
    assert pods[0]["spec"]["containers"][1]["resources"]["limits"]["cpu"] == "250m"
    # The HPA scales on the serving container's CPU alone.
    hpa = kubectl.get("hpa", "sh", namespace)
    assert hpa is not None
    assert [(m["type"], m["containerResource"]["container"]) for m in hpa["spec"]["metrics"]] == [
        ("ContainerResource", "decision")
    ]

    # Removing the shadow prunes its container, volumes and env (server-side apply).
    kubectl.run(
        "patch", "decisionservice", "sh", "-n", namespace, "--type=json",
        "-p", json.dumps([{"op": "remove", "path": "/spec/shadow"}]),
    )  # fmt: skip
    wait_for(
        "the Deployment without the shadow container",
        lambda: [c["name"] for c in pod_spec()["containers"]] == ["decision"],
    )
    pod = pod_spec()
    assert {v["name"] for v in pod["volumes"]} == {"routes", "models"}
    (serve,) = pod["containers"]
    assert not {"AUGUR_SHADOW_SOCKET", "AUGUR_PREDICTION_LOG_URL"} & {
        e["name"] for e in serve["env"]
    }
    assert {m["name"] for m in serve["volumeMounts"]} == {"routes", "models"}
    ds = wait_ready(kubectl, "sh", namespace)
    assert ds["status"]["shadow"] == ""


def test_deleting_it_garbage_collects_every_child(
    kubectl: Kubectl, operator: Operator, namespace: str
) -> None:
    kubectl.apply(decision_service("gc", namespace))
    wait_ready(kubectl, "gc", namespace)
    kubectl.run("delete", "decisionservice", "gc", "-n", namespace, "--wait=true")

    def gone() -> bool:
        return all(
            kubectl.get(k, p.format(name="gc"), namespace) is None for k, p in CHILDREN
        ) and not kubectl.list("pods", namespace, "augur.dev/decisionservice=gc")

    wait_for("the children to be garbage-collected", gone, timeout=60)


def test_a_missing_secret_is_a_condition_not_a_loop(
    kubectl: Kubectl, operator: Operator, namespace: str
) -> None:
    body = decision_service(
        "sec", namespace, featureStore={"redisUrl": {"name": "redis", "key": "url"}}
    )
    kubectl.apply(body)
    ds = wait_for(
        "Ready=False with reason SecretNotFound",
        lambda: (
            (d := kubectl.get("decisionservice", "sec", namespace))
            and (condition(d, "Ready") or {}).get("reason") == "SecretNotFound"
            and d
        ),
    )
    assert "Secret 'redis' not found" in condition(ds, "Ready")["message"]
    assert kubectl.get("deployment", "sec", namespace) is None

    # Level-triggered: once the Secret exists, the next resync applies everything.
    kubectl.run(
        "create", "secret", "generic", "redis", "-n", namespace, "--from-literal=url=redis:6379"
    )
    wait_ready(kubectl, "sec", namespace)
    dep = kubectl.get("deployment", "sec", namespace)
    assert dep is not None
    env = {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["AUGUR_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": "redis", "key": "url"}


def test_killed_mid_reconcile_the_operator_converges_without_duplicates(
    kubectl: Kubectl, operator: Operator, namespace: str
) -> None:
    operator.send(signal.SIGSTOP)  # frozen: the create below is not handled yet
    try:
        kubectl.apply(decision_service("crash", namespace))
        operator.send(signal.SIGCONT)
        # Let it start applying, then kill it hard in the middle.
        wait_for(
            "the first child applied",
            lambda: kubectl.get("configmap", "crash-routes", namespace) is not None,
            interval=0.02,
        )
    finally:
        operator.kill()
    # A new process, as a restarted pod: its peering priority is above the dead one's record
    # (an equal one would make kopf pause until that record expires, 60 s).
    operator.priority += 1
    operator.start()
    wait_ready(kubectl, "crash", namespace)
    for kind in ("configmaps", "deployments", "services", "hpa", "pdb", "replicasets"):
        items = kubectl.list(kind, namespace, "augur.dev/decisionservice=crash")
        assert len(items) == 1, f"{kind}: {[i['metadata']['name'] for i in items]}"


def test_the_operator_serves_healthz_and_stops_on_sigterm(
    kubectl: Kubectl, operator: Operator, cluster: Any
) -> None:
    import httpx

    assert httpx.get(f"http://127.0.0.1:{operator.health_port}/healthz").status_code == 200
    second = Operator(
        cluster.kubeconfig, cluster.logs / "operator-sigterm.log", priority=10
    ).start()
    assert second.stop() == 0


def test_a_second_operator_stays_passive_while_the_first_holds_the_peering(
    kubectl: Kubectl, operator: Operator, cluster: Any, namespace: str
) -> None:
    standby = Operator(
        cluster.kubeconfig, cluster.logs / "operator-standby.log", priority=10
    ).start()
    try:

        def peers() -> dict[str, Any]:
            peering = kubectl.get("clusterkopfpeering", "augur-test") or {}
            return peering.get("status") or {}

        wait_for(
            "both operators in the peering",
            lambda: {10, operator.priority} <= {p["priority"] for p in peers().values()},
        )
        operator.send(signal.SIGSTOP)  # the active one holds the peering but does nothing
        try:
            kubectl.apply(decision_service("passive", namespace))
            with pytest.raises(AssertionError, match="timed out"):
                wait_for(
                    "any child",
                    lambda: kubectl.get("configmap", "passive-routes", namespace) is not None,
                    timeout=8,
                )
        finally:
            operator.send(signal.SIGCONT)
        wait_ready(kubectl, "passive", namespace)  # reconciled once the active one thawed
        assert "Handler" not in standby.log_text()  # the standby never ran a handler
    finally:
        standby.stop()


def test_every_option_renders_a_deployment_the_api_server_accepts(
    kubectl: Kubectl, operator: Operator, namespace: str
) -> None:
    for secret, key in (
        ("redis", "url"),
        ("pg", "dsn"),
        ("tok", "token"),
        ("s3", "AWS_ACCESS_KEY_ID"),
    ):
        kubectl.run(
            "create", "secret", "generic", secret, "-n", namespace, f"--from-literal={key}=x"
        )
    # A model store on a volume: a PersistentVolume bound to the claim the pods mount.
    volume = {"accessModes": ["ReadOnlyMany"], "storageClassName": ""}
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": f"models-{namespace}"},
            "spec": {**volume, "capacity": {"storage": "1Gi"}, "hostPath": {"path": "/tmp/models"}},
        }
    )
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "models", "namespace": namespace},
            "spec": {
                **volume,
                "volumeName": f"models-{namespace}",
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }
    )
    body = decision_service(
        "full",
        namespace,
        routingKey="symbol",
        modelStore={"pvc": {"claimName": "models", "subPath": "augur"}, "credentialsSecret": "s3"},
        featureStore={"redisUrl": {"name": "redis", "key": "url"}},
        predictionLog={"url": {"name": "pg", "key": "dsn"}},
        auth={"token": {"name": "tok", "key": "token"}},
        decision={"confidenceThreshold": 0.45, "kellyFraction": 0.1, "exitUnits": "return"},
        resources={"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
        imagePullPolicy="Always",
    )
    kubectl.apply(body)
    wait_ready(kubectl, "full", namespace)
    pod = kubectl.get("deployment", "full", namespace)["spec"]["template"]["spec"]  # type: ignore[index]
    serve = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in serve["env"]}
    assert json.loads(env["AUGUR_DECISION_OVERRIDES"]) == {
        "confidence_threshold": 0.45,
        "kelly_fraction": 0.1,
        "exit_units": "return",
    }
    assert env["AUGUR_ROUTING_KEY"] == "symbol"
    assert serve["resources"] == {
        "requests": {"cpu": "250m", "memory": "512Mi"},
        "limits": {"memory": "1Gi"},
    }
    assert {v["name"] for v in pod["volumes"]} == {
        "routes", "models", "model-store", "token", "shadow-socket",
    }  # fmt: skip
    assert pod["initContainers"][0]["envFrom"] == [{"secretRef": {"name": "s3"}}]

    # Settings the decision engine refuses: reported, and the running Deployment is kept.
    body["spec"]["decision"] = {"maxDrawdown": 0.05}
    kubectl.apply(body)
    ds = wait_for(
        "Ready=False with reason InvalidDecisionSettings",
        lambda: (
            (d := kubectl.get("decisionservice", "full", namespace))
            and (condition(d, "Ready") or {}).get("reason") == "InvalidDecisionSettings"
            and d
        ),
    )
    assert "drawdown_scale_start" in condition(ds, "Ready")["message"]  # type: ignore[index]
    assert kubectl.get("deployment", "full", namespace) is not None
