"""The Helm chart on a real control plane: ``helm install`` / ``upgrade`` / ``uninstall``
with the ``helm`` the tier builds, the operator's pods scheduled onto the kwok Nodes (kwok
runs them; the image is never pulled), its RBAC as the API server enforces it, and the
real operator doing its job with nothing more than that RBAC.

The CRDs are the tier's (the ``kubectl`` fixture applies helm/augur/crds), so every install
here is ``--skip-crds``, as the chart's README says for CRDs applied beforehand.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import free_port
from tests.k8s.conftest import ROOT, Kubectl, fresh_namespace, wait_for
from tests.k8s.controlplane import _build
from tests.k8s.controlplane._cluster import NODES, Cluster
from tests.k8s.test_decisionservice_operator import decision_service, wait_ready

CHART = ROOT / "helm" / "augur"
HELM = _build.BIN / "helm"
INSTANCE = "app.kubernetes.io/instance"
# What a namespaced install could leave behind: its own objects, the pods and ReplicaSets
# they make, and Helm's release records (Secrets).
NAMESPACED_KINDS = "deployments,replicasets,pods,serviceaccounts,roles,rolebindings,configmaps"
# ... and with Redis, the feature jobs and the observability objects on.
PLATFORM_KINDS = (
    f"{NAMESPACED_KINDS},statefulsets,services,secrets,persistentvolumeclaims,cronjobs,jobs,"
    "decisionservices.augur.dev,servicemonitors.monitoring.coreos.com,"
    "podmonitors.monitoring.coreos.com,prometheusrules.monitoring.coreos.com"
)


@dataclass
class Helm:
    """helm against the test control plane."""

    kubeconfig: Path

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(HELM), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=180,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed: {proc.stderr}")
        return proc


@pytest.fixture
def helm(cluster: Cluster, kubectl: Kubectl) -> Helm:
    if not HELM.exists():
        pytest.skip(f"no helm binary at {HELM}: `make k8s-build` builds it")
    return Helm(cluster.kubeconfig)


@pytest.fixture(scope="module")
def monitoring_crds(kubectl: Kubectl) -> list[str]:
    """The Prometheus operator's ServiceMonitor, PodMonitor and PrometheusRule CRDs (from
    its Go module), so the observability objects are created and validated for real."""
    names = []
    for crd in _build.prometheus_operator_crds():
        kubectl.run("apply", "--server-side", "--force-conflicts", "-f", str(crd))
        names.append(yaml.safe_load(crd.read_text())["metadata"]["name"])
    for name in names:
        kubectl.run("wait", "--for=condition=Established", f"crd/{name}", "--timeout=30s")
    return names


@pytest.fixture
def other_namespace(kubectl: Kubectl) -> Iterator[str]:
    with fresh_namespace(kubectl) as name:
        yield name


def can_i(kubectl: Kubectl, account: str, verb: str, what: str, namespace: str | None) -> bool:
    """What the API server's RBAC authorizer answers for the ServiceAccount ``account``."""
    where = ["-n", namespace] if namespace else ["--all-namespaces"]
    proc = kubectl.run("auth", "can-i", verb, what, *where, f"--as={account}", check=False)
    return proc.stdout.strip() == "yes"


def running_pods(kubectl: Kubectl, namespace: str, release: str, count: int) -> list[Any]:
    def ready() -> list[dict[str, Any]] | None:
        pods = kubectl.list("pods", namespace, f"{INSTANCE}={release}")
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        up = [p for p in live if p["status"].get("phase") == "Running"]
        return up if len(up) == count == len(live) else None

    return wait_for(f"{count} Running operator pods", ready, timeout=90)


