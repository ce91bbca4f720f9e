"""The request pipeline: routing, staleness, decision parity, logging, shadow, outcomes."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from augur.decision import DecisionConfig, MarketContext, PositionContext, RiskState, decide
from augur.models import ModelVersion
from augur.monitoring import PredictionLog, UnknownRequestIdError, features_digest
from augur.serving._errors import PredictionLogOffError, StoreUnavailableError, UnknownSymbolError
from augur.serving._memory import FixedClock, MemoryDrift, MemoryMetrics, MemoryShadow
from augur.serving._pipeline import DecisionPipeline
from augur.serving._registry import ModelRegistry
from augur.serving._routing import RoutingTable, StaticRouting
from augur.serving._schemas import DecideBatchRequest, DecideRequest, OutcomeRequest
from augur.serving._shadow import ShadowQueue
from augur.serving._shadow_scorer import ShadowScorer
from tests.unit.serving.conftest import NOW, LinearModel, SampleFeatures

TABLE = RoutingTable.model_validate(
    {
        "versions": [
            {"name": "stable", "model_tag": "m:1", "weight": 70},
            {"name": "canary", "model_tag": "m:2", "weight": 30},
        ],
        "shadow": {"name": "next", "model_tag": "m:3", "percent": 100},
    }
)


@pytest.fixture
def plog(tmp_path):
    log = PredictionLog(f"sqlite:///{tmp_path / 'p.db'}")
    yield log
    log.close()


def make(
    features,
    models,
    table=TABLE,
    plog=None,
    shadow=None,
    max_age=3 * 3600.0,
    cache=4096,
    overrides=None,
    routing_key="request",
    **ports,
):
    registry = ModelRegistry(
        models.__getitem__, features.feature_names, DecisionConfig(), overrides=overrides
    )
    return DecisionPipeline(
        features=features,
        models=registry,
        routing=StaticRouting(table),
        decide=decide,
        max_feature_age_seconds=max_age,
        prediction_log=plog,
        shadow=shadow,
        prediction_cache_size=cache,
        routing_key=routing_key,
        **ports,
    )


def test_decision_matches_the_engine_called_directly(
    memory_features: SampleFeatures, models
) -> None:
    p = make(memory_features, models, RoutingTable.single("m:1"))
    req = DecideRequest.model_validate(
        {"symbol": "AAA", "as_of": NOW.isoformat(), "account": {"equity": 0.95, "peak_equity": 1.0}}
    )
    out = p.decide(req, "rid-1")
    x, ts = memory_features.rows["AAA"]
    signal = models["m:1"].predict_one(x).to_signal("m:1")
    market = MarketContext(
        symbol="AAA", price=0.0, timestamp=ts, volatility=0.01, trend_strength=0.6
    )
    expected = decide(
        signal,
        PositionContext(),
        RiskState(equity=0.95, peak_equity=1.0),
        market,
        DecisionConfig(),
        "rid-1",
    )
    assert out.model_dump(exclude={"symbol", "feature_timestamp"}) == {
        **expected.to_dict(),
        "reasons": [dict(r) for r in expected.to_dict()["reasons"]],
    }
    assert out.feature_timestamp == ts and out.model_version == "m:1" and out.request_id == "rid-1"


def test_a_requests_price_never_leaks_into_the_rows_market(memory_features, models) -> None:
    """A request with a price of its own is decided at it, and the next request without
    one at the row's again (here the row carries no price: no stop or target is placed)."""
    p = make(memory_features, models, RoutingTable.single("m:1"))
    position = {"side": "long", "size": 0.1, "entry_price": 1.0, "opened_at": NOW.isoformat()}

    def codes(**price: float) -> list[str]:
        req = DecideRequest(symbol="AAA", as_of=NOW, position=position, **price)
        return [r.code for r in p.decide(req, "r").reasons]

    assert codes() == ["holding"]
    assert "stop_loss" in codes(price=0.5)
    assert codes() == ["holding"]
    assert "take_profit" in codes(price=2.0)
    assert codes() == ["holding"]


def test_stale_missing_and_future_features_give_no_action(memory_features, models) -> None:
    p = make(memory_features, models)
    stale = p.decide(DecideRequest(symbol="OLD", as_of=NOW), "r1")
    assert stale.action == "no_action" and stale.reasons[0].code == "stale_features"
    missing = p.decide(DecideRequest(symbol="NAN", as_of=NOW), "r2")
    assert missing.reasons[0].code == "missing_features"
    future = p.decide(DecideRequest(symbol="AAA", as_of=NOW - timedelta(hours=1)), "r3")
    assert future.reasons[0].code == "features_after_as_of"
    assert sum(m.calls for m in models.values()) == 0  # no model looked at refused features
    memory_features.rows["NOTS"] = (np.zeros(4), None)
    assert (
        p.decide(DecideRequest(symbol="NOTS", as_of=NOW), "r4").reasons[0].code == "stale_features"
    )


