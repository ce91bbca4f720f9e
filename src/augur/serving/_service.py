"""Composition root of the decision service: settings → feature reader, models, routing,
prediction log, drift monitor, shadow queue, metrics, tracer → the ASGI app.

The Bento (``bentos/decision/service.py``) calls :func:`build_service` once per worker in
its ``__init__``; tests and the benchmark call it with their own parts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from augur.config import Settings, get_settings
from augur.serving._asgi import DecisionApp
from augur.serving._auth import BearerAuth, load_auth
from augur.serving._openapi import openapi_document
from augur.serving._pipeline import DecisionPipeline, FeatureReader, ModelRegistry, StaticRouting
from augur.serving._routing import RoutingTable, RoutingTableFile
from augur.serving._shadow import ShadowProcess, ShadowQueue

log = logging.getLogger(__name__)


@dataclass
class DecisionService:
    """The wired service: the ASGI app, its auth and the parts to close at shutdown."""

    app: DecisionApp
    auth: BearerAuth
    pipeline: DecisionPipeline
    _closers: list[Callable[[], None]] = field(default_factory=list)

    def ready(self) -> bool:
        """Every version of the routing table in force is loaded."""
        return all(t in self.pipeline.models for t in self.pipeline.routing.table.model_tags())

    def close(self) -> None:
        """Stop the watcher and the shadow worker, flush the prediction log."""
        for close in reversed(self._closers):
            try:
                close()
            except Exception:
                log.exception("closing the decision service")
        self._closers.clear()


def resolve_tag(tag: str) -> str:
    """``name:latest`` (or a bare name) → the concrete tag in the model store
    (``BENTOML_HOME``, else ``<home>/bentoml``)."""
    from augur.models._store import _get

    return str(_get(tag, None).tag)


def bentoml_loader(drift: Any = None) -> Callable[[str], Any]:
    """Load an ensemble from the BentoML model store; register its drift reference."""

    def load(tag: str) -> Any:
        from augur.models import load_ensemble
        from augur.models._store import _get

        model = load_ensemble(tag)
        if drift is not None:
            from augur.monitoring import load_reference

            reference = load_reference(_get(tag, None).path)
            if reference is not None:
                drift.set_reference(tag, reference)
        return model

    return load


def service_log(settings: Settings, on_drop: Callable[[], None] | None = None) -> Any:
    """The serving prediction log: ``AUGUR_PREDICTION_LOG_URL`` (else SQLite under the
    home), its writer at ``AUGUR_PREDICTION_LOG_WRITER_PRIORITY``."""
    from augur.monitoring import PredictionLog, default_log_url

    return PredictionLog(
        default_log_url(settings),
        writer_priority=settings.prediction_log_writer_priority,
        on_drop=on_drop,
    )


def build_service(
    settings: Settings | None = None,
    *,
    features: FeatureReader | None = None,
    loader: Callable[[str], Any] | None = None,
    decide: Callable[..., Any] | None = None,
    decision_config: Any = None,
    prediction_log: Any = "default",
    drift: Any = "default",
    metrics: Any = "default",
    routing_table: RoutingTable | None = None,
    examples: dict[str, dict[str, Any]] | None = None,
    shadow_worker: bool = True,
) -> DecisionService:
    """Wire the service from settings; any part can be passed in instead (tests, benchmark).

    ``prediction_log``/``drift``/``metrics``: ``"default"`` builds the real one from the
    settings, ``None`` turns it off. ``routing_table`` fixes the table (no file watching);
    else ``settings.routing_table`` is watched, else everything goes to
    ``<model_name>:latest`` resolved in the model store.
    """
    settings = settings or get_settings()
    closers: list[Callable[[], None]] = []
    try:
        return _wire(
            settings,
            closers,
            features,
            loader,
            decide,
            decision_config,
            prediction_log,
            drift,
            metrics,
            routing_table,
            examples,
            shadow_worker,
        )
    except BaseException:
        # Stop what was already started (threads, the log) before reporting the failure.
        DecisionService(app=None, auth=BearerAuth(), pipeline=None, _closers=closers).close()  # type: ignore[arg-type]
        raise


def _wire(
    settings: Settings,
    closers: list[Callable[[], None]],
    features: FeatureReader | None,
    loader: Callable[[str], Any] | None,
    decide: Callable[..., Any] | None,
    decision_config: Any,
    prediction_log: Any,
    drift: Any,
    metrics: Any,
    routing_table: RoutingTable | None,
    examples: dict[str, dict[str, Any]] | None,
    shadow_worker: bool,
) -> DecisionService:
    auth = load_auth(settings)  # first: a bad token file fails the start, naming the variable
    if metrics == "default":
        from augur.serving._telemetry import default_metrics

        metrics = default_metrics()
    if prediction_log == "default":
        prediction_log = service_log(
            settings, on_drop=metrics.log_dropped.inc if metrics is not None else None
        )
    if prediction_log is not None:
        closers.append(prediction_log.close)
    if drift == "default":
        from augur.monitoring import DriftGauges, DriftMonitor

        drift = DriftMonitor(
            window=settings.drift_window,
            # A recompute (KS + Mann-Whitney + PSI per feature) costs ~0.2 s of CPU in the
            # worker: at most once per window of fresh rows, else under load it took a
            # quarter of a worker (measured at 125 req/s with the 100-row default).
            update_every=max(settings.drift_update_rows, settings.drift_window),
            update_seconds=settings.drift_update_seconds,
            min_interval_seconds=settings.drift_min_interval_seconds,
            gauges=DriftGauges.default(),
            log=prediction_log,
        )
        drift.start()
        closers.append(drift.stop)
    if features is None:
        from augur.serving._features import OnlineFeatureReader

        reader = OnlineFeatureReader(settings)
        closers.append(reader.close)
        features = cast(FeatureReader, reader)
    if decide is None:
        from augur.decision import decide as decide_fn

        decide = decide_fn
    if decision_config is None:
        from augur.decision import DecisionConfig

        decision_config = DecisionConfig()
    if settings.decision_overrides:
        log.info("decision overrides for every version: %s", settings.decision_overrides)
    models = ModelRegistry(
        loader or bentoml_loader(drift),
        features.feature_names,
        decision_config,
        overrides=settings.decision_overrides,
    )
    routing: RoutingTableFile | StaticRouting
    if routing_table is not None:
        routing = StaticRouting(routing_table)
    elif settings.routing_table is not None:
        watcher = RoutingTableFile(
            settings.routing_table,
            interval=settings.routing_reload_seconds,
            on_change=lambda t: models.ensure(t.model_tags()),
        )
        watcher.start()
        closers.append(watcher.stop)
        routing = watcher
    else:
        routing = StaticRouting(RoutingTable.single(resolve_tag(f"{settings.model_name}:latest")))
    shadow: ShadowQueue | ShadowProcess | None = None
    if shadow_worker:
        on_drop = metrics.shadow_dropped.inc if metrics is not None else None
        if settings.shadow_process:
            shadow = ShadowProcess(
                features.feature_names,
                settings.shadow_queue_size,
                on_drop=on_drop,
                cpu_budget=settings.shadow_cpu_budget,
                min_spare_cpu=settings.shadow_min_spare_cpu,
            )
            if routing.table.shadow is not None:
                shadow.start([routing.table.shadow.model_tag])
            if isinstance(routing, RoutingTableFile):
                # A reloaded table may bring the first shadow: start the process then.
                process, load_models = shadow, routing.on_change

                def on_change(table: RoutingTable) -> None:
                    if load_models is not None:
                        load_models(table)
                    if table.shadow is not None:
                        process.start([table.shadow.model_tag])

                routing.on_change = on_change
        else:
            shadow = ShadowQueue(settings.shadow_queue_size, on_drop=on_drop)
            shadow.start()
        closers.append(shadow.stop)
    from augur.serving._telemetry import make_tracer

    pipeline = DecisionPipeline(
        features=features,
        models=models,
        routing=routing,
        decide=decide,
        max_feature_age_seconds=settings.max_feature_age_seconds,
        bar_seconds=settings.bar_seconds,
        prediction_log=prediction_log,
        drift=drift,
        shadow=shadow,
        metrics=metrics,
        tracer=make_tracer(settings.otlp_endpoint),
        prediction_cache_size=settings.prediction_cache_size,
        routing_key=settings.routing_key,
    )
    app = DecisionApp(
        pipeline,
        max_body_bytes=settings.max_body_bytes,
        max_batch_symbols=settings.max_batch_symbols,
        retry_after_seconds=settings.store_retry_after_seconds,
        metrics=metrics,
        openapi=openapi_document(examples),
    )
    return DecisionService(app=app, auth=auth, pipeline=pipeline, _closers=closers)


class _NoFeatures:
    """The shadow process's feature reader: it gets features with each task, never reads."""

    def __init__(self, names: list[str]) -> None:
        self.feature_names = names

    def get(self, symbols: Any) -> Any:
        raise RuntimeError("the shadow process scores the features it is sent")


