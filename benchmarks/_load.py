"""The serving bench's load generator: N keep-alive HTTP/1.1 connections, asyncio + uvloop.

Runs in its own process (``python -m benchmarks._load``) so the client never shares a GIL
with anything it measures. It cycles through a pool of pre-built request bodies (each
request takes the pool's next body, whichever connection sends it) and records every
request's latency.

Connections open one at a time, each answered once before the next opens, as a client's
pool warms up: a burst of simultaneous connects is taken whole by whichever server
worker's accept loop wakes first, which would leave the other worker idle.
"""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class _Pool:
    """The requests to send, in order, shared by every connection."""

    def __init__(self, port: int, path: str, bodies: list[bytes]) -> None:
        self.requests = [
            (
                f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(b)}\r\n\r\n"
            ).encode()
            + b
            for b in bodies
        ]
        self.next = 0

    def take(self) -> bytes:
        request = self.requests[self.next]
        self.next = (self.next + 1) % len(self.requests)
        return request


async def _client(
    conn: Connection,
    pool: _Pool,
    deadline: float,
    budget: list[int],
    latencies: list[int],
    errors: list[int],
) -> None:
    reader, writer = conn
    while time.perf_counter() < deadline and budget[0] > 0:
        budget[0] -= 1
        request = pool.take()
        t0 = time.perf_counter_ns()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        i = head.lower().find(b"content-length:")
        if i >= 0:
            n = int(head[i + 15 : head.index(b"\r\n", i)])
            if n:
                await reader.readexactly(n)
        else:  # chunked: read to the terminating chunk
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                await reader.readexactly(size + 2)
                if size == 0:
                    break
        latencies.append(time.perf_counter_ns() - t0)
        if status >= 400:
            errors[0] += 1


async def _load(
    port: int, path: str, bodies: list[bytes], clients: int, seconds: float
) -> dict[str, float]:
    pool = _Pool(port, path, bodies)
    conns: list[Connection] = []
    warm: list[int] = []
    warm_errors = [0]
    try:
        for _ in range(clients):
            conns.append(await asyncio.open_connection(HOST, port))
            await _client(conns[-1], pool, math.inf, [1], warm, warm_errors)
        # Warm-up: at least one pass over the pool, so every body has been seen once.
        per_conn = max(50, -(-len(bodies) // clients))
        await asyncio.gather(
            *[
                _client(c, pool, time.perf_counter() + 1.0, [per_conn], warm, warm_errors)
                for c in conns
            ]
        )
        latencies: list[int] = []
        errors = [0]
        t0 = time.perf_counter()
        await asyncio.gather(
            *[_client(c, pool, t0 + seconds, [10**9], latencies, errors) for c in conns]
        )
        elapsed = time.perf_counter() - t0
    finally:
        for _, writer in conns:
            writer.close()
    latencies.sort()

    def q(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] / 1e6

    return {
        "n": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50": q(0.50),
        "p99": q(0.99),
        "errors": errors[0] + warm_errors[0],
    }


def load(
    port: int, bodies: list[bytes], clients: int, seconds: float, path: str = "/decide"
) -> dict[str, float]:
    """Measure one server with ``clients`` connections for ``seconds``, from a separate
    process; returns requests/s, p50 and p99 latency (ms), the count and error answers."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks._load", str(port), path, str(clients), str(seconds)],
        input=json.dumps([b.decode() for b in bodies]).encode(),
        capture_output=True,
        check=True,
        cwd=ROOT,
        timeout=seconds + 60,
    )
    return dict(json.loads(out.stdout))


def main(argv: list[str]) -> None:
    import uvloop

    port, path, clients, seconds = int(argv[0]), argv[1], int(argv[2]), float(argv[3])
    bodies = [b.encode() for b in json.loads(sys.stdin.buffer.read())]
    print(json.dumps(uvloop.run(_load(port, path, bodies, clients, seconds))))


if __name__ == "__main__":
    main(sys.argv[1:])
