"""The ``TuningJob`` custom resource (``augur.dev/v1alpha1``), typed: a Ray Tune + Optuna
study run as a KubeRay ``RayJob``. Like the DecisionService models, the one source of truth
for its CRD."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from augur.cluster._base import (
    Condition,
    ConfigMapKeyRef,
    KubeModel,
    ResourceRequirements,
    cel,
    validations,
)


class Study(KubeModel):
    """The study: inline (the study file's YAML as an object) or from a ConfigMap."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "has(self.inline) != has(self.configMapRef)",
                "study: set exactly one of inline or configMapRef",
            )
        )
    )

    inline: dict[str, Any] | None = Field(
        default=None,
        description="The study file as an object (name, trials, search_space, …; see "
        "tuning/studies/quick.yaml).",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    config_map_ref: ConfigMapKeyRef | None = Field(
        default=None, description="A ConfigMap key holding the study file."
    )


class RayWorkers(KubeModel):
    """Ray worker pods."""

    replicas: int = Field(default=1, ge=0, le=100, description="Worker pods.")
    resources: ResourceRequirements = Field(
        default_factory=lambda: ResourceRequirements(
            requests={"cpu": "1", "memory": "2Gi"}, limits={"cpu": "1", "memory": "2Gi"}
        ),
        description="CPU and memory of each worker.",
    )


class RayResources(KubeModel):
    """The Ray cluster the study runs on (a KubeRay RayJob's rayClusterSpec)."""

    ray_version: str = Field(default="2.60.0", description="Ray version of the image.")
    head: ResourceRequirements = Field(
        default_factory=lambda: ResourceRequirements(
            requests={"cpu": "1", "memory": "2Gi"}, limits={"cpu": "1", "memory": "2Gi"}
        ),
        description="CPU and memory of the head pod (it also runs the study's driver).",
    )
    workers: RayWorkers = Field(default_factory=RayWorkers, description="Worker pods.")


class Promote(KubeModel):
    """Where the winner goes when the study succeeds."""

    decision_service: str = Field(
        min_length=1, max_length=253, description="DecisionService in this namespace."
    )
    as_: Literal["shadow", "canary"] = Field(
        default="shadow", alias="as", description="Add the winner as the shadow or a canary."
    )
    percent: int = Field(
        default=10,
        description="Canary weight, or the shadow's mirror percent (0-100).",
        json_schema_extra=validations(
            cel("self >= 0 && self <= 100", "promote.percent must be between 0 and 100")
        ),
    )


class TuningJobSpec(KubeModel):
    """A Ray Tune + Optuna study run as a KubeRay RayJob."""

    study: Study = Field(description="The study to run.")
    image: str = Field(
        default="augur-tuning:0.1.0", min_length=1, description="Image with Ray and Augur."
    )
    ray: RayResources = Field(default_factory=RayResources, description="The Ray cluster.")
    storage_uri: str = Field(
        alias="storageURI",
        min_length=1,
        description="Durable storage for checkpoints and the summary (e.g. s3://bucket/tuning "
        "or a path on a shared volume); a retried job resumes from it.",
    )
    active_deadline_seconds: int | None = Field(
        default=None, ge=1, description="Fail the job after this many seconds."
    )
    backoff_limit: int = Field(
        default=2, ge=0, description="Retries of a failed run (each resumes the study)."
    )
    suspend: bool = Field(default=False, description="Pause: delete the Ray cluster, keep state.")
    promote: Promote | None = Field(default=None, description="Promote the winner on success.")


class TuningJobStatus(KubeModel):
    """The RayJob as the operator sees it, and the study's results."""

    observed_generation: int | None = None
    phase: Literal["Pending", "Running", "Succeeded", "Failed", "Suspended"] = "Pending"
    ray_job: str = Field(default="", description="The RayJob's name.")
    reason: str = ""
    message: str = ""
    start_time: str = ""
    completion_time: str = ""
    trials_done: int = Field(default=0, description="Trials finished (complete or pruned).")
    trials_total: int = 0
    best_value: float | None = Field(default=None, description="Best objective value.")
    promoted_model_tag: str = Field(default="", description="The promoted version's tag.")
    conditions: list[Condition] = Field(default_factory=list)


class TuningJob(KubeModel):
    """A tuning study on the cluster; its winner may be promoted to a DecisionService."""

    api_version: Literal["augur.dev/v1alpha1"] = "augur.dev/v1alpha1"
    kind: Literal["TuningJob"] = "TuningJob"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: TuningJobSpec
    status: TuningJobStatus | None = None


__all__ = [
    "Promote",
    "RayResources",
    "RayWorkers",
    "Study",
    "TuningJob",
    "TuningJobSpec",
    "TuningJobStatus",
]
