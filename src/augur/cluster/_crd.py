"""CustomResourceDefinitions generated from the typed resources (``_decisionservice_resource``,
``_tuningjob_resource``).

Kubernetes wants a *structural* OpenAPI v3 schema: every node typed, no ``$ref``, no
``anyOf`` for optional fields, no ``additionalProperties: false`` beside ``properties``.
Pydantic's JSON schema is close; :func:`structural` closes the gap. ``write_crds`` writes
the YAML the Helm chart installs (``helm/augur/crds/``); a test fails when it is stale.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema

from augur.cluster._constants import GROUP, VERSION
from augur.cluster._decisionservice_resource import DecisionServiceSpec, DecisionServiceStatus
from augur.cluster._tuningjob_resource import TuningJobSpec, TuningJobStatus

# Keys a structural schema keeps; pydantic's others (title, $defs …) are dropped.
_KEEP = {
    "type",
    "description",
    "default",
    "enum",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "pattern",
    "format",
    "required",
    "x-kubernetes-validations",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-preserve-unknown-fields",
}


class _WithFactoryDefaults(GenerateJsonSchema):
    """Defaults from ``default_factory`` too, so the API server fills nested defaults."""

    def get_default_value(self, schema: Any) -> Any:
        factory = schema.get("default_factory")
        if factory is not None and not schema.get("default_factory_takes_data"):
            value = factory()
            return (
                value.model_dump(by_alias=True, mode="json")
                if isinstance(value, BaseModel)
                else value
            )
        return super().get_default_value(schema)


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict) and "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _resolve(merged, defs)
    return node


def structural(node: Any, defs: dict[str, Any]) -> dict[str, Any]:
    """One pydantic JSON-schema node as a Kubernetes structural schema node."""
    node = _resolve(node, defs)
    for combinator in ("anyOf", "oneOf", "allOf"):
        if combinator in node:  # Optional[X] is anyOf [X, null]: keep X, the outer keys win
            options = [o for o in node[combinator] if _resolve(o, defs).get("type") != "null"]
            if len(options) != 1:
                raise ValueError(f"cannot express {combinator} of {len(options)} types in a CRD")
            inner = structural(options[0], defs)
            outer = {k: v for k, v in node.items() if k != combinator}
            rules = inner.get("x-kubernetes-validations", []) + outer.get(
                "x-kubernetes-validations", []
            )
            node = {**inner, **{k: v for k, v in outer.items() if k in _KEEP}}
            if node.get("default", 0) is None:
                del node["default"]
            if rules:
                node["x-kubernetes-validations"] = rules
            return _clean(node)
    out: dict[str, Any] = {k: v for k, v in node.items() if k in _KEEP}
    if "const" in node:
        out["enum"] = [node["const"]]
    if out.get("default", 0) is None:
        del out["default"]
    kind = node.get("type")
    if kind == "object":
        if "properties" in node:
            out["properties"] = {
                name: structural(sub, defs) for name, sub in node["properties"].items()
            }
        extra = node.get("additionalProperties")
        if isinstance(extra, dict) and extra:
            out["additionalProperties"] = structural(extra, defs)
        elif "properties" not in node:  # a free-form object: keep what the user wrote
            out["x-kubernetes-preserve-unknown-fields"] = True
    elif kind == "array":
        out["items"] = structural(node["items"], defs)
    return _clean(out)


def _clean(node: dict[str, Any]) -> dict[str, Any]:
    if node.get("type") is None:
        node.pop("type", None)
    if not node.get("required"):
        node.pop("required", None)
    return node


def _schema_of(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(
        by_alias=True, mode="serialization", schema_generator=_WithFactoryDefaults
    )
    return structural(raw, raw.get("$defs", {}))


def _crd(
    kind: str,
    plural: str,
    short: list[str],
    spec: type[BaseModel],
    status: type[BaseModel],
    columns: list[dict[str, Any]],
    description: str,
) -> dict[str, Any]:
    status_schema = _schema_of(status)
    status_schema.pop("required", None)
    schema = {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": _schema_of(spec),
            "status": status_schema,
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "augur"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short,
                "categories": ["augur"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def _age() -> dict[str, Any]:
    return {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def decision_service_crd() -> dict[str, Any]:
    """The DecisionService CRD."""
    return _crd(
        "DecisionService",
        "decisionservices",
        ["dsvc"],
        DecisionServiceSpec,
        DecisionServiceStatus,
        [
            {"name": "Ready", "type": "string", "jsonPath": ".status.ready"},
            {"name": "Primary", "type": "string", "jsonPath": ".status.primary"},
            {"name": "Canary %", "type": "integer", "jsonPath": ".status.canaryPercent"},
            {"name": "Shadow", "type": "string", "jsonPath": ".status.shadow"},
            _age(),
        ],
        "A decision endpoint: model versions with traffic weights, an optional shadow, "
        "autoscaling, and risk settings.",
    )


def tuning_job_crd() -> dict[str, Any]:
    """The TuningJob CRD."""
    return _crd(
        "TuningJob",
        "tuningjobs",
        ["tj"],
        TuningJobSpec,
        TuningJobStatus,
        [
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Trials", "type": "integer", "jsonPath": ".status.trialsDone"},
            {"name": "Best", "type": "number", "jsonPath": ".status.bestValue"},
            _age(),
        ],
        "A Ray Tune + Optuna study run as a KubeRay RayJob; its winner may be promoted to a "
        "DecisionService.",
    )


def _peering_crd(kind: str, plural: str, scope: str) -> dict[str, Any]:
    # kopf's own peering resources (kopf.dev/v1), with which operator replicas agree on
    # which one is active.
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.kopf.dev",
            "labels": {"app.kubernetes.io/part-of": "augur"},
        },
        "spec": {
            "group": "kopf.dev",
            "scope": scope,
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "status": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                }
                            },
                        }
                    },
                }
            ],
        },
    }


def crd_manifests() -> dict[str, dict[str, Any]]:
    """File name → CRD, as written into ``helm/augur/crds/``."""
    return {
        f"{GROUP}_decisionservices.yaml": decision_service_crd(),
        f"{GROUP}_tuningjobs.yaml": tuning_job_crd(),
        "kopf.dev_clusterkopfpeerings.yaml": _peering_crd(
            "ClusterKopfPeering", "clusterkopfpeerings", "Cluster"
        ),
        "kopf.dev_kopfpeerings.yaml": _peering_crd("KopfPeering", "kopfpeerings", "Namespaced"),
    }


_HEADER = (
    "# Generated from the models in src/augur/cluster/ by `augur operator crds`: do not edit.\n"
)


def render_crd(crd: dict[str, Any]) -> str:
    """One CRD as YAML, with the generated-file header."""
    import yaml

    class _NoAliases(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    return _HEADER + yaml.dump(
        crd, Dumper=_NoAliases, sort_keys=False, width=100, allow_unicode=True
    )


def write_crds(directory: Path) -> list[Path]:
    """Write every CRD into ``directory`` (atomically, one file each)."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, crd in crd_manifests().items():
        path = directory / name
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(render_crd(crd))
        tmp.replace(path)
        written.append(path)
    return written


__all__ = [
    "crd_manifests",
    "decision_service_crd",
    "render_crd",
    "structural",
    "tuning_job_crd",
    "write_crds",
]
