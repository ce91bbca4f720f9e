"""The chart rendered by ``helm template``: what a platform team installs, checked object
by object (RBAC without wildcards, pod security, values that reach the pods, bad values
refused by name)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.unit.helm.conftest import CHART, Render, run_helm

SCENARIOS = sorted(p.relative_to(CHART).as_posix() for p in (CHART / "ci").glob("*-values.yaml"))
CRD_PLURALS = ("decisionservices", "tuningjobs")


def of_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def deployment(objs: list[dict[str, Any]]) -> dict[str, Any]:
    (dep,) = of_kind(objs, "Deployment")
    return dep


def pod_specs(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pod spec of every workload (Deployment, StatefulSet, CronJob) and bare Pod."""
    out = []
    for obj in objs:
        spec = obj.get("spec", {})
        if obj["kind"] == "Pod":
            out.append(spec)
        elif obj["kind"] == "CronJob":
            out.append(spec["jobTemplate"]["spec"]["template"]["spec"])
        elif "template" in spec:
            out.append(spec["template"]["spec"])
    return out


def rules(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for o in objs if o["kind"] in ("Role", "ClusterRole") for r in o["rules"]]


def grants(objs: list[dict[str, Any]], group: str, resource: str) -> set[str]:
    """The verbs the rendered (Cluster)Roles grant on ``group``/``resource``."""
    return {
        verb
        for rule in rules(objs)
        if group in rule["apiGroups"] and resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_there_are_scenarios_besides_the_minimal_one() -> None:
    assert "ci/minimal-values.yaml" in SCENARIOS and len(SCENARIOS) >= 2


@pytest.mark.parametrize("scenario", ["values.yaml", *SCENARIOS])
def test_every_scenario_lints_strictly(helm: Path, scenario: str) -> None:
    proc = run_helm("lint", ".", "--strict", "-f", scenario)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("scenario", ["values.yaml", *SCENARIOS])
def test_no_rbac_rule_has_a_wildcard(render: Render, scenario: str) -> None:
    objs = render(scenario)
    assert rules(objs) or scenario.endswith("existing-serviceaccount-values.yaml")
    for rule in rules(objs):
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[key], f"{key} of {rule} has a wildcard"
        assert not {"delete", "deletecollection", "escalate", "bind", "impersonate"} & set(
            rule["verbs"]
        ), rule


@pytest.mark.parametrize("scenario", ["values.yaml", *SCENARIOS])
def test_every_pod_is_locked_down(render: Render, scenario: str) -> None:
    for pod in pod_specs(render(scenario)):
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        mounts_by_volume = {v["name"]: v for v in pod.get("volumes", [])}
        for container in pod["containers"] + pod.get("initContainers", []):
            sc = container["securityContext"]
            assert sc["runAsNonRoot"] is True
            assert isinstance(sc["runAsUser"], int) and sc["runAsUser"] > 0
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
            assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
            assert {"cpu", "memory"} <= container["resources"]["limits"].keys()
            tmp = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert tmp and "emptyDir" in mounts_by_volume[tmp[0]["name"]], "nowhere to write"


def test_defaults_run_two_peered_replicas_cluster_wide(render: Render) -> None:
    objs = render()
    dep = deployment(objs)
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert dep["spec"]["replicas"] == 2
    assert container["command"] == ["augur", "operator", "run"]
    assert "args" not in container  # no --namespace: every namespace
    assert container["image"] == "augur-decision:0.1.0"  # the chart's appVersion
    assert env["AUGUR_OPERATOR_PEERING"] == "augur"
    assert env["AUGUR_OPERATOR_PRIORITY"] == "0"
    assert env["AUGUR_OPERATOR_HEALTH_PORT"] == "8080"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["ports"] == [{"name": "health", "containerPort": 8080, "protocol": "TCP"}]
    (role,) = of_kind(objs, "ClusterRole")
    (binding,) = of_kind(objs, "ClusterRoleBinding")
    (account,) = of_kind(objs, "ServiceAccount")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": "augur-system"}
    ]
    assert dep["spec"]["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]
    assert not of_kind(objs, "Role") and not of_kind(objs, "KopfPeering")


def test_the_operator_may_do_what_it_does_and_no_more(render: Render) -> None:
    objs = render()
    for plural in CRD_PLURALS:
        assert grants(objs, "augur.dev", plural) == {"get", "list", "watch", "patch"}
        assert grants(objs, "augur.dev", f"{plural}/status") == {"patch"}
    children = {
        ("apps", "deployments"),
        ("", "services"),
        ("", "configmaps"),
        ("autoscaling", "horizontalpodautoscalers"),
        ("policy", "poddisruptionbudgets"),
        ("ray.io", "rayjobs"),
    }
    for group, resource in children:  # server-side apply: get, create, patch
        assert {"get", "create", "patch"} <= grants(objs, group, resource), resource
    assert grants(objs, "", "secrets") == {"list"}  # read-only
    assert grants(objs, "", "events") == {"create"}
    assert {"list", "watch", "patch"} <= grants(objs, "kopf.dev", "clusterkopfpeerings")
    assert grants(objs, "", "pods") == set()
    assert grants(objs, "rbac.authorization.k8s.io", "clusterroles") == set()


def test_values_reach_the_deployment(render: Render) -> None:
    dep = deployment(
        render(
            sets=(
                "operator.replicas=3",
                "image.repository=registry.example.com/augur",
                "image.tag=1.2.3",
                "image.pullPolicy=Never",
                "operator.resources.limits.memory=2Gi",
                "operator.runAsUser=4242",
                "operator.healthPort=9090",
            )
        )
    )
    pod = dep["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert dep["spec"]["replicas"] == 3
    assert container["image"] == "registry.example.com/augur:1.2.3"
    assert container["imagePullPolicy"] == "Never"
    assert container["resources"]["limits"]["memory"] == "2Gi"
    assert container["securityContext"]["runAsUser"] == 4242
    assert pod["securityContext"]["runAsUser"] == 4242
    assert container["ports"][0]["containerPort"] == 9090
    assert {"name": "AUGUR_OPERATOR_HEALTH_PORT", "value": "9090"} in container["env"]


def test_watched_namespaces_get_roles_and_no_cluster_access_to_objects(render: Render) -> None:
    objs = render("ci/namespaced-values.yaml")
    (container,) = deployment(objs)["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["--namespace=trading-a", "--namespace=trading-b"]
    (cluster_role,) = of_kind(objs, "ClusterRole")  # rbac.clusterDiscovery: read-only
    assert [(r["apiGroups"], r["resources"], r["verbs"]) for r in cluster_role["rules"]] == [
        ([""], ["namespaces"], ["list", "watch"]),
        (["apiextensions.k8s.io"], ["customresourcedefinitions"], ["list", "watch"]),
    ]
    strict = render("ci/namespaced-values.yaml", sets=("rbac.clusterDiscovery=false",))
    assert not of_kind(strict, "ClusterRole") and not of_kind(strict, "ClusterRoleBinding")
    for kind in ("Role", "RoleBinding", "KopfPeering"):
        assert sorted(o["metadata"]["namespace"] for o in of_kind(objs, kind)) == [
            "trading-a",
            "trading-b",
        ], kind
    assert {o["metadata"]["name"] for o in of_kind(objs, "KopfPeering")} == {"augur-trading"}
    assert grants(objs, "kopf.dev", "kopfpeerings") >= {"list", "watch", "patch"}
    for binding in of_kind(objs, "RoleBinding"):
        assert binding["subjects"][0]["namespace"] == "augur-system"


def test_an_existing_service_account_gets_no_rbac(render: Render) -> None:
    objs = render("ci/existing-serviceaccount-values.yaml")
    assert {o["kind"] for o in objs} == {"Deployment"}
    assert deployment(objs)["spec"]["template"]["spec"]["serviceAccountName"] == "augur-operator"


def test_every_object_carries_the_release_labels(render: Render) -> None:
    for obj in render("ci/namespaced-values.yaml"):
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == "rel"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["team"] == "platform"  # commonLabels


SCHEMA_REFUSES = [
    ("operator.replicas=-1", "/operator/replicas"),
    ("surprise=1", "'surprise' not allowed"),
    ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
    ("operator.runAsUser=0", "/operator/runAsUser"),
    ("operator.watchNamespaces={Not_A_Namespace}", "/operator/watchNamespaces/0"),
    ("operator.healthPort=0", "/operator/healthPort"),
    ("redis.image.pullPolicy=Sometimes", "/redis/image/pullPolicy"),
    ("features.materialize.schedule=often", "/features/materialize/schedule"),
    ("retraining.promote.as=primary", "/retraining/promote/as"),
    ("observability.prometheusRule.enabled=true", "/observability/prometheusRule/labels"),
    ("observability.otel.endpoint=collector:4318", "/observability/otel/endpoint"),
    ("redis.external.url=redis://cache:6379", "/redis/external/url"),
    ("features.bars.source=url", "/features/bars/source"),
    ("features.bars.files.subPath=../elsewhere", "/features/bars/files/subPath"),
    ("features.bars.sample.symbols={BTCUSD}", "/features/bars/sample/symbols/0"),
]
VALIDATE_CONFIG_REFUSES = [
    ("operator.peering.name=", "operator.peering.name is empty with operator.replicas=2"),
    ("operator.watchNamespaces={a,a}", "operator.watchNamespaces=[a a] names a namespace"),
    ("serviceAccount.create=false", "serviceAccount.name is empty"),
    ("redis.enabled=true,redis.external.url=r:6379", "redis.enabled=true and redis.external"),
    ("features.materialize.enabled=true", "features.materialize.enabled=true needs a Redis"),
    (
        "redis.enabled=true,features.materialize.enabled=true",
        "features.bars.source=files needs features.bars.files.existingClaim",
    ),
    ("retraining.enabled=true", "retraining.enabled=true needs retraining.storageURI"),
    ("decisionService.enabled=true", "decisionService.enabled=true needs a Redis"),
]


@pytest.mark.parametrize(("value", "named"), SCHEMA_REFUSES + VALIDATE_CONFIG_REFUSES)
def test_helm_template_refuses_a_bad_value_by_name(helm: Path, value: str, named: str) -> None:
    proc = run_helm("template", "rel", ".", "--set", value)
    assert proc.returncode != 0
    assert named in proc.stderr


@pytest.mark.parametrize(("value", "named"), SCHEMA_REFUSES)
def test_helm_lint_refuses_a_value_against_the_schema(helm: Path, value: str, named: str) -> None:
    """(helm lint only logs a template's `fail` at INFO level and passes: validateConfig's
    checks stop `helm template`/`install`/`upgrade`, above.)"""
    proc = run_helm("lint", ".", "--set", value)
    assert proc.returncode != 0
    assert named in proc.stdout + proc.stderr


def test_values_yaml_documents_every_key() -> None:
    """helm-docs style: a `# --` comment block right above every value. A map header
    without one (``operator:``) is a section: its keys carry their own."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented: list[str] = []
    documented_depth: int | None = None  # lines deeper than this are inside a documented value
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "-")) or ":" not in stripped:
            continue
        depth = len(line) - len(line.lstrip())
        if documented_depth is not None and depth > documented_depth:
            continue
        documented_depth = None
        j = i - 1
        while j >= 0 and lines[j].strip().startswith("#") and "# --" not in lines[j]:
            j -= 1
        if j >= 0 and lines[j].strip().startswith("# --"):
            documented_depth = depth
        elif not stripped.endswith(":"):
            undocumented.append(stripped)
    assert not undocumented, f"values without a `# --` comment: {undocumented}"
