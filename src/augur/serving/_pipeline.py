"""The decide-for-symbol pipeline the HTTP layer calls: route → features → ensemble →
decision → log, with the shadow scored off the request path.

Framework-free: the feature reader, the model loader and the decision function are passed
in (the Bento wires the real ones), so the same pipeline runs in tests, the benchmark and
the service.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import pickle
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

import numpy as np

from augur.decision import (
    Action,
    Decision,
    MarketContext,
    PositionContext,
    Reason,
    RiskState,
    Signal,
)
from augur.models._confidence import confidence_features
from augur.serving._routing import Route, Router, RoutingTable, RoutingTableFile
from augur.serving._schemas import (
    AccountIn,
    CacheStats,
    DecideBatchRequest,
    DecideBatchResponse,
    DecideRequest,
    DecisionOut,
    ModelsResponse,
    OutcomeRequest,
    OutcomeResponse,
    PositionIn,
    ReasonOut,
    SymbolError,
    VersionOut,
)

log = logging.getLogger(__name__)
# Writes (outcomes) are audit-logged with the caller on a logger of their own.
audit = logging.getLogger("augur.audit")

# Where a bar's price is read from when the request gives none (the first present wins).
PRICE_FEATURES = ("close", "price")


class UnknownSymbolError(LookupError):
    """The online store has no features for the symbol (HTTP 404)."""

    def __init__(self, symbol: str) -> None:
        super().__init__(symbol)
        self.symbol = symbol

    def __str__(self) -> str:
        return (
            f"unknown symbol {self.symbol!r}: the online store has no features for it "
            "(materialize or push its features first)"
        )


class StoreUnavailableError(RuntimeError):
    """The online feature store cannot be reached (HTTP 503 with Retry-After)."""


class UnknownRequestIdError(LookupError):
    """An outcome for a request id that was never logged (HTTP 404)."""


class FeatureReader(Protocol):
    """Online feature reads: ``get(symbols) -> {symbol: (vector in names order, event time)}``.

    Raises :class:`UnknownSymbolError` / :class:`StoreUnavailableError` (an adapter maps the
    store's own errors to these).
    """

    @property
    def feature_names(self) -> Sequence[str]: ...

    def get(self, symbols: Sequence[str]) -> Mapping[str, tuple[np.ndarray, datetime | None]]: ...


DecideFn = Callable[..., Decision]


@dataclass
class LoadedModel:
    """A loaded ensemble with the column order it needs and its decision settings."""

    tag: str
    model: Any  # has predict_one(x, volatility=, trend_strength=, explain=) -> EnsembleOutput
    columns: np.ndarray  # indices into the reader's vector, in the model's feature order
    config: Any  # DecisionConfig


class ModelRegistry:
    """Loaded models by tag; loads what a routing table needs before the table is used.

    A version decides with its own ``decision_config``, else ``default_config``, with
    ``overrides`` (DecisionConfig field → value, the service's
    ``AUGUR_DECISION_OVERRIDES``) replaced in once, when it is loaded: one config object
    per version, which the pipeline's decision memo relies on.
    """

    def __init__(
        self,
        loader: Callable[[str], Any],
        feature_names: Sequence[str],
        default_config: Any,
        on_loaded: Callable[[str, Any], None] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self._loader = loader
        self._names = list(feature_names)
        self._default_config = default_config
        self._on_loaded = on_loaded
        self._overrides = dict(overrides or {})
        self._models: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()

    def __getitem__(self, tag: str) -> LoadedModel:
        return self._models[tag]

    def __contains__(self, tag: str) -> bool:
        return tag in self._models

    @property
    def tags(self) -> list[str]:
        return list(self._models)

    def ensure(self, tags: Sequence[str]) -> None:
        """Load every tag not loaded yet; raises (naming the tag) when one cannot be loaded."""
        with self._lock:
            for tag in tags:
                if tag in self._models:
                    continue
                try:
                    model = self._loader(tag)
                except Exception as exc:
                    raise ValueError(f"model {tag!r} cannot be loaded: {exc}") from exc
                names = list(getattr(model, "feature_names", ()) or self._names)
                missing = [n for n in names if n not in self._names]
                if missing:
                    raise ValueError(
                        f"model {tag!r} needs features the online store lacks: "
                        f"{', '.join(missing[:5])}"
                    )
                columns = np.array([self._names.index(n) for n in names], dtype=np.intp)
                config = getattr(model, "decision_config", None) or self._default_config
                if self._overrides:
                    try:
                        config = replace(config, **self._overrides)
                    except (TypeError, ValueError) as exc:
                        raise ValueError(
                            f"model {tag!r}: the decision overrides {self._overrides} do not "
                            f"fit its decision config: {exc}"
                        ) from exc
                self._models[tag] = LoadedModel(tag, model, columns, config)
                if self._on_loaded is not None:
                    self._on_loaded(tag, model)
                log.info("model %s loaded (%d features)", tag, len(columns))


class StaticRouting:
    """A fixed routing table (no file): the embedded default, tests and the benchmark."""

    def __init__(self, table: RoutingTable) -> None:
        self.router = Router(table)
        self.loaded_at = datetime.now(UTC)
        self.path = None

    @property
    def table(self) -> RoutingTable:
        return self.router.table


def _first_index(names: Sequence[str], candidates: Sequence[str]) -> int | None:
    for c in candidates:
        if c in names:
            return list(names).index(c)
    return None


def features_digest(x: np.ndarray) -> str:
    """Short digest of a feature vector (the log ties a prediction to its exact inputs)."""
    return hashlib.blake2b(
        np.ascontiguousarray(x, dtype=np.float64).tobytes(), digest_size=8
    ).hexdigest()


def _risk_state(account: AccountIn | None) -> RiskState:
    if account is None:
        return _NO_RISK
    kwargs: dict[str, Any] = {
        "equity": account.equity,
        "peak_equity": account.peak_equity,
        "consecutive_losses": account.consecutive_losses,
        "open_exposure": dict(account.open_exposure),
    }
    if account.bars_since_last_loss is not None:
        kwargs["bars_since_last_loss"] = account.bars_since_last_loss
    return RiskState(**kwargs)


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
        prediction_log: Any = None,
        drift: Any = None,
        shadow: Any = None,
        metrics: Any = None,
        tracer: Any = None,
        prediction_cache_size: int = 4096,
        routing_key: Literal["request", "symbol"] = "request",
    ) -> None:
        from opentelemetry import trace

        if routing_key not in ("request", "symbol"):
            raise ValueError(f"routing_key must be 'request' or 'symbol', not {routing_key!r}")
        # 'symbol': the version split ignores the requests' own routing_key.
        self._key_by_symbol = routing_key == "symbol"
        self.features = features
        self.models = models
        self.routing = routing
        self._decide = decide
        self.max_age = max_feature_age_seconds
        self.bar_seconds = bar_seconds
        self.log = prediction_log
        self.drift = drift
        self.shadow = shadow
        self.metrics = metrics
        self.tracer = tracer if tracer is not None else trace.NoOpTracer()
        # Tracing off: a do-nothing context manager (OTel's no-op tracer still builds a
        # generator-based context per span, ~4 us each, five per request).
        self._span: Callable[[str], Any] = (
            (lambda _name: _NO_SPAN)
            if isinstance(self.tracer, trace.NoOpTracer)
            else self.tracer.start_as_current_span
        )
        self._counters: dict[tuple[str, str, str], Any] = {}
        # Drift compares the distribution of served *bars* with training: a row enters the
        # window once per (version, symbol, feature time), however often it is asked for.
        self._drift_seen: dict[tuple[str, str], datetime | None] = {}
        self._memo_size = prediction_cache_size
        self._memo: dict[tuple[str, bytes], tuple[Signal, Any]] = {}
        self._facts: dict[str, _RowFacts] = {}
        self._decided: dict[tuple[str, str], _KnownDecision] = {}
        self.decision_hits = 0
        self.decision_misses = 0
        self.memo_hits = 0
        self.memo_misses = 0
        names = list(features.feature_names)
        # the market context reads the features the confidence reads (one choice for
        # training, evaluation, tuning and serving)
        self._vol_i, self._trend_i = (
            names.index(name) if name else None for name in confidence_features(names)
        )
        self._price_i = _first_index(names, PRICE_FEATURES)
        models.ensure(routing.table.model_tags())

    # --- one symbol -----------------------------------------------------------------------
    @property
    def router(self) -> Router:
        return self.routing.router

    def decide(self, req: DecideRequest, request_id: str) -> DecisionOut:
        """Decide for one symbol. Raises UnknownSymbolError / StoreUnavailableError."""
        result = self._decide_items([(req, request_id)], render=False)[0]
        if isinstance(result, Exception):
            raise result
        return result  # type: ignore[return-value]

    def decide_many(self, items: Sequence[tuple[DecideRequest, str]]) -> list[Answer | Exception]:
        """Decide for several independent requests at once (the HTTP layer's natural batch).

        One feature read for all symbols and one batched ensemble call per model version;
        each request keeps its own routing key, position, account and request id. A result
        is the decision rendered as the response body (:class:`Answer`) or the exception
        that request raises (unknown symbol, store down).
        """
        return self._decide_items(items, render=True)  # type: ignore[return-value]

    def _decide_items(
        self, items: Sequence[tuple[DecideRequest, str]], render: bool
    ) -> list[Answer | DecisionOut | Exception]:
        results: list[Answer | DecisionOut | Exception | None] = [None] * len(items)
        symbols = list(dict.fromkeys(req.symbol for req, _ in items))
        try:
            with self._span("features"):
                rows = self.features.get(symbols)
        except StoreUnavailableError as exc:
            return [exc] * len(items)
        jobs = []
        for i, (req, request_id) in enumerate(items):
            if req.symbol not in rows:
                results[i] = UnknownSymbolError(req.symbol)
                continue
            vector, ts = rows[req.symbol]
            jobs.append(
                _Job(
                    i,
                    req.symbol,
                    vector,
                    ts,
                    req.as_of,
                    req.price,
                    req.position,
                    req.account,
                    req.symbol if self._key_by_symbol else req.routing_key or req.symbol,
                    request_id,
                )
            )
        self._run(jobs, results, render)
        return [r if r is not None else RuntimeError("not decided") for r in results]

    def decide_batch(self, req: DecideBatchRequest, request_id: str) -> DecideBatchResponse:
        """Decide for many symbols with one feature read; unknown symbols become errors."""
        symbols = list(dict.fromkeys(req.symbols))
        with self._span("features"):
            rows = self.features.get(symbols)
        errors: list[SymbolError] = []
        jobs: list[_Job] = []
        for i, symbol in enumerate(symbols):
            if symbol not in rows:
                errors.append(
                    SymbolError(
                        symbol=symbol,
                        error="unknown_symbol",
                        detail=str(UnknownSymbolError(symbol)),
                    )
                )
                continue
            vector, ts = rows[symbol]
            jobs.append(
                _Job(
                    len(jobs),
                    symbol,
                    vector,
                    ts,
                    req.as_of,
                    req.prices.get(symbol),
                    req.positions.get(symbol),
                    req.account,
                    symbol if self._key_by_symbol else req.routing_key or symbol,
                    # One log row per decision: the batch id plus the symbol's position.
                    f"{request_id}-{i}",
                )
            )
        results: list[DecisionOut | Exception | None] = [None] * len(jobs)
        self._run(jobs, results, render=False)
        decisions = [r for r in results if isinstance(r, DecisionOut)]
        return DecideBatchResponse(decisions=decisions, errors=errors, request_id=request_id)

    def _run(self, jobs: list[_Job], results: list[Any], render: bool) -> None:
        """Route, refuse or score (batched per model version), decide, log, mirror.

        A result is a :class:`DecisionOut`, or with ``render`` its :class:`Answer`."""
        t0 = time.perf_counter()
        # One clock reading for the batch: its requests arrived in the same event-loop turn.
        wall = datetime.now(UTC)
        counts: Counter[tuple[str, str, str]] = Counter()
        groups: dict[str, list[_Job]] = {}
        unmirrored = 0  # mirrored requests the shadow had no room for: counted per batch
        for job in jobs:
            with self._span("routing"):
                job.route, job.shadow = self.router.pick(job.routing_key)
            now = job.as_of or wall
            facts = self._row_facts(job.symbol, job.vector)
            refusal = self._refusal(facts.finite, job.ts, now)
            if refusal is not None:
                decision = Decision(
                    action=Action.NO_ACTION,
                    size=0.0,
                    direction=0,
                    probability=0.0,
                    confidence=0.0,
                    agreement=0.0,
                    reasons=(refusal,),
                    model_version=job.route.model_tag,
                    request_id=job.request_id,
                )
                counts[_kind(decision, job.route)] += 1
                out = _out(job.symbol, decision, job.ts, job.request_id)
                results[job.index] = Answer.of(out) if render else out
                continue
            job.x, job.xkey, job.digest = facts.x, facts.key, facts.digest
            job.market, job.pos = self._contexts(
                facts, job.symbol, job.ts, now, job.price, job.position
            )
            job.risk = _risk_state(job.account)
            groups.setdefault(job.route.model_tag, []).append(job)
        for tag, group in groups.items():
            loaded = self.models[tag]
            with self._span("ensemble"):
                signals = self._signals(loaded, group)
            for job, (signal, out) in zip(group, signals, strict=True):
                with self._span("decision"):
                    known = self._known_decision(tag, job, signal, loaded.config)
                    if known is None:
                        decision = self._decide(
                            signal, job.pos, job.risk, job.market, loaded.config, job.request_id
                        )
                    else:
                        decision = known.decision
                latency_ms = (time.perf_counter() - t0) * 1e3
                digest = job.digest
                self._record(job.route, job, decision, out, latency_ms, digest, wall)
                if self.drift is not None and self._drift_seen.get((tag, job.symbol)) != job.ts:
                    self._drift_seen[(tag, job.symbol)] = job.ts
                    self.drift.observe(tag, job.x[loaded.columns])
                counts[_kind(decision, job.route)] += 1
                if job.shadow is not None and self.shadow is not None:
                    unmirrored += not self._mirror(job, decision, digest)
                if known is not None and render:
                    results[job.index] = known.answer(job.request_id)
                    continue
                response = _out(job.symbol, decision, job.ts, job.request_id)
                if not render:
                    results[job.index] = response
                    continue
                results[job.index] = answer = Answer.of(response)
                if job.plain and self._memo_size:
                    self._remember(tag, job, signal, loaded.config, decision, answer)
        self._count_all(counts)
        if unmirrored:
            self.shadow.drop(unmirrored)

    def _known_decision(
        self, tag: str, job: _Job, signal: Signal, config: Any
    ) -> _KnownDecision | None:
        """The remembered decision for a plain request on this row, when it still holds.

        A plain request (no position, account or price of its own) is decided on nothing
        but the row's signal, its market context and the version's settings, and the
        decision engine is a pure function of those: while all three are the very objects
        the decision was made on (a new bar replaces the row's signal and market), every
        plain request on the row gets the same decision, and the same answer but for its
        request id. The checks that depend on the request's time (stale features) run
        for every request before this."""
        if not job.plain or not self._memo_size:
            return None
        known = self._decided.get((tag, job.symbol))
        if (
            known is None
            or known.signal is not signal
            or known.market is not job.market
            or known.config is not config
        ):
            self.decision_misses += 1
            return None
        self.decision_hits += 1
        return known

    def _remember(
        self, tag: str, job: _Job, signal: Signal, config: Any, decision: Decision, answer: Answer
    ) -> None:
        parts = answer.split_at(job.request_id)
        if parts is None:
            return
        head, tail = parts
        if len(self._decided) >= self._memo_size:
            self._decided.clear()  # more (version, symbol) pairs than the memo's size
        self._decided[(tag, job.symbol)] = _KnownDecision(
            signal, job.market, config, decision, head, tail
        )

    def _row_facts(self, symbol: str, vector: Any) -> _RowFacts:
        """What every request on this feature row shares: the float64 vector, whether it
        is all finite, its digest and its memo key — worked out once per row. A cached
        online row is one read-only array until its symbol's next bar replaces it, so the
        array's identity says whether the facts still hold (the facts keep it alive)."""
        facts = self._facts.get(symbol)
        if facts is not None and facts.vector is vector:
            return facts
        x = np.asarray(vector, dtype=np.float64)
        facts = _RowFacts(vector, x, bool(np.isfinite(x).all()), features_digest(x), x.tobytes())
        if len(self._facts) >= self._memo_size:
            self._facts.clear()  # symbols beyond the memo's size: start over
        self._facts[symbol] = facts
        return facts

    def _count_all(self, counts: Counter[tuple[str, str, str]]) -> None:
        """Decisions by (action, version, role) into the counters: one increment per
        kind per batch (a Prometheus increment takes a lock)."""
        if self.metrics is not None:
            for key, n in counts.items():
                counter = self._counters.get(key)
                if counter is None:
                    counter = self._counters[key] = self.metrics.decisions.labels(*key)
                counter.inc(n)

    def _signals(self, loaded: LoadedModel, group: list[_Job]) -> list[tuple[Signal, Any]]:
        """Signals for a group of rows of one model, remembered by exact feature vector.

        The ensemble is a pure function of (model version, features) and a symbol's
        features change once per bar, so repeated rows are looked up, not rescored (a
        version's tag names immutable weights). Rows not seen yet are scored once each.
        """
        if not self._memo_size:
            return self._score(loaded, group)
        out: list[tuple[Signal, Any] | None] = [None] * len(group)
        todo: dict[tuple[str, bytes], list[int]] = {}
        for i, job in enumerate(group):
            key = (loaded.tag, getattr(job, "xkey", None) or job.x.tobytes())
            hit = self._memo.get(key)
            if hit is not None:
                out[i] = hit
                self.memo_hits += 1
            else:
                todo.setdefault(key, []).append(i)
        if todo:
            self.memo_misses += len(todo)
            scored = self._score(loaded, [group[idx[0]] for idx in todo.values()])
            if len(self._memo) + len(todo) > self._memo_size:
                self._memo.clear()  # a new bar for every symbol: start over
            for (key, idx), result in zip(todo.items(), scored, strict=True):
                self._memo[key] = result
                for i in idx:
                    out[i] = result
        return out  # type: ignore[return-value]

    def _score(self, loaded: LoadedModel, group: list[_Job]) -> list[tuple[Signal, Any]]:
        """``predict_one`` for a single row, one batched ``predict`` for several (the
        ensemble's cost barely grows with the rows)."""
        model = loaded.model
        ref = getattr(model, "volatility_ref", None)
        vols = [job.market.volatility for job in group]
        if len(group) == 1 or not hasattr(model, "predict") or (ref and 0.0 in vols):
            return [self._score_one(loaded, job.x, job.market) for job in group]
        X = np.stack([job.x[loaded.columns] for job in group])
        ratio = np.array(vols) / ref if ref else None
        trend = np.array([job.market.trend_strength for job in group])
        pred = model.predict(X, volatility_ratio=ratio, trend_strength=trend)
        out = []
        for i in range(len(group)):
            p_down, p_flat, p_up = (float(v) for v in pred.proba[i])
            q05, q50, q95 = (float(v) for v in pred.quantiles[i])
            signal = Signal(
                direction=int(pred.direction[i]),
                probability=float(pred.probability[i]),
                p_up=p_up,
                p_down=p_down,
                confidence=float(pred.confidence[i]),
                agreement=float(pred.agreement[i]),
                q05=q05,
                q50=q50,
                q95=q95,
                model_version=loaded.tag,
            )
            out.append(
                (signal, _Probabilities(p_up, p_down, p_flat, signal.confidence, signal.agreement))
            )
        return out

    def _score_one(
        self, loaded: LoadedModel, x: np.ndarray, market: MarketContext
    ) -> tuple[Signal, Any]:
        out = loaded.model.predict_one(
            x[loaded.columns],
            volatility=market.volatility or None,
            trend_strength=market.trend_strength,
            explain=False,
        )
        return out.to_signal(loaded.tag), out

    def _refusal(self, finite: bool, ts: datetime | None, now: datetime) -> Reason | None:
        """Why no model may look at these features (stale, missing, from the future)."""
        if ts is None:
            return Reason("stale_features", "the online store has no event time for the features")
        age = (now - ts).total_seconds()
        if age > self.max_age:
            return Reason(
                "stale_features",
                f"features are {age:.0f}s old, the limit is {self.max_age:.0f}s",
            )
        if age < 0:
            return Reason(
                "features_after_as_of",
                f"features are from {ts.isoformat()}, after as_of {now.isoformat()}",
            )
        if not finite:
            return Reason("missing_features", "some features are missing (warm-up or gaps)")
        return None

    def _market(
        self, symbol: str, x: np.ndarray, ts: datetime | None, price: float | None
    ) -> MarketContext:
        vol = float(x[self._vol_i]) if self._vol_i is not None else 0.0
        trend = float(x[self._trend_i]) if self._trend_i is not None else 0.0
        if price is None:
            price = float(x[self._price_i]) if self._price_i is not None else 0.0
        return MarketContext(
            symbol=symbol, price=price, timestamp=ts, volatility=vol, trend_strength=trend
        )

    def _contexts(
        self,
        facts: _RowFacts,
        symbol: str,
        ts: datetime | None,
        now: datetime,
        price: float | None,
        position: PositionIn | None,
    ) -> tuple[MarketContext, PositionContext]:
        if price is None:  # at the row's own price the context is the row's: built once
            if facts.market is None or facts.market.timestamp != ts:
                facts.market = self._market(symbol, facts.x, ts, None)
            market = facts.market
        else:
            market = self._market(symbol, facts.x, ts, price)
        if position is None:
            return market, _FLAT
        bars_held = 0
        if position.opened_at is not None:
            bars_held = max(
                0, math.floor((now - position.opened_at).total_seconds() / self.bar_seconds)
            )
        pos = PositionContext(
            side=position.side,
            size=position.size,
            entry_price=position.entry_price,
            opened_at=position.opened_at,
            **({"bars_held": bars_held} if _has_bars_held() else {}),
        )
        return market, pos

    def _record(
        self,
        route: Route,
        job: _Job,
        decision: Decision,
        out: Any,
        latency_ms: float,
        digest: str,
        when: datetime | None = None,
    ) -> None:
        if self.log is None:
            return
        try:
            # A row in the log's ROW_FIELDS order (no record object on the request path;
            # the log's writer checks it).
            self.log.log_row(
                (
                    job.request_id,
                    job.symbol,
                    route.model_tag,  # model_version
                    route.role,
                    decision.action.value,
                    out.p_up,
                    out.p_down,
                    out.p_flat,
                    out.confidence,
                    out.agreement,
                    decision.size,
                    decision.direction,
                    latency_ms,
                    route.model_tag,
                    digest,
                    job.ts,  # feature_timestamp
                    job.routing_key,
                    when or datetime.now(UTC),  # ts
                )
            )
        except Exception:  # the log must never fail a decision
            log.exception("request %s: prediction not logged", job.request_id)

    def _mirror(self, job: _Job, primary: Decision, digest: str) -> bool:
        """Hand the request to the shadow. False when it had no room and the task was
        not even packed: the caller counts those drops, once per batch (a shadow that
        takes a task but cannot queue it counts that drop itself)."""
        assert job.shadow is not None and self.shadow is not None
        # A ShadowProcess takes bytes (they cross a pipe): packed straight from the job,
        # no task object on the request path. A ShadowQueue runs a callable on its thread.
        submit_task = getattr(self.shadow, "submit_task", None)
        if submit_task is not None:
            if not self.shadow.has_room():  # its pipe was full a moment ago
                return False
            submit_task(
                pack_shadow(
                    job.shadow,
                    job.symbol,
                    job.x,
                    job.ts,
                    job.market,
                    job.pos,
                    job.risk,
                    job.routing_key,
                    job.request_id,
                    primary.action.value,
                    digest,
                )
            )
            return True
        task = ShadowTask(
            route=job.shadow,
            symbol=job.symbol,
            x=job.x,
            ts=job.ts,
            market=job.market,
            pos=job.pos,
            risk=job.risk,
            routing_key=job.routing_key,
            request_id=job.request_id,
            primary_action=primary.action.value,
            digest=digest,
        )
        self.shadow.submit(lambda: self.score_shadow(task))
        return True

    def score_shadow(self, task: ShadowTask) -> Decision:
        """Score one mirrored request with the shadow version: decide, log, count.

        Runs off the request path (the shadow thread, or the shadow process, which
        builds a pipeline of its own for this); the primary's answer is long gone.
        """
        route = task.route
        with self._span("shadow"):
            t0 = time.perf_counter()
            if route.model_tag not in self.models:
                self.models.ensure([route.model_tag])
            loaded = self.models[route.model_tag]
            ((signal, out),) = self._signals(loaded, [task])  # type: ignore[list-item]
            decision = self._decide(
                signal, task.pos, task.risk, task.market, loaded.config, task.request_id
            )
            latency_ms = (time.perf_counter() - t0) * 1e3
            self._record(route, task, decision, out, latency_ms, task.digest)  # type: ignore[arg-type]
            if self.metrics is not None:
                agreed = "true" if decision.action.value == task.primary_action else "false"
                self.metrics.shadow_comparisons.labels(route.model_tag, agreed).inc()
            self._count_all(Counter([_kind(decision, route)]))
        return decision

    # --- outcomes and introspection -------------------------------------------------------
    def record_outcome(self, req: OutcomeRequest, caller: str) -> OutcomeResponse:
        """Join a realised return to a logged request (404 when the id is unknown)."""
        if self.log is None:
            raise UnknownRequestIdError(
                f"request_id {req.request_id!r}: the prediction log is off in this service"
            )
        matched = bool(self.log.log_outcome(req.request_id, req.realized_return, caller))
        if self.metrics is not None:
            self.metrics.outcomes.labels("true" if matched else "false").inc()
        audit.info(
            "outcome request_id=%s realized_return=%g caller=%s matched=%s",
            req.request_id,
            req.realized_return,
            caller,
            matched,
        )
        if not matched:
            raise UnknownRequestIdError(
                f"unknown request_id {req.request_id!r}: no prediction was logged under it "
                "(use the request_id returned by /decide)"
            )
        return OutcomeResponse(request_id=req.request_id, recorded=True)

    def models_info(self) -> ModelsResponse:
        """The routing table in force, which versions are loaded and the decision
        thresholds each loaded one decides with."""
        table = self.routing.table
        versions = [
            VersionOut(
                name=v.name,
                model_tag=v.model_tag,
                weight=v.weight,
                role="primary" if i == 0 else "canary",
                loaded=v.model_tag in self.models,
                decision_config=self._thresholds(v.model_tag),
            )
            for i, v in enumerate(table.versions)
        ]
        if table.shadow is not None:
            versions.append(
                VersionOut(
                    name=table.shadow.name,
                    model_tag=table.shadow.model_tag,
                    percent=table.shadow.percent,
                    role="shadow",
                    loaded=table.shadow.model_tag in self.models,
                    decision_config=self._thresholds(table.shadow.model_tag),
                )
            )
        path = getattr(self.routing, "path", None)
        stats = getattr(self.features, "cache_stats", None)
        enabled, hits, misses = stats() if stats is not None else (False, 0, 0)
        caches = {
            "features": CacheStats(enabled=enabled, hits=hits, misses=misses),
            "predictions": CacheStats(
                enabled=self._memo_size > 0, hits=self.memo_hits, misses=self.memo_misses
            ),
            "decisions": CacheStats(
                enabled=self._memo_size > 0, hits=self.decision_hits, misses=self.decision_misses
            ),
        }
        return ModelsResponse(
            routing_table=table.model_dump(exclude_none=True),
            versions=versions,
            source=str(path) if path else "embedded",
            loaded_at=self.routing.loaded_at,
            caches=caches,
        )

    def _thresholds(self, tag: str) -> dict[str, Any] | None:
        """A loaded version's decision config as a dict (None when not loaded)."""
        if tag not in self.models:
            return None
        config = self.models[tag].config
        to_dict = getattr(config, "to_dict", None)
        return to_dict() if to_dict is not None else None


@dataclass(frozen=True, slots=True)
class ShadowTask:
    """One request mirrored to the shadow version: everything scoring it needs (picklable:
    a shadow process receives it through a pipe)."""

    route: Route
    symbol: str
    x: np.ndarray
    ts: datetime | None
    market: MarketContext
    pos: PositionContext
    risk: RiskState
    routing_key: str
    request_id: str
    primary_action: str
    digest: str

    def pack(self) -> bytes:
        """The task as bytes (:func:`pack_shadow`; :meth:`unpack` reverses)."""
        return pack_shadow(
            self.route,
            self.symbol,
            self.x,
            self.ts,
            self.market,
            self.pos,
            self.risk,
            self.routing_key,
            self.request_id,
            self.primary_action,
            self.digest,
        )

    @classmethod
    def unpack(cls, payload: bytes) -> ShadowTask:
        (name, tag, role, symbol, x, ts, market, pos, risk, key, rid, action, digest) = (
            pickle.loads(payload)
        )
        price, volatility, volatility_ref, trend, market_ts_is_ts, market_ts = market
        ts = _from_wire(ts)
        return cls(
            route=Route(name, tag, role),
            symbol=symbol,
            x=np.frombuffer(x, dtype=np.float64),
            ts=ts,
            market=MarketContext(
                symbol,
                price,
                ts if market_ts_is_ts else _from_wire(market_ts),
                volatility,
                volatility_ref,
                trend,
            ),
            pos=_FLAT if pos is None else _position_from_wire(pos),
            risk=RiskState() if risk is None else RiskState(*risk),
            routing_key=key,
            request_id=rid,
            primary_action=action,
            digest=digest,
        )


def pack_shadow(
    route: Route,
    symbol: str,
    x: np.ndarray,
    ts: datetime | None,
    market: MarketContext,
    pos: PositionContext,
    risk: RiskState,
    routing_key: str,
    request_id: str,
    primary_action: str,
    digest: str,
) -> bytes:
    """A mirrored request as bytes for the shadow process, built on the request path.

    One pickle of a flat tuple of plain values; a flat position and a default risk
    state travel as ``None``, the market context's symbol is the request's and UTC times
    (a position's opening time too: 9.8 -> 4.3 us with one) are integers
    (:func:`_to_wire`). Measured: ~1.4 us, where building a
    :class:`ShadowTask` and packing it dataclass by dataclass took ~13 us (and pickling
    the dataclasses themselves ~24 us).
    """
    return pickle.dumps(
        (
            route.name,
            route.model_tag,
            route.role,
            symbol,
            x.tobytes(),
            _to_wire(ts),
            (
                market.price,
                market.volatility,
                market.volatility_ref,
                market.trend_strength,
                market.timestamp is ts,
                None if market.timestamp is ts else _to_wire(market.timestamp),
            ),
            None if pos is _FLAT else _position_to_wire(pos),
            None
            if risk is _NO_RISK or risk == _NO_RISK
            else tuple(risk.__getattribute__(f) for f in _RISK_FIELDS),
            routing_key,
            request_id,
            primary_action,
            digest,
        ),
        protocol=pickle.HIGHEST_PROTOCOL,
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _to_wire(when: datetime | None) -> datetime | int | None:
    """A UTC time as whole microseconds since the epoch (exact), anything else as itself.

    Pickling an aware ``datetime`` cost ~5 us of the ~6 us a packed task took: its
    ``tzinfo`` goes through ``copyreg`` every time. The integer costs ~0.3 us each way."""
    if when is not None and when.tzinfo is UTC:
        return (when - _EPOCH) // _MICROSECOND
    return when


def _from_wire(value: datetime | int | None) -> datetime | None:
    """Reverse :func:`_to_wire`."""
    if isinstance(value, int):
        return _EPOCH + timedelta(microseconds=value)
    return value


def _field_names(cls: type) -> tuple[str, ...]:
    import dataclasses

    return tuple(f.name for f in dataclasses.fields(cls))


_POSITION_FIELDS = _field_names(PositionContext)
_OPENED_AT = _POSITION_FIELDS.index("opened_at")


def _position_to_wire(pos: PositionContext) -> tuple[Any, ...]:
    """A position's fields in order, its opening time as :func:`_to_wire` sends it."""
    values = [pos.__getattribute__(f) for f in _POSITION_FIELDS]
    values[_OPENED_AT] = _to_wire(values[_OPENED_AT])
    return tuple(values)


def _position_from_wire(values: tuple[Any, ...]) -> PositionContext:
    """Reverse :func:`_position_to_wire`."""
    fields = list(values)
    fields[_OPENED_AT] = _from_wire(fields[_OPENED_AT])
    return PositionContext(*fields)


_RISK_FIELDS = _field_names(RiskState)
_FLAT = PositionContext()  # frozen, every field immutable: one instance serves every request
# Every request without an account shares this one: the decision engine is pure and
# never mutates its inputs (nor does anything after it).
_NO_RISK = RiskState()


class _NoSpan:
    """What ``with span(...)`` gets when tracing is off."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NO_SPAN = _NoSpan()


@dataclass(eq=False, slots=True)
class _Job:
    """One symbol's decision in flight (inputs, then what the stages fill in)."""

    index: int
    symbol: str
    vector: Any
    ts: datetime | None
    as_of: datetime | None
    price: float | None
    position: PositionIn | None
    account: AccountIn | None
    routing_key: str
    request_id: str
    route: Route = None  # type: ignore[assignment]
    shadow: Route | None = None
    x: Any = None
    xkey: bytes = b""
    digest: str = ""
    market: MarketContext = None  # type: ignore[assignment]
    pos: PositionContext = None  # type: ignore[assignment]
    risk: RiskState = None  # type: ignore[assignment]

    @property
    def plain(self) -> bool:
        """No position, account or price of its own: decided on the row alone."""
        return self.position is None and self.account is None and self.price is None


@dataclass(slots=True)
class _RowFacts:
    """See :meth:`DecisionPipeline._row_facts` (``market``: filled in by ``_contexts``)."""

    vector: Any
    x: np.ndarray
    finite: bool
    digest: str
    key: bytes
    market: MarketContext | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """A decision as ``POST /decide`` sends it: the JSON body and the version label."""

    body: bytes
    model_version: str

    @classmethod
    def of(cls, out: DecisionOut) -> Answer:
        return cls(out.model_dump_json().encode(), out.model_version)

    def decision_out(self) -> DecisionOut:
        return DecisionOut.model_validate_json(self.body)

    def split_at(self, request_id: str) -> tuple[bytes, bytes] | None:
        """The body before and after the request id's value, or None when the id does
        not appear verbatim (one JSON had to escape). Over HTTP it always does:
        ``X-Request-ID`` is checked against ``[A-Za-z0-9._:-]`` and ours are hex. A ``"``
        inside another string is escaped, so the key with its quotes occurs once."""
        field = b'"request_id":"' + request_id.encode() + b'"'
        at = self.body.find(field)
        if at < 0:
            return None
        at += len(field) - len(request_id) - 1
        return self.body[:at], self.body[at + len(request_id) :]


@dataclass(slots=True)
class _KnownDecision:
    """A plain request's decision on one row, and its answer around the request id
    (see :meth:`DecisionPipeline._known_decision`). ``decision`` is as made for the first
    such request, its ``request_id`` that request's: the pipeline uses each job's own."""

    signal: Signal
    market: MarketContext
    config: Any
    decision: Decision
    head: bytes
    tail: bytes

    def answer(self, request_id: str) -> Answer:
        return Answer(self.head + request_id.encode() + self.tail, self.decision.model_version)


@dataclass(frozen=True, slots=True)
class _Probabilities:
    """What the prediction log needs from a batched ensemble row."""

    p_up: float
    p_down: float
    p_flat: float
    confidence: float
    agreement: float


def _kind(decision: Decision, route: Route) -> tuple[str, str, str]:
    """A decision's labels on the decisions counter: (action, version, role)."""
    return (decision.action.value, route.model_tag, route.role)


def _has_bars_held() -> bool:
    # PositionContext gained ``bars_held`` with the exit logic; older contracts lack it.
    return "bars_held" in PositionContext.__dataclass_fields__


@functools.lru_cache(maxsize=4096)
def _reason_out(code: str, text: str) -> ReasonOut:
    """A reason as the response carries it, shared: a row's reasons repeat for every
    request until its next bar (validation takes it as is; nothing mutates it)."""
    return ReasonOut(code=code, text=text)


def _out(symbol: str, d: Decision, ts: datetime | None, request_id: str) -> DecisionOut:
    # Validated, not ``model_construct``: pydantic's validator is Rust, its construct
    # Python — measured, construct took 5.7 us here and validation 3.5.
    return DecisionOut(
        symbol=symbol,
        action=d.action.value,
        size=d.size,
        direction=d.direction,
        probability=d.probability,
        confidence=d.confidence,
        agreement=d.agreement,
        reasons=[_reason_out(r.code, r.text) for r in d.reasons],
        model_version=d.model_version,
        request_id=request_id,
        feature_timestamp=ts,
    )


__all__ = [
    "Answer",
    "DecisionPipeline",
    "FeatureReader",
    "LoadedModel",
    "ModelRegistry",
    "ShadowTask",
    "StaticRouting",
    "StoreUnavailableError",
    "UnknownRequestIdError",
    "UnknownSymbolError",
    "features_digest",
]
