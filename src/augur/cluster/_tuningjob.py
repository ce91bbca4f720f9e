"""What a TuningJob becomes in the cluster (a KubeRay ``RayJob`` and its study ConfigMap),
how its status follows the RayJob, and how a winner is promoted to a DecisionService.

The RayJob runs ``python -m tuning.run`` on the Ray head with the study mounted from the
ConfigMap; the entry point writes its JSON summary to ``<storageURI>/<study>/summary.json``,
from which the operator reads trials done, the best value and the promoted version.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from augur.cluster import _constants as c
from augur.cluster._base import ModelStore, ResourceRequirements
from augur.cluster._conditions import ConditionBook
from augur.cluster._decisionservice import MODEL_STORE_MOUNT, owner_reference
from augur.cluster._decisionservice_resource import DecisionService, Promotion
from augur.cluster._tuningjob_resource import TuningJob, TuningJobStatus


def labels(job_name: str) -> dict[str, str]:
    return {
        c.NAME: "augur-tuning",
        c.INSTANCE: job_name,
        c.COMPONENT: "tuning",
        c.PART_OF: "augur",
        c.MANAGED_BY: c.FIELD_MANAGER,
        c.TUNING_JOB_LABEL: job_name,
    }


def study_config_map_name(job_name: str) -> str:
    return f"{job_name}-study"


def summary_uri(storage_uri: str, study_name: str) -> str:
    """Where the entry point writes the study's summary."""
    return f"{storage_uri.rstrip('/')}/{study_name}/summary.json"


def _model_store_target(store: ModelStore) -> str:
    if store.pvc is not None:
        sub = store.pvc.sub_path.strip("/")
        return f"{MODEL_STORE_MOUNT}/{sub}" if sub else MODEL_STORE_MOUNT
    assert store.uri is not None
    return store.uri


def entrypoint(job: TuningJob, study_name: str, model_store: ModelStore | None) -> str:
    """The driver's command line (run by KubeRay on the Ray head)."""
    spec = job.spec
    argv = [
        "python", "-m", "tuning.run",
        "--config", f"{c.STUDY_DIR}/{c.STUDY_FILE}",
        "--storage", spec.storage_uri,
        "--summary-file", summary_uri(spec.storage_uri, study_name),
    ]  # fmt: skip
    if spec.promote is not None and model_store is not None:
        argv += ["--promote", "--model-store", _model_store_target(model_store)]
    return shlex.join(argv)


def _container(
    name: str, image: str, resources: ResourceRequirements, mounts: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "resources": resources.model_dump(),
        "env": [{"name": "RAY_USAGE_STATS_ENABLED", "value": "0"}],
        "volumeMounts": mounts,
    }


