"""What the operator renders for a TuningJob, how it follows KubeRay, and promotion."""

from __future__ import annotations

import shlex
from typing import Any

import pytest

from augur.cluster import TuningJob
from augur.cluster._base import ModelStore
from augur.cluster._tuningjob import (
    PromotionError,
    phase_of,
    promote,
    render_children,
    tuning_job_status,
)

NOW = "2026-12-06T10:00:00Z"
STUDY = {"name": "quick", "trials": 6}


def job(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "augur.dev/v1alpha1",
        "kind": "TuningJob",
        "metadata": {"name": "nightly", "namespace": "ml", "uid": "u-9", "generation": 1},
        "spec": {"study": {"inline": STUDY}, "storageURI": "s3://bucket/tuning", **spec},
    }


def service(versions: list[tuple[str, str, int]], shadow: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "versions": [{"name": n, "modelTag": t, "weight": w} for n, t, w in versions],
        "modelStore": {"uri": "s3://bucket/models"},
    }
    if shadow:
        spec["shadow"] = {"name": "shadow", "modelTag": shadow, "mirrorPercent": 100}
    return {
        "apiVersion": "augur.dev/v1alpha1",
        "kind": "DecisionService",
        "metadata": {"name": "eurusd", "namespace": "ml", "resourceVersion": "7"},
        "spec": spec,
    }


def test_the_rayjob_runs_the_entry_point_with_the_mounted_study() -> None:
    store = ModelStore(uri="s3://bucket/models")
    body = job(
        promote={"decisionService": "eurusd", "as": "canary", "percent": 10},
        activeDeadlineSeconds=600,
        backoffLimit=3,
        suspend=True,
        ray={"workers": {"replicas": 3}},
    )
    config_map, ray_job = render_children(body, STUDY, "quick", store)
    assert config_map["metadata"]["name"] == "nightly-study"
    spec = ray_job["spec"]
    assert shlex.split(spec["entrypoint"]) == [
        "python", "-m", "tuning.run", "--config", "/etc/augur/study/study.yaml",
        "--storage", "s3://bucket/tuning",
        "--summary-file", "s3://bucket/tuning/quick/summary.json",
        "--promote", "--model-store", "s3://bucket/models",
    ]  # fmt: skip
    assert (spec["activeDeadlineSeconds"], spec["backoffLimit"], spec["suspend"]) == (600, 3, True)
    assert spec["shutdownAfterJobFinishes"] is True
    head = spec["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    assert head["volumes"][0] == {"name": "study", "configMap": {"name": "nightly-study"}}
    assert spec["rayClusterSpec"]["workerGroupSpecs"][0]["replicas"] == 3
    assert ray_job["metadata"]["ownerReferences"][0]["uid"] == "u-9"


def test_without_promote_the_winner_is_not_trained() -> None:
    _, ray_job = render_children(job(), STUDY, "quick", None)
    assert "--promote" not in shlex.split(ray_job["spec"]["entrypoint"])
    assert "activeDeadlineSeconds" not in ray_job["spec"]


@pytest.mark.parametrize(
    ("ray_status", "phase"),
    [
        ({}, "Pending"),
        ({"jobDeploymentStatus": "Initializing"}, "Pending"),
        ({"jobStatus": "RUNNING", "jobDeploymentStatus": "Running"}, "Running"),
        ({"jobStatus": "SUCCEEDED", "jobDeploymentStatus": "Complete"}, "Succeeded"),
        ({"jobStatus": "FAILED", "jobDeploymentStatus": "Complete"}, "Failed"),
        ({"jobDeploymentStatus": "Failed", "reason": "DeadlineExceeded"}, "Failed"),
        ({"jobStatus": "STOPPED", "jobDeploymentStatus": "Complete"}, "Failed"),
        ({"jobDeploymentStatus": "Suspended"}, "Suspended"),
    ],
)
def test_the_phase_follows_kuberay(ray_status: dict[str, Any], phase: str) -> None:
    assert phase_of({"status": ray_status}, suspended=False)[0] == phase


def test_a_deadline_is_reported_with_kuberays_reason() -> None:
    assert (
        phase_of(
            {"status": {"jobDeploymentStatus": "Failed", "reason": "DeadlineExceeded"}}, False
        )[1]
        == "DeadlineExceeded"
    )


def test_status_counts_trials_and_the_best_value_from_the_summary() -> None:
    summary = {"trials_total": 8, "trials_complete": 5, "trials_pruned": 2, "best": {"score": 0.7}}
    ray_job = {
        "status": {"jobStatus": "SUCCEEDED", "jobDeploymentStatus": "Complete", "endTime": NOW}
    }
    status = tuning_job_status(job(), ray_job, summary, [], NOW)
    assert (status.phase, status.trials_done, status.trials_total, status.best_value) == (
        "Succeeded",
        7,
        8,
        0.7,
    )
    assert status.completion_time == NOW
    assert {c.type: c.status for c in status.conditions}["Succeeded"] == "True"


def test_a_problem_fails_the_job_with_its_reason() -> None:
    status = tuning_job_status(job(), None, None, ["spec.study.inline: invalid study"], NOW)
    assert (status.phase, status.reason) == ("Failed", "InvalidSpec")
    assert "invalid study" in status.message


def tj(as_: str, percent: int) -> TuningJob:
    return TuningJob.model_validate(
        job(promote={"decisionService": "eurusd", "as": as_, "percent": percent})
    )


def test_a_canary_takes_its_share_from_the_primary() -> None:
    svc = service([("stable", "m:a", 90), ("canary", "m:b", 10)])
    spec = promote(svc, "m:new", tj("canary", 25))
    assert spec is not None
    assert [(v["name"], v["modelTag"], v["weight"]) for v in spec["versions"]] == [
        ("stable", "m:a", 65),
        ("canary", "m:b", 10),
        ("nightly", "m:new", 25),
    ]
    assert sum(v["weight"] for v in spec["versions"]) == 100
    svc["spec"] = spec
    assert promote(svc, "m:new", tj("canary", 25)) is None  # idempotent


def test_a_shadow_replaces_the_shadow() -> None:
    svc = service([("stable", "m:a", 100)], shadow="m:old")
    spec = promote(svc, "m:new", tj("shadow", 30))
    assert spec is not None
    assert spec["shadow"] == {"name": "shadow", "modelTag": "m:new", "mirrorPercent": 30}
    svc["spec"] = spec
    assert promote(svc, "m:new", tj("shadow", 30)) is None


def test_a_canary_larger_than_the_primary_is_refused() -> None:
    svc = service([("stable", "m:a", 20), ("canary", "m:b", 80)])
    with pytest.raises(PromotionError, match="20% of the traffic, less than the 50%"):
        promote(svc, "m:new", tj("canary", 50))


def test_a_shadow_graduating_to_canary_leaves_the_shadow() -> None:
    """The operator sends the new spec as a JSON merge patch: the shadow must be there as
    null to be deleted (a key left out keeps the old shadow, which the API server then
    refuses: its tag now serves)."""
    svc = service([("stable", "m:a", 100)], shadow="m:new")
    spec = promote(svc, "m:new", tj("canary", 10))
    assert spec is not None and "shadow" in spec and spec["shadow"] is None
