"""Invalid DecisionServices and TuningJobs are refused by the API server itself (schema and
CEL rules from the generated CRDs), with a message that says what is wrong."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.k8s.conftest import ROOT, Kubectl
from tests.k8s.test_decisionservice_operator import TAGS, decision_service
from tests.k8s.test_tuningjob_operator import tuning_job


def _edit(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    body = copy.deepcopy(body)
    *parents, last = path.split(".")
    node = body["spec"]
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return body


_DELETE = object()

DS_CASES = [
    ("versions.1.weight", 30, "the versions' weights must sum to 100"),
    ("shadow.mirrorPercent", 150, "shadow.mirrorPercent must be between 0 and 100"),
    ("shadow.modelTag", TAGS[1], "shadow.modelTag is already a serving version"),
    ("autoscaling", {"minReplicas": 5, "maxReplicas": 2}, "minReplicas must not exceed"),
    ("versions.0.modelTag", "augur-ensemble", "modelTag must be name:version"),
    ("versions.0.modelTag", "augur-ensemble:latest", "must name an exact version, not :latest"),
    ("modelStore", {"uri": "s3://a", "pvc": {"claimName": "m"}}, "set exactly one of uri"),
    ("versions.0.name", "Stable!", "should match"),
    ("versions.1.name", "stable", "Duplicate value"),
    # At most one shadow: a list of shadows is not a DecisionService.
    ("shadow", [{"modelTag": TAGS[2]}, {"modelTag": "augur-ensemble:dddd"}], "spec.shadow"),
    # The shadow container's CPU limit is what keeps it off the serving container's CPU.
    ("shadow.resources", {"requests": {"cpu": "100m"}}, "shadow.resources.limits.cpu is required"),
]


def _rejected(kubectl: Kubectl, body: dict[str, Any]) -> str:
    proc = kubectl.run("create", "--dry-run=server", "-f", "-", stdin=json.dumps(body), check=False)
    assert proc.returncode != 0, f"the API server accepted {body['spec']}"
    return proc.stderr


def test_a_valid_decision_service_is_accepted(kubectl: Kubectl) -> None:
    body = decision_service("ok", "default")
    proc = kubectl.run(
        "create", "--dry-run=server", "-o", "json", "-f", "-", stdin=json.dumps(body)
    )
    created = json.loads(proc.stdout)
    # The API server applied the schema's defaults.
    assert created["spec"]["routingKey"] == "request"
    assert created["spec"]["shadow"]["name"] == "shadow"
    assert created["spec"]["shadow"]["resources"]["limits"]["cpu"] == "500m"
    assert created["spec"]["autoscaling"]["targetCPUUtilizationPercentage"] == 70


@pytest.mark.parametrize(("path", "value", "message"), DS_CASES, ids=[c[2][:40] for c in DS_CASES])
def test_an_invalid_decision_service_is_refused_by_the_api_server(
    kubectl: Kubectl, path: str, value: Any, message: str
) -> None:
    body = _edit(decision_service("bad", "default"), path, value)
    assert message in _rejected(kubectl, body)


TJ_CASES = [
    (
        "promote",
        {"decisionService": "x", "as": "canary", "percent": 120},
        "promote.percent must be between 0 and 100",
    ),
    ("promote", {"decisionService": "x", "as": "primary"}, "Unsupported value"),
    ("study", {}, "set exactly one of inline or configMapRef"),
    ("backoffLimit", -1, "should be greater than or equal to 0"),
    ("storageURI", _DELETE, "Required value"),
]


@pytest.mark.parametrize(("path", "value", "message"), TJ_CASES, ids=[c[2][:40] for c in TJ_CASES])
def test_an_invalid_tuning_job_is_refused_by_the_api_server(
    kubectl: Kubectl, path: str, value: Any, message: str
) -> None:
    body = _edit(tuning_job("bad", "default", Path("/tmp/studies")), path, value)
    assert message in _rejected(kubectl, body)


@pytest.mark.parametrize(
    "example", sorted((ROOT / "examples" / "k8s").glob("*.yaml")), ids=lambda p: p.name
)
def test_the_documented_examples_are_accepted(kubectl: Kubectl, example: Path) -> None:
    proc = kubectl.run(
        "create", "--dry-run=server", "-n", "default", "-f", str(example), check=False
    )
    assert proc.returncode == 0, proc.stderr
