"""The TuningJob operator against a real API server with KubeRay's real RayJob CRD: the
RayJob it writes is accepted, its status is followed as KubeRay reports it, and a winner
is promoted to the target DecisionService."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import yaml

from tests.k8s.conftest import ROOT, Kubectl, Operator, wait_for
from tests.k8s.test_decisionservice_operator import TAGS, condition, decision_service, wait_ready

STUDY = yaml.safe_load((ROOT / "tuning" / "studies" / "quick.yaml").read_text())


def tuning_job(name: str, namespace: str, storage: Path, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "augur.dev/v1alpha1",
        "kind": "TuningJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "study": {"inline": STUDY},
            "storageURI": f"file://{storage}",
            "activeDeadlineSeconds": 3600,
            "backoffLimit": 1,
            "ray": {"workers": {"replicas": 2}},
            **spec,
        },
    }


def test_a_tuning_job_runs_as_a_rayjob_and_promotes_its_winner(
    kubectl: Kubectl, operator: Operator, namespace: str, tmp_path: Path
) -> None:
    kubectl.apply(decision_service("target", namespace, canary=0, shadow=False))
    wait_ready(kubectl, "target", namespace)
    kubectl.apply(
        tuning_job(
            "study1",
            namespace,
            tmp_path,
            promote={"decisionService": "target", "as": "canary", "percent": 25},
        )
    )

    # The RayJob was accepted by KubeRay's own CRD (strict field validation).
    ray_job = wait_for("the RayJob", lambda: kubectl.get("rayjob", "study1", namespace))
    spec = ray_job["spec"]
    argv = shlex.split(spec["entrypoint"])
    assert argv[:3] == ["python", "-m", "tuning.run"]
    assert argv[argv.index("--storage") + 1] == f"file://{tmp_path}"
    assert argv[argv.index("--model-store") + 1] == "s3://models/augur"
    assert spec["shutdownAfterJobFinishes"] is True
    assert spec["activeDeadlineSeconds"] == 3600
    assert spec["backoffLimit"] == 1
    assert spec["submissionMode"] == "K8sJobMode"
    assert spec["rayClusterSpec"]["workerGroupSpecs"][0]["replicas"] == 2
    owners = ray_job["metadata"]["ownerReferences"]
    assert [o["kind"] for o in owners] == ["TuningJob"]
    study_cm = kubectl.get("configmap", "study1-study", namespace)
    assert study_cm is not None and yaml.safe_load(study_cm["data"]["study.yaml"]) == STUDY

    # KubeRay reports the job running, then finished; the entry point wrote its summary.
    def set_ray_status(status: dict[str, Any]) -> None:
        kubectl.run(
            "patch", "rayjob", "study1", "-n", namespace, "--subresource=status",
            "--type=merge", "-p", json.dumps({"status": status}),
        )  # fmt: skip

    set_ray_status(
        {
            "jobStatus": "RUNNING",
            "jobDeploymentStatus": "Running",
            "startTime": "2026-12-06T10:00:00Z",
        }
    )
    wait_for(
        "phase Running",
        lambda: (
            ((kubectl.get("tuningjob", "study1", namespace) or {}).get("status") or {}).get("phase")
            == "Running"
        ),
    )
    winner = "augur-ensemble:eeee5555"
    summary = {
        "study": "quick",
        "trials_total": 6,
        "trials_complete": 4,
        "trials_pruned": 2,
        "best": {"trial_id": "t3", "score": 1.25},
        "promoted": {"tag": winner, "model_store": "s3://models/augur"},
    }
    (tmp_path / "quick").mkdir()
    (tmp_path / "quick" / "summary.json").write_text(json.dumps(summary))
    set_ray_status(
        {
            "jobStatus": "SUCCEEDED",
            "jobDeploymentStatus": "Complete",
            "startTime": "2026-12-06T10:00:00Z",
            "endTime": "2026-12-06T10:09:00Z",
        }
    )

    job = wait_for(
        "the TuningJob to succeed and record the promotion",
        lambda: (
            (j := kubectl.get("tuningjob", "study1", namespace))
            and (j.get("status") or {}).get("promotedModelTag") == winner
            and j
        ),
    )
    status = job["status"]
    assert status["phase"] == "Succeeded"
    assert (status["trialsDone"], status["trialsTotal"], status["bestValue"]) == (6, 6, 1.25)
    assert status["completionTime"] == "2026-12-06T10:09:00Z"
    assert condition(job, "Succeeded")["status"] == "True"

    ds = wait_ready(kubectl, "target", namespace)
    versions = [(v["name"], v["modelTag"], v["weight"]) for v in ds["spec"]["versions"]]
    assert versions == [("stable", TAGS[0], 75), ("canary", TAGS[1], 0), ("study1", winner, 25)]
    assert ds["status"]["lastPromotion"]["modelTag"] == winner
    assert ds["status"]["canaryPercent"] == 25
    table = kubectl.run("get", "tuningjobs", "-n", namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "PHASE", "TRIALS", "BEST", "AGE"]
    assert table[1].split()[:4] == ["study1", "Succeeded", "6", "1.25"]

    # Promotion happens once: the TuningJob reconciled again (its resync ran three more
    # times) leaves the service as it is.
    generation = ds["metadata"]["generation"]
    line = f"[{namespace}/study1] Timer 'resync' succeeded"
    resyncs = operator.log_text().count(line)
    wait_for("three more resyncs", lambda: operator.log_text().count(line) >= resyncs + 3)
    again = kubectl.get("decisionservice", "target", namespace)
    assert again is not None and again["metadata"]["generation"] == generation


def test_a_bad_study_is_a_failed_condition_and_creates_nothing(
    kubectl: Kubectl, operator: Operator, namespace: str, tmp_path: Path
) -> None:
    bad = {**STUDY, "trials": -3}
    body = tuning_job("bad", namespace, tmp_path)
    body["spec"]["study"]["inline"] = bad
    kubectl.apply(body)
    job = wait_for(
        "phase Failed with reason InvalidSpec",
        lambda: (
            (j := kubectl.get("tuningjob", "bad", namespace))
            and (j.get("status") or {}).get("reason") == "InvalidSpec"
            and j
        ),
    )
    assert job["status"]["phase"] == "Failed"
    assert "trials" in job["status"]["message"]
    assert kubectl.get("rayjob", "bad", namespace) is None


def test_a_missing_promotion_target_is_reported(
    kubectl: Kubectl, operator: Operator, namespace: str, tmp_path: Path
) -> None:
    kubectl.apply(tuning_job("orphan", namespace, tmp_path, promote={"decisionService": "nowhere"}))
    job = wait_for(
        "the missing target named",
        lambda: (
            (j := kubectl.get("tuningjob", "orphan", namespace))
            and "nowhere" in (j.get("status") or {}).get("message", "")
            and j
        ),
    )
    assert condition(job, "Ready")["status"] == "False"