def shadow_pipeline(
    settings: Settings, feature_names: list[str], model_tags: list[str]
) -> DecisionPipeline:
    """The pipeline a shadow process scores mirrored requests with (its own model store
    reads, prediction log and Prometheus files; see :class:`ShadowProcess`)."""
    from augur.decision import DecisionConfig
    from augur.decision import decide as decide_fn
    from augur.serving._telemetry import default_metrics

    features = _NoFeatures(feature_names)
    # The service's decision overrides apply to the shadow's decisions as to the primary's.
    models = ModelRegistry(
        bentoml_loader(None),
        feature_names,
        DecisionConfig(),
        overrides=settings.decision_overrides,
    )
    return DecisionPipeline(
        features=cast(FeatureReader, features),
        models=models,
        routing=StaticRouting(RoutingTable.single(model_tags[0])),
        decide=decide_fn,
        max_feature_age_seconds=settings.max_feature_age_seconds,
        bar_seconds=settings.bar_seconds,
        # Its writer thread was started before the process dropped to idle priority (a
        # thread's priority is its own on Linux): it asks for idle itself, or its bursts
        # of SQLite work would take a core from the workers (shadow p99 +43 % measured).
        prediction_log=service_log(settings),
        metrics=default_metrics(),
        prediction_cache_size=settings.prediction_cache_size,
    )


__all__ = [
    "DecisionService",
    "bentoml_loader",
    "build_service",
    "resolve_tag",
    "shadow_pipeline",
]
