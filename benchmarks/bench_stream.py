"""Live bars: bars per second from publish to online write, and the latency of each bar.

Universe: 100 synthetic symbols (seeded random walk, hourly bars), 120 bars of history
each materialised into Redis. Two measures, each for Augur's consumer (``augur stream
consume``: validation, the feature engine, the Feast push, the transaction that acks)
with one and with two consumer processes in one group, and for the floor — a bare
``XREADGROUP`` + pipelined ``HSET`` of the same Feast hash + ``XACK`` loop in one process:

- throughput: a backlog of 100 bars per symbol published at once, timed from the first
  publish to the last acknowledgement;
- latency: bars published at 1,000 a second (10 timestamps a second, 100 symbols each),
  from the entry's arrival in the stream to its online write, p50 and p99.

A redis-server is started here on a free loopback port and stopped.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks._servers import redis_server
from benchmarks._table import Row

TITLE = "Live bars: Redis Stream → features → Feast Redis online store (100 symbols)"

N_SYMBOLS = 100
HISTORY = 120
BACKLOG_STEPS = int(os.environ.get("AUGUR_BENCH_STREAM_BACKLOG_STEPS", "100"))
RATE = 1_000  # bars per second in the latency runs
PACED_SECONDS = float(os.environ.get("AUGUR_BENCH_STREAM_PACED_SECONDS", "10"))
REPO = Path(__file__).resolve().parents[1] / "feature_repo"
FLOOR_STREAM = "floor:bars"


def _settings(home: Path, port: int) -> Any:
    from augur.config import Settings

    return Settings(
        home=home,
        feature_repo=REPO,
        online_store="redis",
        redis_url=f"127.0.0.1:{port}",
        stream_metrics_port=0,
        stream_block_ms=50,
    )


class _Latencies:
    """Stands in for a histogram: keeps every observation."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def observe(self, value: float) -> None:
        self.values.append(value)


def _augur_consumer(settings: Any, name: str, ready: Any, stop: Any, out: Any) -> None:
    import threading

    from augur.features import FeatureSpec, compute_features
    from augur.stream import BarConsumer, StreamMetrics
    from benchmarks.bench_features import make_bars

    compute_features(make_bars(2, 60), FeatureSpec())  # the kernels compiled before timing
    metrics = StreamMetrics()
    latencies = _Latencies()
    metrics.publish_to_online = latencies  # type: ignore[assignment]
    consumer = BarConsumer.from_settings(settings, name, metrics=metrics)
    consumer.ensure_group()
    consumer.start_flusher()
    ready.set()
    done = threading.Event()  # the consumer's stop, set when the parent's is

    def relay() -> None:
        stop.wait()
        done.set()

    threading.Thread(target=relay, daemon=True).start()
    consumer.run(done)
    out.put((name, metrics.applied, latencies.values))