def test_unknown_symbol(memory_features, models) -> None:
    p = make(memory_features, models)
    with pytest.raises(UnknownSymbolError, match="'ZZZ'"):
        p.decide(DecideRequest(symbol="ZZZ", as_of=NOW), "r")


def test_routing_key_decides_the_version_and_sticks(memory_features, models) -> None:
    p = make(memory_features, models)
    versions = {
        k: p.decide(DecideRequest(symbol="AAA", as_of=NOW, routing_key=k), "r").model_version
        for k in (f"client-{i}" for i in range(200))
    }
    assert set(versions.values()) == {"m:1", "m:2"}
    for k, v in list(versions.items())[:20]:
        assert (
            p.decide(DecideRequest(symbol="AAA", as_of=NOW, routing_key=k), "r").model_version == v
        )


def test_primary_and_shadow_logged_with_the_request_id(memory_features, models, plog) -> None:
    registry = ModelRegistry(models.__getitem__, memory_features.feature_names, DecisionConfig())
    shadow = ShadowQueue(ShadowScorer(registry, decide, plog).score, 16)
    shadow.start()
    p = make(memory_features, models, plog=plog, shadow=shadow)
    out = p.decide(
        DecideRequest(
            symbol="AAA",
            as_of=NOW,
            position={
                "side": "long",
                "size": 0.1,
                "entry_price": 1.0,
                "opened_at": (NOW - timedelta(hours=30)).isoformat(),
            },
        ),
        "req-42",
    )
    assert shadow.join(5)
    plog.flush()
    frame = plog.frame()
    rows = frame[frame.request_id == "req-42"].set_index("role")
    assert set(rows.index) == {rows.index[0], "shadow"} and len(rows) == 2
    assert rows.loc["shadow", "model_version"] == "m:3"
    assert rows.drop(index="shadow").iloc[0]["model_version"] == out.model_version
    x, _ = memory_features.rows["AAA"]
    assert set(rows.features_digest) == {features_digest(x)}
    assert "m:3" not in out.model_dump_json()  # the shadow never shows in the answer
    shadow.stop()


def _stored_outcomes(plog: PredictionLog) -> list[tuple[str, float, str]]:
    """Every row of the log's outcomes table, read back from the database."""
    import sqlalchemy as sa

    with plog.engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                sa.text("SELECT request_id, realized_return, caller FROM outcomes")
            )
        ]


def test_outcome_is_stored_against_its_request_and_an_unknown_id_stores_nothing(
    memory_features, models, plog
) -> None:
    """An outcome is read back from the log joined to the request it names (its realized
    return and caller, on every row of that request and on no other request); an unknown
    request id raises and leaves the outcomes table as it was."""
    p = make(memory_features, models, plog=plog)
    p.decide(DecideRequest(symbol="AAA", as_of=NOW), "req-7")
    p.decide(DecideRequest(symbol="BBB", as_of=NOW), "req-8")
    out = p.record_outcome(OutcomeRequest(request_id="req-7", realized_return=0.0125), "desk")
    assert (out.request_id, out.recorded) == ("req-7", True)
    assert _stored_outcomes(plog) == [("req-7", 0.0125, "desk")]
    frame = plog.frame().set_index("request_id")
    assert frame.loc["req-7", "realized_return"] == 0.0125
    assert frame.loc["req-7", "caller"] == "desk"
    assert np.isnan(frame.loc["req-8", "realized_return"])  # the other request: no outcome

    with pytest.raises(UnknownRequestIdError, match="nope"):
        p.record_outcome(OutcomeRequest(request_id="nope", realized_return=0.5), "desk")
    assert _stored_outcomes(plog) == [("req-7", 0.0125, "desk")]  # nothing stored for it

    no_log = make(memory_features, models)
    with pytest.raises(PredictionLogOffError, match="log is off"):
        no_log.record_outcome(OutcomeRequest(request_id="req-7", realized_return=0.0), "desk")


def test_batch_reports_unknown_symbols_separately(memory_features, models) -> None:
    p = make(memory_features, models)
    out = p.decide_batch(DecideBatchRequest(symbols=["AAA", "ZZZ", "BBB", "AAA"], as_of=NOW), "b1")
    assert [d.symbol for d in out.decisions] == ["AAA", "BBB"]
    assert [e.symbol for e in out.errors] == ["ZZZ"] and out.errors[0].error == "unknown_symbol"
    assert memory_features.reads == 1  # one store read for the whole batch
    assert out.decisions[0].request_id == "b1-0"


