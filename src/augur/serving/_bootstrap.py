"""The composition root of the decision service: settings → adapters (online features,
model store, routing table, prediction log, account store, return correlations, drift,
shadow, metrics, tracer) → the request pipeline → the ASGI app.

The Bento (``bentos/decision/service.py``) calls :func:`build_service` once per worker;
tests and the benchmark pass their own parts. The shadow's own process or container
builds its scorer here too (:func:`shadow_scorer`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from augur.config import Settings, get_settings
from augur.serving._asgi import DecisionApp
from augur.serving._auth import BearerAuth, load_auth
from augur.serving._openapi import openapi_document
from augur.serving._pipeline import DecisionPipeline
from augur.serving._ports import FeatureReader
from augur.serving._registry import ModelRegistry, model_store_loader, resolve_tag
from augur.serving._routing import RoutingTable, RoutingTableFile, StaticRouting
from augur.serving._shadow import ShadowProcess, ShadowQueue, ShadowSocket
from augur.serving._shadow_scorer import ShadowScorer

log = logging.getLogger(__name__)


@dataclass
class ServingApp:
    """The wired service of one worker: the ASGI app, its auth, its pipeline, and what to
    close at shutdown."""

    app: DecisionApp
    auth: BearerAuth
    pipeline: DecisionPipeline
    _closers: list[Callable[[], None]] = field(default_factory=list)

    def ready(self) -> bool:
        """Every version of the routing table in force is loaded."""
        return all(t in self.pipeline.models for t in self.pipeline.routing.table.model_tags())

    def close(self) -> None:
        """Stop the table watcher and the shadow, flush the prediction log."""
        for close in reversed(self._closers):
            try:
                close()
            except Exception:
                log.exception("closing the decision service")
        self._closers.clear()


def open_prediction_log(
    settings: Settings,
    on_drop: Callable[[], None] | None = None,
    on_unavailable: Callable[[], None] | None = None,
) -> Any:
    """The prediction log: ``AUGUR_PREDICTION_LOG_URL``, else SQLite under the home."""
    from augur.monitoring import PredictionLog, default_log_url

    return PredictionLog(
        default_log_url(settings),
        on_drop=on_drop,
        on_unavailable=on_unavailable,
        writer_priority=settings.prediction_log_writer_priority,
    )


def load_rules(settings: Settings) -> Any:
    """The compiled rule set of ``AUGUR_RULE_SET_FILE`` (None: unset). A file that is not a
    valid rule set stops the start with every problem, by line and column."""
    if settings.rule_set_file is None:
        return None
    from augur.rules import RuleError, load_rule_set

    path = settings.rule_set_file
    try:
        rule_set = load_rule_set(path)
    except RuleError as exc:
        problems = "; ".join(
            f"{path}:{p.line}:{p.column}: {p.construct}: {p.message}" for p in exc.problems
        )
        raise ValueError(f"AUGUR_RULE_SET_FILE is not a valid rule set: {problems}") from None
    except ValueError as exc:
        raise ValueError(f"AUGUR_RULE_SET_FILE: {exc}") from None
    log.info("decision rules %s from %s", rule_set.label, path)
    return rule_set.program()


def build_service(
    settings: Settings | None = None,
    *,
    features: FeatureReader | None = None,
    loader: Callable[[str], Any] | None = None,
    decide: Callable[..., Any] | None = None,
    decision_config: Any = None,
    prediction_log: Any = "default",
    accounts: Any = "default",
    correlations: Any = "default",
    drift: Any = "default",
    metrics: Any = "default",
    routing_table: RoutingTable | None = None,
    examples: dict[str, dict[str, Any]] | None = None,
    shadow_worker: bool = True,
) -> ServingApp:
    """Wire the service from settings; any part can be passed in instead.

    ``prediction_log``/``accounts``/``correlations``/``drift``/``metrics``: ``"default"``
    builds the real one from the settings, ``None`` turns it off (``accounts``: requests naming an
    ``account_id`` get 503). ``routing_table`` fixes the table (no file watching);
    else ``settings.routing_table`` is watched, else everything goes to
    ``<model_name>:latest`` resolved in the model store.
    """
    settings = settings or get_settings()
    closers: list[Callable[[], None]] = []
    try:
        auth = load_auth(settings)  # first: a bad token file fails the start, naming it
        rules = load_rules(settings)  # and a bad rule file, naming its line
        if metrics == "default":
            from augur.serving._telemetry import default_metrics

            metrics = default_metrics()
        if prediction_log == "default":
            on_drop = metrics.log_dropped.inc if metrics is not None else None
            on_unavailable = metrics.log_unavailable.inc if metrics is not None else None
            prediction_log = open_prediction_log(settings, on_drop, on_unavailable)
        if prediction_log is not None:
            closers.append(prediction_log.close)
        if accounts == "default":
            from augur.serving._accounts import open_accounts

            accounts = open_accounts(
                settings.online_store,
                settings.redis_url,
                settings.home,
                settings.feature_timeout_seconds,
            )
        if accounts is not None:
            closers.append(accounts.close)
        if correlations == "default":
            correlations = _correlations(settings)
            if correlations is not None:
                closers.append(correlations.stop)
        if drift == "default":
            drift = _drift_monitor(settings, prediction_log)
            closers.append(drift.stop)
        if features is None:
            from augur.serving._features import OnlineFeatureReader

            reader = OnlineFeatureReader(settings)
            closers.append(reader.close)
            features = reader
        if decide is None:
            from augur.decision import decide as decide_fn

            decide = decide_fn
        assert decide is not None
        if rules is not None:
            decide = functools.partial(decide, rules=rules)
        if decision_config is None:
            from augur.decision import DecisionConfig

            decision_config = DecisionConfig()
        if settings.decision_overrides:
            log.info("decision overrides for every version: %s", settings.decision_overrides)
        models = ModelRegistry(
            loader or model_store_loader(drift),
            features.feature_names,
            decision_config,
            overrides=settings.decision_overrides,
        )
        routing = _routing(settings, routing_table, models, closers, metrics)
        weights = _shared_weights(settings, prediction_log, models, metrics)
        shadow = None
        if shadow_worker:
            # a shadow in a thread shares the registry, so the worker's weights: only
            # what its members say needs logging
            in_thread = ShadowScorer(
                models, decide, prediction_log, metrics, scorer=_member_logging_scorer(weights)
            )
            shadow = _shadow(settings, routing, metrics, list(features.feature_names), in_thread)
            closers.append(shadow.stop)
        from augur.serving._clock import make_clock
        from augur.serving._telemetry import make_tracer

        pipeline = DecisionPipeline(
            features=features,
            models=models,
            routing=routing,
            decide=decide,
            max_feature_age_seconds=settings.max_feature_age_seconds,
            bar_seconds=settings.bar_seconds,
            prediction_log=prediction_log,
            accounts=accounts,
            correlations=correlations,
            drift=drift,
            shadow=shadow,
            metrics=metrics,
            tracer=make_tracer(settings.otlp_endpoint),
            prediction_cache_size=settings.prediction_cache_size,
            routing_key=settings.routing_key,
            weights=weights,
            rule_set=rules.label if rules is not None else None,
            clock=make_clock(settings),
        )
        if weights is not None:  # after the pipeline has loaded the table's versions
            weights.start()
            closers.append(weights.stop)
        app = DecisionApp(
            pipeline,
            max_body_bytes=settings.max_body_bytes,
            max_batch_symbols=settings.max_batch_symbols,
            max_batch_requests=settings.decide_batch_max,
            retry_after_seconds=settings.store_retry_after_seconds,
            metrics=metrics,
            openapi=openapi_document(examples),
        )
        return ServingApp(app=app, auth=auth, pipeline=pipeline, _closers=closers)
    except BaseException:
        # Stop what was already started (threads, the log) before reporting the failure.
        for close in reversed(closers):
            try:
                close()
            except Exception:
                log.exception("closing a part of a service that failed to start")
        raise


def _shared_weights(
    settings: Settings, prediction_log: Any, models: ModelRegistry, metrics: Any
) -> Any:
    """Member weights that outcomes move, shared through the prediction log's database
    (None without a SQL prediction log); re-read as often as the routing table."""
    if prediction_log is None or not hasattr(prediction_log, "update_weights"):
        return None
    from augur.serving._weights import SharedWeights

    return SharedWeights(
        prediction_log,
        models,
        interval=settings.routing_reload_seconds,
        on_change=getattr(metrics, "member_weights", None),
    )


def _member_logging_scorer(weights: Any) -> Any:
    """A memo-less scorer that hands what the members said to ``weights`` (None: the
    plain scorer)."""
    if weights is None:
        return None
    from augur.serving._scoring import Scorer

    return Scorer(on_scored=weights.record_scored, generation=lambda: weights.generation)


def _correlations(settings: Settings) -> Any:
    """Return correlations from the online store, re-read every
    ``correlation_refresh_seconds`` (the offline table while it has none); None when
    turned off."""
    if settings.correlation_window == 0:
        return None
    from augur.features.correlations import (
        CorrelationMatrix,
        RedisCorrelationStore,
        SqliteCorrelationStore,
        read_correlations,
    )
    from augur.features.store import offline_features_path, sqlite_online_path
    from augur.serving._correlations import LiveCorrelations

    if settings.online_store == "redis":
        from augur.serving._accounts import redis_client

        store: Any = RedisCorrelationStore(redis_client(settings.redis_url))
    else:
        store = SqliteCorrelationStore(sqlite_online_path(settings))
    return LiveCorrelations(
        lambda: read_correlations(store),
        lambda: CorrelationMatrix.load(
            offline_features_path(settings),
            settings.correlation_window,
            settings.correlation_min_bars,
        ),
        interval=settings.correlation_refresh_seconds,
    ).start()


def _drift_monitor(settings: Settings, prediction_log: Any) -> Any:
    from augur.monitoring import DriftGauges, DriftMonitor

    drift = DriftMonitor(
        window=settings.drift_window,
        # A recompute tests every feature: at most once per window of fresh rows.
        update_every=max(settings.drift_update_rows, settings.drift_window),
        update_seconds=settings.drift_update_seconds,
        min_interval_seconds=settings.drift_min_interval_seconds,
        gauges=DriftGauges.default(),
        log=prediction_log,
    )
    drift.start()
    return drift


def _routing(
    settings: Settings,
    table: RoutingTable | None,
    models: ModelRegistry,
    closers: list[Callable[[], None]],
    metrics: Any = None,
) -> RoutingTableFile | StaticRouting:
    """The fixed table given, else the watched file, else the latest model version."""
    if table is not None:
        return StaticRouting(table)
    if settings.routing_table is None:
        return StaticRouting(RoutingTable.single(resolve_tag(f"{settings.model_name}:latest")))
    rejected = getattr(metrics, "routing_rejected", None)
    watcher = RoutingTableFile(
        settings.routing_table,
        interval=settings.routing_reload_seconds,
        on_change=lambda t: models.ensure(t.model_tags()),
        on_reject=rejected.inc if rejected is not None else None,
    )
    watcher.start()
    closers.append(watcher.stop)
    return watcher


def _shadow(
    settings: Settings,
    routing: RoutingTableFile | StaticRouting,
    metrics: Any,
    feature_names: list[str],
    in_thread: ShadowScorer,
) -> ShadowSocket | ShadowProcess | ShadowQueue:
    """The shadow runner the settings ask for (see :mod:`augur.serving._shadow`)."""
    on_drop = metrics.shadow_dropped.inc if metrics is not None else None
    if settings.shadow_socket is not None:
        return ShadowSocket(settings.shadow_socket, on_drop=on_drop)
    if not settings.shadow_process:
        queue = ShadowQueue(in_thread.score, settings.shadow_queue_size, on_drop)
        queue.start()
        return queue
    process = ShadowProcess(
        functools.partial(shadow_scorer, feature_names), settings.shadow_queue_size, on_drop
    )
    if routing.table.shadow is not None:
        process.start([routing.table.shadow.model_tag])
    if isinstance(routing, RoutingTableFile):
        # A reloaded table may bring the first shadow: the process starts then.
        load_models = routing.on_change

        def on_change(table: RoutingTable) -> None:
            if load_models is not None:
                load_models(table)
            if table.shadow is not None:
                process.start([table.shadow.model_tag])

        routing.on_change = on_change
    return process


def shadow_scorer(feature_names: list[str], settings: Settings | None = None) -> ShadowScorer:
    """The scorer of the shadow's process or container: its own model store reads,
    prediction log and metrics (Prometheus multiprocess files locally, so its counts show
    on the service's ``/metrics``)."""
    from augur.decision import DecisionConfig, decide
    from augur.serving._telemetry import default_metrics

    settings = settings or get_settings()
    models = ModelRegistry(
        model_store_loader(None),
        feature_names,
        DecisionConfig(),
        # The service's decision overrides apply to the shadow's decisions too.
        overrides=settings.decision_overrides,
    )
    prediction_log = open_prediction_log(settings)
    metrics = default_metrics()
    # The shadow version's member weights, as outcomes move them (its own thread here).
    weights = _shared_weights(settings, prediction_log, models, metrics)
    if weights is not None:
        weights.start()
    rules = load_rules(settings)
    return ShadowScorer(
        models,
        functools.partial(decide, rules=rules) if rules is not None else decide,
        prediction_log,
        metrics,
        scorer=_member_logging_scorer(weights),
        weights=weights,
    )


__all__ = ["ServingApp", "build_service", "open_prediction_log", "shadow_scorer"]