def _floor_consumer(
    port: int, hashes: dict[str, dict[bytes, bytes]], ready: Any, stop: Any, out: Any
) -> None:
    """XREADGROUP, HSET the symbol's Feast hash, XACK: the least a consumer can do."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    with contextlib.suppress(redis.exceptions.ResponseError):
        client.xgroup_create(FLOOR_STREAM, "floor", id="0", mkstream=True)
    ready.set()
    latencies: list[float] = []
    applied = 0
    while not stop.is_set():
        reply = client.xreadgroup("floor", "floor", {FLOOR_STREAM: ">"}, count=500, block=50)
        if not reply:
            continue
        entries = reply[0][1]  # type: ignore[index]
        with client.pipeline(transaction=False) as pipe:
            for _id, fields in entries:
                pipe.hset(b"floor:" + fields[b"symbol"], mapping=hashes[fields[b"symbol"].decode()])
            pipe.xack(FLOOR_STREAM, "floor", *[i for i, _ in entries])
            pipe.execute()
        written = time.time()
        applied += len(entries)
        latencies += [written - int(i.split(b"-")[0]) / 1000.0 for i, _ in entries]
    out.put(("floor", applied, latencies))


def _start(target: Any, args_list: list[tuple[Any, ...]]) -> tuple[list[Any], Any, Any]:
    ctx = mp.get_context("spawn")  # a fork would inherit Feast's and redis-py's threads
    stop, out = ctx.Event(), ctx.Queue()
    procs = []
    for args in args_list:
        ready = ctx.Event()
        proc = ctx.Process(target=target, args=(*args, ready, stop, out))
        proc.start()
        if not ready.wait(120):
            raise RuntimeError("a consumer did not start")
        procs.append(proc)
    return procs, stop, out


def _finish(procs: list[Any], stop: Any, out: Any) -> tuple[int, list[float]]:
    stop.set()
    applied, latencies = 0, []
    for _ in procs:
        _name, n, values = out.get(timeout=120)
        applied += n
        latencies += values
    for proc in procs:
        proc.join(60)
    return applied, latencies


def _settled(client: Any, stream: str) -> bool:
    """Every entry delivered to every group and acknowledged."""
    last = client.xinfo_stream(stream)["last-generated-id"]
    groups = client.xinfo_groups(stream)
    return bool(groups) and all(
        g["last-delivered-id"] == last and g["pending"] == 0 for g in groups
    )


def _wait_settled(client: Any, stream: str, timeout: float = 600) -> float:
    deadline = time.monotonic() + timeout
    while not _settled(client, stream):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{stream}: the consumers did not finish in {timeout:.0f} s")
        time.sleep(0.005)
    return time.perf_counter()


def _publish_paced(client: Any, stream: str, bars: pd.DataFrame) -> None:
    """``bars`` (time order) at RATE bars a second: one timestamp every N_SYMBOLS / RATE s."""
    from augur.stream import StreamKeys, frame_entries, publish

    keys = StreamKeys(stream=stream)
    start = time.monotonic()
    for i, (_, tick) in enumerate(bars.groupby("timestamp", sort=True)):
        due = start + i * N_SYMBOLS / RATE
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        publish(client, keys, frame_entries(tick))


def _publish_all(client: Any, stream: str, bars: pd.DataFrame) -> None:
    from augur.stream import StreamKeys, frame_entries, publish

    publish(client, StreamKeys(stream=stream), frame_entries(bars))


def _say(text: str) -> None:
    print(f"  stream bench: {text}", file=sys.stderr, flush=True)


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1e3, q)) if values else float("nan")


def run() -> list[Row]:
    import redis

    from augur.data import write_bars
    from augur.features import store as fs
    from augur.stream import in_time_order
    from benchmarks.bench_features import make_bars

    tmp = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    servers = contextlib.ExitStack()
    port = servers.enter_context(redis_server())
    rows: list[Row] = []
    try:
        settings = _settings(tmp / "home", port)
        paced_steps = int(PACED_SECONDS * RATE / N_SYMBOLS)
        steps = [BACKLOG_STEPS, BACKLOG_STEPS, paced_steps, paced_steps]
        bars = make_bars(N_SYMBOLS, HISTORY + sum(steps))
        ts = np.sort(bars["timestamp"].unique())
        history = bars[bars["timestamp"] < ts[HISTORY]]
        write_bars(history, settings.bars_dir)
        fs.build_offline_features(settings, bars=history)
        fs.apply(settings)
        fs.materialize(settings)
        client = redis.Redis(host="127.0.0.1", port=port)
        hashes = _feast_hashes(client, settings)

        def chunk(i: int) -> pd.DataFrame:
            lo = HISTORY + sum(steps[:i])
            part = bars[bars["timestamp"].isin(ts[lo : lo + steps[i]])]
            return in_time_order(part)

        # --- the floor: backlog, then paced
        backlog = chunk(0)
        procs, stop, out = _start(_floor_consumer, [(port, hashes)])
        t0 = time.perf_counter()
        _publish_all(client, FLOOR_STREAM, backlog)
        floor_rate = len(backlog) / (_wait_settled(client, FLOOR_STREAM) - t0)
        _say(f"floor: {floor_rate:,.0f} bars/s")
        _finish(procs, stop, out)
        procs, stop, out = _start(_floor_consumer, [(port, hashes)])
        _publish_paced(client, FLOOR_STREAM, chunk(2))
        _wait_settled(client, FLOOR_STREAM)
        _, floor_lat = _finish(procs, stop, out)

        # --- Augur: one consumer, then two (each: a backlog, then a paced run)
        for n, backlog_chunk, paced_chunk in ((1, 0, 2), (2, 1, 3)):
            names = [(settings, f"bench-{n}-{k}") for k in range(n)]
            part = chunk(backlog_chunk)
            procs, stop, out = _start(_augur_consumer, names)
            t0 = time.perf_counter()
            _publish_all(client, settings.stream_key, part)
            rate = len(part) / (_wait_settled(client, settings.stream_key) - t0)
            _say(f"{n} consumer(s): {rate:,.0f} bars/s")
            _finish(procs, stop, out)
            procs, stop, out = _start(_augur_consumer, names)
            _publish_paced(client, settings.stream_key, chunk(paced_chunk))
            _wait_settled(client, settings.stream_key)
            _, lat = _finish(procs, stop, out)
            if os.environ.get("AUGUR_BENCH_STREAM_DEBUG"):
                q = len(lat) // 10
                _say(
                    "latency ms by tenth: "
                    + ", ".join(f"{_pct(lat[i * q : (i + 1) * q], 99):.0f}" for i in range(10))
                )
            label = f"{n} consumer{'s' if n > 1 else ''}"
            floor = "bare XREADGROUP+HSET"
            rows += [
                Row(
                    "throughput",
                    f"bars/s, backlog of {len(part):,} ({label})",
                    rate,
                    floor,
                    floor_rate,
                    "bars/s",
                    True,
                    "≥ 50% of the floor",
                ),
                Row(
                    "latency",
                    f"p50 publish→online at {RATE:,}/s ({label})",
                    _pct(lat, 50),
                    floor,
                    _pct(floor_lat, 50),
                    "ms",
                    False,
                ),
                Row(
                    "latency",
                    f"p99 publish→online at {RATE:,}/s ({label})",
                    _pct(lat, 99),
                    floor,
                    _pct(floor_lat, 99),
                    "ms",
                    False,
                    "< 50 ms",
                ),
            ]
    finally:
        servers.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


def _feast_hashes(client: Any, settings: Any) -> dict[str, dict[bytes, bytes]]:
    """Each symbol's Feast hash as materialised: what the floor writes per bar."""
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    out = {}
    for i in range(N_SYMBOLS):
        sym = f"S{i:02d}"
        ek = EntityKey(join_keys=["symbol"], entity_values=[Value(string_val=sym)])
        key = serialize_entity_key(ek, entity_key_serialization_version=3) + b"augur"
        out[sym] = client.hgetall(key)
        assert out[sym], f"no Feast hash for {sym}"
    return out