def test_models_info_and_bad_models(memory_features, models) -> None:
    p = make(memory_features, models)
    info = p.models_info()
    assert [(v.name, v.role, v.loaded) for v in info.versions] == [
        ("stable", "primary", True),
        ("canary", "canary", True),
        ("next", "shadow", True),
    ]
    assert info.source == "embedded"
    with pytest.raises(ValueError, match="cannot be loaded"):
        make(memory_features, {}, RoutingTable.single("m:404"))
    wrong = {"m:1": LinearModel(names=["ret_mean_20", "not_in_store"])}
    with pytest.raises(ValueError, match="not_in_store"):
        make(memory_features, wrong, RoutingTable.single("m:1"))


def test_many_requests_share_one_read_and_one_batched_call(memory_features, models) -> None:
    p = make(memory_features, models, RoutingTable.single("m:1"))
    reqs = [
        DecideRequest(symbol=s, as_of=NOW, routing_key=f"k{i}")
        for i, s in enumerate(["AAA", "BBB", "AAA", "ZZZ", "OLD"])
    ]
    many = p.decide_many([(r, f"r{i}") for i, r in enumerate(reqs)])
    assert memory_features.reads == 1 and models["m:1"].batch_calls == 1
    assert isinstance(many[3], UnknownSymbolError)
    assert many[4].reasons[0].code == "stale_features"
    for i in (0, 1, 2):
        one = p.decide(reqs[i], f"r{i}")
        assert many[i] == one  # batched == one by one
    memory_features.down = True
    assert all(isinstance(r, StoreUnavailableError) for r in p.decide_many([(reqs[0], "x")]))


def _model_calls(model) -> int:
    return model.calls + model.batch_calls


def test_repeated_features_are_scored_once_per_version(memory_features, models) -> None:
    p = make(memory_features, models, RoutingTable.single("m:1"))
    req = DecideRequest(symbol="AAA", as_of=NOW)
    first = p.decide(req, "a")
    calls = _model_calls(models["m:1"])
    again = p.decide(req, "b")
    assert _model_calls(models["m:1"]) == calls  # same features: looked up, not rescored
    assert again.model_dump(exclude={"request_id"}) == first.model_dump(exclude={"request_id"})
    assert (p.scorer.hits, p.scorer.misses) == (1, 1)
    stats = p.models_info().caches["predictions"]
    assert stats.enabled and (stats.hits, stats.misses) == (1, 1)
    x, ts = memory_features.rows["AAA"]
    memory_features.rows["AAA"] = (x * 1.5, ts)  # a new bar: new features, scored again
    p.decide(req, "c")
    assert _model_calls(models["m:1"]) == calls + 1


def test_prediction_cache_off_scores_every_request(memory_features, models) -> None:
    p = make(memory_features, models, RoutingTable.single("m:1"), cache=0)
    req = DecideRequest(symbol="AAA", as_of=NOW)
    before = _model_calls(models["m:1"])
    for i in range(3):
        p.decide(req, f"r{i}")
    assert _model_calls(models["m:1"]) == before + 3
    assert not p.models_info().caches["predictions"].enabled


def test_a_new_row_for_a_symbol_is_checked_and_digested_afresh(
    memory_features: SampleFeatures, models, plog
) -> None:
    """A new row for a symbol is checked and digested again, never taken for the last."""
    p = make(memory_features, models, RoutingTable.single("m:1"), plog=plog)
    first = p.decide(DecideRequest(symbol="AAA", as_of=NOW), "facts-1")
    assert first.reasons[0].code != "missing_features"
    x, ts = memory_features.rows["AAA"]
    gap = x.copy()
    gap[0] = np.nan  # the next bar arrives with a gap
    memory_features.rows["AAA"] = (gap, ts)
    second = p.decide(DecideRequest(symbol="AAA", as_of=NOW), "facts-2")
    assert second.action == "no_action" and second.reasons[0].code == "missing_features"
    moved = x + 0.001  # and then a complete one
    memory_features.rows["AAA"] = (moved, ts)
    p.decide(DecideRequest(symbol="AAA", as_of=NOW), "facts-3")
    assert plog.flush()
    digests = plog.frame().set_index("request_id")["features_digest"]
    assert digests["facts-1"] == features_digest(x)
    assert digests["facts-3"] == features_digest(moved) != digests["facts-1"]
    assert "facts-2" not in digests  # refused rows are not scored, so not logged