def render_children(
    body: dict[str, Any], study: dict[str, Any], study_name: str, model_store: ModelStore | None
) -> list[dict[str, Any]]:
    """The study ConfigMap and the RayJob for the TuningJob ``body``.

    ``study`` is the validated study mapping; ``model_store`` is the promotion target's
    store (the winner is pushed there), None without ``promote``."""
    import yaml

    job = TuningJob.model_validate(body)
    meta = body["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    owner = [owner_reference(body)]
    spec = job.spec

    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": study_config_map_name(name),
            "namespace": namespace,
            "labels": labels(name),
            "ownerReferences": owner,
        },
        "data": {c.STUDY_FILE: yaml.safe_dump(study, sort_keys=False)},
    }

    volumes: list[dict[str, Any]] = [
        {"name": "study", "configMap": {"name": study_config_map_name(name)}}
    ]
    head_mounts = [{"name": "study", "mountPath": c.STUDY_DIR, "readOnly": True}]
    if model_store is not None and model_store.pvc is not None:
        volumes.append(
            {
                "name": "model-store",
                "persistentVolumeClaim": {"claimName": model_store.pvc.claim_name},
            }
        )
        head_mounts.append({"name": "model-store", "mountPath": MODEL_STORE_MOUNT})
    head = _container("ray-head", spec.image, spec.ray.head, head_mounts)
    head["ports"] = [
        {"name": "gcs", "containerPort": 6379},
        {"name": "dashboard", "containerPort": 8265},
        {"name": "client", "containerPort": 10001},
    ]
    if model_store is not None and model_store.credentials_secret:
        head["envFrom"] = [{"secretRef": {"name": model_store.credentials_secret}}]
    workers = spec.ray.workers
    ray_job_spec: dict[str, Any] = {
        "entrypoint": entrypoint(job, study_name, model_store),
        "submissionMode": "K8sJobMode",
        "shutdownAfterJobFinishes": True,
        "ttlSecondsAfterFinished": 300,
        "backoffLimit": spec.backoff_limit,
        "suspend": spec.suspend,
        "rayClusterSpec": {
            "rayVersion": spec.ray.ray_version,
            "headGroupSpec": {
                "rayStartParams": {"dashboard-host": "0.0.0.0"},
                "template": {
                    "metadata": {"labels": labels(name)},
                    "spec": {"containers": [head], "volumes": volumes},
                },
            },
            "workerGroupSpecs": [
                {
                    "groupName": "workers",
                    "replicas": workers.replicas,
                    "minReplicas": workers.replicas,
                    "maxReplicas": workers.replicas,
                    "rayStartParams": {},
                    "template": {
                        "metadata": {"labels": labels(name)},
                        "spec": {
                            "containers": [
                                _container("ray-worker", spec.image, workers.resources, [])
                            ]
                        },
                    },
                }
            ],
        },
    }
    if spec.active_deadline_seconds is not None:
        ray_job_spec["activeDeadlineSeconds"] = spec.active_deadline_seconds
    ray_job = {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels(name),
            "ownerReferences": owner,
        },
        "spec": ray_job_spec,
    }
    return [config_map, ray_job]


def phase_of(ray_job: dict[str, Any] | None, suspended: bool) -> tuple[str, str, str]:
    """(phase, reason, message) of the TuningJob from its RayJob's status, as KubeRay
    reports it (``jobStatus``: PENDING RUNNING STOPPED SUCCEEDED FAILED;
    ``jobDeploymentStatus``: Initializing Running Complete Failed Suspending Suspended …)."""
    if ray_job is None:
        return (
            ("Suspended", "Suspended", "suspended")
            if suspended
            else ("Pending", "RayJobCreating", "the RayJob is being created")
        )
    status = ray_job.get("status") or {}
    job_status = status.get("jobStatus", "")
    deployment = status.get("jobDeploymentStatus", "")
    message = status.get("message", "")
    if deployment in ("Suspended", "Suspending") or (suspended and not job_status):
        return "Suspended", "Suspended", message or "the Ray cluster is deleted; state is kept"
    if job_status == "SUCCEEDED":
        return "Succeeded", "StudyFinished", message or "the study finished"
    if job_status in ("FAILED", "STOPPED") or deployment == "Failed":
        reason = status.get("reason") or ("JobFailed" if job_status == "FAILED" else "JobStopped")
        return "Failed", reason, message or f"the RayJob ended: {job_status or deployment}"
    if job_status == "RUNNING":
        return "Running", "StudyRunning", message or "trials are running"
    return "Pending", deployment or "Initializing", message or "the Ray cluster is starting"


