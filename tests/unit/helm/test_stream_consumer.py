"""The bar stream's consumers in the chart (``streamConsumer``), rendered by ``helm
template``: a Deployment whose replicas are consumers of one group named after their pods,
on the chart's Redis and the feature jobs' AUGUR_HOME, locked down like every pod of the
chart, scraped by a PodMonitor, alerted on when they lag; and the values the chart refuses."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.unit.helm.conftest import CHART, Render, run_helm
from tests.unit.helm.test_chart import of_kind
from tests.unit.helm.test_platform import env_of, metric_names, one

SCENARIO = "ci/stream-consumer-values.yaml"
NAME = "rel-augur-stream-consumer"
COMPONENT = "app.kubernetes.io/component"


def consumer(objs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    dep = one(objs, "Deployment", NAME)
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    return dep, container


def test_no_consumer_unless_enabled(render: Render) -> None:
    for scenario in ((), ("ci/redis-in-chart-values.yaml",)):
        objs = render(*scenario)
        assert not [o for o in objs if o["metadata"]["name"] == NAME], scenario
        assert not [
            o for o in objs if o["metadata"].get("labels", {}).get(COMPONENT) == "stream-consumer"
        ]


def test_the_consumer_deployment_renders_when_enabled(render: Render) -> None:
    objs = render(SCENARIO)
    dep, container = consumer(objs)
    pod = dep["spec"]["template"]["spec"]
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["selector"]["matchLabels"][COMPONENT] == "stream-consumer"
    assert dep["spec"]["template"]["metadata"]["labels"][COMPONENT] == "stream-consumer"
    # every replica a consumer named after its own pod (the downward API), so a restarted
    # pod's name is new and its predecessor's pending bars are claimed by the others
    assert container["command"] == [
        "augur", "stream", "consume", "--name", "$(POD_NAME)", "--metrics-port", "9102",
    ]  # fmt: skip
    env = env_of(container)
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    # $(POD_NAME) only expands if POD_NAME is defined before it is used: it is in env
    assert pod["terminationGracePeriodSeconds"] == 45
    assert container["ports"] == [{"name": "metrics", "containerPort": 9102, "protocol": "TCP"}]
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    assert container["resources"]["limits"] == {"cpu": "500m", "memory": "1Gi"}
    assert pod["automountServiceAccountToken"] is False
    anti = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["podAffinityTerm"]["labelSelector"]["matchLabels"][COMPONENT] == (
        "stream-consumer"
    )


def test_the_replicas_share_one_group_and_the_charts_redis(render: Render) -> None:
    objs = render(SCENARIO)
    dep, container = consumer(objs)
    env = env_of(container)
    # the group is in the pod template, so every replica of the Deployment has the same one
    assert env["AUGUR_STREAM_GROUP"] == "augur-live"
    assert env["AUGUR_STREAM_KEY"] == "augur:bars"
    assert env["AUGUR_STREAM_DEAD_LETTER_KEY"] == "augur:bars:dead"
    assert env["AUGUR_STREAM_BATCH"] == "500"
    assert env["AUGUR_STREAM_FLUSH_SECONDS"] == "5"
    assert env["AUGUR_STREAM_CLAIM_IDLE_SECONDS"] == "30"
    assert env["AUGUR_STREAM_METRICS_PORT"] == "9102"
    assert env["AUGUR_ONLINE_STORE"] == "redis"
    assert "AUGUR_STREAM_URL" not in env  # the stream lives on AUGUR_REDIS_URL
    assert env["AUGUR_REDIS_URL"] == {
        "secretKeyRef": {"name": "rel-augur-redis", "key": "redis-url"}
    }
    # the same AUGUR_HOME as the feature jobs, on the same claim
    cron = one(objs, "CronJob", "rel-augur-materialize")
    job_pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (job,) = job_pod["containers"]
    assert env["AUGUR_HOME"] == env_of(job)["AUGUR_HOME"] == "/var/lib/augur"
    pod = dep["spec"]["template"]["spec"]
    claim = {v["name"]: v for v in pod["volumes"]}["home"]["persistentVolumeClaim"]["claimName"]
    job_claim = {v["name"]: v for v in job_pod["volumes"]}["home"]["persistentVolumeClaim"]
    assert claim == job_claim["claimName"] == "rel-augur-features"
    assert {"name": "home", "mountPath": "/var/lib/augur"} in container["volumeMounts"]
    pvc = one(objs, "PersistentVolumeClaim", "rel-augur-features")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]


def test_other_settings_reach_the_consumer(render: Render) -> None:
    objs = render(
        SCENARIO,
        sets=(
            "streamConsumer.group=desk-a", "streamConsumer.key=feed:bars",
            "streamConsumer.replicas=5", "streamConsumer.metricsPort=9200",
            "streamConsumer.extraEnv[0].name=AUGUR_STREAM_URL",
            "streamConsumer.extraEnv[0].value=stream-redis:6379",
            "features.featureRepo=/app/feature_repo",
            "observability.otel.endpoint=http://collector:4318",
        ),
    )  # fmt: skip
    dep, container = consumer(objs)
    env = env_of(container)
    assert dep["spec"]["replicas"] == 5
    assert env["AUGUR_STREAM_GROUP"] == "desk-a" and env["AUGUR_STREAM_KEY"] == "feed:bars"
    assert env["AUGUR_STREAM_URL"] == "stream-redis:6379"
    assert env["AUGUR_FEATURE_REPO"] == "/app/feature_repo"
    assert env["OTEL_SERVICE_NAME"] == "augur-stream-consumer"
    assert container["command"][-1] == "9200" and env["AUGUR_STREAM_METRICS_PORT"] == "9200"
    assert container["ports"][0]["containerPort"] == 9200
    # an existing claim is mounted as it is, and the chart makes none
    objs = render(SCENARIO, sets=("features.storage.existingClaim=shared-home",))
    dep, _ = consumer(objs)
    vols = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    assert vols["home"]["persistentVolumeClaim"]["claimName"] == "shared-home"
    assert not of_kind(objs, "PersistentVolumeClaim")


def test_the_consumer_pod_is_locked_down(render: Render) -> None:
    dep, container = consumer(render(SCENARIO))
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }  # fmt: skip
    assert container["securityContext"] == {
        "runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
    }  # fmt: skip
    vols = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in vols["tmp"]
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    env = env_of(container)
    assert env["NUMBA_CACHE_DIR"] == "/tmp/numba" and env["HOME"] == "/tmp"


def test_a_podmonitor_scrapes_the_consumers(render: Render) -> None:
    objs = render(SCENARIO, sets=("observability.serviceMonitor.labels.release=kps",))
    dep, _ = consumer(objs)
    monitor = one(objs, "PodMonitor", NAME)
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert monitor["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    assert "namespaceSelector" not in monitor["spec"]  # its own namespace
    # no Prometheus operator objects without asking
    objs = render(SCENARIO, sets=("observability.serviceMonitor.enabled=false",))
    assert not [o for o in of_kind(objs, "PodMonitor") if o["metadata"]["name"] == NAME]


def stream_metric_names() -> set[str]:
    from augur.stream import StreamMetrics

    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    return {
        family.name + suffix
        for family in StreamMetrics().registry.collect()
        for suffix in suffixes[family.type]
    }


def lag_alert(objs: list[dict[str, Any]]) -> dict[str, Any]:
    rule = one(objs, "PrometheusRule")
    (alert,) = [r for g in rule["spec"]["groups"] for r in g["rules"]
                if r["alert"] == "AugurStreamLagging"]  # fmt: skip
    return alert


def test_the_lag_alert_reads_what_the_consumer_exports_and_has_a_runbook(
    render: Render, tmp_path: Path
) -> None:
    alert = lag_alert(render(SCENARIO))
    used = metric_names(alert["expr"])
    assert used == {"augur_stream_oldest_pending_age_seconds", "augur_stream_group_lag"}
    assert used <= stream_metric_names()
    assert "> 60" in alert["expr"] and "> 5000" in alert["expr"]
    assert alert["labels"]["severity"] == "warning"
    anchor = alert["annotations"]["runbook_url"].rsplit("#", 1)[1]
    readme = (CHART / "README.md").read_text()
    assert anchor == "augurstreamlagging" and "### AugurStreamLagging" in readme
    thresholds = tmp_path / "t.yaml"
    thresholds.write_text(
        "observability: {prometheusRule: {thresholds: "
        "{streamPendingAgeSeconds: 120.5, streamGroupLag: 100}}}"
    )
    alert = lag_alert(render(SCENARIO, str(thresholds)))
    assert "> 120.5" in alert["expr"] and "> 100" in alert["expr"]
    # not without consumers
    objs = render("ci/full-observability-values.yaml")
    rules = [r["alert"] for g in one(objs, "PrometheusRule")["spec"]["groups"] for r in g["rules"]]
    assert "AugurStreamLagging" not in rules


def test_the_lag_alert_parses_with_prometheus_parser(render: Render) -> None:
    from tests.k8s.controlplane import _build

    checker = _build.BIN / "promql-check"
    if not checker.exists():
        pytest.skip(f"no {checker}: `make k8s-build` builds it (needs Go)")
    expr = lag_alert(render(SCENARIO))["expr"]
    proc = subprocess.run([str(checker)], input=json.dumps(expr), capture_output=True,
                          text=True, check=False, timeout=60)  # fmt: skip
    assert proc.stdout.strip() == "ok", proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("sets", "named"),
    [
        # schema
        (("streamConsumer.replicas=0",), "replicas"),
        (("streamConsumer.metricsPort=0",), "metricsPort"),
        (("streamConsumer.terminationGracePeriodSeconds=5",), "terminationGracePeriodSeconds"),
        (("streamConsumer.group=two words",), "group"),
        (("streamConsumer.batch=0",), "batch"),
        (("streamConsumer.typo=1",), "typo"),
        # the chart's own checks
        (("redis.enabled=false", "features.materialize.enabled=false",
          "features.storage.existingClaim=home"), "streamConsumer.enabled=true needs the Redis"),
        (("features.materialize.enabled=false",), "features.materialize.enabled=true"),
        (("features.storage.accessMode=ReadWriteOnce",), "features.storage.accessMode=ReadWriteMany"),
        (("features.storage.accessMode=ReadWriteOncePod", "streamConsumer.replicas=1"),
         "ReadWriteOncePod"),
    ],
)  # fmt: skip
def test_bad_values_are_refused_by_name(helm: Path, sets: tuple[str, ...], named: str) -> None:
    args = ["template", "rel", ".", "-f", SCENARIO]
    for s in sets:
        args += ["--set", s]
    proc = run_helm(*args)
    assert proc.returncode != 0, f"{sets} accepted"
    assert named in proc.stderr, proc.stderr


def test_one_replica_may_share_a_readwriteonce_claim(render: Render) -> None:
    objs = render(
        SCENARIO, sets=("features.storage.accessMode=ReadWriteOnce", "streamConsumer.replicas=1")
    )
    dep, _ = consumer(objs)
    assert dep["spec"]["replicas"] == 1
    # and an existing claim is the operator's to get right: the chart cannot see its mode
    objs = render(SCENARIO, sets=("features.storage.accessMode=ReadWriteOnce",
                                  "features.storage.existingClaim=home"))  # fmt: skip
    assert consumer(objs)[0]["spec"]["replicas"] == 2


def test_the_values_table_lists_the_consumer() -> None:
    readme = (CHART / "README.md").read_text()
    for key in ("streamConsumer.enabled", "streamConsumer.group", "streamConsumer.replicas",
                "streamConsumer.terminationGracePeriodSeconds"):  # fmt: skip
        assert re.search(rf"\| `{re.escape(key)}` \|", readme), key


def test_with_consumers_the_feature_job_keeps_the_bars_they_appended(render: Render) -> None:
    def bars_command(scenario: str) -> list[str]:
        files = ("features.bars.source=files", "features.bars.files.existingClaim=vendor-bars")
        objs = render(scenario, sets=files)
        (job,) = [o for o in of_kind(objs, "CronJob") if "materialize" in o["metadata"]["name"]]
        init = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["initContainers"]
        return next(c for c in init if c["name"] == "bars")["command"]

    assert "--keep-newer" not in bars_command("ci/redis-in-chart-values.yaml")
    assert bars_command(SCENARIO)[-1] == "--keep-newer"
