"""The chart beside the operator, rendered by ``helm template``: Redis (in the chart or
external) and Feast's config for it, the materialisation and retraining CronJobs, the
example DecisionService, observability (every metric its PromQL names is one the service
exports), the ``helm test`` Pod."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.helm.conftest import CHART, Render
from tests.unit.helm.test_chart import of_kind, pod_specs

ROOT = CHART.parents[1]
REDIS = "ci/redis-in-chart-values.yaml"
OBSERVABILITY = "ci/full-observability-values.yaml"
RETRAINING = "ci/scheduled-retraining-values.yaml"


def one(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in of_kind(objs, kind) if name is None or o["metadata"]["name"] == name]
    assert len(found) == 1, f"{len(found)} {kind} named {name}"
    return found[0]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def cronjob_container(objs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    cron = one(objs, "CronJob", name)
    (container,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    return container


# ------------------------------------------------------------------------------ Redis


def test_redis_in_the_chart_is_a_statefulset_with_a_volume_and_a_password(render: Render) -> None:
    objs = render(REDIS)
    sts = one(objs, "StatefulSet", "rel-augur-redis")
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Delete"
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    assert {"name": "data", "mountPath": "/data"} in container["volumeMounts"]
    assert container["args"][container["args"].index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    assert container["args"][container["args"].index("--maxmemory") + 1] == "512mb"
    assert env_of(container)["REDIS_PASSWORD"] == {
        "secretKeyRef": {"name": "rel-augur-redis", "key": "redis-password"}
    }
    secret = one(objs, "Secret", "rel-augur-redis")
    password = base64.b64decode(secret["data"]["redis-password"]).decode()
    url = base64.b64decode(secret["data"]["redis-url"]).decode()
    assert len(password) == 32 and password.isalnum()
    # Feast's connection string, at the Service the chart makes
    service = one(objs, "Service", "rel-augur-redis")
    assert url == f"rel-augur-redis.augur-system.svc:6379,password={password}"
    assert service["spec"]["selector"] == sts["spec"]["selector"]["matchLabels"]
    assert one(objs, "Service", "rel-augur-redis-headless")["spec"]["clusterIP"] == "None"


def test_the_password_is_kept_on_upgrade_by_looking_the_secret_up() -> None:
    """`lookup` of the release's own Secret: without a cluster (helm template) it finds
    nothing and draws a password; on upgrade the Secret's own is reused."""
    text = (CHART / "templates" / "redis.yaml").read_text()
    assert 'lookup "v1" "Secret" .Release.Namespace $name' in text
    assert '$password = index $existing.data "redis-password" | b64dec' in text


def test_an_external_redis_by_url_gets_a_secret_and_no_server(render: Render) -> None:
    objs = render(OBSERVABILITY)
    assert not of_kind(objs, "StatefulSet")
    secret = one(objs, "Secret", "rel-augur-redis")
    assert secret["stringData"] == {"redis-url": "redis.data.svc:6379,db=2"}
    (ds,) = of_kind(objs, "DecisionService")
    assert ds["spec"]["featureStore"] == {
        "redisUrl": {"name": "rel-augur-redis", "key": "redis-url"}
    }


def test_an_existing_secret_is_read_where_it_is(render: Render) -> None:
    objs = render("ci/external-redis-values.yaml")
    assert not of_kind(objs, "Secret") and not of_kind(objs, "StatefulSet")
    assert not of_kind(objs, "PersistentVolumeClaim")  # features.storage.existingClaim
    container = cronjob_container(objs, "rel-augur-materialize")
    assert env_of(container)["AUGUR_REDIS_URL"] == {
        "secretKeyRef": {"name": "managed-redis", "key": "connection-string"}
    }
    pod = one(objs, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    home = next(v for v in pod["volumes"] if v["name"] == "home")
    assert home["persistentVolumeClaim"] == {"claimName": "augur-features"}


# ------------------------------------------------------------------------------ Feast


def expand(text: str, env: dict[str, str]) -> Any:
    return yaml.safe_load(re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], text))


