"""The composition root passes the settings on: AUGUR_ROUTING_KEY and
AUGUR_DECISION_OVERRIDES to the pipeline and the shadow's scorer, and the shadow runner
AUGUR_SHADOW_SOCKET / AUGUR_SHADOW_PROCESS ask for."""

from __future__ import annotations

import sqlite3

import pytest

from augur.config import Settings
from augur.decision import DecisionConfig
from augur.serving import _bootstrap
from augur.serving._routing import RoutingTable
from augur.serving._schemas import DecideRequest
from tests.unit.serving.conftest import NOW, SampleFeatures
from tests.unit.serving.test_pipeline import TABLE


def _service_with(
    settings: Settings, features: SampleFeatures, models, shadow_worker: bool = False
) -> _bootstrap.ServingApp:
    return _bootstrap.build_service(
        settings,
        features=features,
        loader=models.__getitem__,
        prediction_log=None,
        drift=None,
        metrics=None,
        routing_table=TABLE,
        shadow_worker=shadow_worker,
    )


@pytest.mark.parametrize("routing_key", ["request", "symbol"])
def test_build_service_honours_routing_key_and_decision_overrides(
    tmp_path, memory_features: SampleFeatures, models, routing_key
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
    tmp_path, memory_features: SampleFeatures, models
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


def test_the_shadows_scorer_decides_with_the_overrides(
    tmp_path, monkeypatch: pytest.MonkeyPatch, memory_features: SampleFeatures, models
) -> None:
    """The shadow's process or container builds its own scorer from the settings (its
    decisions are logged and compared with the primary's): the overrides reach it too."""
    monkeypatch.setattr(_bootstrap, "model_store_loader", lambda drift: models.__getitem__)
    settings = Settings(home=tmp_path, decision_overrides={"confidence_threshold": 0.9})
    scorer = _bootstrap.shadow_scorer(memory_features.feature_names, settings)
    try:
        scorer.models.ensure(["m:3"])
        assert scorer.models["m:3"].config == DecisionConfig(confidence_threshold=0.9)
    finally:
        scorer.close()


@pytest.mark.parametrize(
    ("update", "runner"),
    [
        ({"shadow_socket": "shadow.sock"}, "ShadowSocket"),
        ({"shadow_process": False}, "ShadowQueue"),
    ],
)
def test_the_settings_choose_the_shadow_runner(
    tmp_path, memory_features: SampleFeatures, models, update, runner
) -> None:
    """A socket set: the pod's shadow container takes the mirror; else a thread when asked
    (the child process is the default, exercised over HTTP in the integration tests)."""
    if "shadow_socket" in update:
        update = {"shadow_socket": tmp_path / update["shadow_socket"]}
    svc = _service_with(Settings(home=tmp_path, **update), memory_features, models, True)
    try:
        assert type(svc.pipeline.shadow).__name__ == runner
        svc.pipeline.decide_many(
            [
                (DecideRequest(symbol="AAA", as_of=NOW, routing_key=f"k{i}"), f"r{i}")
                for i in range(3)
            ]
        )
        shadow = svc.pipeline.shadow
        if runner == "ShadowSocket":  # nobody listening here: dropped and counted
            assert shadow.dropped == 3
        else:
            assert shadow.join(5) and shadow.done == 3
    finally:
        svc.close()


def test_a_failed_start_stops_what_it_started(tmp_path, memory_features, models) -> None:
    """A model that cannot load fails build_service naming it, after the parts already
    started (the shadow thread here) were stopped."""
    import threading

    before = {t.name for t in threading.enumerate()}
    with pytest.raises(ValueError, match="m:404"):
        _bootstrap.build_service(
            Settings(home=tmp_path, shadow_process=False),
            features=memory_features,
            loader=models.__getitem__,
            prediction_log=None,
            drift=None,
            metrics=None,
            routing_table=RoutingTable.single("m:404"),
        )
    assert {t.name for t in threading.enumerate()} - before == set()


def test_the_service_keeps_accounts_in_sqlite_under_its_home_and_closes_them(
    tmp_path, memory_features: SampleFeatures, models
) -> None:
    from augur.serving._accounts import SqliteAccounts

    svc = _service_with(Settings(home=tmp_path), memory_features, models)
    try:
        accounts = svc.pipeline.accounts
        assert isinstance(accounts, SqliteAccounts)
        assert accounts.path == tmp_path / "serving" / "accounts.db"
        out = svc.pipeline.decide(DecideRequest(symbol="AAA", as_of=NOW, account_id="a"), "r")
        assert accounts.get("a").open_exposure == (
            {"AAA": out.size * out.direction} if out.size > 0 else {}
        )
    finally:
        svc.close()
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        accounts.get("a")  # closed with the service