def test_the_logged_row_puts_every_value_in_its_column(
    memory_features: SampleFeatures, models, plog
) -> None:
    """Each value of the decision arrives in its own column of the log."""
    p = make(memory_features, models, RoutingTable.single("m:1"), plog=plog)
    req = DecideRequest(symbol="BBB", as_of=NOW, routing_key="client-7")
    before, started = datetime.now(UTC), time.perf_counter()
    out = p.decide(req, "cols-1")
    took_ms, after = (time.perf_counter() - started) * 1e3, datetime.now(UTC)
    assert plog.flush() and plog.stats.failed == 0
    row = plog.frame().set_index("request_id").loc["cols-1"]
    x, ts = memory_features.rows["BBB"]
    assert (row.symbol, row.model_version, row.model_tag, row.role) == (
        "BBB",
        "m:1",
        "m:1",
        "primary",
    )
    assert (row["action"], row["size"], row["direction"]) == (out.action, out.size, out.direction)
    assert row.confidence == pytest.approx(out.confidence)
    assert row.agreement == pytest.approx(out.agreement)
    assert row.p_up + row.p_down + row.p_flat == pytest.approx(1.0)
    assert row.features_digest == features_digest(x) and row.routing_key == "client-7"
    assert row.feature_timestamp == ts
    assert 0 < row.latency_ms <= took_ms  # milliseconds, within the call it measured
    assert before <= row.ts <= after  # when the request was decided


# ------------------------------------------------ AUGUR_DECISION_OVERRIDES, AUGUR_ROUTING_KEY


@pytest.mark.parametrize("cache", [4096, 0])
def test_decision_overrides_replace_every_versions_thresholds(
    memory_features: SampleFeatures, models, cache
) -> None:
    """AAA's confidence (~0.77) passes the default gate (0.35) and not an overridden 0.9,
    with the prediction memo on or off."""
    req = DecideRequest(symbol="AAA", as_of=NOW)
    table = RoutingTable.single("m:1")
    plain = make(memory_features, models, table, cache=cache).decide(req, "r0")
    assert DecisionConfig().confidence_threshold < plain.confidence < 0.9
    assert plain.action == "enter_long" and [r.code for r in plain.reasons] == ["entered"]
    strict = make(
        memory_features, models, table, cache=cache, overrides={"confidence_threshold": 0.9}
    )
    for i in range(3):
        (out,) = strict.decide_many([(req, f"r{i + 1}")])
        assert out.action == "no_action" and out.size == 0.0
        assert [r.code for r in out.reasons] == ["confidence_below_threshold"]
        assert out.confidence == plain.confidence  # same signal: only the gate moved
    assert strict.models.tags == ["m:1"]
    assert strict.models["m:1"].config == DecisionConfig(confidence_threshold=0.9)


def test_decision_overrides_apply_on_top_of_a_versions_own_config(
    memory_features: SampleFeatures, models
) -> None:
    """A version with its own decision config keeps the fields the overrides do not name;
    /models shows what each loaded version decides with."""
    own = ModelVersion(
        "m:1", LinearModel(1.0), DecisionConfig(confidence_threshold=0.5, kelly_fraction=0.5)
    )
    p = make(
        memory_features,
        {**models, "m:1": own},
        overrides={"confidence_threshold": 0.2, "max_drawdown": 0.5},
    )
    assert p.models["m:1"].config == DecisionConfig(
        confidence_threshold=0.2, kelly_fraction=0.5, max_drawdown=0.5
    )
    assert p.models["m:2"].config == DecisionConfig(confidence_threshold=0.2, max_drawdown=0.5)
    info = {v.name: v.decision_config for v in p.models_info().versions}
    assert info["stable"] == p.models["m:1"].config.to_dict()
    assert info["canary"] == info["next"] == p.models["m:2"].config.to_dict()
    assert info["stable"]["kelly_fraction"] == 0.5 and info["canary"]["kelly_fraction"] == 0.25
    # without overrides: each version's own thresholds
    unchanged = {
        v.name: v.decision_config for v in make(memory_features, models).models_info().versions
    }
    assert unchanged["stable"] == DecisionConfig().to_dict()


def test_decision_overrides_a_version_cannot_take_fail_its_load_naming_it(
    memory_features: SampleFeatures, models
) -> None:
    own = ModelVersion(
        "m:1", LinearModel(1.0), DecisionConfig(max_drawdown=0.5, drawdown_scale_start=0.3)
    )
    with pytest.raises(ValueError, match=r"model 'm:1'.*drawdown_scale_start"):
        make(
            memory_features,
            {"m:1": own},
            RoutingTable.single("m:1"),
            overrides={"max_drawdown": 0.2},
        )