def test_the_feast_config_is_what_augur_builds_in_code_for_the_cluster(render: Render) -> None:
    """The ConfigMap's feature_store.yaml, with the env the feature job sets, says what
    augur.features.store.repo_config builds from the same settings, and what
    feature_repo/cluster/feature_store.yaml says."""
    from augur.config import Settings
    from augur.features.store import repo_config

    objs = render(REDIS)
    text = one(objs, "ConfigMap", "rel-augur-feast")["data"]["feature_store.yaml"]
    env = {"AUGUR_HOME": "/var/lib/augur", "AUGUR_REDIS_URL": "redis:6379,password=x"}
    chart = expand(text, env)
    repo = expand((ROOT / "feature_repo" / "cluster" / "feature_store.yaml").read_text(), env)
    assert chart == repo
    code = repo_config(
        Settings(
            home=Path(env["AUGUR_HOME"]), online_store="redis", redis_url="redis:6379,password=x"
        )
    )
    assert chart["project"] == code.project and chart["provider"] == code.provider
    assert chart["registry"]["path"] == code.registry.path
    assert chart["registry"]["cache_ttl_seconds"] == code.registry.cache_ttl_seconds
    assert chart["online_store"]["type"] == code.online_store.type == "redis"
    assert chart["online_store"]["connection_string"] == code.online_store.connection_string
    assert chart["offline_store"]["type"] == code.offline_store.type
    assert chart["entity_key_serialization_version"] == code.entity_key_serialization_version
    # the job that materialises sets that env and mounts the file
    container = cronjob_container(objs, "rel-augur-materialize")
    assert env_of(container)["AUGUR_HOME"] == env["AUGUR_HOME"]
    assert {"name": "feast", "mountPath": "/etc/augur/feast", "readOnly": True} in container[
        "volumeMounts"
    ]