@pytest.mark.parametrize(
    "scenario", ["values.yaml", *sorted(p.name for p in (CHART / "ci").glob("*-values.yaml"))]
)
def test_every_scenario_is_accepted_by_the_api_server(
    kubectl: Kubectl, helm: Helm, namespace: str, scenario: str, monitoring_crds: list[str]
) -> None:
    """Each ci/ scenario rendered and sent to the API server as a dry run with strict field
    validation: every field exists in the real schemas (ours, Kubernetes' and the
    Prometheus operator's), and the CRDs' CEL rules hold. (This is the chart's schema
    validation: kubeconform would need its JSON schemas from GitHub.)"""
    values = CHART / scenario if scenario == "values.yaml" else CHART / "ci" / scenario
    rendered = helm.run(
        "template", "rel", str(CHART), "-n", namespace, "-f", str(values),
        # the scenario's namespaces need not exist here: watch the test's own instead
        *(["--set", f"operator.watchNamespaces={{{namespace}}}"] if "namespaced" in scenario else []),
    ).stdout  # fmt: skip
    proc = kubectl.run(
        "create", "--dry-run=server", "--validate=strict", "-n", namespace, "-o", "name",
        "-f", "-", stdin=rendered,
    )  # fmt: skip
    kinds = sorted(name.split("/")[0].split(".")[0] for name in proc.stdout.split())
    objs = [d for d in yaml.safe_load_all(rendered) if d]
    expected = sorted(d["kind"].lower() for d in objs)
    assert kinds == expected and "deployment" in kinds
    # the TuningJob the retraining CronJob creates, as the API server sees it
    for cm in objs:
        if cm["kind"] == "ConfigMap" and "tuningjob.yaml" in cm.get("data", {}):
            job = yaml.safe_load(cm["data"]["tuningjob.yaml"])
            job["metadata"]["namespace"] = namespace
            made = kubectl.run("create", "--dry-run=server", "--validate=strict", "-o", "name",
                               "-f", "-", stdin=json.dumps(job))  # fmt: skip
            assert made.stdout.startswith("tuningjob.augur.dev/"), made.stdout


def test_install_upgrade_uninstall(kubectl: Kubectl, helm: Helm, namespace: str) -> None:
    # The chart's pods must pass the strictest Pod Security Standard.
    kubectl.run("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    release = f"augur-{namespace}"
    install = helm.run(
        "install", release, str(CHART), "-n", namespace, "--skip-crds", "--wait", "--timeout=90s"
    )
    print(
        f"\n$ helm install {release} helm/augur -n {namespace} --skip-crds --wait\n{install.stdout}"
    )
    assert "STATUS: deployed" in install.stdout

    operator = f"{release}-operator"
    cluster_role = f"{operator}-{namespace}"
    dep = kubectl.get("deployment", operator, namespace)
    assert dep is not None and dep["spec"]["replicas"] == 2
    assert kubectl.get("serviceaccount", operator, namespace) is not None
    assert kubectl.get("clusterrole", cluster_role) is not None
    binding = kubectl.get("clusterrolebinding", cluster_role)
    assert binding is not None
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": operator, "namespace": namespace}
    ]
    pods = running_pods(kubectl, namespace, release, 2)
    assert {p["spec"]["nodeName"] for p in pods} <= set(NODES)

    account = f"system:serviceaccount:{namespace}:{operator}"
    for verb, what in [
        ("watch", "decisionservices.augur.dev"),
        ("patch", "tuningjobs.augur.dev"),
        ("create", "deployments.apps"),
        ("patch", "rayjobs.ray.io"),
        ("list", "secrets"),
        ("create", "events"),
    ]:
        assert can_i(kubectl, account, verb, what, None), f"cannot {verb} {what}"
    for verb, what in [
        ("get", "secrets"),
        ("create", "secrets"),
        ("delete", "deployments.apps"),
        ("create", "pods"),
        ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
        ("*", "*"),
    ]:
        assert not can_i(kubectl, account, verb, what, None), f"may {verb} {what}"

    upgrade = helm.run(
        "upgrade", release, str(CHART), "-n", namespace, "--skip-crds",
        "--set", "operator.replicas=3", "--wait", "--timeout=90s",
    )  # fmt: skip
    assert "has been upgraded" in upgrade.stdout
    dep = kubectl.get("deployment", operator, namespace)
    assert dep is not None and dep["spec"]["replicas"] == 3
    running_pods(kubectl, namespace, release, 3)

    helm.run("uninstall", release, "-n", namespace, "--wait", "--timeout=90s")

    def leftovers() -> list[str] | None:
        proc = kubectl.run("get", NAMESPACED_KINDS, "-n", namespace, "-l", f"{INSTANCE}={release}",
                           "-o", "name")  # fmt: skip
        records = kubectl.run("get", "secrets", "-n", namespace, "-l", f"name={release}",
                              "-o", "name")  # fmt: skip
        left = (proc.stdout + records.stdout).split()
        return None if left else ["nothing"]

    wait_for("no namespaced object of the release", leftovers, timeout=60)
    assert kubectl.get("clusterrole", cluster_role) is None
    assert kubectl.get("clusterrolebinding", cluster_role) is None


