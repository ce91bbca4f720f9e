"""Feast: materialisation throughput and online read latency, SQLite vs Redis vs the floor.

Universe: 1,000 synthetic symbols x 60 hourly bars (seeded random walk; 57 features per
row). Feast materialisation writes each symbol's latest row, so "rows/s" counts online
rows (one per symbol) written per second; the peer is the same rows written with the
bare client (redis-py pipeline HSET / sqlite3 executemany of the bytes Feast wrote).

Online reads (p50/p99 over 300 calls after 30 warm-ups, 1 and 10 symbols):
``FeatureStore.get_online_features`` and Augur's ``OnlineFeatures.get`` (the request
path) against a raw Redis pipeline of ``HGETALL`` on the same keys — the floor, with no
decoding at all. A redis-server is started here on a free loopback port and stopped.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks._servers import redis_server
from benchmarks._table import Row

TITLE = "Feast online store: materialise and read (1,000 symbols, 57 features)"

N_SYMBOLS = 1_000
N_BARS = 60
READS = 300
WARMUP = 30
REPO = Path(__file__).resolve().parents[1] / "feature_repo"


def _latencies(call: Callable[[], object]) -> tuple[float, float]:
    for _ in range(WARMUP):
        call()
    samples = np.empty(READS)
    for i in range(READS):
        t0 = time.perf_counter()
        call()
        samples[i] = time.perf_counter() - t0
    return float(np.percentile(samples, 50) * 1e3), float(np.percentile(samples, 99) * 1e3)


def _redis_floor_write(client, port: int, keys: list[bytes]) -> float:  # type: ignore[no-untyped-def]
    """Seconds to write the same hashes Feast wrote, with a bare pipeline (to db 1)."""
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hgetall(key)
        hashes = pipe.execute()
    import redis

    other = redis.Redis(host="127.0.0.1", port=port, db=1)
    t0 = time.perf_counter()
    with other.pipeline(transaction=False) as pipe:
        for key, mapping in zip(keys, hashes, strict=True):
            pipe.hset(key, mapping=mapping)
        pipe.execute()
    return time.perf_counter() - t0


def _sqlite_floor_write(db: Path, table: str, tmp: Path) -> float:
    """Seconds to insert the rows Feast wrote into an identical table with sqlite3."""
    src = sqlite3.connect(db)
    rows = src.execute(f'SELECT * FROM "{table}"').fetchall()
    schema = src.execute(
        "SELECT sql FROM sqlite_master WHERE type='table' AND name=?", (table,)
    ).fetchone()[0]
    src.close()
    dst = sqlite3.connect(tmp / "floor.db")
    dst.execute(schema)
    marks = ",".join("?" * len(rows[0]))
    t0 = time.perf_counter()
    with dst:
        dst.executemany(f'INSERT INTO "{table}" VALUES ({marks})', rows)
    elapsed = time.perf_counter() - t0
    dst.close()
    return elapsed


def run() -> list[Row]:
    import redis

    from augur.config import Settings
    from augur.features import store as fs
    from augur.features.store import OnlineFeatures, feature_refs
    from benchmarks.bench_features import make_bars

    rows: list[Row] = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-feast-"))
    servers = contextlib.ExitStack()
    port = servers.enter_context(redis_server())
    try:
        bars = make_bars(N_SYMBOLS, N_BARS)
        redis_url = f"127.0.0.1:{port}"
        settings = Settings(home=tmp / "home", feature_repo=REPO, redis_url=redis_url)
        fs.build_offline_features(settings, bars=bars)
        stores = {}
        for kind in ("sqlite", "redis"):
            store = fs.apply(settings, kind)
            t0 = time.perf_counter()
            fs.materialize(settings, kind, store=store)
            elapsed = time.perf_counter() - t0
            stores[kind] = store
            if kind == "redis":
                client = redis.Redis(host="127.0.0.1", port=port)
                keys = [k for k in client.scan_iter(count=1000)]
                floor = _redis_floor_write(client, port, keys)
                peer_name = "redis-py pipeline HSET"
            else:
                db = fs.feast_dir(settings, "sqlite") / "online.db"
                floor = _sqlite_floor_write(db, f"{fs.PROJECT}_{fs.FEATURE_VIEW}", tmp)
                peer_name = "sqlite3 executemany"
            rows.append(
                Row(
                    "materialise",
                    f"online rows/s into {kind} (Feast)",
                    N_SYMBOLS / elapsed,
                    peer_name,
                    N_SYMBOLS / floor,
                    "rows/s",
                    True,
                    "floor = bare client writing the same bytes",
                )
            )

        symbols = [f"S{i:02d}" for i in range(10)]
        client = redis.Redis(host="127.0.0.1", port=port)
        keys = sorted(client.scan_iter(count=1000))
        key_of: dict[str, bytes] = {}
        from feast.infra.key_encoding_utils import serialize_entity_key
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value

        for sym in symbols:
            ek = EntityKey(join_keys=["symbol"], entity_values=[Value(string_val=sym)])
            key_of[sym] = serialize_entity_key(ek, entity_key_serialization_version=3) + b"augur"
        assert all(key_of[s] in set(keys) for s in symbols), "Redis keys not where Feast puts them"

        refs = feature_refs(fs.FeatureSpec.from_settings(settings))
        for n in (1, 10):
            wanted = symbols[:n]

            def floor_read(wanted: list[str] = wanted) -> object:
                with client.pipeline(transaction=False) as pipe:
                    for s in wanted:
                        pipe.hgetall(key_of[s])
                    return pipe.execute()

            f50, f99 = _latencies(floor_read)
            for kind in ("sqlite", "redis"):
                store = stores[kind]
                entity_rows = [{"symbol": s} for s in wanted]
                reader = OnlineFeatures(settings, kind)  # type: ignore[arg-type]
                candidates: list[tuple[str, Callable[[], object]]] = [
                    (
                        "FeatureStore.get_online_features",
                        lambda store=store, entity_rows=entity_rows: store.get_online_features(
                            features=refs, entity_rows=entity_rows
                        ).to_dict(),
                    ),
                    (
                        "augur OnlineFeatures.get",
                        lambda reader=reader, wanted=wanted: reader.get(wanted),
                    ),
                ]
                for label, call in candidates:
                    p50, p99 = _latencies(call)
                    rows.append(
                        Row(
                            "online read",
                            f"p50, {n} symbol(s), {label} ({kind})",
                            p50,
                            "raw Redis HGETALL",
                            f50,
                            "ms",
                            False,
                        )
                    )
                    rows.append(
                        Row(
                            "online read",
                            f"p99, {n} symbol(s), {label} ({kind})",
                            p99,
                            "raw Redis HGETALL",
                            f99,
                            "ms",
                            False,
                        )
                    )
    finally:
        servers.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return rows
