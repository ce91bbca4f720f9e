"""The decide-for-symbol pipeline: routing, staleness, decision parity, logging, shadow."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from augur.decision import DecisionConfig, MarketContext, PositionContext, RiskState, decide
from augur.monitoring import PredictionLog
from augur.serving._pipeline import (
    Answer,
    DecisionPipeline,
    ModelRegistry,
    StaticRouting,
    StoreUnavailableError,
    UnknownRequestIdError,
    UnknownSymbolError,
    features_digest,
)
from augur.serving._routing import RoutingTable
from augur.serving._schemas import DecideBatchRequest, DecideRequest, OutcomeRequest
from augur.serving._shadow import ShadowQueue
from tests.unit.serving.conftest import NOW, LinearModel, MemoryFeatures

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
    )


def test_decision_matches_the_engine_called_directly(
    memory_features: MemoryFeatures, models
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
    """The market context at the row's own price is built once per row and remembered; a
    request with a price of its own gets its own, and the next request without one the
    row's again (here the row carries no price: no stop or target can be placed)."""
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
    shadow = ShadowQueue(16)
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


def test_a_full_shadow_process_drops_a_batch_with_one_count(memory_features, models) -> None:
    """Mirrored requests a full shadow pipe cannot take are dropped unpacked and counted
    once per batch: one increment of the counter for all of them."""
    from augur.serving._shadow import ShadowProcess

    counted: list[int] = []
    shadow = ShadowProcess(["a"], on_drop=counted.append)  # no child: never has room
    shadow._full_until = time.monotonic() + 60  # as after its pipe was found full
    p = make(memory_features, models, shadow=shadow)
    reqs = [DecideRequest(symbol=s, as_of=NOW) for s in ["AAA", "BBB", "AAA", "OLD"]]
    p.decide_many([(r, f"r{i}") for i, r in enumerate(reqs)])
    # "OLD" is refused (stale) before scoring: nothing of it is mirrored.
    assert counted == [3] and shadow.dropped == 3 and shadow.submitted == 0
    p.decide(reqs[0], "r9")
    assert counted == [3, 1] and shadow.dropped == 4


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
    with pytest.raises(UnknownRequestIdError, match="log is off"):
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
    assert many[4].decision_out().reasons[0].code == "stale_features"
    for i in (0, 1, 2):
        one = p.decide(reqs[i], f"r{i}")
        assert many[i].decision_out() == one  # batched == one by one
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
    assert (p.memo_hits, p.memo_misses) == (1, 1)
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


def test_plain_requests_reuse_the_decision_until_the_row_changes(
    memory_features: MemoryFeatures, models, monkeypatch
) -> None:
    """A request without a position, account or price is decided on the row alone: the
    decision engine runs once per (version, symbol, row), and every answer is byte for
    byte what a pipeline without the memo sends. Anything of the request's own, a new bar,
    or features gone stale in the meantime is decided afresh."""
    calls: list[str] = []

    def counting(*args, **kwargs):
        calls.append(args[-1])
        return decide(*args, **kwargs)

    p = make(memory_features, models, RoutingTable.single("m:1"))
    p._decide = counting
    fresh = make(memory_features, models, RoutingTable.single("m:1"), cache=0)

    def both(req: DecideRequest, rid: str) -> bytes:
        (ours,) = p.decide_many([(req, rid)])
        (truth,) = fresh.decide_many([(req, rid)])
        assert ours.body == truth.body and ours.model_version == truth.model_version == "m:1"
        return ours.body

    plain = DecideRequest(symbol="AAA", as_of=NOW)
    first = both(plain, "r1")
    assert both(plain, "r2") != first and calls == ["r1"]  # the same answer but its id
    assert p.decide(plain, "r3").request_id == "r3" and calls == ["r1"]
    own = [
        {"position": {"side": "long", "size": 0.1, "entry_price": 1.0, "opened_at": NOW}},
        {"account": {"equity": 0.9, "peak_equity": 1.0}},
        {"price": 1.5},
    ]
    for i, extra in enumerate(own):
        both(DecideRequest(symbol="AAA", as_of=NOW, **extra), f"own{i}")
    assert calls == ["r1", "own0", "own1", "own2"]
    both(plain, "r4")
    assert len(calls) == 4

    # another symbol on the very same features: its own decision, its own answer
    memory_features.rows["BBB"] = memory_features.rows["AAA"]
    assert b'"symbol":"BBB"' in both(DecideRequest(symbol="BBB", as_of=NOW), "b1")
    assert calls[-1] == "b1"

    x, ts = memory_features.rows["AAA"]
    memory_features.rows["AAA"] = (x * -3.0, ts)  # a new bar
    both(plain, "r5")
    assert calls[-1] == "r5"
    later = DecideRequest(symbol="AAA", as_of=NOW + timedelta(days=1))  # stale by then
    assert b"stale_features" in both(later, "r6") and calls[-1] == "r5"
    assert (p.decision_hits, p.decision_misses) == (3, 3)
    stats = p.models_info().caches["decisions"]
    assert stats.enabled and (stats.hits, stats.misses) == (3, 3)
    assert not fresh.models_info().caches["decisions"].enabled