def service_account_kubeconfig(
    kubectl: Kubectl, cluster: Cluster, namespace: str, name: str, path: Path
) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount (a TokenRequest token), as the
    operator's pod would."""
    token = kubectl.run("create", "token", name, "-n", namespace, "--duration=1h").stdout.strip()
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    for user in config["users"]:
        user["user"] = {"token": token}
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_namespaced_install_lets_the_operator_work_there_and_nowhere_else(
    kubectl: Kubectl,
    helm: Helm,
    cluster: Cluster,
    namespace: str,
    other_namespace: str,
    tmp_path: Path,
) -> None:
    watched = other_namespace
    release = f"augur-{namespace}"
    peering = f"augur-{uuid.uuid4().hex[:6]}"
    helm.run(
        "install", release, str(CHART), "-n", namespace, "--skip-crds",
        "--set", f"operator.watchNamespaces={{{watched}}}",
        "--set", f"operator.peering.name={peering}",
        "--set", "operator.replicas=1",
    )  # fmt: skip
    operator = f"{release}-operator"
    account = f"system:serviceaccount:{namespace}:{operator}"
    assert kubectl.get("kopfpeering", peering, watched) is not None
    assert can_i(kubectl, account, "list", "decisionservices.augur.dev", watched)
    assert can_i(kubectl, account, "patch", "kopfpeerings.kopf.dev", watched)
    assert not can_i(kubectl, account, "list", "decisionservices.augur.dev", namespace)
    assert not can_i(kubectl, account, "list", "decisionservices.augur.dev", None)
    assert not can_i(kubectl, account, "list", "clusterkopfpeerings.kopf.dev", None)

    # The operator itself, as that ServiceAccount: with only the chart's Role it makes a
    # DecisionService's children and records its status.
    env = {
        **os.environ,
        "KUBECONFIG": str(
            service_account_kubeconfig(
                kubectl, cluster, namespace, operator, tmp_path / "operator.kubeconfig"
            )
        ),
        "AUGUR_OPERATOR_RESYNC_SECONDS": "2",
        "AUGUR_OPERATOR_PEERING": peering,
        "AUGUR_OPERATOR_PRIORITY": "100",
        "AUGUR_OPERATOR_HEALTH_PORT": str(free_port()),
    }
    log = tmp_path / "operator.log"
    augur = str(Path(sys.executable).parent / "augur")
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [augur, "operator", "run", f"--namespace={watched}"],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True,
        )  # fmt: skip
    try:
        kubectl.apply(decision_service("eurusd", watched, shadow=False))
        try:
            wait_ready(kubectl, "eurusd", watched, timeout=120)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\noperator log:\n{log.read_text()[-4000:]}") from None
        for kind in ("deployment", "service", "hpa", "pdb"):
            assert kubectl.get(kind, "eurusd", watched) is not None, kind
        # This operator handled it too. (In a full run the tier's own operator, which
        # watches every namespace, may have made it Ready first, before this one's first
        # log line: wait for this one's.)
        wait_for(
            "the chart's operator to handle the DecisionService",
            lambda: f"[{watched}/eurusd]" in log.read_text(),
            timeout=120,
        )
        text = log.read_text()
        assert "Forbidden" not in text, text[-4000:]  # the chart's RBAC is enough
        peers = kubectl.get("kopfpeering", peering, watched)
        assert peers is not None and json.dumps(peers.get("status") or {}) != "{}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    helm.run("uninstall", release, "-n", namespace)
    assert kubectl.get("kopfpeering", peering, watched) is None
    assert kubectl.get("role", operator, watched) is None


