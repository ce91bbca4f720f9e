"""The custom resources ``DecisionService`` and ``TuningJob`` (``augur.dev/v1alpha1``), typed.

These pydantic models are the one source of truth: the CRD YAML in ``helm/augur/crds/`` is
generated from them (``augur.cluster.crd_manifests``), and the operators parse what the API
server hands them with the same models. Field names are camelCase as Kubernetes users
expect; rules the API server enforces are ``x-kubernetes-validations`` (CEL) with messages
a user understands, attached to the model they check.
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any, Literal, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.alias_generators import to_camel

from augur.decision import DecisionConfig

# BentoML model tags: name:version, e.g. augur-ensemble:k3x2abcd.
TAG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*:[A-Za-z0-9][A-Za-z0-9_.-]*$"
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


def cel(rule: str, message: str, field_path: str | None = None) -> dict[str, str]:
    """One ``x-kubernetes-validations`` entry."""
    entry = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    return entry


def validations(*rules: dict[str, str]) -> dict[str, Any]:
    """``json_schema_extra`` carrying CEL rules for the CRD schema."""
    return {"x-kubernetes-validations": list(rules)}


class _Kube(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields are an error."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


# --- shared pieces -----------------------------------------------------------------------


class SecretKeyRef(_Kube):
    """A key of a Secret in the resource's namespace."""

    name: str = Field(min_length=1, max_length=253, description="Name of the Secret.")
    key: str = Field(min_length=1, description="Key inside the Secret.")


class PersistentVolumeSource(_Kube):
    """A PersistentVolumeClaim holding exported model versions."""

    claim_name: str = Field(min_length=1, max_length=253, description="Name of the claim.")
    sub_path: str = Field(default="", description="Folder inside the volume ('' = its root).")


class ModelStore(_Kube):
    """Where pods fetch model versions from: a volume, or an fsspec URI such as s3://…"""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "has(self.uri) != has(self.pvc)",
                "modelStore: set exactly one of uri (e.g. s3://bucket/models) or pvc",
            )
        )
    )

    uri: str | None = Field(
        default=None,
        min_length=1,
        description="fsspec URI of the exported versions, e.g. s3://bucket/augur/models.",
    )
    pvc: PersistentVolumeSource | None = Field(
        default=None, description="A volume holding the exported versions."
    )
    credentials_secret: str | None = Field(
        default=None,
        description="Secret whose keys become environment variables of the fetch step "
        "(e.g. AWS_ACCESS_KEY_ID) — the object store's credentials.",
    )


class ResourceRequirements(_Kube):
    """CPU and memory, as in a container spec (quantities like '500m', '1Gi')."""

    requests: dict[str, str] = Field(default_factory=dict, description="Requested resources.")
    limits: dict[str, str] = Field(default_factory=dict, description="Resource limits.")


class Condition(_Kube):
    """A standard Kubernetes condition."""

    type: str = Field(description="Ready, RoutesReady, ShadowReady, Succeeded, …")
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(default="", description="CamelCase reason code.")
    message: str = Field(default="", description="What happened, for a person.")
    last_transition_time: str = Field(default="", description="RFC 3339 time of the change.")
    observed_generation: int | None = Field(default=None, description="Generation checked.")


# --- DecisionService ---------------------------------------------------------------------


class ServingVersion(_Kube):
    """One model version serving a share of the traffic."""

    name: str = Field(
        min_length=1,
        max_length=63,
        pattern=DNS_LABEL,
        description="Route name, e.g. 'stable' or 'canary' (lower-case DNS label).",
    )
    model_tag: str = Field(
        min_length=1,
        max_length=253,
        description="Model version as name:version, e.g. augur-ensemble:k3x2abcd.",
        json_schema_extra=validations(
            cel(
                f"self.matches('{TAG_PATTERN}')",
                "modelTag must be name:version, e.g. augur-ensemble:k3x2abcd "
                "(a moving tag such as :latest is not allowed either)",
            ),
            cel("!self.endsWith(':latest')", "modelTag must name an exact version, not :latest"),
        ),
    )
    weight: int = Field(
        ge=0, le=100, description="Percent of traffic; the versions' weights sum to 100."
    )