def test_each_version_decides_with_its_own_thresholds(memory_features, models) -> None:
    """Two versions of one model: AAA's confidence (~0.77) passes the default gate and not
    the strict version's 0.9, so one enters and the other refuses the same request."""
    same = LinearModel(1.0)
    table = RoutingTable.model_validate(
        {
            "versions": [
                {"name": "default", "model_tag": "m:1", "weight": 50},
                {"name": "strict", "model_tag": "m:2", "weight": 50},
            ]
        }
    )
    versions = {
        "m:1": ModelVersion("m:1", same),
        "m:2": ModelVersion("m:2", same, DecisionConfig(confidence_threshold=0.9)),
    }
    p = make(memory_features, versions, table)
    by_version = {}
    for key in (f"client-{i}" for i in range(40)):
        out = p.decide(DecideRequest(symbol="AAA", as_of=NOW, routing_key=key), key)
        by_version[out.model_version] = out
    default, strict = by_version["m:1"], by_version["m:2"]
    assert DecisionConfig().confidence_threshold < default.confidence == strict.confidence < 0.9
    assert default.action == "enter_long"
    assert strict.action == "no_action"
    assert [r.code for r in strict.reasons] == ["confidence_below_threshold"]
    shown = {v.name: v.decision_config for v in p.models_info().versions}
    assert shown["default"]["confidence_threshold"] == DecisionConfig().confidence_threshold
    assert shown["strict"]["confidence_threshold"] == 0.9


def test_the_versions_volatility_reference_reaches_the_market_context(
    memory_features, models
) -> None:
    """Sizes scale by the deciding version's volatility reference, as in the backtest:
    AAA's volatility (0.01) against a reference of 0.015 gives x1.5."""
    model = LinearModel(1.0)
    model.volatility_ref = 0.015
    seen: list[MarketContext] = []

    def spy(signal, pos, risk, market, config, request_id):
        seen.append(market)
        return decide(signal, pos, risk, market, config, request_id)

    p = make(memory_features, {"m:1": ModelVersion("m:1", model)}, RoutingTable.single("m:1"))
    p._decide = spy
    out = p.decide(DecideRequest(symbol="AAA", as_of=NOW), "r1")
    assert [m.volatility_ref for m in seen] == [0.015]
    x, ts = memory_features.rows["AAA"]
    expected = decide(
        model.predict_one(x).to_signal("m:1"),
        PositionContext(),
        RiskState(),
        MarketContext("AAA", 0.0, ts, volatility=0.01, volatility_ref=0.015, trend_strength=0.6),
        DecisionConfig(),
        "r1",
    )
    assert out.action == "enter_long" and out.size == pytest.approx(expected.size)
    assert "volatility_scaling" in [r.code for r in out.reasons]


def test_the_shadow_is_told_its_own_versions_volatility_reference(memory_features, models) -> None:
    primary, candidate = LinearModel(1.0), LinearModel(0.5)
    primary.volatility_ref, candidate.volatility_ref = 0.015, 0.005
    table = RoutingTable.model_validate(
        {
            "versions": [{"name": "stable", "model_tag": "m:1", "weight": 100}],
            "shadow": {"name": "next", "model_tag": "m:3", "percent": 100},
        }
    )
    shadow = MemoryShadow()
    p = make(
        memory_features,
        {"m:1": ModelVersion("m:1", primary), "m:3": ModelVersion("m:3", candidate)},
        table,
        shadow=shadow,
    )
    p.decide(DecideRequest(symbol="AAA", as_of=NOW), "r1")
    (task,) = shadow.tasks
    assert task.market.volatility_ref == 0.005
    assert task.market.volatility == 0.01 and task.market.symbol == "AAA"


def test_models_info_shows_no_thresholds_for_a_version_not_loaded(memory_features, models) -> None:
    p = make(memory_features, models, RoutingTable.single("m:1"))
    p.routing = StaticRouting(TABLE)  # swapped in without loading its other versions
    info = {v.name: (v.loaded, v.decision_config) for v in p.models_info().versions}
    assert info["stable"] == (True, DecisionConfig().to_dict())
    assert info["canary"] == (False, None) and info["next"] == (False, None)


def _versions_by_key(p: DecisionPipeline, symbol: str, keys: list[str]) -> dict[str, str]:
    return {
        k: p.decide(DecideRequest(symbol=symbol, as_of=NOW, routing_key=k), "r").model_version
        for k in keys
    }


def test_routing_key_setting_request_splits_by_the_requests_key(memory_features, models) -> None:
    """'request' (the default): one symbol's requests spread over the versions by their
    routing_key, in proportion to the weights (70/30)."""
    p = make(memory_features, models, routing_key="request")
    versions = _versions_by_key(p, "AAA", [f"client-{i}" for i in range(400)])
    share = sum(v == "m:1" for v in versions.values()) / len(versions)
    assert 0.6 < share < 0.8, share