def test_make_crds_upgrade_applies_the_charts_crds(kubectl: Kubectl, cluster: Cluster) -> None:
    """Helm never upgrades crds/: `make crds-upgrade` is how, against $KUBECONFIG."""
    proc = subprocess.run(
        ["make", "--no-print-directory", "crds-upgrade"],
        env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    applied = {line.split()[0] for line in proc.stdout.splitlines() if "serverside-applied" in line}
    expected = {
        f"customresourcedefinition.apiextensions.k8s.io/{yaml.safe_load(p.read_text())['metadata']['name']}"
        for p in (CHART / "crds").glob("*.yaml")
    }
    assert applied == expected, proc.stdout


RETRAINING_SETS = (
    "retraining.enabled=true",
    "retraining.storageURI=s3://augur/tuning",
    "retraining.study.inline.name=weekly",
    "retraining.study.inline.trials=8",
)


def secret_value(kubectl: Kubectl, name: str, namespace: str, key: str) -> str:
    import base64

    secret = kubectl.get("secret", name, namespace)
    assert secret is not None, f"no Secret {name}"
    return base64.b64decode(secret["data"][key]).decode()


def test_redis_feature_jobs_and_retraining_install_upgrade_and_uninstall(
    kubectl: Kubectl, helm: Helm, namespace: str, monitoring_crds: list[str]
) -> None:
    """ci/redis-in-chart-values.yaml with scheduled retraining: the StatefulSet, its Secret,
    both CronJobs and the example DecisionService exist; the retraining ServiceAccount
    creates a TuningJob and may do nothing else; an upgrade changes the schedules and keeps
    Redis's password; uninstall leaves nothing namespaced of the release."""
    kubectl.run("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    release = f"augur-{namespace}"
    sets = [a for s in RETRAINING_SETS for a in ("--set", s)]
    values = str(CHART / "ci" / "redis-in-chart-values.yaml")
    install = helm.run("install", release, str(CHART), "-n", namespace, "--skip-crds",
                       "-f", values, *sets)  # fmt: skip
    assert "STATUS: deployed" in install.stdout
    print(f"\n$ helm install {release} helm/augur -f ci/redis-in-chart-values.yaml …\n"
          f"{install.stdout}")  # fmt: skip
    full = f"{release}" if "augur" in release else f"{release}-augur"
    redis, materialize, retraining = f"{full}-redis", f"{full}-materialize", f"{full}-retraining"

    sts = kubectl.get("statefulset", redis, namespace)
    assert sts is not None and sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    # the StatefulSet controller makes its pod (restricted PSS admits it) and its claim
    wait_for("the Redis pod", lambda: kubectl.get("pod", f"{redis}-0", namespace), timeout=60)
    wait_for("the Redis volume claim",
             lambda: kubectl.get("pvc", f"data-{redis}-0", namespace), timeout=60)  # fmt: skip
    password = secret_value(kubectl, redis, namespace, "redis-password")
    url = secret_value(kubectl, redis, namespace, "redis-url")
    assert url == f"{redis}.{namespace}.svc:6379,password={password}"
    for name, schedule in ((materialize, "*/10 * * * *"), (retraining, "0 3 * * 0")):
        cron = kubectl.get("cronjob", name, namespace)
        assert cron is not None and cron["spec"]["schedule"] == schedule, name
    assert kubectl.get("configmap", f"{full}-feast", namespace) is not None
    assert kubectl.get("decisionservice", "eurusd", namespace) is not None

    # A run started by hand, as docs/platform.md says: the Job controller makes its pod and
    # restricted PSS admits it, steps and all. (kwok runs no containers: what the steps do
    # is tests/integration/test_chart_feature_jobs.py.)
    kubectl.run("create", "job", f"--from=cronjob/{materialize}", "materialize-now",
                "-n", namespace)  # fmt: skip

    def run_pod() -> dict[str, Any] | None:
        proc = kubectl.run("get", "pods", "-n", namespace, "-l", "job-name=materialize-now",
                           "-o", "json")  # fmt: skip
        return next(iter(json.loads(proc.stdout)["items"]), None)

    pod = wait_for("the pod of a materialisation run", run_pod, timeout=60)
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["bars", "build", "apply"]
    assert [c["name"] for c in pod["spec"]["containers"]] == ["materialize"]
    kubectl.run("delete", "job", "materialize-now", "-n", namespace)

    # What the retraining CronJob's pod does, as its ServiceAccount: create the TuningJob.
    account = f"system:serviceaccount:{namespace}:{retraining}"
    manifest = kubectl.get("configmap", retraining, namespace)
    assert manifest is not None
    made = kubectl.run("create", "-f", "-", "-o", "name", f"--as={account}",
                       stdin=manifest["data"]["tuningjob.yaml"])  # fmt: skip
    job_name = made.stdout.strip().split("/")[1]
    job = kubectl.get("tuningjob", job_name, namespace)
    assert job is not None and job_name.startswith(f"{retraining}-")
    assert job["spec"]["promote"] == {"decisionService": "eurusd", "as": "shadow", "percent": 100}
    for verb, what in [("get", "tuningjobs.augur.dev"), ("delete", "tuningjobs.augur.dev"),
                       ("create", "decisionservices.augur.dev"), ("get", "secrets"),
                       ("create", "pods")]:  # fmt: skip
        assert not can_i(kubectl, account, verb, what, namespace), f"may {verb} {what}"
    assert not can_i(kubectl, account, "create", "tuningjobs.augur.dev", "default")
    kubectl.run("delete", "tuningjob", job_name, "-n", namespace)

    upgrade = helm.run(
        "upgrade", release, str(CHART), "-n", namespace, "--skip-crds", "-f", values, *sets,
        "--set", "features.materialize.schedule=*/5 * * * *",
        "--set", "retraining.schedule=0 4 * * *",
        "--set", "retraining.promote.percent=25",
    )  # fmt: skip
    assert "has been upgraded" in upgrade.stdout
    cron = kubectl.get("cronjob", materialize, namespace)
    assert cron is not None and cron["spec"]["schedule"] == "*/5 * * * *"
    cron = kubectl.get("cronjob", retraining, namespace)
    assert cron is not None and cron["spec"]["schedule"] == "0 4 * * *"
    manifest = kubectl.get("configmap", retraining, namespace)
    assert manifest is not None and "percent: 25" in manifest["data"]["tuningjob.yaml"]
    # lookup kept the password: Redis's data and every client's connection string hold
    assert secret_value(kubectl, redis, namespace, "redis-password") == password
    assert secret_value(kubectl, redis, namespace, "redis-url") == url

    helm.run("uninstall", release, "-n", namespace, "--wait", "--timeout=90s")

    def leftovers() -> list[str] | None:
        proc = kubectl.run("get", PLATFORM_KINDS, "-n", namespace, "-l", f"{INSTANCE}={release}",
                           "-o", "name")  # fmt: skip
        claims = kubectl.run("get", "pvc", "-n", namespace, "-o", "name")  # the Redis volume
        records = kubectl.run("get", "secrets", "-n", namespace, "-l", f"name={release}",
                              "-o", "name")  # fmt: skip
        left = (proc.stdout + claims.stdout + records.stdout).split()
        seen[:] = left
        return None if left else ["nothing"]

    seen: list[str] = []
    try:
        wait_for("no namespaced object of the release", leftovers, timeout=90)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; left: {seen}") from None


def test_full_observability_installs_against_the_prometheus_operators_crds(
    kubectl: Kubectl, helm: Helm, namespace: str, monitoring_crds: list[str]
) -> None:
    release = f"augur-{namespace}"
    helm.run("install", release, str(CHART), "-n", namespace, "--skip-crds",
             "-f", str(CHART / "ci" / "full-observability-values.yaml"))  # fmt: skip
    rule = kubectl.get("prometheusrule", f"{release}-alerts", namespace)
    assert rule is not None
    alerts = [r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]]
    assert "AugurVersionDrawdown" in alerts and "AugurDriftDetected" in alerts
    monitor = kubectl.get("servicemonitor", f"{release}-decision", namespace)
    assert monitor is not None and monitor["spec"]["endpoints"][0]["port"] == "http"
    assert kubectl.get("podmonitor", f"{release}-shadow", namespace) is not None
    dashboard = kubectl.get("configmap", f"{release}-dashboard", namespace)
    assert dashboard is not None and dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    helm.run("uninstall", release, "-n", namespace, "--wait", "--timeout=60s")
    assert kubectl.get("prometheusrule", f"{release}-alerts", namespace) is None


def test_stream_consumers_run_as_one_group_on_a_shared_home(
    kubectl: Kubectl, helm: Helm, namespace: str, monitoring_crds: list[str]
) -> None:
    """ci/stream-consumer-values.yaml: the consumer Deployment's two pods, admitted by the
    restricted Pod Security Standard, bound to the feature jobs' ReadWriteMany claim (a
    PersistentVolume made here: the test cluster has no provisioner) and Running on kwok
    Nodes, each named after itself in the one group; its PodMonitor and the lag alert are
    accepted; an upgrade scales it; uninstall removes it."""
    kubectl.run("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    release = f"augur-{namespace}"
    full = release  # the release name contains "augur"
    claim, volume = f"{full}-features", f"home-{namespace}"
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": volume},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteMany"],
                "storageClassName": "",
                "persistentVolumeReclaimPolicy": "Retain",
                "hostPath": {"path": f"/tmp/{volume}"},
                "claimRef": {"namespace": namespace, "name": claim},
            },
        }
    )
    values = str(CHART / "ci" / "stream-consumer-values.yaml")
    try:
        install = helm.run("install", release, str(CHART), "-n", namespace, "--skip-crds",
                           "-f", values)  # fmt: skip
        assert "STATUS: deployed" in install.stdout
        assert '2 stream consumer(s) of group "augur-live"' in install.stdout  # NOTES.txt
        name = f"{full}-stream-consumer"
        selector = f"{INSTANCE}={release},app.kubernetes.io/component=stream-consumer"

        def consumers(count: int) -> Any:
            def ready() -> list[dict[str, Any]] | None:
                pods = kubectl.list("pods", namespace, selector)
                live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
                up = [p for p in live if p["status"].get("phase") == "Running"]
                return up if len(up) == count == len(live) else None

            return wait_for(f"{count} Running consumer pods", ready, timeout=90)

        pods = consumers(2)
        assert {p["spec"]["nodeName"] for p in pods} <= set(NODES)
        pvc = kubectl.get("pvc", claim, namespace)
        assert pvc is not None and pvc["status"]["phase"] == "Bound"
        assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
        for pod in pods:
            (container,) = pod["spec"]["containers"]
            env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
            assert env["AUGUR_STREAM_GROUP"] == "augur-live"
            assert container["command"][3:5] == ["--name", "$(POD_NAME)"]
            assert env["POD_NAME"] == {
                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}
            }
            assert pod["spec"]["terminationGracePeriodSeconds"] == 45
            homes = [v for v in pod["spec"]["volumes"] if v["name"] == "home"]
            assert homes[0]["persistentVolumeClaim"]["claimName"] == claim
        monitor = kubectl.get("podmonitor", name, namespace)
        assert monitor is not None
        assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
        rule = kubectl.get("prometheusrule", f"{full}-alerts", namespace)
        assert rule is not None
        alerts = [r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]]
        assert "AugurStreamLagging" in alerts

        upgrade = helm.run("upgrade", release, str(CHART), "-n", namespace, "--skip-crds",
                           "-f", values, "--set", "streamConsumer.replicas=3")  # fmt: skip
        assert "has been upgraded" in upgrade.stdout
        consumers(3)

        helm.run("uninstall", release, "-n", namespace, "--wait", "--timeout=90s")
        wait_for("no consumer pod", lambda: not kubectl.list("pods", namespace, selector),
                 timeout=90)  # fmt: skip
        assert kubectl.get("deployment", name, namespace) is None
        assert kubectl.get("podmonitor", name, namespace) is None
    finally:
        helm.run("uninstall", release, "-n", namespace, check=False)
        kubectl.run("delete", "pv", volume, "--ignore-not-found", "--wait=false", check=False)