def feature_steps(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The materialisation pod's containers in the order they run."""
    pod = one(objs, "CronJob", "rel-augur-materialize")["spec"]["jobTemplate"]["spec"]
    return pod["template"]["spec"]["initContainers"] + pod["template"]["spec"]["containers"]


def test_the_materialize_cronjob_runs_the_clis_real_flags(render: Render) -> None:
    """Bars, build, apply, materialize: each step a real `augur` command with real flags,
    all on the same home and Redis."""
    objs = render(REDIS)
    cron = one(objs, "CronJob", "rel-augur-materialize")
    assert cron["spec"]["schedule"] == "*/10 * * * *"
    assert cron["spec"]["timeZone"] == "Etc/UTC"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    steps = feature_steps(objs)
    assert [(c["name"], c["command"][:3]) for c in steps] == [
        ("bars", ["augur", "data", "sample"]),
        ("build", ["augur", "features", "build"]),
        ("apply", ["augur", "features", "apply"]),
        ("materialize", ["augur", "features", "materialize"]),
    ]
    assert steps[0]["command"][3:] == ["--symbol", "EURUSD", "--symbol", "SP500"]
    augur = Path(sys.executable).parent / "augur"
    for container in steps:
        command = container["command"]
        env = env_of(container)
        assert env["AUGUR_HOME"] == "/var/lib/augur"
        assert env["AUGUR_ONLINE_STORE"] == "redis" and env["HOME"] == "/tmp"
        assert env["NUMBA_CACHE_DIR"].startswith("/tmp/")
        assert env["AUGUR_REDIS_URL"] == {
            "secretKeyRef": {"name": "rel-augur-redis", "key": "redis-url"}
        }
        helptext = subprocess.run(
            [str(augur), *command[1:3], "--help"], capture_output=True, text=True, check=True
        ).stdout
        for flag in (a for a in command if a.startswith("--")):
            assert flag in helptext, f"{flag} is not a flag of `augur {' '.join(command[1:3])}`"
    claim = one(objs, "PersistentVolumeClaim", "rel-augur-features")
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"


def test_bar_files_come_from_their_claim_read_only_and_only_to_the_first_step(
    render: Render,
) -> None:
    objs = render("ci/external-redis-values.yaml")
    bars, *rest = feature_steps(objs)
    assert bars["command"] == ["augur", "data", "import-dir", "/var/lib/augur-bars"]
    assert {"name": "bars", "mountPath": "/var/lib/augur-bars", "readOnly": True,
            "subPath": "daily"} in bars["volumeMounts"]  # fmt: skip
    assert all("bars" not in {m["name"] for m in c["volumeMounts"]} for c in rest)
    pod = one(objs, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "bars")
    assert volume["persistentVolumeClaim"] == {"claimName": "market-bars", "readOnly": True}


def test_the_schemas_sample_symbols_are_the_samples() -> None:
    from augur.data import SOURCES

    schema = json.loads((CHART / "values.schema.json").read_text())
    bars = schema["properties"]["features"]["properties"]["bars"]["properties"]
    assert bars["sample"]["properties"]["symbols"]["items"]["enum"] == [s.symbol for s in SOURCES]


def test_the_feature_repo_value_reaches_every_step(render: Render) -> None:
    objs = render(REDIS, sets=("features.featureRepo=/opt/augur/feature_repo",))
    for container in feature_steps(objs):
        assert env_of(container)["AUGUR_FEATURE_REPO"] == "/opt/augur/feature_repo"
    assert all("AUGUR_FEATURE_REPO" not in env_of(c) for c in feature_steps(render(REDIS)))


# ------------------------------------------------------------------- retraining, example


def test_scheduled_retraining_creates_a_valid_tuningjob_and_may_do_nothing_else(
    render: Render,
) -> None:
    from augur.cluster._tuningjob_resource import TuningJob

    objs = render(RETRAINING)
    name = "rel-augur-retraining"
    (role,) = [r for r in of_kind(objs, "Role") if r["metadata"]["name"] == name]
    assert role["rules"] == [
        {"apiGroups": ["augur.dev"], "resources": ["tuningjobs"], "verbs": ["create"]}
    ]
    binding = one(objs, "RoleBinding", name)
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": name, "namespace": "augur-system"}
    ]
    cron = one(objs, "CronJob", name)
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == name and cron["spec"]["schedule"] == "0 3 * * 0"
    (container,) = pod["containers"]
    assert container["command"][:3] == ["kubectl", "create", "-f"]
    manifest = yaml.safe_load(one(objs, "ConfigMap", name)["data"]["tuningjob.yaml"])
    job = TuningJob.model_validate(manifest)  # the operator's own model of the CRD
    assert manifest["metadata"]["generateName"] == f"{name}-"
    assert job.spec.promote is not None
    assert job.spec.promote.as_ == "shadow" and job.spec.promote.percent == 50
    assert job.spec.promote.decision_service == "augur-decision"  # the example's name
    assert job.spec.storage_uri == "s3://augur/tuning" and job.spec.backoff_limit == 1
    assert job.spec.study.inline is not None and job.spec.study.inline["name"] == "weekly"
    # a TuningJob outlives the release: it is no Helm object
    assert "app.kubernetes.io/managed-by" not in manifest["metadata"]["labels"]


def test_the_example_decision_service_is_valid_and_reads_the_charts_redis(render: Render) -> None:
    from augur.cluster._decisionservice_resource import DecisionService

    objs = render(REDIS)
    (body,) = of_kind(objs, "DecisionService")
    ds = DecisionService.model_validate(body)
    assert body["metadata"]["name"] == "eurusd"
    assert ds.spec.versions[0].model_tag == "augur-ensemble:k3x2abcd"
    assert ds.spec.image == "augur-decision:0.1.0"
    assert ds.spec.feature_store is not None
    assert ds.spec.feature_store.redis_url.name == "rel-augur-redis"
    assert ds.spec.autoscaling.max_replicas == 2