def test_routing_key_setting_symbol_pins_each_symbol_to_one_version(
    memory_features: SampleFeatures, models, plog
) -> None:
    """'symbol': the request's routing_key is ignored (/decide, /decide_batch, the log):
    every request for a symbol meets the version its symbol hashes to, and the symbols
    spread over the versions by the weights."""
    x, ts = memory_features.rows["AAA"]
    symbols = [f"S{i:03d}" for i in range(200)]
    for s in symbols:
        memory_features.rows[s] = (x, ts)
    p = make(memory_features, models, plog=plog, routing_key="symbol")
    keys = [f"client-{i}" for i in range(50)]
    by_symbol = {}
    for s in symbols[:10]:
        versions = _versions_by_key(p, s, keys)
        assert len(set(versions.values())) == 1, (s, versions)  # whatever the key
        by_symbol[s] = versions[keys[0]]
    for s in symbols[10:]:
        by_symbol[s] = p.decide(DecideRequest(symbol=s, as_of=NOW), "r").model_version
    share = sum(v == "m:1" for v in by_symbol.values()) / len(by_symbol)
    assert 0.6 < share < 0.8, share  # symbols, not keys, are split 70/30
    for key in keys[:5]:
        batch = p.decide_batch(
            DecideBatchRequest(symbols=symbols[:20], as_of=NOW, routing_key=key), "b"
        )
        assert {d.symbol: d.model_version for d in batch.decisions} == {
            s: by_symbol[s] for s in symbols[:20]
        }
    p.decide(DecideRequest(symbol="BBB", as_of=NOW, routing_key="client-7"), "logged-1")
    assert plog.flush()
    assert plog.frame().set_index("request_id").loc["logged-1", "routing_key"] == "BBB"
    # and 'request' on the same symbols and keys does not pin them
    spread = make(memory_features, models, routing_key="request")
    assert len(set(_versions_by_key(spread, symbols[0], keys).values())) == 2


def test_an_unknown_routing_key_setting_is_refused(memory_features, models) -> None:
    with pytest.raises(ValueError, match="'client'"):
        make(memory_features, models, routing_key="client")


# ------------------------------------------------------------- the ports, in memory


def test_the_use_case_reaches_the_world_only_through_its_ports(memory_features, models) -> None:
    """With in-memory ports: one feature read, one log row per scored request (at the
    clock's time), each bar shown to drift once per version, counts by (action, version,
    role), the mirrored share handed to the shadow with the primary's action."""
    from augur.serving._memory import MemoryPredictionLog

    clock, sink, drift = FixedClock(NOW), MemoryPredictionLog(), MemoryDrift()
    metrics, shadow = MemoryMetrics(), MemoryShadow()
    p = make(
        memory_features,
        models,
        RoutingTable.model_validate(
            {
                "versions": [{"name": "stable", "model_tag": "m:1", "weight": 100}],
                "shadow": {"name": "next", "model_tag": "m:3", "percent": 100},
            }
        ),
        plog=sink,
        shadow=shadow,
        drift=drift,
        metrics=metrics,
        clock=clock,
    )
    reqs = [DecideRequest(symbol=s) for s in ("AAA", "BBB", "AAA", "OLD")]  # as_of: the clock
    outs = p.decide_many([(r, f"q{i}") for i, r in enumerate(reqs)])
    assert memory_features.reads == 1
    assert [o.reasons[0].code == "stale_features" for o in outs] == [False, False, False, True]
    assert [r.request_id for r in sink.predictions] == ["q0", "q1", "q2"]  # refused: unscored
    assert {r.ts for r in sink.predictions} == {NOW}
    assert [len(rows) for rows in drift.rows.values()] == [2]  # AAA and BBB, once each
    decided = {k[1:]: n for k, n in metrics.counts.items() if k[0] == "decided"}
    assert sum(decided.values()) == 4 and decided[("no_action", "m:1", "primary")] >= 1
    assert [t.request_id for t in shadow.tasks] == ["q0", "q1", "q2"]
    assert [t.primary_action for t in shadow.tasks] == [o.action for o in outs[:3]]
    assert shadow.tasks[0].digest == features_digest(memory_features.rows["AAA"][0])
    # the clock moves on: the same rows are now stale, and nothing more is scored
    clock.advance(24 * 3600)
    (late,) = p.decide_many([(reqs[0], "q9")])
    assert late.reasons[0].code == "stale_features" and len(sink.predictions) == 3
    # an outcome joins only a logged request
    assert p.record_outcome(OutcomeRequest(request_id="q1", realized_return=0.01), "me")
    with pytest.raises(UnknownRequestIdError):
        p.record_outcome(OutcomeRequest(request_id="q3", realized_return=0.01), "me")
    assert sink.outcomes == [("q1", 0.01, "me")]
    assert metrics.counts[("outcome", True)] == 1 and metrics.counts[("outcome", False)] == 1


