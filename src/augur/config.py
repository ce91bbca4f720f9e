"""Typed settings for every Augur process.

Loaded once per process (in the CLI callback, the Bento's ``__init__``, the tuning
``main()``, the kopf startup handler) from environment variables with the ``AUGUR_``
prefix. Every field carries its own description; a bad value fails at start and
pydantic names the variable.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, get_type_hints

from pydantic import Field, SecretStr, TypeAdapter, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from augur.decision import DecisionConfig


class Settings(BaseSettings):
    """Process-wide settings. Environment: ``AUGUR_<FIELD>`` (e.g. ``AUGUR_HOME``)."""

    model_config = SettingsConfigDict(env_prefix="AUGUR_", extra="ignore")

    # --- where things live ------------------------------------------------------------
    home: Path = Field(
        default=Path(".augur"),
        description="Working directory for bars, offline features, the Feast registry, "
        "the online SQLite store, the model store and reports.",
    )
    feature_repo: Path = Field(
        default=Path("feature_repo"),
        description="The Feast repository (definitions + feature_store.yaml).",
    )

    # --- features ---------------------------------------------------------------------
    windows: list[int] = Field(
        default=[5, 10, 20, 50],
        description="Rolling windows (in bars) of the feature set, e.g. '[5,10,20,50]'.",
    )
    label_horizon: int = Field(
        default=5, ge=1, description="Bars ahead over which the label's forward return is taken."
    )
    label_dead_zone: float = Field(
        default=0.25,
        ge=0.0,
        description="Half-width of the 'flat' label band, in units of the forward-return "
        "volatility (sigma * sqrt(horizon)).",
    )

    # --- online store -----------------------------------------------------------------
    online_store: Literal["sqlite", "redis"] = Field(
        default="sqlite", description="Feast online store: 'sqlite' (one machine) or 'redis'."
    )
    redis_url: str = Field(
        default="localhost:6379",
        description="Redis connection string for the Feast Redis online store (host:port[,db=N]).",
    )
    feature_cache: bool = Field(
        default=True,
        description="Serving only, Redis only: keep read feature rows in the worker, dropped "
        "the moment Redis announces a write to them (server-assisted client-side caching, "
        "CLIENT TRACKING). Off: every request reads Redis.",
    )
    feature_timeout_seconds: float = Field(
        default=0.25,
        gt=0,
        description="Serving only, Redis only: how long a request waits for Redis to answer "
        "its feature read, or a read or write of its account (account_id). A call that "
        "misses it is answered 503 with Retry-After, and for the next second requests "
        "that need that store fail at once (503) instead of queueing "
        "behind a slow store; then one read tries again. A worker answers one batch at a "
        "time, so this bounds how long every request behind a slow read waits.",
    )

    # --- models -----------------------------------------------------------------------
    model_name: str = Field(
        default="augur-ensemble", description="Name of the ensemble in the BentoML model store."
    )

    # --- monitoring -------------------------------------------------------------------
    prediction_log_url: str = Field(
        default="",
        description="SQLAlchemy URL of the prediction/outcome log, e.g. "
        "'postgresql+psycopg://user@host/augur'. Empty: SQLite at "
        "<home>/serving/predictions.db.",
    )
    prediction_log_writer_priority: Literal["idle", "normal"] = Field(
        default="idle",
        description="Serving only: 'idle' writes the prediction log on Linux's idle CPU "
        "priority (SCHED_IDLE), so its batches never take a core from a request; a writer "
        "that falls a quarter of its buffer behind returns to normal priority where the "
        "system allows it (CAP_SYS_NICE). 'normal': the writer competes with the requests.",
    )
    drift_window: int = Field(
        default=500,
        ge=50,
        description="Recently served feature rows kept per model version for drift tests.",
    )
    drift_update_rows: int = Field(
        default=100,
        ge=1,
        description="Recompute drift statistics after this many newly served rows ...",
    )
    drift_update_seconds: float = Field(
        default=30.0,
        gt=0,
        description="... or after this many seconds, whichever comes first.",
    )
    drift_min_interval_seconds: float = Field(
        default=10.0,
        ge=0,
        description="Never recompute drift more often than this (a recompute takes a worker's "
        "CPU; under load, rows arrive far faster than drift can change).",
    )

    # --- serving ----------------------------------------------------------------------
    routing_table: Path | None = Field(
        default=None,
        description="Routing table file (YAML or JSON: versions with weights, optional shadow), "
        "re-read when it changes. Unset: every request goes to <model_name>:latest.",
    )
    routing_reload_seconds: float = Field(
        default=1.0, gt=0, description="How often the service checks the routing table file."
    )
    routing_key: Literal["request", "symbol"] = Field(
        default="request",
        description="What splits traffic between the routing table's versions: 'request' — "
        "the request's routing_key, else its symbol; 'symbol' — always the symbol, whatever "
        "routing_key a client sends (pins each symbol to one version).",
    )
    rule_set_file: Path | None = Field(
        default=None,
        description="A decision-rule file (augur.rules: plain rule text or a versioned "
        "rule-set YAML) applied to every version's entries after the risk controls; checked "
        "at start (`augur rules check FILE`). Unset: no rules.",
    )
    decision_overrides: dict[str, Any] = Field(
        default_factory=dict,
        description="JSON object of augur.decision.DecisionConfig fields that override every "
        "served version's own decision thresholds, e.g. "
        '\'{"confidence_threshold": 0.4, "max_drawdown": 0.15}\'; fields not named keep the '
        "version's. Empty ('{}'): each version's own.",
    )
    correlation_window: int = Field(
        default=250,
        ge=0,
        description="The last bar times whose 1-bar returns give each symbol pair's "
        "correlation (correlated symbols share max_correlated_exposure), computed by "
        "`augur features materialize` and `push` into the online store. 0: none computed, "
        "and the service counts symbols as uncorrelated.",
    )
    correlation_min_bars: int = Field(
        default=30,
        ge=2,
        description="Fewest common bars in that window for a pair to have a correlation "
        "(fewer: uncorrelated).",
    )
    correlation_refresh_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Serving: how often a worker re-reads the correlation matrix from the "
        "online store (an unreachable store keeps the last one read).",
    )
    serving_token: str = Field(
        default="",
        description="Bearer token every endpoint except health/readiness requires. Empty: no "
        "auth (unless serving_token_file is set). Never logged.",
    )
    serving_token_file: Path | None = Field(
        default=None,
        description="File holding the bearer token(s) (a mounted Kubernetes Secret): one "
        "token, or lines 'caller=token' to name callers in the audit log.",
    )
    max_feature_age_seconds: float = Field(
        default=3 * 3600.0,
        gt=0,
        description="Features older than this (relative to the request's as_of, default now) "
        "give no_action with reason stale_features.",
    )
    bar_seconds: float = Field(
        default=3600.0, gt=0, description="Bar length in seconds (turns opened_at into bars held)."
    )
    max_body_bytes: int = Field(
        default=64 * 1024, ge=1024, description="Largest accepted request body (else 413)."
    )
    max_batch_symbols: int = Field(
        default=256, ge=1, description="Most symbols one /decide_batch call may ask for."
    )
    shadow_queue_size: int = Field(
        default=1024,
        ge=1,
        description="Shadow scoring jobs waiting at most; more are dropped and counted.",
    )
    shadow_process: bool = Field(
        default=True,
        description="Score shadow traffic in a child process at the lowest CPU priority "
        "(never competes with requests for the worker's GIL). False: a thread in the worker.",
    )
    shadow_socket: Path | None = Field(
        default=None,
        description="In a cluster: the Unix socket of the pod's shadow container (augur "
        "serve-shadow), on a volume both containers mount. Set: mirrored requests are sent "
        "there, and the shadow's CPU is bounded by its container's limit. Unset: "
        "AUGUR_SHADOW_PROCESS decides.",
    )
    shadow_metrics_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="augur serve-shadow: port of its Prometheus /metrics (the shadow's "
        "decisions and their agreement with the primary's). 0: none.",
    )
    prediction_cache_size: int = Field(
        default=4096,
        ge=0,
        description="Ensemble outputs remembered per worker, keyed by model version and "
        "feature row (features change once per bar; the ensemble is a pure function of "
        "them), and each row's completeness check and digest. 0: score and check every "
        "request.",
    )
    decide_batch_max: int = Field(
        default=32,
        ge=1,
        description="Most /decide requests a worker answers together: the requests that "
        "arrive while it is busy share one feature read and one ensemble call per model "
        "version. 1: each request alone.",
    )
    store_retry_after_seconds: int = Field(
        default=2, ge=1, description="Retry-After sent with a 503 when the online store is down."
    )
    otlp_endpoint: str = Field(
        default="",
        description="OTLP/HTTP traces endpoint (e.g. http://collector:4318/v1/traces). Empty: "
        "tracing off (no exporter, no cost).",
    )
    serving_workers: int = Field(
        default=2, ge=1, description="BentoML worker processes of the decision service."
    )
    clock: Literal["system", "feed"] = Field(
        default="system",
        description="The time decisions are made at: 'system' (the machine's clock) or 'feed' "
        "(the newest bar the stream consumer has applied, read from the stream's Redis): "
        "staleness is then measured against the feed, so a replayed history decides live.",
    )

    # --- live bars: `augur stream` ----------------------------------------------------
    stream_url: str = Field(
        default="",
        description="Redis holding the bar stream, its dead letters and the feed clock "
        "(host:port[,db=N]). Empty: AUGUR_REDIS_URL.",
    )
    stream_key: str = Field(default="augur:bars", description="The Redis Stream of bars.")
    stream_group: str = Field(
        default="augur-features",
        description="Consumer group of the feature consumers (each bar goes to one of them).",
    )
    stream_dead_letter_key: str = Field(
        default="augur:bars:dead",
        description="Stream of the bars a rule refused, each with the rule and the reason.",
    )
    stream_batch: int = Field(
        default=500,
        ge=1,
        le=100_000,
        description="Most bars a consumer holds unacknowledged at once (read per round trip "
        "and in flight): the backpressure bound.",
    )
    stream_block_ms: int = Field(
        default=1000,
        ge=1,
        description="How long a consumer's read waits for new bars before it looks at its "
        "pending ones and its stop signal again.",
    )
    stream_flush_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How often the bars applied online are appended to the parquet bars "
        "dataset (and their returns to the correlation store).",
    )
    stream_claim_idle_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A bar another consumer has held unacknowledged this long (it died) is "
        "claimed and applied by a live one.",
    )
    stream_maxlen: int = Field(
        default=1_000_000,
        ge=1000,
        description="Publishing trims the bar stream to about this many entries.",
    )
    stream_metrics_port: int = Field(
        default=9102,
        ge=0,
        le=65535,
        description="Port of the consumer's Prometheus /metrics (0: none).",
    )

    # --- Kubernetes operator (`augur operator run`) ------------------------------------
    operator_resync_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Operator: reconcile every DecisionService and TuningJob this often even "
        "without an event (repairs children edited or deleted by hand, picks up Secrets "
        "created later).",
    )
    operator_priority: int = Field(
        default=0,
        ge=0,
        description="Operator: kopf peering priority. Of the replicas sharing a peering, only "
        "the one with the highest priority acts; equal priorities all freeze (kopf's rule), "
        "so 0 picks a random one per process.",
    )
    operator_peering: str = Field(
        default="augur",
        description="Operator: name of the ClusterKopfPeering the replicas share ('' = "
        "standalone, no peering).",
    )
    operator_health_port: int = Field(
        default=8080, ge=0, le=65535, description="Operator: port of /healthz (0 = none)."
    )
    operator_serving_env: dict[str, str] = Field(
        default_factory=dict,
        description="Operator: environment variables added to every serving and shadow "
        "container it renders, as a JSON object, e.g. the tracing settings the Helm chart "
        'passes: \'{"AUGUR_OTLP_ENDPOINT": "http://collector:4318/v1/traces"}\'. A variable '
        "the operator sets itself (AUGUR_ROUTING_TABLE, …) keeps the operator's value.",
    )

    # --- decision rules: `augur rules evolve` -----------------------------------------
    llm_base_url: str = Field(
        default="",
        description="Base URL of the OpenAI-compatible chat-completions API that proposes "
        "rule sets, e.g. 'http://localhost:11434/v1'. Empty: OpenAI's.",
    )
    llm_api_key: SecretStr = Field(
        default=SecretStr(""),
        description="API key for that endpoint (any non-empty value for a local server that "
        "needs none). Empty: the deterministic local proposer. Never logged.",
    )
    llm_model: str = Field(default="gpt-4o-mini", description="The model asked for rule sets.")
    llm_timeout_seconds: float = Field(
        default=60.0, gt=0, description="Timeout of each request to the model."
    )
    llm_max_retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description="Retries of a request that timed out or got 429/5xx (the openai "
        "client's exponential backoff).",
    )
    llm_max_output_tokens: int = Field(
        default=4000, ge=100, description="Most tokens the model may answer with per round."
    )
    llm_input_cost_per_million: float = Field(
        default=0.0, ge=0, description="Price of a million prompt tokens (cost accounting)."
    )
    llm_output_cost_per_million: float = Field(
        default=0.0, ge=0, description="Price of a million completion tokens."
    )
    llm_breaker_failures: int = Field(
        default=3,
        ge=1,
        description="Failed rounds in a row after which the model is not asked (the circuit "
        "opens) and the local proposer answers.",
    )
    llm_breaker_cooldown_seconds: float = Field(
        default=300.0, gt=0, description="How long the circuit stays open before one retry."
    )
    rules_candidates: int = Field(
        default=5, ge=1, le=50, description="Candidate rule sets asked for per round."
    )
    rules_rounds: int = Field(
        default=1,
        ge=1,
        le=20,
        description="Proposal rounds per evolution; each round is told the last ones' figures.",
    )
    rules_margin: float = Field(
        default=0.05,
        ge=0,
        description="How much a candidate's out-of-sample composite must beat the "
        "incumbent's by (search part, averaged over symbols).",
    )
    rules_max_drawdown_worsening: float = Field(
        default=1.0,
        ge=0,
        description="Most a candidate may deepen any symbol's maximum drawdown, in "
        "percentage points.",
    )
    rules_holdout_fraction: float = Field(
        default=0.3,
        gt=0,
        lt=0.9,
        description="Share of the latest out-of-sample bars kept as the final hold-out: "
        "never shown to a proposer nor used by the gate, only reported.",
    )
    rules_min_trades: int = Field(
        default=10,
        ge=0,
        description="Fewest trades (all symbols, search part) a candidate needs to be judged.",
    )
    rules_ci_level: float = Field(
        default=0.90,
        gt=0.5,
        lt=1.0,
        description="Level of the gate's block-bootstrap interval, before it is raised for "
        "the number of candidates (Bonferroni).",
    )
    rules_bootstrap_reps: int = Field(
        default=1000, ge=100, description="Bootstrap replicates of the gate's interval."
    )

    # --- misc -------------------------------------------------------------------------
    seed: int = Field(default=7, description="Seed for every random choice (reproducible runs).")

    @field_validator("operator_serving_env")
    @classmethod
    def _serving_env_names(cls, v: dict[str, str]) -> dict[str, str]:
        import re

        bad = [k for k in v if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k)]
        if bad:
            raise ValueError(f"AUGUR_OPERATOR_SERVING_ENV: not variable names: {bad}")
        return v

    @field_validator("windows")
    @classmethod
    def _windows_positive(cls, v: list[int]) -> list[int]:
        if not v or any(w < 2 for w in v):
            raise ValueError("AUGUR_WINDOWS must be a non-empty list of integers >= 2")
        return sorted(set(v))

    @field_validator("decision_overrides")
    @classmethod
    def _decision_overrides_valid(cls, v: dict[str, Any]) -> dict[str, Any]:
        """Each value typed as DecisionConfig types it (strict: a JSON string or number
        where a flag belongs would otherwise pass as truthy), then the whole on top of the
        default config, which checks names and ranges. A version's own config may still
        clash with them (e.g. its drawdown_scale_start at or above an overridden
        max_drawdown): loading that version then fails, naming it."""

        def bad(detail: str) -> ValueError:
            return ValueError(f"AUGUR_DECISION_OVERRIDES={json.dumps(v, default=repr)}: {detail}")

        hints = get_type_hints(DecisionConfig)
        typed: dict[str, Any] = {}
        for name, value in v.items():
            if name not in hints:
                continue  # from_dict names every unknown key below
            try:
                typed[name] = TypeAdapter(hints[name]).validate_python(value, strict=True)
            except ValidationError as exc:
                raise bad(f"{name}={value!r}: {exc.errors()[0]['msg']}") from None
        try:
            DecisionConfig.from_dict({**DecisionConfig().to_dict(), **v, **typed})
        except (TypeError, ValueError) as exc:
            raise bad(str(exc)) from None
        return typed

    @property
    def bars_dir(self) -> Path:
        """Parquet dataset of bars, partitioned by symbol."""
        return self.home / "data" / "bars"

    @property
    def features_dir(self) -> Path:
        """Offline feature parquet (the Feast FileSource reads it)."""
        return self.home / "features"

    @property
    def models_dir(self) -> Path:
        """BentoML model store (BENTOML_HOME) for this Augur home."""
        return self.home / "bentoml"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def stream_redis_url(self) -> str:
        """The Redis of the bar stream: ``stream_url``, else ``redis_url``."""
        return self.stream_url or self.redis_url

    @property
    def rules_dir(self) -> Path:
        """The rule set in force (incumbent.yaml) and every version the gate let in."""
        return self.home / "rules"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, loaded once."""
    return Settings()
