"""Feast wiring: offline feature parquet, apply, materialize, push, online read, training set.

The feature repository (``feature_repo/definitions.py``) declares the Feast objects; its
schema comes from :class:`~augur.features.FeatureSpec` (never a hand-written list). This
module builds the ``RepoConfig`` from :class:`~augur.config.Settings`, so every path
follows ``AUGUR_HOME``:

- offline features: ``<home>/features/bar_features.parquet``
- registry: ``<home>/feast/<online store>/registry.db`` (one per online store, so the
  materialisation watermark of SQLite never hides rows from Redis and vice versa)
- SQLite online store: ``<home>/feast/sqlite/online.db``

Materialising and pushing also keep the symbols' return correlations in the online
store (:mod:`augur.features.correlations`), where the decision service reads them.

Feast is imported inside functions: importing :mod:`augur.features` stays cheap.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from augur.config import Settings, get_settings
from augur.features.correlations import (
    RETURN_FEATURE,
    CorrelationStore,
    RedisCorrelationStore,
    SqliteCorrelationStore,
    add_returns,
    keep_correlations,
)
from augur.features.spec import FeatureSpec

if TYPE_CHECKING:
    from feast import FeatureStore, Field, RepoConfig

log = logging.getLogger(__name__)

PROJECT = "augur"
ENTITY = "symbol"
FEATURE_VIEW = "bar_features"
SOURCE = "bar_features_source"
PUSH_SOURCE = "bar_features_push_source"
FEATURE_SERVICE = "decision_v1"
# How far back a point-in-time join may look for a symbol's last feature row. Longer than
# any market closure in the sample data (a week around 9/11), shorter than a stale quote.
FEATURE_TTL = timedelta(days=30)

OnlineStoreKind = Literal["sqlite", "redis"]


class FeatureStoreError(RuntimeError):
    """The feature store is not set up as needed (say which command to run)."""


class UnknownSymbolError(KeyError):
    """A symbol has no row in the online store."""

    def __init__(self, symbols: Sequence[str]) -> None:
        self.symbols = list(symbols)
        super().__init__(
            f"no online features for {self.symbols}: import bars for them and run "
            "`augur features build`, `apply`, `materialize` (or `push`)"
        )

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class OnlineStoreUnavailable(ConnectionError):
    """The online store (Redis, SQLite file) cannot be reached."""


# ----------------------------------------------------------------------------- paths


def offline_features_path(settings: Settings | None = None) -> Path:
    """The parquet file the Feast ``FileSource`` reads."""
    return (settings or get_settings()).features_dir / f"{FEATURE_VIEW}.parquet"


def feast_dir(settings: Settings | None = None, online_store: str | None = None) -> Path:
    """Registry (and SQLite online store) directory for one online store kind."""
    settings = settings or get_settings()
    return settings.home / "feast" / (online_store or settings.online_store)


def sqlite_online_path(settings: Settings | None = None) -> Path:
    """The SQLite online store's file (features and return correlations)."""
    return feast_dir(settings, "sqlite").resolve() / "online.db"


def repo_config(
    settings: Settings | None = None,
    online_store: OnlineStoreKind | None = None,
    redis_url: str | None = None,
) -> RepoConfig:
    """The Feast ``RepoConfig`` for these settings (what ``feature_store.yaml`` says, in code)."""
    from feast import RepoConfig
    from feast.repo_config import RegistryConfig

    settings = settings or get_settings()
    kind = online_store or settings.online_store
    base = feast_dir(settings, kind).resolve()
    online: dict[str, Any]
    if kind == "sqlite":
        online = {"type": "sqlite", "path": str(sqlite_online_path(settings))}
    elif kind == "redis":
        online = {"type": "redis", "connection_string": redis_url or settings.redis_url}
    else:
        raise ValueError(f"online store must be 'sqlite' or 'redis', not {kind!r}")
    return RepoConfig(
        project=PROJECT,
        provider="local",
        # cache_ttl_seconds=0: the registry is read once per FeatureStore and kept (the
        # service re-creates its store on a model or spec change, not per request).
        registry=RegistryConfig(path=str(base / "registry.db"), cache_ttl_seconds=0),
        online_store=online,
        offline_store={"type": "dask"},
        entity_key_serialization_version=3,
        repo_path=settings.feature_repo.resolve(),
    )