def test_a_full_shadow_never_delays_or_changes_an_answer(memory_features, models) -> None:
    shadow = MemoryShadow(capacity=1)
    with_shadow = make(memory_features, models, shadow=shadow)
    without = make(
        memory_features,
        models,
        RoutingTable.model_validate({"versions": [v.model_dump() for v in TABLE.versions]}),
    )
    reqs = [
        (DecideRequest(symbol="AAA", as_of=NOW, routing_key=f"k{i}"), f"r{i}") for i in range(5)
    ]
    assert with_shadow.decide_many(reqs) == without.decide_many(reqs)
    assert len(shadow.tasks) == 1 and shadow.dropped == 4


def test_the_shadow_scorer_logs_compares_and_counts(memory_features, models) -> None:
    """A mirrored request scored by the shadow version: its row under the request's id
    with role 'shadow', and whether its action agreed with the primary's."""
    from augur.serving._memory import MemoryPredictionLog

    shadow, sink, metrics = MemoryShadow(), MemoryPredictionLog(), MemoryMetrics()
    p = make(memory_features, models, shadow=shadow)
    p.decide(DecideRequest(symbol="AAA", as_of=NOW, routing_key="k"), "mirrored-1")
    (task,) = shadow.tasks
    registry = ModelRegistry(models.__getitem__, memory_features.feature_names, DecisionConfig())
    scorer = ShadowScorer(registry, decide, sink, metrics, clock=FixedClock(NOW))
    decision = scorer.score(task)
    (row,) = sink.predictions
    assert (row.request_id, row.role, row.model_version) == ("mirrored-1", "shadow", "m:3")
    assert row.features_digest == task.digest and row.action == decision.action.value
    agreed = decision.action.value == task.primary_action
    assert metrics.counts[("shadow_compared", "m:3", agreed)] == 1


# --- accounts the service keeps --------------------------------------------------------
def _kept(memory_features, models, **ports):
    from augur.serving._memory import MemoryAccounts, MemoryPredictionLog

    accounts = ports.pop("accounts", MemoryAccounts())
    clock = ports.pop("clock", FixedClock(NOW))
    p = make(
        memory_features,
        models,
        RoutingTable.single("m:1"),
        plog=MemoryPredictionLog(),
        accounts=accounts,
        clock=clock,
        **ports,
    )
    return p, accounts, clock


def test_an_entry_opens_a_position_in_the_account_and_its_outcome_settles_it(
    memory_features, models
) -> None:
    p, accounts, _ = _kept(memory_features, models)
    out = p.decide(DecideRequest(symbol="AAA", account_id="desk-1"), "e1")
    assert out.action == "enter_long" and out.size > 0
    assert accounts.get("desk-1").open_exposure == {"AAA": pytest.approx(out.size)}

    settled = p.record_outcome(
        OutcomeRequest(request_id="e1", realized_return=-0.02, account_id="desk-1"), "desk"
    )
    assert settled.position_closed is True and settled.account is not None
    assert settled.account.equity == pytest.approx(1 - out.size * 0.02)
    assert settled.account.consecutive_losses == 1 and settled.account.open_exposure == {}
    # the same outcome again: recorded in the log, but the account moves only once
    again = p.record_outcome(
        OutcomeRequest(request_id="e1", realized_return=-0.02, account_id="desk-1"), "desk"
    )
    assert again.position_closed is False and again.account == settled.account


def test_after_a_losing_streak_the_cooldown_engages_without_the_caller_saying_so(
    memory_features, models
) -> None:
    p, accounts, clock = _kept(memory_features, models)
    config = DecisionConfig()
    for i in range(config.cooldown_losses):
        out = p.decide(DecideRequest(symbol="AAA", account_id="desk-1"), f"e{i}")
        assert out.action == "enter_long", out.reasons
        p.record_outcome(
            OutcomeRequest(request_id=f"e{i}", realized_return=-0.01, account_id="desk-1"), "d"
        )
    refused = p.decide(DecideRequest(symbol="AAA", account_id="desk-1"), "after")
    assert refused.action == "risk_rejected"
    assert "cooldown" in [r.code for r in refused.reasons]
    assert accounts.get("desk-1").open_exposure == {}  # a refusal opens nothing
    # another account, and a caller without one, are not cooled down
    assert p.decide(DecideRequest(symbol="AAA", account_id="desk-2"), "o").action == "enter_long"
    assert p.decide(DecideRequest(symbol="AAA"), "anon").action == "enter_long"
    # the cool-down lasts cooldown_bars whole bars after the last loss
    clock.advance(config.cooldown_bars * p.bar_seconds)
    memory_features.rows["AAA"] = (memory_features.rows["AAA"][0], clock.now)
    assert p.decide(DecideRequest(symbol="AAA", account_id="desk-1"), "later").action == (
        "enter_long"
    )


