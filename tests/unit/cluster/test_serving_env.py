"""The operator's AUGUR_OPERATOR_SERVING_ENV: settings of the cluster (tracing, from the
Helm chart) added to every serving and shadow container it renders."""

from __future__ import annotations

from typing import Any

import pytest

from augur.cluster._decisionservice import render_children
from tests.unit.cluster.test_decisionservice import body, by_kind

TRACING = {
    "AUGUR_OTLP_ENDPOINT": "http://collector:4318/v1/traces",
    "OTEL_SERVICE_NAME": "augur-decision",
    "OTEL_TRACES_SAMPLER_ARG": "0.1",
}


def containers(children: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    pod = by_kind(children)["Deployment"]["spec"]["template"]["spec"]
    return {c["name"]: c for c in pod["containers"]}


def env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_the_extra_env_reaches_the_serving_and_the_shadow_container() -> None:
    by_name = containers(render_children(body(), TRACING))
    assert set(by_name) == {"decision", "shadow"}
    for container in by_name.values():
        assert TRACING.items() <= env(container).items(), container["name"]
        names = [e["name"] for e in container["env"]]
        assert len(names) == len(set(names))  # server-side apply refuses a name twice


def test_without_extra_env_the_pods_are_as_before() -> None:
    assert render_children(body()) == render_children(body(), {})
    for container in containers(render_children(body())).values():
        assert not [e for e in container["env"] if e["name"].startswith(("OTEL_", "AUGUR_OTLP"))]


def test_a_variable_the_operator_sets_keeps_the_operators_value() -> None:
    by_name = containers(render_children(body(), {"AUGUR_ROUTING_TABLE": "/elsewhere", **TRACING}))
    decision = env(by_name["decision"])
    assert decision["AUGUR_ROUTING_TABLE"] == "/etc/augur/routes/routes.json"
    assert [e["name"] for e in by_name["decision"]["env"]].count("AUGUR_ROUTING_TABLE") == 1


def test_the_setting_parses_from_the_environment_and_refuses_bad_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pydantic import ValidationError

    from augur.config import Settings

    monkeypatch.setenv("AUGUR_OPERATOR_SERVING_ENV", '{"OTEL_SERVICE_NAME": "augur-decision"}')
    assert Settings().operator_serving_env == {"OTEL_SERVICE_NAME": "augur-decision"}
    monkeypatch.setenv("AUGUR_OPERATOR_SERVING_ENV", '{"not a name": "x"}')
    with pytest.raises(ValidationError, match="AUGUR_OPERATOR_SERVING_ENV"):
        Settings()