def feature_store(
    settings: Settings | None = None,
    online_store: OnlineStoreKind | None = None,
    redis_url: str | None = None,
) -> FeatureStore:
    """A Feast ``FeatureStore`` for these settings (registry and stores under AUGUR_HOME)."""
    from feast import FeatureStore

    config = repo_config(settings, online_store, redis_url)
    # Only writers need the folder; a reader (a serving pod) may have a read-only home.
    with contextlib.suppress(OSError):
        Path(config.registry.path).parent.mkdir(parents=True, exist_ok=True)
    return FeatureStore(config=config)


# ----------------------------------------------------------------------- definitions

_defining = threading.local()


def definition_settings() -> Settings:
    """Settings the feature repository is being evaluated with.

    ``feature_repo/definitions.py`` calls this at import: under :func:`apply` it gets the
    settings being applied, under the ``feast`` CLI the process's settings (AUGUR_ env).
    """
    return getattr(_defining, "settings", None) or get_settings()


def feast_schema(spec: FeatureSpec) -> list[Field]:
    """One Float64 Feast ``Field`` per feature of ``spec``, in spec order, with its description."""
    from feast import Field
    from feast.types import Float64

    return [Field(name=f.name, dtype=Float64, description=f.description) for f in spec.features]


def feature_refs(spec: FeatureSpec) -> list[str]:
    """Feast feature references (``bar_features:<name>``) in spec order."""
    return [f"{FEATURE_VIEW}:{name}" for name in spec.names]


#: The wheel's copy of ``feature_repo/`` (pyproject's force-include): what an image that
#: installed the wheel, and not the source tree, defines its features with.
PACKAGED_REPO = Path(__file__).resolve().parents[1] / "_feature_repo"


def definitions_path(settings: Settings) -> Path:
    """``<AUGUR_FEATURE_REPO>/definitions.py``; with the default (relative) repo absent
    from the working directory, the copy packaged with augur."""
    path = settings.feature_repo.resolve() / "definitions.py"
    if not path.is_file() and settings.feature_repo == Path("feature_repo"):
        packaged = PACKAGED_REPO / "definitions.py"
        if packaged.is_file():
            return packaged
    return path