class Shadow(_Kube):
    """A version that scores a mirror of the traffic off the request path."""

    name: str = Field(default="shadow", max_length=63, pattern=DNS_LABEL, description="Route name.")
    model_tag: str = Field(
        min_length=1,
        max_length=253,
        description="Model version as name:version.",
        json_schema_extra=validations(
            cel(
                f"self.matches('{TAG_PATTERN}')",
                "shadow.modelTag must be name:version, e.g. augur-ensemble:k3x2abcd",
            ),
            cel(
                "!self.endsWith(':latest')",
                "shadow.modelTag must name an exact version, not :latest",
            ),
        ),
    )
    mirror_percent: int = Field(
        default=100,
        description="Percent of requests mirrored to the shadow (0-100).",
        json_schema_extra=validations(
            cel("self >= 0 && self <= 100", "shadow.mirrorPercent must be between 0 and 100")
        ),
    )


class Autoscaling(_Kube):
    """The HorizontalPodAutoscaler's range and target."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "self.minReplicas <= self.maxReplicas",
                "autoscaling.minReplicas must not exceed autoscaling.maxReplicas",
            )
        )
    )

    min_replicas: int = Field(default=1, ge=1, description="Fewest pods.")
    max_replicas: int = Field(default=3, ge=1, description="Most pods.")
    target_cpu_utilization_percentage: int = Field(
        alias="targetCPUUtilizationPercentage",
        default=70,
        ge=1,
        le=100,
        description="Average CPU use (percent of requests) to keep.",
    )


class FeatureStore(_Kube):
    """The Feast online store (Redis) the pods read features from."""

    redis_url: SecretKeyRef = Field(
        description="Secret key holding the Redis connection string (host:port[,db=N])."
    )


class PredictionLog(_Kube):
    """Where decisions and outcomes are logged (PostgreSQL in a cluster)."""

    url: SecretKeyRef = Field(
        description="Secret key holding the SQLAlchemy URL, e.g. postgresql+psycopg://…"
    )


class ServingAuth(_Kube):
    """Bearer-token authentication of the HTTP endpoints."""

    token: SecretKeyRef = Field(description="Secret key holding the accepted token(s).")


def _decision_overrides_model() -> type[BaseModel]:
    """Every DecisionConfig threshold as an optional camelCase field (one source of truth)."""
    specs: dict[str, Any] = {}
    hints = get_type_hints(DecisionConfig)
    for f in fields(DecisionConfig):
        default = f.default if f.default is not MISSING else None
        specs[f.name] = (
            hints[f.name] | None,
            Field(default=None, description=f"Override of {f.name} (default {default!r})."),
        )
    return create_model("DecisionOverrides", __base__=_Kube, **specs)


DecisionOverrides = _decision_overrides_model()
DecisionOverrides.__doc__ = (
    "Risk settings that override every version's own decision thresholds "
    "(augur.decision.DecisionConfig; unset fields keep the version's)."
)


class DecisionServiceSpec(_Kube):
    """What a DecisionService serves and how."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "self.versions.map(v, v.weight).sum() == 100",
                "the versions' weights must sum to 100",
            ),
            cel(
                "!has(self.shadow) || self.versions.all(v, v.modelTag != self.shadow.modelTag)",
                "shadow.modelTag is already a serving version: a shadow must be a version that "
                "does not serve",
            ),
            cel(
                "!has(self.shadow) || self.versions.all(v, v.name != self.shadow.name)",
                "shadow.name is already the name of a serving version",
            ),
        )
    )

    versions: list[ServingVersion] = Field(
        min_length=1,
        max_length=8,
        description="The serving versions; the first is the primary, the others canaries.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
        },
    )
    shadow: Shadow | None = Field(default=None, description="At most one shadow version.")
    routing_key: Literal["request", "symbol"] = Field(
        default="request",
        description="What splits traffic between versions: 'request' — the request's "
        "routing_key, else its symbol; 'symbol' — always the symbol.",
    )
    image: str = Field(
        default="augur-decision:0.1.0", min_length=1, description="The decision service image."
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        default="IfNotPresent", description="When the kubelet pulls the image."
    )
    model_store: ModelStore = Field(description="Where pods fetch the model versions from.")
    feature_store: FeatureStore | None = Field(
        default=None, description="The online feature store (Redis); unset: none (tests only)."
    )
    prediction_log: PredictionLog | None = Field(
        default=None, description="Where decisions and outcomes are logged; unset: pod-local."
    )
    decision: DecisionOverrides | None = Field(  # type: ignore[valid-type]
        default=None, description="Risk settings overriding the versions' own thresholds."
    )
    auth: ServingAuth | None = Field(default=None, description="Require a bearer token.")
    autoscaling: Autoscaling = Field(
        default_factory=Autoscaling, description="Replicas range and CPU target of the HPA."
    )
    resources: ResourceRequirements = Field(
        default_factory=lambda: ResourceRequirements(
            requests={"cpu": "500m", "memory": "1Gi"}, limits={"memory": "2Gi"}
        ),
        description="CPU and memory of each serving pod.",
    )