def test_the_helm_test_pod_calls_readyz_and_decide_on_the_example(render: Render) -> None:
    objs = render(REDIS)
    pod = one(objs, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = pod["spec"]["containers"][0]["args"][0]
    assert "http://eurusd.augur-system.svc/readyz" in script
    assert "http://eurusd.augur-system.svc/decide" in script and '"EURUSD"' in script
    assert not of_kind(render(), "Pod")  # no example, no test


def test_the_test_pod_presents_the_services_token(render: Render) -> None:
    objs = render(
        REDIS, sets=("decisionService.extraSpec.auth.token.name=tokens",
                     "decisionService.extraSpec.auth.token.key=callers")
    )  # fmt: skip
    pod = one(objs, "Pod")["spec"]
    assert {"name": "token", "secret": {"secretName": "tokens"}} in pod["volumes"]
    assert "/etc/augur/token/callers" in pod["containers"][0]["args"][0]


# ------------------------------------------------------------------------ observability


def test_otel_settings_reach_every_pod_of_the_chart(render: Render) -> None:
    objs = render(OBSERVABILITY, sets=("features.materialize.enabled=true",
                                       "features.bars.source=sample"))  # fmt: skip
    containers = [c for pod in pod_specs(objs) if "hook" not in str(pod) for c in pod["containers"]]
    assert len(containers) >= 2  # the operator and the materialise job
    for pod in pod_specs(objs):
        for c in pod["containers"] + pod.get("initContainers", []):
            if c["name"] == "decide":  # the helm test's curl
                continue
            env = env_of(c)
            assert (
                env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability.svc:4318"
            )
            assert (
                env["AUGUR_OTLP_ENDPOINT"]
                == "http://otel-collector.observability.svc:4318/v1/traces"
            )
            assert env["OTEL_TRACES_SAMPLER_ARG"] == "0.1"
            assert "deployment.environment=prod" in env["OTEL_RESOURCE_ATTRIBUTES"]
    for pod in pod_specs(render(REDIS)):
        for c in pod["containers"]:
            assert not {k for k in env_of(c) if k.startswith("OTEL_")}, c["name"]


def test_service_and_pod_monitors_select_the_operators_serving_objects(render: Render) -> None:
    from augur.cluster._decisionservice import labels

    objs = render(OBSERVABILITY)
    served = labels("eurusd")
    monitor = one(objs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= served.items()
    assert monitor["spec"]["endpoints"][0]["port"] == "http"  # the operator's Service port
    assert monitor["spec"]["namespaceSelector"] == {"any": True}
    pods = one(objs, "PodMonitor")
    assert pods["spec"]["podMetricsEndpoints"][0]["port"] == "shadow-metrics"
    scoped = one(render(OBSERVABILITY, sets=("operator.watchNamespaces={desk-a}",)), "PodMonitor")
    assert scoped["spec"]["namespaceSelector"] == {"matchNames": ["desk-a"]}


def exported_metric_names() -> set[str]:
    """Every sample name the decision service (and its shadow container) can put on
    /metrics: ServingMetrics and the drift gauges, on a registry of their own."""
    from prometheus_client import CollectorRegistry

    from augur.monitoring.drift_monitor import DriftGauges
    from augur.serving._telemetry import ServingMetrics

    registry = CollectorRegistry()
    ServingMetrics(registry)
    DriftGauges(registry)
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    return {
        family.name + suffix for family in registry.collect() for suffix in suffixes[family.type]
    }


PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "rate", "increase", "irate", "delta",
    "histogram_quantile", "label_values", "by", "without", "on", "ignoring", "group_left",
    "group_right", "and", "or", "unless", "bool", "offset",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers left once label matchers,
    grouping clauses, ranges, strings, numbers and functions are taken out."""
    expr = re.sub(r'"[^"]*"', "", expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    expr = re.sub(r"label_values\(([^,()]*),\s*\w+\)", r"\1", expr)  # Grafana's: (metric, label)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set(re.findall(r"(?<![\w$.])[a-zA-Z_:][\w:]*", expr))
    return {n for n in names if n not in PROMQL_WORDS and not re.fullmatch(r"\d.*", n)}


def test_every_metric_the_alerts_and_dashboard_read_is_exported(render: Render) -> None:
    objs = render(OBSERVABILITY)
    exprs = [r["expr"] for g in one(objs, "PrometheusRule")["spec"]["groups"] for r in g["rules"]]
    dashboard = json.loads(one(objs, "ConfigMap", "rel-augur-dashboard")["data"]["augur.json"])
    exprs += [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    used = set().union(*(metric_names(e) for e in exprs))
    exported = exported_metric_names()
    assert "augur_outcome_hits_total" in exported and "augur_model_drift" in exported
    assert len(used) >= 12, used
    assert used <= exported, f"not on /metrics: {sorted(used - exported)}"


def test_the_name_extraction_sees_what_a_query_reads() -> None:
    assert metric_names(
        'histogram_quantile(0.99, sum by (version, le) (rate(a_bucket{route="/decide"}[5m])))'
        " / on (x) b_total - 0 * c > 0.05"
    ) == {"a_bucket", "b_total", "c"}
    assert metric_names('label_values(d_total{namespace=~"$namespace"}, version)') == {"d_total"}


ALERTS = {
    "AugurDriftDetected": "augur_model_drift",
    "AugurHighErrorRate": "augur_requests_total",
    "AugurHighLatencyP99": "augur_request_latency_seconds_bucket",
    "AugurShadowDisagreement": "augur_shadow_comparisons_total",
    "AugurVersionDrawdown": "augur_outcome_return_loss_total",
    "AugurPredictionLogDropping": "augur_prediction_log_dropped_total",
    "AugurOnlineStoreErrors": "augur_online_store_errors_total",
}


def test_every_alert_has_a_runbook_in_the_charts_readme(render: Render) -> None:
    objs = render(OBSERVABILITY)
    rule = one(objs, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert set(alerts) == set(ALERTS)
    readme = (CHART / "README.md").read_text()
    headings = {h.strip().lower() for h in re.findall(r"^### (Augur\w+)", readme, re.M)}
    for name, metric in ALERTS.items():
        alert = alerts[name]
        assert metric in alert["expr"], name
        assert alert["labels"]["severity"] in ("critical", "warning")
        assert alert["labels"]["team"] == "trading-ml"  # alertLabels
        anchor = alert["annotations"]["runbook"].rsplit("#", 1)[1]
        assert alert["annotations"]["runbook_url"] == alert["annotations"]["runbook"]
        assert anchor == name.lower() and anchor in headings, f"no README section for {name}"
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]


def test_thresholds_reach_the_alerts(render: Render, tmp_path: Path) -> None:
    thresholds = tmp_path / "thresholds.yaml"  # --set would pass 0.2 as a string
    thresholds.write_text(
        "observability: {prometheusRule: {thresholds: {latencyP99Seconds: 0.2, drawdown24h: 0.1}}}"
    )
    objs = render(OBSERVABILITY, str(thresholds))
    alerts = {r["alert"]: r for g in one(objs, "PrometheusRule")["spec"]["groups"]
              for r in g["rules"]}  # fmt: skip
    assert alerts["AugurHighLatencyP99"]["expr"].rstrip().endswith("> 0.2")
    assert alerts["AugurVersionDrawdown"]["expr"].rstrip().endswith("< -0.1")


def test_the_dashboard_is_labelled_for_grafana_and_shows_each_version(render: Render) -> None:
    objs = render(OBSERVABILITY)
    cm = one(objs, "ConfigMap", "rel-augur-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"]["grafana_folder"] == "Augur"
    dashboard = json.loads(cm["data"]["augur.json"])
    titles = " | ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("requests", "latency", "decisions by action", "hit rate", "return",
                  "shadow agreement", "drift"):  # fmt: skip
        assert topic in titles, topic
    per_version = [
        p for p in dashboard["panels"] if any("version" in t.get("legendFormat", "")
                                              for t in p.get("targets", []))
    ]  # fmt: skip
    assert len(per_version) >= 6
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_nothing_of_observability_without_asking(render: Render) -> None:
    kinds = {o["kind"] for o in render()}
    assert not kinds & {"ServiceMonitor", "PodMonitor", "PrometheusRule", "StatefulSet", "CronJob"}


@pytest.mark.parametrize(
    "scenario", ["ci/minimal-values.yaml", REDIS, "ci/external-redis-values.yaml",
                 OBSERVABILITY, RETRAINING]
)  # fmt: skip
def test_the_issues_scenarios_render(render: Render, scenario: str) -> None:
    kinds = {o["kind"] for o in render(scenario)}
    assert "Deployment" in kinds
    expected = {
        REDIS: {"StatefulSet", "CronJob", "DecisionService", "Pod"},
        "ci/external-redis-values.yaml": {"CronJob"},
        OBSERVABILITY: {"ServiceMonitor", "PodMonitor", "PrometheusRule", "ConfigMap"},
        RETRAINING: {"CronJob", "Role", "RoleBinding", "StatefulSet"},
    }.get(scenario, set())
    assert expected <= kinds, expected - kinds


def test_the_readmes_values_table_is_current_and_lists_every_value() -> None:
    """scripts/helm_values_table.py --write regenerates it from values.yaml's `# --`."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("vt", ROOT / "scripts" / "helm_values_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    table = module.table()
    assert table in (CHART / "README.md").read_text(), "run scripts/helm_values_table.py --write"
    keys = {row.split("`")[1] for row in table.splitlines()[2:]}
    for key in ("redis.external.url", "features.materialize.schedule", "retraining.promote.as",
                "observability.prometheusRule.labels", "tests.symbol", "operator.replicas"):  # fmt: skip
        assert key in keys, key


def test_feast_loads_the_configmap_with_the_jobs_environment(
    render: Render, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Feast's own loader reads the ConfigMap's file and expands ${…} from the env."""
    from feast.repo_config import load_repo_config

    text = one(render(REDIS), "ConfigMap", "rel-augur-feast")["data"]["feature_store.yaml"]
    (tmp_path / "feature_store.yaml").write_text(text)
    monkeypatch.setenv("AUGUR_HOME", "/var/lib/augur")
    monkeypatch.setenv("AUGUR_REDIS_URL", "rel-augur-redis.augur-system.svc:6379,password=pw")
    config = load_repo_config(tmp_path, tmp_path / "feature_store.yaml")
    assert config.online_store.type == "redis"
    assert config.online_store.connection_string.endswith(",password=pw")
    assert config.registry.path == "/var/lib/augur/feast/redis/registry.db"


def test_the_statefulsets_command_line_runs_a_real_redis_that_wants_the_password(
    render: Render, tmp_path: Path
) -> None:
    """The container's command and args, as the kubelet expands $(REDIS_PASSWORD), start a
    real redis-server: it refuses a client without the password, the readiness probe's
    command (with REDISCLI_AUTH) passes, and a client with the Secret's URL's password writes."""
    import shutil
    import time

    from tests.conftest import free_port

    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.skip("redis-server is not installed (`make setup` installs it)")
    objs = render(REDIS, sets=("redis.port=6379",))
    (container,) = one(objs, "StatefulSet")["spec"]["template"]["spec"]["containers"]
    secret = one(objs, "Secret", "rel-augur-redis")
    password = base64.b64decode(secret["data"]["redis-password"]).decode()
    port = free_port()
    args = [a.replace("$(REDIS_PASSWORD)", password) for a in container["args"]]
    args[args.index("--port") + 1] = str(port)
    args[args.index("--dir") + 1] = str(tmp_path)
    server = subprocess.Popen([*container["command"], *args], stdout=subprocess.DEVNULL)
    try:
        probe = container["readinessProbe"]["exec"]["command"]
        probe = [c.replace("-p 6379", f"-p {port}") for c in probe]
        env = {"PATH": "/usr/bin:/bin", "REDISCLI_AUTH": password}
        deadline = time.monotonic() + 10
        while subprocess.run(probe, env=env, check=False).returncode != 0:
            assert time.monotonic() < deadline, "the readiness probe never passed"
            time.sleep(0.1)
        bare = subprocess.run(["redis-cli", "-p", str(port), "set", "k", "v"],
                              capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})  # fmt: skip
        assert "NOAUTH" in bare.stdout + bare.stderr
        authed = subprocess.run(["redis-cli", "-p", str(port), "set", "k", "v"],
                                capture_output=True, text=True, env=env)  # fmt: skip
        assert authed.stdout.strip() == "OK"
        policy = subprocess.run(["redis-cli", "-p", str(port), "config", "get", "maxmemory-policy"],
                                capture_output=True, text=True, env=env).stdout  # fmt: skip
        assert "noeviction" in policy
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_the_helm_test_script_sends_the_first_token_of_a_token_file(
    render: Render, tmp_path: Path
) -> None:
    """The test Pod's shell, run here: its token line against a caller=token file."""
    objs = render(REDIS, sets=("decisionService.extraSpec.auth.token.name=tokens",
                               "decisionService.extraSpec.auth.token.key=callers"))  # fmt: skip
    script = one(objs, "Pod")["spec"]["containers"][0]["args"][0]
    (line,) = [ln.strip() for ln in script.splitlines() if ln.strip().startswith("token=")]
    tokens = tmp_path / "callers"
    tokens.write_text("# desks\n\ndesk-a = s3cr3t=x\ndesk-b=other\n")
    line = line.replace("/etc/augur/token/callers", str(tokens))
    out = subprocess.run(["sh", "-ec", f'{line}\nprintf "%s" "$token"'],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert out == "s3cr3t=x"  # what augur.serving._auth.parse_token_file reads for desk-a
    assert subprocess.run(["sh", "-n", "-c", script], check=False).returncode == 0


def test_tracing_reaches_the_serving_pods_through_the_operator(
    render: Render, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chart gives the operator AUGUR_OPERATOR_SERVING_ENV; the operator's settings read
    it and its rendering puts it in the serving and shadow containers of the example."""
    from augur.cluster._decisionservice import render_children
    from augur.config import Settings

    objs = render(OBSERVABILITY)
    (container,) = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"]
    monkeypatch.setenv(
        "AUGUR_OPERATOR_SERVING_ENV", env_of(container)["AUGUR_OPERATOR_SERVING_ENV"]
    )
    serving_env = Settings().operator_serving_env
    assert serving_env["OTEL_SERVICE_NAME"] == "augur-decision"
    assert serving_env["OTEL_RESOURCE_ATTRIBUTES"] == "deployment.environment=prod"
    (ds,) = of_kind(objs, "DecisionService")
    ds["metadata"].update(uid="u-1", generation=1)
    (deployment,) = [c for c in render_children(ds, serving_env) if c["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    assert {c["name"] for c in pod["containers"]} == {"decision", "shadow"}
    for c in pod["containers"]:
        assert env_of(c)["AUGUR_OTLP_ENDPOINT"] == (
            "http://otel-collector.observability.svc:4318/v1/traces"
        )
    (plain,) = one(render(REDIS), "Deployment")["spec"]["template"]["spec"]["containers"]
    assert "AUGUR_OPERATOR_SERVING_ENV" not in env_of(plain)


def test_every_alert_and_dashboard_query_parses_with_prometheus_parser(render: Render) -> None:
    """Prometheus's own PromQL parser (promql-check, built by `make k8s-build` from
    tests/k8s/promql) on every rule and panel query; Grafana's variables replaced by what
    Grafana substitutes."""
    from tests.k8s.controlplane import _build

    checker = _build.BIN / "promql-check"
    if not checker.exists():
        pytest.skip(f"no {checker}: `make k8s-build` builds it (needs Go)")
    objs = render(OBSERVABILITY)
    exprs = [r["expr"] for g in one(objs, "PrometheusRule")["spec"]["groups"] for r in g["rules"]]
    dashboard = json.loads(one(objs, "ConfigMap", "rel-augur-dashboard")["data"]["augur.json"])
    grafana = {"$__rate_interval": "5m", "$namespace": "augur", "$version": "m:1"}
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for var, value in grafana.items():
                expr = expr.replace(var, value)
            exprs.append(expr)
    proc = subprocess.run([str(checker)], input="\n".join(json.dumps(e) for e in exprs),
                          capture_output=True, text=True, check=False, timeout=60)  # fmt: skip
    results = proc.stdout.splitlines()
    assert len(results) == len(exprs) >= 20, proc.stderr
    bad = [(e, r) for e, r in zip(exprs, results, strict=True) if r != "ok"]
    assert not bad, bad
    # and it does refuse a broken one
    broken = subprocess.run([str(checker)], input=json.dumps("sum(rate(x[5m]) >"),
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert broken.returncode == 1 and broken.stdout.startswith("error:")
