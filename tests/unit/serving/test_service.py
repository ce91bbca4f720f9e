"""The composition root passes AUGUR_ROUTING_KEY and AUGUR_DECISION_OVERRIDES on: to the
serving pipeline and to the shadow process's pipeline."""

from __future__ import annotations

import pytest

from augur.config import Settings
from augur.decision import DecisionConfig
from augur.serving import _service
from augur.serving._schemas import DecideRequest
from tests.unit.serving.conftest import NOW, MemoryFeatures
from tests.unit.serving.test_pipeline import TABLE


def _service_with(settings: Settings, features: MemoryFeatures, models) -> _service.DecisionService:
    return _service.build_service(
        settings,
        features=features,
        loader=models.__getitem__,
        prediction_log=None,
        drift=None,
        metrics=None,
        routing_table=TABLE,
        shadow_worker=False,
    )


@pytest.mark.parametrize("routing_key", ["request", "symbol"])
def test_build_service_honours_routing_key_and_decision_overrides(
    tmp_path, memory_features: MemoryFeatures, models, routing_key
) -> None:
    settings = Settings(
        home=tmp_path,
        routing_key=routing_key,
        decision_overrides={"confidence_threshold": 0.9},
    )
    svc = _service_with(settings, memory_features, models)
    try:
        pipeline = svc.pipeline
        assert {pipeline.models[t].config for t in pipeline.models.tags} == {
            DecisionConfig(confidence_threshold=0.9)
        }
        out = pipeline.decide(DecideRequest(symbol="AAA", as_of=NOW), "r")
        assert [r.code for r in out.reasons] == ["confidence_below_threshold"]
        versions = {
            pipeline.decide(
                DecideRequest(symbol="AAA", as_of=NOW, routing_key=k), "r"
            ).model_version
            for k in (f"client-{i}" for i in range(100))
        }
        assert len(versions) == (1 if routing_key == "symbol" else 2)
        shown = {v.name: v.decision_config for v in pipeline.models_info().versions}
        assert shown["stable"] == DecisionConfig(confidence_threshold=0.9).to_dict()
    finally:
        svc.close()


def test_build_service_without_overrides_keeps_the_default_config(
    tmp_path, memory_features: MemoryFeatures, models
) -> None:
    svc = _service_with(Settings(home=tmp_path), memory_features, models)
    try:
        assert svc.pipeline.models["m:1"].config == DecisionConfig()
        key = next(
            k for k in map(str, range(100)) if svc.pipeline.router.route(k).model_tag == "m:1"
        )
        out = svc.pipeline.decide(DecideRequest(symbol="AAA", as_of=NOW, routing_key=key), "r")
        assert (out.model_version, out.action) == ("m:1", "enter_long")
    finally:
        svc.close()


def test_the_shadow_processs_pipeline_decides_with_the_overrides(
    tmp_path, monkeypatch: pytest.MonkeyPatch, memory_features: MemoryFeatures, models
) -> None:
    """The shadow process builds its own pipeline from the settings (its decisions are
    logged and compared with the primary's): the overrides must reach it too."""
    monkeypatch.setattr(_service, "bentoml_loader", lambda drift: models.__getitem__)
    settings = Settings(home=tmp_path, decision_overrides={"confidence_threshold": 0.9})
    pipeline = _service.shadow_pipeline(settings, memory_features.feature_names, ["m:3"])
    try:
        assert pipeline.models["m:3"].config == DecisionConfig(confidence_threshold=0.9)
    finally:
        pipeline.log.close()