def load_definitions(settings: Settings | None = None) -> list[Any]:
    """Evaluate ``feature_repo/definitions.py`` under ``settings``; return its Feast objects."""
    from feast import Entity, FeatureService, FeatureView
    from feast.data_source import DataSource

    settings = settings or get_settings()
    path = definitions_path(settings)
    if not path.is_file():
        raise FeatureStoreError(
            f"no Feast definitions at {path}: run from the project root or set "
            "AUGUR_FEATURE_REPO to the feature_repo directory"
        )
    module_spec = importlib.util.spec_from_file_location("_augur_feature_repo", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    _defining.settings = settings
    try:
        module_spec.loader.exec_module(module)
    finally:
        _defining.settings = None
    kinds = (Entity, DataSource, FeatureView, FeatureService)
    return [obj for obj in vars(module).values() if isinstance(obj, kinds)]


# --------------------------------------------------------------------- offline build


def _atomic_parquet(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def build_offline_features(
    settings: Settings | None = None,
    bars: pd.DataFrame | None = None,
    spec: FeatureSpec | None = None,
) -> pd.DataFrame:
    """Compute every feature for every bar and write the offline parquet (atomically).

    ``bars`` defaults to the whole bars dataset. Warm-up rows (NaN) are kept so a
    point-in-time join sees exactly what existed at each bar. Returns the feature frame.
    """
    from augur.data import read_bars
    from augur.features import compute_features

    settings = settings or get_settings()
    spec = spec or FeatureSpec.from_settings(settings)
    if bars is None:
        bars = read_bars(root=settings.bars_dir)
    if bars.empty:
        raise FeatureStoreError(
            f"no bars under {settings.bars_dir}: run `augur data sample` or `augur data import`"
        )
    frame = compute_features(bars, spec)
    _atomic_parquet(frame, offline_features_path(settings))
    return frame


# ------------------------------------------------------------- apply / materialize


def _require_offline(settings: Settings) -> Path:
    path = offline_features_path(settings)
    if not path.is_file():
        raise FeatureStoreError(f"no offline features at {path}: run `augur features build` first")
    return path


def apply(
    settings: Settings | None = None,
    online_store: OnlineStoreKind | None = None,
    redis_url: str | None = None,
) -> FeatureStore:
    """Register the repository's objects and create the online tables (idempotent)."""
    settings = settings or get_settings()
    _require_offline(settings)
    store = feature_store(settings, online_store, redis_url)
    with _reachable(online_store or settings.online_store):
        store.apply(load_definitions(settings))
    return store


@dataclass(frozen=True)
class MaterializeResult:
    """What a materialisation did: the interval and the offline rows it covered."""

    start: datetime
    end: datetime
    offline_rows: int
    symbols: int
    incremental: bool
    correlation_pairs: int | None = None  # None: correlations are turned off


def materialize(
    settings: Settings | None = None,
    online_store: OnlineStoreKind | None = None,
    redis_url: str | None = None,
    incremental: bool = False,
    store: FeatureStore | None = None,
) -> MaterializeResult:
    """Load each symbol's latest offline feature row into the online store.

    Full: over the whole span of the offline data. Incremental: from the last
    materialisation's end to now (the first run is a full one, because Feast's default
    start, now - ttl, would skip historical sample data).
    """
    settings = settings or get_settings()
    kind = online_store or settings.online_store
    store = store or feature_store(settings, kind, redis_url)
    offline = pd.read_parquet(
        _require_offline(settings), columns=["symbol", "timestamp", RETURN_FEATURE]
    )
    fv = _feature_view(store)
    first = pd.Timestamp(offline["timestamp"].min()).to_pydatetime()
    last = pd.Timestamp(offline["timestamp"].max()).to_pydatetime() + timedelta(seconds=1)
    done = fv.most_recent_end_time
    with _reachable(kind):
        if incremental and done is not None:
            end = max(datetime.now(UTC), last)
            start = done if done.tzinfo else done.replace(tzinfo=UTC)
            store.materialize_incremental(end_date=end, feature_views=[FEATURE_VIEW])
        else:
            start, end = first - timedelta(seconds=1), last
            store.materialize(start_date=start, end_date=end, feature_views=[FEATURE_VIEW])
        matrix = None
        if settings.correlation_window > 0:
            matrix = keep_correlations(
                _correlation_store(store),
                offline,
                settings.correlation_window,
                settings.correlation_min_bars,
            )
    ts = offline["timestamp"]
    covered = offline[(ts >= start) & (ts < end)]
    return MaterializeResult(
        start=start,
        end=end,
        offline_rows=len(covered),
        symbols=covered["symbol"].nunique(),
        incremental=incremental and done is not None,
        correlation_pairs=None if matrix is None else len(matrix),
    )


def _correlation_store(store: FeatureStore) -> CorrelationStore:
    """Where ``store``'s online store keeps the return correlations: its SQLite file, or
    its Redis through Feast's own client."""
    online = store.config.online_store
    if online.type == "redis":
        client = store._get_provider().online_store._get_client(online)  # type: ignore[attr-defined]
        return RedisCorrelationStore(client)
    return SqliteCorrelationStore(Path(online.path))


def _feature_view(store: FeatureStore, settings: Settings | None = None) -> Any:
    """The registered feature view. With ``settings`` and a Redis online store, one the
    registry lacks comes from the code's definitions instead: a serving pod reads Redis
    in Feast's key layout, which the definitions fix, and has no registry of its own."""
    from feast import FeatureView
    from feast.errors import FeatureViewNotFoundException

    try:
        return store.get_feature_view(FEATURE_VIEW)
    except FeatureViewNotFoundException:
        if settings is not None and store.config.online_store.type == "redis":
            views = [
                d
                for d in load_definitions(settings)
                if isinstance(d, FeatureView) and d.name == FEATURE_VIEW
            ]
            if views:
                log.info(
                    "feature view %r from the definitions: the registry has none", FEATURE_VIEW
                )
                return views[0]
        raise FeatureStoreError(
            f"feature view '{FEATURE_VIEW}' is not registered in {store.config.registry.path}: "
            "run `augur features apply` first"
        ) from None


@contextlib.contextmanager
def _reachable(kind: str) -> Iterator[None]:
    """Turn connection failures of the online store into :class:`OnlineStoreUnavailable`."""
    import sqlite3

    import redis

    try:
        yield
    except redis.exceptions.TimeoutError as exc:
        raise OnlineStoreUnavailable(f"the {kind} online store is too slow ({exc})") from exc
    except redis.exceptions.ConnectionError as exc:
        raise OnlineStoreUnavailable(
            f"the {kind} online store is unreachable ({exc}); check AUGUR_REDIS_URL / "
            "--redis-url and that redis-server is running"
        ) from exc
    except sqlite3.OperationalError as exc:
        raise OnlineStoreUnavailable(f"the {kind} online store cannot be used: {exc}") from exc


# --------------------------------------------------------------------------- push


def push_bar(
    symbol: str,
    bar: Mapping[str, Any],
    settings: Settings | None = None,
    online_store: OnlineStoreKind | None = None,
    redis_url: str | None = None,
    store: FeatureStore | None = None,
) -> pd.DataFrame:
    """Append one new bar to ``symbol``'s bars, recompute its latest features, push online.

    The bar is validated and appended atomically first (a bad bar changes nothing);
    features are recomputed from the last ``spec.max_lookback`` bars only, and the row's
    return joins the kept returns the correlation matrix is recomputed from. Returns the
    pushed one-row frame (``symbol``, ``timestamp``, features).
    """
    from feast.data_source import PushMode

    from augur.data import append_bar
    from augur.features import latest_features

    settings = settings or get_settings()
    spec = FeatureSpec.from_settings(settings)
    kind = online_store or settings.online_store
    store = store or feature_store(settings, kind, redis_url)
    _feature_view(store)  # fail before touching the bars if the repo is not applied
    history = append_bar(symbol, bar, settings.bars_dir)
    row = latest_features(history.tail(spec.max_lookback), spec)
    with _reachable(kind):
        store.push(PUSH_SOURCE, row, to=PushMode.ONLINE)
        if settings.correlation_window > 0:
            add_returns(
                _correlation_store(store),
                row,
                settings.correlation_window,
                settings.correlation_min_bars,
            )
    return row


# --------------------------------------------------------------------- online read


class OnlineFeatures:
    """Latest features per symbol from the online store, in spec order (request path).

    SQLite: reads through the Feast provider's ``online_read`` for the registered feature
    view (the call ``FeatureStore.get_online_features`` ends in, minus its per-call
    registry lookups and response building): one query per request. Redis: one ``HMGET``
    per symbol in Feast's own key layout, its hash fields computed once
    (:class:`~augur.features._redis_online.RedisFeatureReader`); with ``cache=True`` (the
    service) rows are kept until Redis announces a write to them.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        online_store: OnlineStoreKind | None = None,
        redis_url: str | None = None,
        spec: FeatureSpec | None = None,
        cache: bool = False,
        timeout: float | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.spec = spec or FeatureSpec.from_settings(self.settings)
        self.kind = online_store or self.settings.online_store
        self.store = feature_store(self.settings, self.kind, redis_url)
        fv = _feature_view(self.store, self.settings)
        registered = [f.name for f in fv.features]
        missing = [n for n in self.spec.names if n not in registered]
        if missing:
            raise FeatureStoreError(
                f"the registered feature view lacks {missing[:5]} (spec changed?): run "
                "`augur features build`, `apply` and `materialize`"
            )
        self._fv = fv
        self._names = list(self.spec.names)
        self._provider = self.store._get_provider()
        self._redis: Any = None
        if self.kind == "redis":
            self._redis = self._redis_reader(cache, timeout)

    def _redis_reader(self, cache: bool, timeout: float | None = None) -> Any:
        """Feast's Redis layout read directly (see :mod:`augur.features._redis_online`)."""
        from feast.infra.online_stores.redis import _versioned_fv_name

        from augur.features._redis_online import RedisFeatureReader

        config = self.store.config
        online_store = self._provider.online_store
        client = online_store._get_client(config.online_store)  # type: ignore[attr-defined]
        return RedisFeatureReader(
            client,
            project=config.project,
            feature_view=_versioned_fv_name(self._fv, config),
            entity=ENTITY,
            names=self._names,
            key_version=config.entity_key_serialization_version,
            # Only a plain Redis: with a cluster or sentinel every read goes to the server.
            cache=cache and str(config.online_store.redis_type.value) == "redis",
            timeout=timeout,
        )

    @property
    def caching(self) -> bool:
        """Whether rows are being served from the invalidation-tracked cache right now."""
        return self._redis is not None and self._redis.caching

    def cache_stats(self) -> tuple[bool, int, int]:
        """(caching now, hits, misses) of the Redis row cache; SQLite has none."""
        if self._redis is None:
            return False, 0, 0
        return self._redis.caching, self._redis.hits, self._redis.misses

    def close(self) -> None:
        """Stop the cache's invalidation listener (Redis)."""
        if self._redis is not None:
            self._redis.close()

    def get(self, symbols: Iterable[str]) -> dict[str, tuple[np.ndarray, datetime]]:
        """``{symbol: (features as float64 in spec order, feature timestamp)}``.

        Raises :class:`UnknownSymbolError` for symbols without a row and
        :class:`OnlineStoreUnavailable` when the store cannot be reached. A feature
        stored as missing comes back as NaN.
        """
        wanted = list(dict.fromkeys(symbols))
        if self._redis is not None:
            cached = self._redis.cached(wanted)
            if cached is not None:  # no Redis call, nothing that could fail
                return cached
            with _reachable(self.kind):
                found = self._redis.read(wanted)
            unknown_redis = [s for s, row in zip(wanted, found, strict=True) if row is None]
            if unknown_redis:
                raise UnknownSymbolError(unknown_redis)
            return {s: row for s, row in zip(wanted, found, strict=True) if row is not None}
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value

        keys = [EntityKey(join_keys=[ENTITY], entity_values=[Value(string_val=s)]) for s in wanted]
        with _reachable(self.kind):
            rows = self._provider.online_read(
                config=self.store.config,
                table=self._fv,
                entity_keys=keys,
                requested_features=list(self._names),
            )
        out: dict[str, tuple[np.ndarray, datetime]] = {}
        unknown = []
        for symbol, (ts, values) in zip(wanted, rows, strict=True):
            # Redis answers a missing key with empty values (and a 1970 timestamp).
            if ts is None or not values or not any(v.WhichOneof("val") for v in values.values()):
                unknown.append(symbol)
                continue
            vec = np.fromiter(
                (
                    values[n].double_val if values[n].HasField("double_val") else np.nan
                    for n in self._names
                ),
                dtype=np.float64,
                count=len(self._names),
            )
            out[symbol] = (vec, ts if ts.tzinfo else ts.replace(tzinfo=UTC))
        if unknown:
            raise UnknownSymbolError(unknown)
        return out


# -------------------------------------------------------------------- training set


# Feast's file (dask) offline store joins every entity row with every feature row of its
# symbol before the time filter, so one call costs entity rows x symbol rows of memory.
# Entity rows are sent in chunks whose joined size stays under this many rows (~1 GB).
JOIN_BUDGET_ROWS = 1_500_000


def training_set(
    settings: Settings | None = None,
    bars: pd.DataFrame | None = None,
    horizon: int | None = None,
    dead_zone: float | None = None,
    last: int | None = 200,
    online_store: OnlineStoreKind | None = None,
    redis_url: str | None = None,
    store: FeatureStore | None = None,
) -> pd.DataFrame:
    """A point-in-time-correct training set from Feast's ``get_historical_features``.

    The entity rows are the labels of :func:`~augur.features.make_labels` (decision time
    ``timestamp``, label known at ``label_time``), the last ``last`` per symbol (all when
    None); Feast joins each with the latest feature row at or before ``timestamp``
    (within ``FEATURE_TTL``). Same columns as :func:`~augur.features.training_frame`
    (which computes the same join directly, fast, for whole histories); rows with a NaN
    feature (warm-up) are dropped.
    """
    from augur.data import read_bars
    from augur.features import make_labels

    settings = settings or get_settings()
    spec = FeatureSpec.from_settings(settings)
    store = store or feature_store(settings, online_store, redis_url)
    _feature_view(store)
    if bars is None:
        bars = read_bars(root=settings.bars_dir)
    labels = make_labels(
        bars,
        horizon or settings.label_horizon,
        settings.label_dead_zone if dead_zone is None else dead_zone,
    )
    if last is not None:
        labels = labels.groupby("symbol", sort=False).tail(last)
    entity_df = labels.rename(columns={"timestamp": "event_timestamp"}).reset_index(drop=True)
    # Cost of each entity row in the dask join: the number of feature rows of its symbol.
    offline = pd.read_parquet(_require_offline(settings), columns=["symbol"])
    per_symbol = offline["symbol"].value_counts()
    cost = entity_df["symbol"].map(per_symbol).fillna(1).to_numpy()
    chunk_id = np.cumsum(cost) // JOIN_BUDGET_ROWS
    parts = [
        store.get_historical_features(entity_df=chunk, features=feature_refs(spec)).to_df()
        for _, chunk in entity_df.groupby(chunk_id, sort=True)
    ]
    joined = pd.concat(parts, ignore_index=True) if parts else entity_df.iloc[0:0]
    joined = joined.rename(columns={"event_timestamp": "timestamp"})
    joined = joined.dropna(subset=spec.names)
    columns = ["symbol", "timestamp", "label_time", *spec.names, "forward_return", "label"]
    out = joined[columns].sort_values(["symbol", "timestamp"], ignore_index=True)
    out["label"] = out["label"].astype(np.int8)
    return out


def write_training_set(frame: pd.DataFrame, path: Path) -> Path:
    """Write a training set to parquet atomically."""
    _atomic_parquet(frame, path)
    return path
