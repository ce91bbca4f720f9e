"""The live-bar consumer's writes to the online side: feature rows to the Feast online
store, and their returns added to the kept returns the correlations come from.

:func:`new_feature_rows` runs the one feature engine on the consumer's recent bars;
:class:`OnlineWriter` makes the same writes ``augur features push`` makes for one bar (:func:`~augur.features.store.
push_bar`), for the rows of many symbols at once; the consumer (:mod:`augur.stream`)
computes the rows with the one feature engine and keeps the bar history itself.

SQLite: Feast's ``push``. Redis: the hash Feast's Redis store writes for a row (its key,
the murmur3 field of each ``view:feature``, a ``Value`` per feature, the ``_ts:view``
timestamp), built with Feast's own helpers and queued on a redis-py pipeline — so the
consumer can make the online write part of the transaction that acknowledges the bar.
Feast's ``push`` spends most of its time converting the frame through Arrow to protobuf
row by row, which a stream of small rounds pays on every round.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from augur.config import Settings, get_settings
from augur.features.spec import FeatureSpec
from augur.features.store import (
    ENTITY,
    PUSH_SOURCE,
    OnlineStoreKind,
    _correlation_store,
    _feature_view,
    _reachable,
    feature_store,
)

if TYPE_CHECKING:
    from feast import FeatureStore


def new_feature_rows(
    symbols: Sequence[str], histories: Sequence[np.ndarray], new: Sequence[int], spec: FeatureSpec
) -> pd.DataFrame:
    """The feature rows of each symbol's last ``new[i]`` bars (``symbol``, ``timestamp``,
    the spec's features; symbol by symbol, in time order).

    ``histories[i]`` holds ``symbols[i]``'s recent bars in time order as records with
    ``ts`` (int ns), ``high``, ``low``, ``close`` — already in the engine's order, so they
    go to its kernel as they are: the rows :func:`~augur.features.compute_features` gives
    for those bars, without building and re-sorting a frame on every round.
    """
    from augur.features._engine import SortedBars, _compute_matrix, _frame

    lengths = np.array([h.size for h in histories], dtype=np.int64)
    packed = np.concatenate(histories)
    sb = SortedBars(
        symbol=np.repeat(np.array(symbols, dtype=object), lengths),
        ts_ns=np.ascontiguousarray(packed["ts"]),
        high=np.ascontiguousarray(packed["high"], dtype=np.float64),
        low=np.ascontiguousarray(packed["low"], dtype=np.float64),
        close=np.ascontiguousarray(packed["close"], dtype=np.float64),
        starts=np.concatenate(([0], np.cumsum(lengths))).astype(np.int64),
    )
    matrix = _compute_matrix(sb, spec)
    ends = sb.starts[1:]
    rows = np.concatenate([np.arange(e - k, e) for e, k in zip(ends, new, strict=True)])
    return _frame(sb.symbol[rows], sb.ts_ns[rows], matrix[:, rows], spec)


class OnlineWriter:
    """Pushes feature rows (``symbol``, ``timestamp``, the spec's features) online.

    Fails at construction, naming the command to run, when the feature repository is not
    applied; an unreachable store raises :class:`~augur.features.OnlineStoreUnavailable`.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        online_store: OnlineStoreKind | None = None,
        redis_url: str | None = None,
        store: FeatureStore | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.kind = online_store or self.settings.online_store
        self.store = store or feature_store(self.settings, self.kind, redis_url)
        fv = _feature_view(self.store)
        self._rows = _FeastRedisRows(self.store, fv) if self.kind == "redis" else None

    @property
    def redis(self) -> Any:
        """The online store's redis-py client (None: SQLite)."""
        return self._rows.client if self._rows is not None else None

    def write(self, rows: pd.DataFrame, pipe: Any = None) -> None:
        """Each row (one per symbol) becomes its symbol's online row. Redis: queued on
        ``pipe`` when given (a pipeline of the online store's server, executed by the
        caller), else written now; SQLite: one Feast push."""
        from feast.data_source import PushMode

        if rows.empty:
            return
        if self._rows is not None:
            if pipe is not None:
                self._rows.queue(pipe, rows)
                return
            with _reachable(self.kind), self._rows.client.pipeline(transaction=False) as own:
                self._rows.queue(own, rows)
                own.execute()
            return
        with _reachable(self.kind):
            self.store.push(PUSH_SOURCE, rows, to=PushMode.ONLINE)

    def add_returns(self, rows: pd.DataFrame) -> None:
        """Add the rows' returns to the kept returns and recompute the correlations (off
        when ``correlation_window`` is 0)."""
        from augur.features.correlations import add_returns

        settings = self.settings
        if rows.empty or settings.correlation_window == 0:
            return
        with _reachable(self.kind):
            add_returns(
                _correlation_store(self.store),
                rows,
                settings.correlation_window,
                settings.correlation_min_bars,
            )


class _FeastRedisRows:
    """Feature rows as the hashes Feast's Redis online store keeps (see module docstring)."""

    def __init__(self, store: FeatureStore, fv: Any) -> None:
        from feast.infra.online_stores.helpers import _mmh3
        from feast.infra.online_stores.redis import _versioned_fv_name

        config = store.config
        self._project = config.project
        self._key_version = config.entity_key_serialization_version
        view = _versioned_fv_name(fv, config)
        self._names = [f.name for f in fv.features]
        self._fields = [_mmh3(f"{view}:{name}") for name in self._names]
        self._ts_field = f"_ts:{view}".encode()
        self._ttl = getattr(config.online_store, "key_ttl_seconds", None)
        self._keys: dict[str, bytes] = {}
        _check_double_encoding()
        online = store._get_provider().online_store
        self.client = online._get_client(config.online_store)  # type: ignore[attr-defined]

    def _key(self, symbol: str) -> bytes:
        key = self._keys.get(symbol)
        if key is None:
            from feast.infra.online_stores.helpers import _redis_key
            from feast.protos.feast.types.EntityKey_pb2 import EntityKey
            from feast.protos.feast.types.Value_pb2 import Value

            entity = EntityKey(join_keys=[ENTITY], entity_values=[Value(string_val=symbol)])
            key = self._keys[symbol] = _redis_key(self._project, entity, self._key_version)
        return key

    def queue(self, pipe: Any, rows: pd.DataFrame) -> None:
        from google.protobuf.timestamp_pb2 import Timestamp

        encoded = _double_values(rows[self._names].to_numpy(dtype=np.float64))
        ts_ns = (
            pd.to_datetime(rows["timestamp"], utc=True).to_numpy("datetime64[ns]").view(np.int64)
        )
        for i, symbol in enumerate(rows["symbol"].astype(str)):
            seconds, nanos = divmod(int(ts_ns[i]), 1_000_000_000)
            mapping: dict[bytes, bytes] = dict(zip(self._fields, encoded[i], strict=True))
            mapping[self._ts_field] = Timestamp(seconds=seconds, nanos=nanos).SerializeToString()
            key = self._key(symbol)
            pipe.hset(key, mapping=mapping)
            if self._ttl:
                pipe.expire(key, self._ttl)


# A feast ``Value`` holding a double is its field tag (5, fixed64: 0x29) and the eight
# little-endian bytes; a missing value is the empty Value (as Feast writes NaN). Checked
# against protobuf when a writer is made.
_DOUBLE_TAG = b"\x29"


def _double_values(values: np.ndarray) -> list[list[bytes]]:
    """Each row's values as serialised feast ``Value`` messages."""
    raw = np.ascontiguousarray(values, dtype="<f8").tobytes()
    missing = np.isnan(values).tolist()
    width = values.shape[1]
    out = []
    for i, gaps in enumerate(missing):
        base = i * width * 8
        out.append(
            [
                b"" if gap else _DOUBLE_TAG + raw[base + 8 * j : base + 8 * j + 8]
                for j, gap in enumerate(gaps)
            ]
        )
    return out


def _check_double_encoding() -> None:
    from feast.protos.feast.types.Value_pb2 import Value

    sample = np.array([[1.5, -0.0, 0.0, 1e-300, -2.25e10, np.inf, np.nan]])
    want = [b"" if v != v else Value(double_val=v).SerializeToString() for v in sample[0]]
    if _double_values(sample)[0] != want:
        raise RuntimeError("feast's Value encoding changed: update augur.features.stream_online")


__all__ = ["OnlineWriter", "new_feature_rows"]