def test_an_answer_splits_around_its_request_id() -> None:
    body = b'{"reasons":[{"text":"\\"request_id\\":\\"x1\\""}],"request_id":"x1","n":1}'
    answer = Answer(body, "m:1")
    parts = answer.split_at("x1")
    assert parts is not None
    head, tail = parts
    assert head + b"x1" + tail == body and tail == b'","n":1}'
    assert head.endswith(b'}],"request_id":"')
    assert Answer(b'{"request_id":"a\\"b"}', "m:1").split_at('a"b') is None  # escaped


def test_a_request_id_json_must_escape_is_answered_not_remembered(memory_features, models) -> None:
    p = make(memory_features, models, RoutingTable.single("m:1"))
    req = DecideRequest(symbol="AAA", as_of=NOW)
    (odd,) = p.decide_many([(req, 'say "hi"')])
    assert odd.decision_out().request_id == 'say "hi"'
    (plain,) = p.decide_many([(req, "r2")])
    assert plain.decision_out().request_id == "r2" and p.decision_hits == 0


def test_a_new_row_for_a_symbol_is_checked_and_digested_afresh(
    memory_features: MemoryFeatures, models, plog
) -> None:
    """The pipeline works out a row's finiteness, digest and memo key once per row object
    (a cached online row is one array until the next bar): a new row for the same symbol
    must be looked at again, not inherit the last row's facts."""
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
    memory_features: MemoryFeatures, models, plog
) -> None:
    """The request path hands the log a bare tuple (ROW_FIELDS order): each value must
    arrive in its own column."""
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
    memory_features: MemoryFeatures, models, cache
) -> None:
    """AAA's confidence (~0.77) passes the default gate (0.35) and not an overridden 0.9;
    the decision memo holds the overridden config (made once, when the version loads)."""
    req = DecideRequest(symbol="AAA", as_of=NOW)
    table = RoutingTable.single("m:1")
    plain = make(memory_features, models, table, cache=cache).decide(req, "r0")
    assert DecisionConfig().confidence_threshold < plain.confidence < 0.9
    assert plain.action == "enter_long" and [r.code for r in plain.reasons] == ["entered"]
    strict = make(
        memory_features, models, table, cache=cache, overrides={"confidence_threshold": 0.9}
    )
    for i in range(3):  # the first decided, then remembered (with the memo on)
        (answer,) = strict.decide_many([(req, f"r{i + 1}")])
        out = answer.decision_out()
        assert out.action == "no_action" and out.size == 0.0
        assert [r.code for r in out.reasons] == ["confidence_below_threshold"]
        assert out.confidence == plain.confidence  # same signal: only the gate moved
    assert strict.decision_hits == (2 if cache else 0)
    assert strict.models.tags == ["m:1"]
    assert strict.models["m:1"].config == DecisionConfig(confidence_threshold=0.9)


def test_decision_overrides_apply_on_top_of_a_versions_own_config(
    memory_features: MemoryFeatures, models
) -> None:
    """A version with its own decision config keeps the fields the overrides do not name;
    /models shows what each loaded version decides with."""
    own = LinearModel(1.0)
    own.decision_config = DecisionConfig(confidence_threshold=0.5, kelly_fraction=0.5)
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
    memory_features: MemoryFeatures, models
) -> None:
    own = LinearModel(1.0)
    own.decision_config = DecisionConfig(max_drawdown=0.5, drawdown_scale_start=0.3)
    with pytest.raises(ValueError, match=r"model 'm:1'.*drawdown_scale_start"):
        make(
            memory_features,
            {"m:1": own},
            RoutingTable.single("m:1"),
            overrides={"max_drawdown": 0.2},
        )


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
    memory_features: MemoryFeatures, models, plog
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