class TrafficShare(_Kube):
    """One route as applied to the pods' routing table."""

    name: str
    model_tag: str
    role: Literal["primary", "canary", "shadow"]
    percent: float


class Promotion(_Kube):
    """A version added by a TuningJob's promotion."""

    model_tag: str
    tuning_job: str
    role: Literal["shadow", "canary"]
    percent: int
    time: str = ""


class DecisionServiceStatus(_Kube):
    """What the operator applied and what the cluster reports."""

    observed_generation: int | None = None
    replicas: int = Field(default=0, description="Pods the Deployment has.")
    ready_replicas: int = Field(default=0, description="Pods ready to serve.")
    ready: str = Field(default="0/0", description="ready/desired, for kubectl's READY column.")
    primary: str = Field(default="", description="The primary version's model tag.")
    canary_percent: int = Field(default=0, description="Traffic to versions but the primary.")
    shadow: str = Field(default="", description="The shadow's model tag ('' = none).")
    traffic: list[TrafficShare] = Field(default_factory=list, description="Routes as applied.")
    routing_table: str = Field(default="", description="ConfigMap holding the routing table.")
    last_promotion: Promotion | None = None
    conditions: list[Condition] = Field(default_factory=list)


class DecisionService(_Kube):
    """A decision endpoint serving model versions with weights and an optional shadow."""

    api_version: Literal["augur.dev/v1alpha1"] = "augur.dev/v1alpha1"
    kind: Literal["DecisionService"] = "DecisionService"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: DecisionServiceSpec
    status: DecisionServiceStatus | None = None


# --- TuningJob ---------------------------------------------------------------------------


class ConfigMapKeyRef(_Kube):
    """A key of a ConfigMap in the resource's namespace."""

    name: str = Field(min_length=1, max_length=253)
    key: str = Field(default="study.yaml", min_length=1)


class Study(_Kube):
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


class RayWorkers(_Kube):
    """Ray worker pods."""

    replicas: int = Field(default=1, ge=0, le=100, description="Worker pods.")
    resources: ResourceRequirements = Field(
        default_factory=lambda: ResourceRequirements(
            requests={"cpu": "1", "memory": "2Gi"}, limits={"cpu": "1", "memory": "2Gi"}
        ),
        description="CPU and memory of each worker.",
    )


class RayResources(_Kube):
    """The Ray cluster the study runs on (a KubeRay RayJob's rayClusterSpec)."""

    ray_version: str = Field(default="2.60.0", description="Ray version of the image.")
    head: ResourceRequirements = Field(
        default_factory=lambda: ResourceRequirements(
            requests={"cpu": "1", "memory": "2Gi"}, limits={"cpu": "1", "memory": "2Gi"}
        ),
        description="CPU and memory of the head pod (it also runs the study's driver).",
    )
    workers: RayWorkers = Field(default_factory=RayWorkers, description="Worker pods.")


class Promote(_Kube):
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


class TuningJobSpec(_Kube):
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


class TuningJobStatus(_Kube):
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


class TuningJob(_Kube):
    """A tuning study on the cluster; its winner may be promoted to a DecisionService."""

    api_version: Literal["augur.dev/v1alpha1"] = "augur.dev/v1alpha1"
    kind: Literal["TuningJob"] = "TuningJob"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: TuningJobSpec
    status: TuningJobStatus | None = None


__all__ = [
    "Autoscaling",
    "Condition",
    "ConfigMapKeyRef",
    "DecisionOverrides",
    "DecisionService",
    "DecisionServiceSpec",
    "DecisionServiceStatus",
    "FeatureStore",
    "ModelStore",
    "PersistentVolumeSource",
    "PredictionLog",
    "Promote",
    "Promotion",
    "RayResources",
    "RayWorkers",
    "ResourceRequirements",
    "SecretKeyRef",
    "ServingAuth",
    "ServingVersion",
    "Shadow",
    "Study",
    "TrafficShare",
    "TuningJob",
    "TuningJobSpec",
    "TuningJobStatus",
]
