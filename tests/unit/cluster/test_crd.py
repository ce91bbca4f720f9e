"""The CRDs are generated from the typed resources, and the committed YAML is that output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from augur.cluster import crd_manifests, render_crd

CRDS = Path(__file__).resolve().parents[3] / "helm" / "augur" / "crds"


@pytest.mark.parametrize("name", sorted(crd_manifests()))
def test_the_committed_crd_is_what_the_models_generate(name: str) -> None:
    committed = CRDS / name
    assert committed.is_file(), f"{committed} missing: run `augur operator crds --out {CRDS}`"
    assert committed.read_text() == render_crd(crd_manifests()[name]), (
        f"{committed} is stale: run `augur operator crds --out helm/augur/crds`"
    )


def _walk(node: Any, path: str = "") -> list[str]:
    """Places that break Kubernetes' structural-schema rules."""
    problems = []
    if isinstance(node, dict):
        if "$ref" in node or "anyOf" in node or "allOf" in node or "title" in node:
            problems.append(path)
        if "properties" in node and node.get("type") != "object":
            problems.append(f"{path} (properties without type: object)")
        if "properties" in node and "additionalProperties" in node:
            problems.append(f"{path} (properties and additionalProperties)")
        if (
            "type" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
            and path.count(".")
            and not path.endswith("x-kubernetes-validations")
        ):
            problems.append(f"{path} (no type)")
        for key, value in node.items():
            if key in ("properties",):
                for prop, sub in value.items():
                    problems += _walk(sub, f"{path}.{prop}")
            elif key in ("items", "additionalProperties") and isinstance(value, dict):
                problems += _walk(value, f"{path}[]")
    return problems


@pytest.mark.parametrize("name", ["augur.dev_decisionservices.yaml", "augur.dev_tuningjobs.yaml"])
def test_the_schemas_are_structural(name: str) -> None:
    crd = yaml.safe_load(render_crd(crd_manifests()[name]))
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    schema = version["schema"]["openAPIV3Schema"]
    assert _walk(schema) == []
    assert (
        "status" in schema["properties"]
        and "conditions" in schema["properties"]["status"]["properties"]
    )


def test_decision_overrides_follow_the_decision_config() -> None:
    from dataclasses import fields

    from augur.decision import DecisionConfig

    crd = crd_manifests()["augur.dev_decisionservices.yaml"]
    decision = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"
    ]["decision"]
    from pydantic.alias_generators import to_camel

    assert set(decision["properties"]) == {to_camel(f.name) for f in fields(DecisionConfig)}
    assert decision["properties"]["exitUnits"]["enum"] == ["volatility", "return"]
