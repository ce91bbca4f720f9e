"""The request path of the decision service, as one use case:

    route → features → score → decide → record → mirror

A request that names an ``account_id`` decides with that account's state from the
account store (:mod:`augur.serving._accounts`) instead of a caller's ``account``; its
entries open positions there and its outcomes settle them.

:class:`DecisionPipeline` takes parsed requests and returns decisions. It reaches the
world only through its ports (:mod:`augur.serving._ports`): the online feature store, the
prediction log, the shadow, drift monitoring, metrics and the clock; the composition root
(:mod:`augur.serving._bootstrap`) wires the real ones, unit tests in-memory ones.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

import numpy as np

from augur.decision import (
    Action,
    Decision,
    MarketContext,
    PositionContext,
    RiskState,
)
from augur.serving._accounts import AccountState
from augur.serving._contexts import (
    FLAT_POSITION,
    NO_ACCOUNT,
    MarketReader,
    position_context,
    refusal,
    refused_decision,
    risk_state,
)
from augur.serving._errors import (
    AccountStoreUnavailableError,
    StoreUnavailableError,
    UnknownSymbolError,
)
from augur.serving._models_view import models_view
from augur.serving._outcomes import record_outcome
from augur.serving._ports import (
    AccountStore,
    Clock,
    Correlations,
    DriftObserver,
    FeatureReader,
    Metrics,
    PredictionSink,
    ShadowSink,
    system_clock,
)
from augur.serving._records import answer_of, record_prediction
from augur.serving._registry import ModelRegistry
from augur.serving._routing import Route, Router, RoutingTableFile, StaticRouting
from augur.serving._rows import RowFactsMemo
from augur.serving._schemas import (
    AccountIn,
    DecideBatchRequest,
    DecideBatchResponse,
    DecideRequest,
    DecisionOut,
    ModelsResponse,
    OutcomeRequest,
    OutcomeResponse,
    PositionIn,
    SymbolError,
)
from augur.serving._scoring import Scored, Scorer
from augur.serving._shadow_codec import ShadowTask
from augur.serving._weights import SharedWeights

log = logging.getLogger(__name__)

DecideFn = Callable[..., Decision]


@dataclass(eq=False, slots=True)
class Job:
    """One symbol's decision in flight: the request's inputs, then what each stage adds."""

    symbol: str
    x: np.ndarray  # the feature row, in the reader's order
    ts: datetime | None  # the row's event time
    as_of: datetime | None
    price: float | None
    position: PositionIn | None
    account: AccountIn | None
    routing_key: str
    request_id: str
    route: Route | None = None
    shadow: Route | None = None
    market: MarketContext | None = None
    pos: PositionContext = FLAT_POSITION
    risk: RiskState = NO_ACCOUNT
    decision: Decision | None = None
    scored: Scored | None = None
    digest: str = ""  # features_digest(x), once routed
    account_id: str | None = None  # an account the service keeps (then ``account`` is None)


class DecisionPipeline:
    """Everything between a parsed request and its decision (see the module docstring)."""

    def __init__(
        self,
        *,
        features: FeatureReader,
        models: ModelRegistry,
        routing: RoutingTableFile | StaticRouting,
        decide: DecideFn,
        max_feature_age_seconds: float,
        bar_seconds: float = 3600.0,
        prediction_log: PredictionSink | None = None,
        accounts: AccountStore | None = None,
        correlations: Correlations | None = None,
        drift: DriftObserver | None = None,
        shadow: ShadowSink | None = None,
        metrics: Metrics | None = None,
        tracer: Any = None,
        prediction_cache_size: int = 0,
        routing_key: Literal["request", "symbol"] = "request",
        clock: Clock = system_clock,
        weights: SharedWeights | None = None,
        rule_set: str | None = None,
    ) -> None:
        from opentelemetry import trace

        if routing_key not in ("request", "symbol"):
            raise ValueError(f"routing_key must be 'request' or 'symbol', not {routing_key!r}")
        self._key_by_symbol = routing_key == "symbol"  # ignore the requests' own keys
        self.features = features
        self.models = models
        self.routing = routing
        self._decide = decide
        self.rule_set = rule_set  # the label of the rule set ``decide`` applies, for /models
        self.max_age = max_feature_age_seconds
        self.bar_seconds = bar_seconds
        self.log = prediction_log
        self.accounts = accounts
        self.correlations = correlations
        self.drift = drift
        self.shadow = shadow
        self.metrics = metrics
        self.tracer = tracer if tracer is not None else trace.NoOpTracer()
        # A span per stage and batch when tracing is on; nothing at all when it is off.
        self._span: Callable[[str], AbstractContextManager[Any]] = (
            (lambda _name: nullcontext())
            if isinstance(self.tracer, trace.NoOpTracer)
            else self.tracer.start_as_current_span
        )
        self.clock = clock
        # Member weights that outcomes move: the scorer hands them what the members said
        # about each row it scores, and forgets its outputs when the weights change.
        self.weights = weights
        self.scorer = (
            Scorer(
                prediction_cache_size,
                on_scored=weights.record_scored,
                generation=lambda: weights.generation,
            )
            if weights is not None
            else Scorer(prediction_cache_size)
        )
        self.rows = RowFactsMemo(prediction_cache_size)
        # Drift compares the distribution of served *bars* with training: a row enters the
        # window once per (version, symbol, feature time), however often it is asked for.
        self._drift_seen: dict[tuple[str, str], datetime | None] = {}
        self._market = MarketReader(features.feature_names)
        models.ensure(routing.table.model_tags())

    @property
    def router(self) -> Router:
        return self.routing.router

    # --- the use case -----------------------------------------------------------------
    def decide_many(
        self, requests: Sequence[tuple[DecideRequest, str]]
    ) -> list[DecisionOut | Exception]:
        """Decide for several independent requests (``(request, request_id)`` pairs) with
        one feature read; a result is the decision, or the exception that request raises
        (:class:`UnknownSymbolError`, :class:`StoreUnavailableError`)."""
        now = self.clock()
        try:
            with self._span("features"):
                rows = self.features.get(list(dict.fromkeys(req.symbol for req, _ in requests)))
        except StoreUnavailableError as exc:
            return [exc] * len(requests)
        results: list[DecisionOut | Exception] = []
        jobs: list[Job] = []
        for req, request_id in requests:
            if req.symbol not in rows:
                results.append(UnknownSymbolError(req.symbol))
                continue
            jobs.append(
                Job(
                    req.symbol,
                    *rows[req.symbol],
                    req.as_of,
                    req.price,
                    req.position,
                    req.account,
                    self._routing_key(req.symbol, req.routing_key),
                    request_id,
                    account_id=req.account_id,
                )
            )
            results.append(_PENDING)
        try:
            accounts = self._accounts_of(jobs)
        except AccountStoreUnavailableError as exc:
            # only the requests that name an account fail; the others are decided
            for i, job in zip(_pending(results), jobs, strict=True):
                if job.account_id is not None:
                    results[i] = exc
            jobs = [job for job in jobs if job.account_id is None]
            accounts = {}
        decided = iter(self._run(jobs, now, accounts))
        return [next(decided) if r is _PENDING else r for r in results]

    def decide(self, req: DecideRequest, request_id: str) -> DecisionOut:
        """Decide for one symbol. Raises UnknownSymbolError / StoreUnavailableError."""
        (result,) = self.decide_many([(req, request_id)])
        if isinstance(result, Exception):
            raise result
        return result

    def decide_batch(self, req: DecideBatchRequest, request_id: str) -> DecideBatchResponse:
        """Decisions for many symbols of one account; unknown symbols become errors. Each
        decision is logged under the batch's id plus the symbol's index."""
        symbols = list(dict.fromkeys(req.symbols))
        with self._span("features"):
            rows = self.features.get(symbols)
        errors = [
            SymbolError(symbol=s, error="unknown_symbol", detail=str(UnknownSymbolError(s)))
            for s in symbols
            if s not in rows
        ]
        jobs = [
            Job(
                s,
                *rows[s],
                req.as_of,
                req.prices.get(s),
                req.positions.get(s),
                req.account,
                self._routing_key(s, req.routing_key),
                f"{request_id}-{i}",
                account_id=req.account_id,
            )
            for i, s in enumerate(symbols)
            if s in rows
        ]
        decisions = self._run(jobs, self.clock(), self._accounts_of(jobs))
        return DecideBatchResponse(decisions=decisions, errors=errors, request_id=request_id)

    def _routing_key(self, symbol: str, given: str | None) -> str:
        return symbol if self._key_by_symbol or not given else given

    def _run(
        self, jobs: list[Job], now: datetime, accounts: dict[str, AccountState]
    ) -> list[DecisionOut]:
        """The stages, each over the whole batch: route, refuse what no model may see,
        score per version, decide (a kept account's state from ``accounts``, as read
        for the batch), open the entries' positions, record, mirror."""
        t0 = time.perf_counter()
        to_score: dict[str, list[Job]] = {}
        with self._span("routing"):
            for job in jobs:
                job.route, job.shadow = self.router.pick(job.routing_key)
                facts = self.rows.of(job.symbol, job.x)
                job.digest = facts.digest  # ties the log's rows to their input
                refused = refusal(facts.complete, job.ts, job.as_of or now, self.max_age)
                if refused is None:
                    self._contexts(job, job.as_of or now)
                    to_score.setdefault(job.route.model_tag, []).append(job)
                else:
                    job.decision = refused_decision(refused, job.route.model_tag, job.request_id)
        for tag, group in to_score.items():
            loaded = self.models[tag]
            with self._span("ensemble"):
                scored = self.scorer.score(
                    loaded, [(j.x, _market_of(j)) for j in group], [j.digest for j in group]
                )
            with self._span("decision"):
                for job, s in zip(group, scored, strict=True):
                    job.scored = s
                    if job.account_id is not None:
                        # the batch's earlier entries count towards this one's caps
                        state = accounts[job.account_id]
                        job.risk = self._correlated(
                            job.symbol, state.risk(job.as_of or now, self.bar_seconds)
                        )
                    job.decision = self._decide(
                        s.signal, job.pos, job.risk, job.market, loaded.config, job.request_id
                    )
                    if job.account_id is not None and _enters(job.decision):
                        d = job.decision
                        accounts[job.account_id] = accounts[job.account_id].opened(
                            job.request_id, job.symbol, d.direction * d.size
                        )
        self._open_positions(jobs)
        latency_ms = (time.perf_counter() - t0) * 1e3
        self._record(jobs, latency_ms, now)
        self._mirror([job for job in jobs if job.shadow is not None and job.scored is not None])
        return [answer_of(job.symbol, job.decision, job.request_id, job.ts) for job in jobs]

    # --- the stages -------------------------------------------------------------------
    def _accounts_of(self, jobs: list[Job]) -> dict[str, AccountState]:
        """The state of each account the batch names, read once per batch."""
        ids = sorted({job.account_id for job in jobs if job.account_id is not None})
        if not ids:
            return {}
        if self.accounts is None:
            raise AccountStoreUnavailableError("this service keeps no accounts")
        return {i: self.accounts.get(i) for i in ids}

    def _open_positions(self, jobs: list[Job]) -> None:
        """Each entry decided for a kept account opens a position in it."""
        for job in jobs:
            d = job.decision
            if job.account_id is not None and d is not None and _enters(d):
                assert self.accounts is not None
                self.accounts.open(job.account_id, job.request_id, job.symbol, d.direction * d.size)

    def _contexts(self, job: Job, now: datetime) -> None:
        assert job.route is not None, "routed before the contexts are built"
        volatility_ref = self.models[job.route.model_tag].volatility_ref
        job.market = self._market(job.symbol, job.x, job.ts, job.price, volatility_ref)
        job.pos = position_context(job.position, now, self.bar_seconds)
        job.risk = self._correlated(job.symbol, risk_state(job.account))

    def _correlated(self, symbol: str, risk: RiskState) -> RiskState:
        """The risk state with ``symbol``'s correlations to the symbols it has exposure in
        (the engine caps correlated exposure together)."""
        if self.correlations is None or not risk.open_exposure:
            return risk
        corr = self.correlations.among(symbol, risk.open_exposure)
        return replace(risk, correlations=corr) if corr else risk

    def _record(self, jobs: list[Job], latency_ms: float, now: datetime) -> None:
        """Each decision into the prediction log, each fresh bar into drift, the counts
        into metrics."""
        counts: Counter[tuple[str, str, str]] = Counter()
        for job in jobs:
            assert job.route is not None and job.decision is not None
            counts[(job.decision.action.value, job.route.model_tag, job.route.role)] += 1
            if job.scored is None:
                continue  # refused: no model saw it
            if self.log is not None:
                record_prediction(
                    self.log, job.route, job, job.decision, job.scored, latency_ms, now
                )
            tag = job.route.model_tag
            if self.drift is not None and self._drift_seen.get((tag, job.symbol)) != job.ts:
                self._drift_seen[(tag, job.symbol)] = job.ts
                self.drift.observe(tag, job.x[self.models[tag].columns])
        if self.metrics is not None:
            for (action, version, role), n in counts.items():
                self.metrics.decided(action, version, role, n)

    def _mirror(self, jobs: list[Job]) -> None:
        """Hand the mirrored requests to the shadow (it counts what it has no room for)."""
        if self.shadow is None:
            return
        for job in jobs:
            assert job.shadow is not None and job.decision is not None and job.market is not None
            market = job.market
            if job.shadow.model_tag in self.models:
                # the shadow sizes by its own version's volatility reference
                ref = self.models[job.shadow.model_tag].volatility_ref
                if ref != market.volatility_ref:
                    market = replace(market, volatility_ref=ref)
            self.shadow.offer(
                ShadowTask(
                    route=job.shadow,
                    symbol=job.symbol,
                    x=job.x,
                    ts=job.ts,
                    market=market,
                    pos=job.pos,
                    risk=job.risk,
                    routing_key=job.routing_key,
                    request_id=job.request_id,
                    primary_action=job.decision.action.value,
                    digest=job.digest,
                )
            )

    # --- outcomes and introspection ---------------------------------------------------
    def record_outcome(self, req: OutcomeRequest, caller: str) -> OutcomeResponse:
        """``POST /outcome`` (see :func:`augur.serving._outcomes.record_outcome`)."""
        return record_outcome(
            req, caller, self.log, self.accounts, self.metrics, self.clock, self.weights
        )

    def models_info(self) -> ModelsResponse:
        """``GET /models``: the routing table in force and each version's state."""
        return models_view(
            self.routing, self.models, self.features, self.scorer, self.weights, self.rule_set
        )


def _pending(results: list[DecisionOut | Exception]) -> list[int]:
    return [i for i, r in enumerate(results) if r is _PENDING]


def _enters(decision: Decision) -> bool:
    return decision.action in (Action.ENTER_LONG, Action.ENTER_SHORT) and decision.size > 0


def _market_of(job: Job) -> MarketContext:
    assert job.market is not None, "contexts are set before scoring"
    return job.market


# Marks a request's place in decide_many's results until its decision is made.
_PENDING = RuntimeError("not decided")

__all__ = ["DecisionPipeline", "Job"]
