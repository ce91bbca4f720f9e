"""The ``DecisionService`` custom resource (``augur.dev/v1alpha1``), typed.

These pydantic models are the one source of truth: the CRD YAML in ``helm/augur/crds/`` is
generated from them (``augur.cluster.crd_manifests``), and the operator parses what the API
server hands it with the same models. Rules the API server enforces are CEL
``x-kubernetes-validations`` with messages a user understands, on the model they check.
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any, Literal, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, create_model

from augur.cluster._base import (
    DNS_LABEL,
    TAG_PATTERN,
    Condition,
    KubeModel,
    ModelStore,
    ResourceRequirements,
    SecretKeyRef,
    cel,
    validations,
)
from augur.decision import DecisionConfig


class ServingVersion(KubeModel):
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


class Shadow(KubeModel):
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
    resources: ResourceRequirements = Field(
        default_factory=lambda: ResourceRequirements(
            requests={"cpu": "100m", "memory": "384Mi"}, limits={"cpu": "500m", "memory": "768Mi"}
        ),
        description="CPU and memory of the shadow container in each serving pod; a CPU limit "
        "is required. The default caps it at half a core, with memory for a second ensemble "
        "while a new shadow version loads.",
        json_schema_extra=validations(
            # The kubelet's CPU limit is what keeps the shadow off the serving container's
            # CPU: without one it could take every idle core of the node.
            cel(
                "has(self.limits) && 'cpu' in self.limits",
                "shadow.resources.limits.cpu is required: it bounds the CPU the shadow "
                "container may take from the node (e.g. limits: {cpu: 500m})",
            ),
        ),
    )


class Autoscaling(KubeModel):
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
        description="Average CPU use of the serving containers, in percent of their CPU "
        "request, to keep (the shadow container's CPU does not count).",
    )


class FeatureStore(KubeModel):
    """The Feast online store (Redis) the pods read features from."""

    redis_url: SecretKeyRef = Field(
        description="Secret key holding the Redis connection string (host:port[,db=N])."
    )


class PredictionLog(KubeModel):
    """Where decisions and outcomes are logged (PostgreSQL in a cluster)."""

    url: SecretKeyRef = Field(
        description="Secret key holding the SQLAlchemy URL, e.g. postgresql+psycopg://…"
    )


class ServingAuth(KubeModel):
    """Bearer-token authentication of the HTTP endpoints."""

    token: SecretKeyRef = Field(description="Secret key holding the accepted token(s).")


class RuleSetRef(KubeModel):
    """A decision-rule file (augur.rules) in a ConfigMap."""

    config_map: str = Field(
        min_length=1, max_length=253, description="The ConfigMap holding the rule file."
    )
    key: str = Field(
        default="rules.yaml",
        min_length=1,
        max_length=253,
        pattern=r"^[-._a-zA-Z0-9]+$",
        description="Its key: plain rule text or a versioned rule-set YAML "
        "(`augur rules check FILE` validates it before you apply).",
    )


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
    return create_model("DecisionOverrides", __base__=KubeModel, **specs)


DecisionOverrides = _decision_overrides_model()
DecisionOverrides.__doc__ = (
    "Risk settings that override every version's own decision thresholds "
    "(augur.decision.DecisionConfig; unset fields keep the version's)."
)


class DecisionServiceSpec(KubeModel):
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
    rule_set: RuleSetRef | None = Field(
        default=None,
        description="Decision rules every version's entries pass through after the risk "
        "controls (they can skip or resize an entry within the caps, never an exit); a pod "
        "whose file is not a valid rule set does not start, naming the line.",
    )
    auth: ServingAuth | None = Field(default=None, description="Require a bearer token.")
    autoscaling: Autoscaling = Field(
        default_factory=Autoscaling, description="Replicas range and CPU target of the HPA."
    )
    resources: ResourceRequirements = Field(
        default_factory=lambda: ResourceRequirements(
            requests={"cpu": "500m", "memory": "1Gi"}, limits={"memory": "2Gi"}
        ),
        description="CPU and memory of each pod's serving container (a shadow has its own: "
        "shadow.resources).",
    )


class TrafficShare(KubeModel):
    """One route as applied to the pods' routing table."""

    name: str
    model_tag: str
    role: Literal["primary", "canary", "shadow"]
    percent: float


class Promotion(KubeModel):
    """A version added by a TuningJob's promotion."""

    model_tag: str
    tuning_job: str
    role: Literal["shadow", "canary"]
    percent: int
    time: str = ""


class DecisionServiceStatus(KubeModel):
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


class DecisionService(KubeModel):
    """A decision endpoint serving model versions with weights and an optional shadow."""

    api_version: Literal["augur.dev/v1alpha1"] = "augur.dev/v1alpha1"
    kind: Literal["DecisionService"] = "DecisionService"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: DecisionServiceSpec
    status: DecisionServiceStatus | None = None


__all__ = [
    "Autoscaling",
    "DecisionOverrides",
    "DecisionService",
    "DecisionServiceSpec",
    "DecisionServiceStatus",
    "FeatureStore",
    "PredictionLog",
    "Promotion",
    "ServingAuth",
    "ServingVersion",
    "Shadow",
    "TrafficShare",
]