def test_the_accounts_drawdown_and_open_exposure_limit_its_decisions(
    memory_features, models
) -> None:
    from augur.serving._accounts import AccountState
    from augur.serving._memory import MemoryAccounts

    accounts = MemoryAccounts()
    accounts.accounts["deep"] = AccountState(equity=0.7, peak_equity=1.0)
    hot = AccountState(positions={"x": ("BBB", 0.3), "y": ("CCC", -0.3)})
    accounts.accounts["hot"] = hot  # portfolio heat 0.6: at the default cap
    p, _, _ = _kept(memory_features, models, accounts=accounts)
    deep = p.decide(DecideRequest(symbol="AAA", account_id="deep"), "d")
    assert deep.action == "risk_rejected" and "drawdown_limit" in [r.code for r in deep.reasons]
    full = p.decide(DecideRequest(symbol="AAA", account_id="hot"), "h")
    assert full.action == "risk_rejected"
    assert "portfolio_heat" in [r.code for r in full.reasons]


def test_a_batch_for_one_account_counts_its_own_entries_against_the_caps(
    memory_features, models
) -> None:
    memory_features.rows["AA2"] = memory_features.rows["AAA"]
    memory_features.rows["AA3"] = memory_features.rows["AAA"]
    config = DecisionConfig()
    p, accounts, _ = _kept(memory_features, models)
    out = p.decide_batch(
        DecideBatchRequest(symbols=["AAA", "AA2", "AA3"], account_id="desk-1"), "b"
    )
    sizes = [d.size for d in out.decisions]
    assert sum(sizes) <= config.max_portfolio_heat + 1e-12
    alone = p.decide(DecideRequest(symbol="AAA", account_id="fresh"), "alone").size
    assert sizes[0] == pytest.approx(alone)
    assert accounts.get("desk-1").open_exposure == pytest.approx(
        {d.symbol: d.size for d in out.decisions if d.size > 0}
    )
    # the batch's positions are settled under each symbol's own request id
    settled = p.record_outcome(
        OutcomeRequest(request_id="b-1", realized_return=0.01, account_id="desk-1"), "d"
    )
    assert settled.position_closed and "AA2" not in settled.account.open_exposure


def test_an_account_id_on_a_service_without_accounts_is_unavailable(
    memory_features, models
) -> None:
    from augur.serving._errors import AccountStoreUnavailableError

    p = make(memory_features, models, RoutingTable.single("m:1"))
    kept, plain = p.decide_many(
        [
            (DecideRequest(symbol="AAA", account_id="a", as_of=NOW), "r"),
            (DecideRequest(symbol="AAA", as_of=NOW), "plain"),
        ]
    )
    assert isinstance(kept, AccountStoreUnavailableError)
    assert not isinstance(plain, Exception) and plain.action == "enter_long"  # batched along


def test_account_and_account_id_together_are_refused() -> None:
    from pydantic import ValidationError

    for model, body in (
        (DecideRequest, {"symbol": "AAA"}),
        (DecideBatchRequest, {"symbols": ["AAA"]}),
    ):
        with pytest.raises(ValidationError, match=r"either account_id .* or account"):
            model.model_validate({**body, "account_id": "a", "account": {"equity": 0.9}})
    with pytest.raises(ValidationError, match="account_id"):
        DecideRequest.model_validate({"symbol": "AAA", "account_id": "{slot}"})


def test_correlated_symbols_share_one_exposure_cap(memory_features, models) -> None:
    """An account with exposure in BBB enters AAA only up to what the correlated cap
    leaves when the two move together; uncorrelated, AAA has its own room."""
    from augur.serving._accounts import AccountState
    from augur.serving._correlations import CorrelationMatrix
    from augur.serving._memory import MemoryAccounts

    config = DecisionConfig()
    held = config.max_correlated_exposure - 0.01
    sizes = {}
    for corr in (0.9, 0.1):
        accounts = MemoryAccounts()
        accounts.accounts["desk"] = AccountState(positions={"x": ("BBB", -held)})
        matrix = CorrelationMatrix({("BBB", "AAA"): corr})
        p, _, _ = _kept(memory_features, models, accounts=accounts, correlations=matrix)
        out = p.decide(DecideRequest(symbol="AAA", account_id="desk"), f"c{corr}")
        sizes[corr] = (out.size, [r.code for r in out.reasons])
    assert sizes[0.9][0] == pytest.approx(0.01) and "correlated_exposure" in sizes[0.9][1]
    assert sizes[0.1][0] > 0.01 and "correlated_exposure" not in sizes[0.1][1]
