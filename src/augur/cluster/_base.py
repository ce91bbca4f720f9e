"""What both custom resources share: the camelCase base model, CEL helpers, Secret and
ConfigMap references, the model store, resources and standard conditions."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

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


class KubeModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields are an error."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


# --- shared pieces -----------------------------------------------------------------------


class SecretKeyRef(KubeModel):
    """A key of a Secret in the resource's namespace."""

    name: str = Field(min_length=1, max_length=253, description="Name of the Secret.")
    key: str = Field(min_length=1, description="Key inside the Secret.")


class PersistentVolumeSource(KubeModel):
    """A PersistentVolumeClaim holding exported model versions."""

    claim_name: str = Field(min_length=1, max_length=253, description="Name of the claim.")
    sub_path: str = Field(default="", description="Folder inside the volume ('' = its root).")


class ModelStore(KubeModel):
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


class ResourceRequirements(KubeModel):
    """CPU and memory, as in a container spec (quantities like '500m', '1Gi')."""

    requests: dict[str, str] = Field(default_factory=dict, description="Requested resources.")
    limits: dict[str, str] = Field(default_factory=dict, description="Resource limits.")


class Condition(KubeModel):
    """A standard Kubernetes condition."""

    type: str = Field(description="Ready, RoutesReady, ShadowReady, Succeeded, …")
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(default="", description="CamelCase reason code.")
    message: str = Field(default="", description="What happened, for a person.")
    last_transition_time: str = Field(default="", description="RFC 3339 time of the change.")
    observed_generation: int | None = Field(default=None, description="Generation checked.")


class ConfigMapKeyRef(KubeModel):
    """A key of a ConfigMap in the resource's namespace."""

    name: str = Field(min_length=1, max_length=253)
    key: str = Field(default="study.yaml", min_length=1)


__all__ = [
    "DNS_LABEL",
    "TAG_PATTERN",
    "Condition",
    "ConfigMapKeyRef",
    "KubeModel",
    "ModelStore",
    "PersistentVolumeSource",
    "ResourceRequirements",
    "SecretKeyRef",
    "cel",
    "validations",
]