def tuning_job_status(
    body: dict[str, Any],
    ray_job: dict[str, Any] | None,
    summary: dict[str, Any] | None,
    problems: list[str],
    now: str,
    promoted_tag: str = "",
) -> TuningJobStatus:
    """The TuningJob's status from its RayJob and the study's summary (None until
    written). ``problems``: permanent errors (a bad study, a missing target) — with any,
    nothing was created and the ``Ready`` condition says why."""
    job = TuningJob.model_validate(body)
    old = job.status or TuningJobStatus()
    generation = job.metadata.get("generation")
    book = ConditionBook(old.conditions, generation, now)

    if problems:
        text = "; ".join(problems)
        book.set("Ready", False, "InvalidSpec", text)
        return old.model_copy(
            update={
                "observed_generation": generation,
                "phase": "Failed",
                "reason": "InvalidSpec",
                "message": text,
                "conditions": book.items,
            }
        )
    phase, reason, message = phase_of(ray_job, job.spec.suspend)
    ray_status = (ray_job or {}).get("status") or {}
    book.set("Ready", True, "RayJobCreated", f"RayJob {job.metadata['name']}")
    update: dict[str, Any] = {
        "observed_generation": generation,
        "phase": phase,
        "ray_job": job.metadata["name"] if ray_job is not None else "",
        "reason": reason,
        "message": message,
        "start_time": ray_status.get("startTime", old.start_time),
        "completion_time": ray_status.get("endTime", old.completion_time),
    }
    if summary is not None:
        update["trials_done"] = int(summary.get("trials_complete", 0)) + int(
            summary.get("trials_pruned", 0)
        )
        update["trials_total"] = int(summary.get("trials_total", 0))
        best = summary.get("best") or {}
        update["best_value"] = best.get("score")
    if phase == "Succeeded":
        book.set("Succeeded", True, "StudyFinished", message)
    elif phase == "Failed":
        book.set("Succeeded", False, reason, message)
    if promoted_tag or old.promoted_model_tag:
        tag = promoted_tag or old.promoted_model_tag
        update["promoted_model_tag"] = tag
        promote = job.spec.promote
        assert promote is not None
        book.set(
            "Promoted",
            True,
            "Promoted",
            f"{tag} added to DecisionService {promote.decision_service} as {promote.as_} "
            f"at {promote.percent}%",
        )
    update["conditions"] = book.items
    return old.model_copy(update=update)


class PromotionError(ValueError):
    """The winner cannot be added to the DecisionService as asked; the message says why."""


def promoted_tag(summary: dict[str, Any] | None) -> str:
    """The model tag the entry point promoted ('' when it promoted nothing)."""
    promoted = (summary or {}).get("promoted") or {}
    return str(promoted.get("tag") or "")


def promote(service_body: dict[str, Any], tag: str, job: TuningJob) -> dict[str, Any] | None:
    """The DecisionService's new ``spec`` with the winner promoted, or None when it is
    already there. Raises :class:`PromotionError` when the weights cannot make room."""
    assert job.spec.promote is not None
    how = job.spec.promote
    service = DecisionService.model_validate(service_body)
    spec = service_body["spec"]
    serving_tags = [v.model_tag for v in service.spec.versions]
    if how.as_ == "shadow":
        if service.spec.shadow is not None and service.spec.shadow.model_tag == tag:
            return None
        if tag in serving_tags:
            raise PromotionError(f"{tag} already serves in {service.metadata['name']}")
        return {**spec, "shadow": {"name": "shadow", "modelTag": tag, "mirrorPercent": how.percent}}
    if tag in serving_tags:
        return None
    versions = [dict(v) for v in spec["versions"]]
    if versions[0]["weight"] < how.percent:
        raise PromotionError(
            f"the primary {versions[0]['name']} has {versions[0]['weight']}% of the traffic, "
            f"less than the {how.percent}% asked for the canary"
        )
    versions[0]["weight"] -= how.percent
    name = job.metadata["name"][:63].rstrip("-")
    versions = [v for v in versions if v["name"] != name]
    versions.append({"name": name, "modelTag": tag, "weight": how.percent})
    new = {**spec, "versions": versions}
    shadow = spec.get("shadow")
    if shadow and shadow.get("modelTag") == tag:  # a shadow graduating to canary
        # The spec goes out as a JSON merge patch: a key left out is kept, null deletes.
        new["shadow"] = None
    return new


def promotion_record(tag: str, job: TuningJob, now: str) -> Promotion:
    assert job.spec.promote is not None
    return Promotion(
        model_tag=tag,
        tuning_job=job.metadata["name"],
        role=job.spec.promote.as_,
        percent=job.spec.promote.percent,
        time=now,
    )


def summary_from_text(text: str, where: str) -> dict[str, Any]:
    """Parse the entry point's summary (one JSON object); errors name the file."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: not a JSON summary: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{where}: the summary must be a JSON object")
    return data


__all__ = [
    "PromotionError",
    "entrypoint",
    "labels",
    "phase_of",
    "promote",
    "promoted_tag",
    "promotion_record",
    "render_children",
    "study_config_map_name",
    "summary_from_text",
    "summary_uri",
    "tuning_job_status",
]
