"""The request path's read of Feast's Redis online store: one ``HMGET`` per symbol in
Feast's own layout, and a client-side cache the Redis server keeps honest.

Feast's ``online_read`` rebuilds the request on every call (murmur3 of every
``view:feature`` name, entity-key serialisation) and returns one protobuf per feature;
for a single symbol that costs more than the Redis round trip. This reader computes the
hash fields and keys once, with Feast's own helpers (``_mmh3``, ``_redis_key``), so it
reads exactly what ``feast materialize`` / ``push`` wrote.

The cache: feature rows change once per bar, while decisions are asked for many times per
bar. Redis's server-assisted client-side caching (``CLIENT TRACKING ... BCAST``, Redis ≥ 6)
tells a subscribed connection the name of every key written under the Feast prefix; the
reader drops those entries, so a cached row is never older than the last write the server
has announced. redis-py 7 has this built in (``cache_config=``) but refuses servers older
than 7.4, and Debian's is 7.0, so the ~100 lines below do it by hand (RESP2 redirect to a
``__redis__:invalidate`` subscriber, as the Redis documentation describes).

Safety rules: a row is cached only if no invalidation for its key arrived while it was
being read (per-key generation counter); while the subscriber is not connected nothing
is cached and every read goes to Redis, so when Redis stops the next request sees it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

INVALIDATE_CHANNEL = b"__redis__:invalidate"


class InvalidationListener:
    """Background subscriber to Redis's key-invalidation messages for one key prefix.

    ``tracking`` is True only while the subscription and ``CLIENT TRACKING`` are both in
    place; ``on_invalidate(keys)`` gets the written keys (``None``: everything, e.g. after
    ``FLUSHDB`` or a lost connection).
    """

    def __init__(
        self,
        connection_kwargs: dict[str, Any],
        prefix: bytes,
        on_invalidate: Any,
        retry_seconds: float = 1.0,
    ) -> None:
        self._kwargs = {
            k: v
            for k, v in connection_kwargs.items()
            if k not in ("socket_timeout", "retry", "protocol", "cache", "cache_config")
        }
        self._prefix = prefix
        self._on_invalidate = on_invalidate
        self._retry = retry_seconds
        self._stop = threading.Event()
        self._ready = threading.Event()
        self.tracking = False
        self._thread = threading.Thread(target=self._run, name="redis-invalidations", daemon=True)

    def start(self, wait_seconds: float = 2.0) -> InvalidationListener:
        self._thread.start()
        self._ready.wait(wait_seconds)
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=3)

    def _connect(self) -> tuple[Any, Any]:
        import redis

        sub = redis.Connection(**self._kwargs, socket_timeout=5.0)
        sub.connect()
        sub.send_command("CLIENT", "ID")
        sub_id = sub.read_response()
        sub.send_command("SUBSCRIBE", INVALIDATE_CHANNEL)
        sub.read_response()  # the subscribe confirmation
        tracker = redis.Connection(**self._kwargs, socket_timeout=5.0)
        tracker.connect()
        tracker.send_command(
            "CLIENT", "TRACKING", "ON", "REDIRECT", sub_id, "BCAST", "PREFIX", self._prefix
        )
        reply = tracker.read_response()
        if reply not in (b"OK", "OK"):
            raise RuntimeError(f"CLIENT TRACKING refused: {reply!r}")
        return sub, tracker

    def _run(self) -> None:
        while not self._stop.is_set():
            sub = tracker = None
            try:
                sub, tracker = self._connect()
                # Rows read before the subscription may have changed unseen: start empty.
                self._on_invalidate(None)
                self.tracking = True
                self._ready.set()
                while not self._stop.is_set():
                    # Wait at most a second, so close() is noticed; a dead server shows up
                    # here as a readable socket whose read fails.
                    if not sub.can_read(timeout=1.0):
                        continue
                    msg = sub.read_response()
                    if isinstance(msg, list) and len(msg) == 3 and msg[0] == b"message":
                        keys = msg[2]
                        self._on_invalidate(None if keys is None else list(keys))
            except Exception as exc:  # connection lost, server gone, tracking refused
                if self.tracking:
                    log.warning("feature cache off: lost Redis invalidations (%s)", exc)
            finally:
                self.tracking = False
                self._on_invalidate(None)
                for conn in (sub, tracker):
                    if conn is not None:
                        with contextlib.suppress(Exception):
                            conn.disconnect()
                self._ready.set()
            self._stop.wait(self._retry)


def fail_fast(client: Any, timeout: float | None = None) -> None:
    """Make a redis-py client on the request path fail at once when Redis is gone, and
    within ``timeout`` seconds when it is slow.

    redis-py's default retries a failed command three times with a 1-10 s backoff: a
    worker that answers inline then holds every request behind it for seconds while Redis
    is down, instead of answering 503 with Retry-After. One immediate retry is kept (a
    pooled connection to a restarted server fails once, the next one connects). With a
    ``timeout`` (Feast's client has no socket timeout: a Redis that accepts connections
    but answers slowly, or never, held the worker as long), a read that misses it fails
    and is not retried: a retry would wait as long again.
    """
    set_retry = getattr(client, "set_retry", None)
    if set_retry is None:  # not a redis-py client (a test double)
        return
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.retry import Retry

    if timeout is None:
        set_retry(Retry(NoBackoff(), 1))
        return
    set_retry(Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)))
    pool = getattr(client, "connection_pool", None)
    if pool is not None:
        pool.connection_kwargs["socket_timeout"] = timeout
        pool.connection_kwargs.setdefault("socket_connect_timeout", max(timeout, 1.0))
        pool.reset()  # connections made before this one had no timeout


class RedisFeatureReader:
    """Latest feature vectors per symbol from Feast's Redis layout (see module docstring).

    ``read(symbols)`` returns, per symbol, ``(vector in ``names`` order, event time)`` or
    ``None`` when Redis has no row for it. Redis errors propagate (the caller maps them).
    """

    def __init__(
        self,
        client: Any,
        *,
        project: str,
        feature_view: str,
        entity: str,
        names: Sequence[str],
        key_version: int,
        cache: bool = True,
        cache_size: int = 4096,
        timeout: float | None = None,
        open_seconds: float = 1.0,
    ) -> None:
        from feast.infra.online_stores.helpers import _mmh3, _redis_key_prefix

        fail_fast(client, timeout)
        self._timeout = timeout
        # After a read missed ``timeout``, reads fail at once until this time (monotonic):
        # a worker answers one batch at a time, so each slow read would hold every
        # request queued behind it. The first read after it tries Redis again.
        self._open_seconds = open_seconds
        self._open_until = 0.0
        self._client = client
        self._project = project
        self._entity = entity
        self._key_version = key_version
        self._names = list(names)
        self._fields: list[bytes] = [_mmh3(f"{feature_view}:{n}") for n in self._names]
        self._fields.append(f"_ts:{feature_view}".encode())
        self._keys: dict[str, bytes] = {}
        self._rows: dict[bytes, tuple[np.ndarray, datetime]] = {}
        self._generation: dict[bytes, int] = {}
        self._epoch = 0  # bumped by a flush-everything invalidation
        self._lock = threading.Lock()
        self._cache_size = cache_size
        self.hits = 0
        self.misses = 0
        self._listener: InvalidationListener | None = None
        if cache:
            kwargs = dict(
                getattr(getattr(client, "connection_pool", None), "connection_kwargs", {})
            )
            if kwargs.get("host") is not None or kwargs.get("path") is not None:
                self._listener = InvalidationListener(
                    kwargs, _redis_key_prefix([entity]), self._invalidate
                ).start()

    @property
    def caching(self) -> bool:
        return self._listener is not None and self._listener.tracking

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()

    def _key(self, symbol: str) -> bytes:
        key = self._keys.get(symbol)
        if key is None:
            from feast.infra.online_stores.helpers import _redis_key
            from feast.protos.feast.types.EntityKey_pb2 import EntityKey
            from feast.protos.feast.types.Value_pb2 import Value

            ek = EntityKey(join_keys=[self._entity], entity_values=[Value(string_val=symbol)])
            key = self._keys[symbol] = _redis_key(self._project, ek, self._key_version)
        return key

    def _invalidate(self, keys: list[bytes] | None) -> None:
        with self._lock:
            if keys is None:
                self._rows.clear()
                self._epoch += 1
                return
            for k in keys:
                self._rows.pop(k, None)
                self._generation[k] = self._generation.get(k, 0) + 1

    def cached(self, symbols: Sequence[str]) -> dict[str, tuple[np.ndarray, datetime]] | None:
        """Every symbol's row from the cache, or None when one of them is not cached (or
        nothing is cached now): then :meth:`read` goes to Redis."""
        if not self.caching:
            return None
        out = {}
        for symbol in symbols:
            key = self._keys.get(symbol)
            row = self._rows.get(key) if key is not None else None
            if row is None:
                return None
            out[symbol] = row
        self.hits += len(out)
        return out

    def read(self, symbols: Sequence[str]) -> list[tuple[np.ndarray, datetime] | None]:
        out: list[tuple[np.ndarray, datetime] | None] = [None] * len(symbols)
        caching = self.caching
        missing: list[tuple[int, bytes, int, int]] = []
        for i, symbol in enumerate(symbols):
            key = self._key(symbol)
            row = self._rows.get(key) if caching else None
            if row is not None:
                out[i] = row
                self.hits += 1
            else:
                missing.append((i, key, self._generation.get(key, 0), self._epoch))
        if not missing:
            return out
        self.misses += len(missing)
        replies = self._fetch([key for _, key, _, _ in missing])
        for (i, key, gen, epoch), values in zip(missing, replies, strict=True):
            row = self._decode(values)
            out[i] = row
            if row is None or not caching:
                continue
            with self._lock:
                # Cache only if nothing invalidated the key while it was being read.
                if self._generation.get(key, 0) == gen and self._epoch == epoch:
                    if len(self._rows) >= self._cache_size:
                        self._rows.clear()
                    self._rows[key] = row
        return out

    def _fetch(self, keys: list[bytes]) -> list[Any]:
        """One ``HMGET`` per key, in one round trip; with a timeout, a read that misses it
        (or comes while a recent one did) raises redis-py's ``TimeoutError`` naming it."""
        if self._timeout is None:
            return self._hmget(keys)
        import time

        from redis.exceptions import TimeoutError as RedisTimeoutError

        now = time.monotonic()
        if now < self._open_until:
            raise RedisTimeoutError(
                f"a read missed the {self._timeout:g} s budget (AUGUR_FEATURE_TIMEOUT_SECONDS) "
                f"just before: failing at once for {self._open_until - now:.1f} s more"
            )
        try:
            replies = self._hmget(keys)
        except RedisTimeoutError as exc:
            self._open_until = time.monotonic() + self._open_seconds
            raise RedisTimeoutError(
                f"no answer within {self._timeout:g} s (AUGUR_FEATURE_TIMEOUT_SECONDS): {exc}; "
                f"reads fail at once for the next {self._open_seconds:g} s"
            ) from exc
        self._open_until = 0.0
        return replies

    def _hmget(self, keys: list[bytes]) -> list[Any]:
        if len(keys) == 1:
            return [self._client.hmget(keys[0], self._fields)]
        with self._client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hmget(key, self._fields)
            return list(pipe.execute())

    def _decode(self, values: Sequence[bytes | None]) -> tuple[np.ndarray, datetime] | None:
        from feast.protos.feast.types.Value_pb2 import Value
        from google.protobuf.timestamp_pb2 import Timestamp

        *features, ts_raw = values
        if ts_raw is None and not any(features):
            return None
        vec = np.full(len(self._names), np.nan)
        for j, raw in enumerate(features):
            if raw:
                v = Value.FromString(raw)
                if v.WhichOneof("val") == "double_val":
                    vec[j] = v.double_val
        if ts_raw is None:
            return None
        ts = Timestamp.FromString(ts_raw)
        when = datetime.fromtimestamp(ts.seconds + ts.nanos / 1e9, tz=UTC)
        vec.setflags(write=False)  # shared between requests through the cache
        return vec, when


__all__ = ["InvalidationListener", "RedisFeatureReader"]
