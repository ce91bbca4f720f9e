"""Outcomes move the member weights: what the members said about a scored row is logged
once per (version, row), an outcome folds it into the version's shared weights in the
log's database (SQLite here), and every worker's model takes them — a second "worker"
(its own registry and model copy on the same database) included; the prediction memo
serves no output computed with the earlier weights; retries count once; frozen versions
ignore outcomes."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from augur.decision import DecisionConfig, Signal, decide
from augur.models import DynamicWeights
from augur.monitoring import PredictionLog
from augur.monitoring.log._weights import realised_label
from augur.serving._memory import FixedClock
from augur.serving._pipeline import DecisionPipeline
from augur.serving._registry import ModelRegistry
from augur.serving._routing import RoutingTable, StaticRouting
from augur.serving._schemas import DecideRequest, OutcomeRequest
from augur.serving._telemetry import ServingMetrics
from augur.serving._weights import SharedWeights
from tests.unit.serving.conftest import NAMES, NOW, SampleFeatures

# Two members that disagree: "up" says up, "down" says down.
MEMBERS = {"up": (0.1, 0.2, 0.7), "down": (0.6, 0.3, 0.1)}
DEAD_ZONE, HORIZON = 0.25, 4
VOL_AAA = 0.01  # vol_20 of AAA's row in SampleFeatures


@dataclass
class Out:
    p_down: float
    p_flat: float
    p_up: float
    per_model: dict[str, tuple[float, float, float]]

    def to_signal(self, model_version: str = "") -> Signal:
        d = 1 if self.p_up > self.p_down else -1
        prob = max(self.p_up, self.p_down)
        return Signal(d, prob, self.p_up, self.p_down, 0.9, 1.0, -0.02, 0.0, 0.02, model_version)


class TwoMembers:
    """An ensemble-shaped model: fixed member probabilities, weighted by its
    ``dynamic_weights`` (as :meth:`augur.models.Ensemble.predict_one` weighs them)."""

    def __init__(self) -> None:
        self.feature_names = tuple(NAMES)
        self.dynamic_weights = DynamicWeights(tuple(MEMBERS), decay=0.5, floor=0.0, max_step=2.0)
        self.context = {"label_dead_zone": DEAD_ZONE, "label_horizon": HORIZON}
        self.volatility_ref = 0.01
        self.calls = 0

    def predict_one(self, x, *, volatility=None, trend_strength=None, explain=True) -> Out:
        self.calls += 1
        probs = np.array(list(MEMBERS.values()))
        p = self.dynamic_weights.weights @ probs
        return Out(float(p[0]), float(p[1]), float(p[2]), dict(MEMBERS))


@dataclass
class Worker:
    model: TwoMembers
    pipeline: DecisionPipeline
    weights: SharedWeights


def worker(plog: PredictionLog, metrics: Any = None) -> Worker:
    model = TwoMembers()
    registry = ModelRegistry({"m:1": model}.__getitem__, NAMES, DecisionConfig())
    weights = SharedWeights(
        plog, registry, interval=60.0, on_change=getattr(metrics, "member_weights", None)
    )
    pipeline = DecisionPipeline(
        features=SampleFeatures(),
        models=registry,
        routing=StaticRouting(RoutingTable.single("m:1")),
        decide=decide,
        max_feature_age_seconds=3 * 3600.0,
        prediction_log=plog,
        prediction_cache_size=4096,
        clock=FixedClock(NOW),
        weights=weights,
        metrics=metrics,
    )
    weights.refresh()
    weights.publish()
    return Worker(model, pipeline, weights)


@pytest.fixture
def plog(tmp_path: Path) -> Any:
    log = PredictionLog(f"sqlite:///{tmp_path / 'p.db'}")
    yield log
    log.close()


def ask(w: Worker, request_id: str) -> Any:
    return w.pipeline.decide(DecideRequest(symbol="AAA"), request_id)


def post(w: Worker, request_id: str, realized: float) -> Any:
    req = OutcomeRequest(request_id=request_id, realized_return=realized)
    return w.pipeline.record_outcome(req, "desk")


def test_an_outcome_moves_the_weights_of_every_worker_by_the_rule(plog: PredictionLog) -> None:
    registry = CollectorRegistry()
    one, two = worker(plog, ServingMetrics(registry)), worker(plog)
    first = ask(one, "r-1")
    assert first.probability == pytest.approx(0.5 * 0.7 + 0.5 * 0.1)  # equal weights: up 0.4
    ask(one, "r-1b")  # the same row again: from the memo, logged once
    assert one.model.calls == 1
    plog.flush()

    # an up move beyond the label's flat band (dead_zone * vol_20 * sqrt(horizon) = 0.005)
    post(one, "r-1", 0.02)
    expected = DynamicWeights(tuple(MEMBERS), decay=0.5, floor=0.0, max_step=2.0)
    expected.update(np.array(list(MEMBERS.values())), 1)
    np.testing.assert_allclose(one.model.dynamic_weights.weights, expected.weights, rtol=1e-12)
    assert one.model.dynamic_weights.weights[0] > 0.5  # the member that said up gained
    # the other worker takes them at its next read of the shared state
    assert two.model.dynamic_weights.n_updates == 0
    assert two.weights.refresh()
    np.testing.assert_allclose(two.model.dynamic_weights.weights, expected.weights, rtol=1e-12)

    # the memo forgets outputs made with the old weights: the next answer is the formula's
    w = expected.weights
    for w_ in (one, two):
        again = ask(w_, f"r-2-{id(w_)}")
        assert again.probability == pytest.approx(w[0] * 0.7 + w[1] * 0.1, rel=1e-12)
    # /models and /metrics show the weights
    shown = one.pipeline.models_info().versions[0]
    assert shown.member_weights == pytest.approx(dict(zip(MEMBERS, w.tolist(), strict=True)))
    assert (shown.weights_frozen, shown.weight_updates) == (False, 1)
    gauge = registry.get_sample_value("augur_member_weight", {"version": "m:1", "member": "up"})
    assert gauge == pytest.approx(w[0])

    # a retried outcome moves nothing again
    post(two, "r-1", 0.02)
    assert plog.weights()["m:1"].n_updates == 1

    # a restarted worker starts with the shared weights
    three = worker(plog)
    np.testing.assert_allclose(three.model.dynamic_weights.weights, w, rtol=1e-12)


def test_a_return_inside_the_flat_band_is_the_flat_class(plog: PredictionLog) -> None:
    one = worker(plog)
    ask(one, "r-1")
    plog.flush()
    band = DEAD_ZONE * VOL_AAA * math.sqrt(HORIZON)
    stored = plog.member_probs("m:1", plog.prediction_inputs("r-1")[0][2])
    assert stored is not None and stored.label_threshold == pytest.approx(band)
    post(one, "r-1", 0.9 * band)  # flat: the member giving flat more (down: 0.3) gains
    assert one.model.dynamic_weights.as_dict()["down"] > 0.5
    assert realised_label(1.1 * band, band) == 1 and realised_label(-1.1 * band, band) == -1
    assert realised_label(0.0, None) == 0 and realised_label(-1e-9, None) == -1
    with pytest.raises(ValueError, match="realized_return"):
        realised_label(float("nan"), band)


def test_frozen_versions_ignore_outcomes(plog: PredictionLog) -> None:
    one = worker(plog)
    ask(one, "r-1")
    ask(one, "r-2")
    plog.flush()
    with pytest.raises(LookupError, match="trained weights"):
        plog.set_weights_frozen("m:9", True)  # no worker loaded it, no trained weights given
    assert plog.weights()["m:1"].n_updates == 0  # seeded by the worker that loaded it
    row = plog.set_weights_frozen("m:1", True)
    assert row.frozen and row.n_updates == 0
    one.weights.refresh()
    post(one, "r-1", 0.02)
    assert plog.weights()["m:1"].n_updates == 0
    np.testing.assert_allclose(one.model.dynamic_weights.weights, [0.5, 0.5])
    assert one.pipeline.models_info().versions[0].weights_frozen is True
    plog.set_weights_frozen("m:1", False)
    post(one, "r-2", 0.02)
    assert plog.weights()["m:1"].n_updates == 1


def test_a_failed_weights_update_answers_503_and_a_retry_completes_it(
    plog: PredictionLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    from augur.serving._errors import WeightsUnavailableError

    one = worker(plog)
    ask(one, "r-1")
    plog.flush()

    def down(*_a: Any, **_k: Any) -> Any:
        raise OSError("database is down")

    monkeypatch.setattr(plog, "update_weights", down)
    with pytest.raises(WeightsUnavailableError, match="post it again"):
        post(one, "r-1", 0.02)
    assert plog.frame().loc[0, "realized_return"] == 0.02  # the outcome is kept
    monkeypatch.undo()
    post(one, "r-1", 0.02)
    assert plog.weights()["m:1"].n_updates == 1


def test_bad_member_probabilities_are_refused_naming_the_field(plog: PredictionLog) -> None:
    with pytest.raises(ValueError, match=r"probs\['up'\]"):
        plog.log_member_probs("m:1", "d" * 32, {"up": (0.1, float("nan"), 0.2)}, None)
    with pytest.raises(ValueError, match="label_threshold"):
        plog.log_member_probs("m:1", "d" * 32, {"up": (0.1, 0.2, 0.7)}, -1.0)
    with pytest.raises(ValueError, match="features_digest"):
        plog.log_member_probs("m:1", "", {"up": (0.1, 0.2, 0.7)}, None)


def test_the_batch_path_hands_each_rows_member_probabilities_once() -> None:
    """Rows scored together (the ensemble's batched ``predict``): each row's members, in
    the prediction's member order, reach ``on_scored`` once; a memo hit reaches nothing."""
    from augur.decision import MarketContext
    from augur.serving._registry import LoadedModel
    from augur.serving._scoring import Scorer

    @dataclass
    class Batch:
        proba: np.ndarray
        quantiles: np.ndarray
        direction: np.ndarray
        probability: np.ndarray
        confidence: np.ndarray
        agreement: np.ndarray
        per_model: np.ndarray  # (members, n, 3)
        members: tuple[str, ...] = ("up", "down")

    class Batched(TwoMembers):
        def predict(self, X, *, volatility_ratio=None, trend_strength=None) -> Batch:
            n = len(X)
            per = np.stack([np.tile(MEMBERS["up"], (n, 1)), np.tile(MEMBERS["down"], (n, 1))])
            per[0, :, 2] += np.arange(n) * 0.01  # rows differ
            proba = np.einsum("m,mnc->nc", self.dynamic_weights.weights, per)
            return Batch(proba, np.zeros((n, 3)), np.ones(n, dtype=int), proba[:, 2],
                         np.ones(n), np.ones(n), per)  # fmt: skip

    seen: list[tuple[str, list[str], np.ndarray]] = []

    def on_scored(loaded, digests, names, per_row, markets) -> None:
        seen.append((list(digests), list(names), per_row))

    model = Batched()
    loaded = LoadedModel("m:1", model, np.arange(len(NAMES)), DecisionConfig(), 0.01)
    market = MarketContext(symbol="AAA", price=1.0, timestamp=NOW, volatility=0.01)
    rows = [(np.full(len(NAMES), float(i)), market) for i in range(3)]
    scorer = Scorer(16, on_scored=on_scored, generation=lambda: 0)
    scorer.score(loaded, rows, ["d0", "d1", "d2"])
    scorer.score(loaded, rows, ["d0", "d1", "d2"])  # all from the memo
    assert len(seen) == 1
    digests, names, per_row = seen[0]
    assert digests == ["d0", "d1", "d2"] and names == ["up", "down"]
    assert per_row.shape == (3, 2, 3)
    np.testing.assert_allclose(per_row[2, 0], [0.1, 0.2, 0.72])
    np.testing.assert_allclose(per_row[1, 1], MEMBERS["down"])


def test_a_worker_without_the_version_loaded_updates_it_from_the_shared_row(
    plog: PredictionLog,
) -> None:
    """The shadow scored in its own process: the serving worker has not loaded its version,
    yet the outcome moves that version's weights (the row carries names and settings)."""
    scorer = worker(plog)  # loads m:1, seeds its row, logs what the members said
    ask(scorer, "r-1")
    plog.flush()
    model = TwoMembers()
    other = SharedWeights(
        plog, ModelRegistry({"m:2": model}.__getitem__, NAMES, DecisionConfig()), interval=60.0
    )
    assert other.apply_outcome("r-1", 0.02) == ["m:1"]
    expected = DynamicWeights(tuple(MEMBERS), decay=0.5, floor=0.0, max_step=2.0)
    expected.update(np.array(list(MEMBERS.values())), 1)
    np.testing.assert_allclose(plog.weights()["m:1"].weights().weights, expected.weights)
    assert plog.weights()["m:1"].weights().max_step == 2.0
    scorer.weights.refresh()
    np.testing.assert_allclose(scorer.model.dynamic_weights.weights, expected.weights)


def test_a_shadow_in_its_own_process_logs_its_members_and_takes_the_shared_weights(
    plog: PredictionLog,
) -> None:
    """The shadow's scorer (its own registry, as in its process): it takes the shared
    weights when it loads its version, logs what its members said, and an outcome of the
    request, posted to a serving worker without that version, moves them."""
    from augur.decision import PositionContext, RiskState
    from augur.monitoring import features_digest
    from augur.serving._bootstrap import _member_logging_scorer
    from augur.serving._routing import Route
    from augur.serving._shadow_codec import ShadowTask
    from augur.serving._shadow_scorer import ShadowScorer

    serving = worker(plog)  # serves m:1; the shadow version m:s is not loaded here
    ask(serving, "r-1")
    plog.flush()
    shadow_model = TwoMembers()
    shadow_registry = ModelRegistry({"m:s": shadow_model}.__getitem__, NAMES, DecisionConfig())
    weights = SharedWeights(plog, shadow_registry, interval=60.0)
    shadow = ShadowScorer(
        shadow_registry, decide, plog, scorer=_member_logging_scorer(weights), weights=weights
    )
    x, ts = SampleFeatures().rows["AAA"]
    market = serving.pipeline._market("AAA", x, ts, None, 0.01)
    task = ShadowTask(Route("next", "m:s", "shadow"), "AAA", x, ts, market, PositionContext(),
                      RiskState(), "AAA", "r-1", "enter_long", features_digest(x))  # fmt: skip
    shadow.score(task)
    plog.flush()
    assert plog.weights()["m:s"].n_updates == 0  # seeded when the shadow loaded it
    assert serving.weights.apply_outcome("r-1", 0.02) == ["m:1", "m:s"]
    expected = DynamicWeights(tuple(MEMBERS), decay=0.5, floor=0.0, max_step=2.0)
    expected.update(np.array(list(MEMBERS.values())), 1)
    weights.refresh()
    np.testing.assert_allclose(shadow_model.dynamic_weights.weights, expected.weights)
    shadow.close()
