"""The chaos load generator: an open loop at a fixed rate, bounded in time and count.

Request ``i`` is sent at ``start + i / rate`` whatever became of the earlier ones (a
closed loop would slow down with the server and hide the fault it is meant to see), each
on a new connection to 127.0.0.1 so both workers take a share, each with a client
timeout. Bodies cycle through the serving bench's realistic mix (accounts, positions,
prices: benchmarks/_serving_requests.py); request ``i`` carries ``X-Request-ID`` =
``<run>-<i>``, so the prediction log can be checked for every answered request. Every
``outcome_every``-th request answered 200 is followed by its ``POST /outcome``.

Runs in its own process (``python -m tests.chaos._load``, the plan as JSON on stdin) so the
client never shares a GIL with the runner's fault injection; it writes every request's
record to the plan's ``out`` file: ``[kind, i, sent_at (epoch s), latency (s), status,
retry_after]``, status 0 for a connection error and -1 for the client timeout.
"""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"  # never anything else
DECIDE, OUTCOME = 0, 1
CONNECTION_ERROR, TIMED_OUT = 0, -1


@dataclass(frozen=True)
class Plan:
    """What to send: ``rate`` requests/s from ``start`` (epoch s) for ``seconds``, at most
    ``count`` of them."""

    port: int
    bodies: list[str]
    rate: float
    seconds: float
    start: float
    out: str
    run: str = "chaos"
    count: int = 10**9
    token: str = ""
    # Authorization values cycled per request instead of ``token`` ("": no header).
    authorizations: list[str] | None = None
    timeout: float = 5.0
    outcome_every: int = 10
    max_in_flight: int = 2000


def request_id(run: str, i: int) -> str:
    return f"{run}-{i:08d}"


class _Sender:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.head = f"Host: {HOST}:{plan.port}\r\nContent-Type: application/json\r\n"
        given = plan.authorizations or [f"Bearer {plan.token}" if plan.token else ""]
        self.auth = [f"Authorization: {a}\r\n" if a else "" for a in given]
        self.records: list[list[float]] = []
        self.in_flight = 0

    def _request(self, i: int, path: str, rid: str, body: bytes) -> bytes:
        auth = self.auth[i % len(self.auth)]
        return (
            f"POST {path} HTTP/1.1\r\n{self.head}{auth}X-Request-ID: {rid}\r\n"
            f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    async def _exchange(self, request: bytes) -> tuple[int, bool]:
        reader, writer = await asyncio.open_connection(HOST, self.plan.port)
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            lower = head.lower()
            i = lower.find(b"content-length:")
            if i >= 0:
                n = int(lower[i + 15 : lower.index(b"\r\n", i)])
                if n:
                    await reader.readexactly(n)
            else:
                await reader.read()  # Connection: close: the body runs to the end
            return status, b"\r\nretry-after:" in lower
        finally:
            writer.close()

    async def send(self, kind: int, i: int, path: str, rid: str, body: bytes) -> int:
        sent_at = time.time()
        t0 = time.perf_counter()
        self.in_flight += 1
        retry_after = False
        try:
            async with asyncio.timeout(self.plan.timeout):
                status, retry_after = await self._exchange(self._request(i, path, rid, body))
        except TimeoutError:
            status = TIMED_OUT
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            status = CONNECTION_ERROR
        finally:
            self.in_flight -= 1
        self.records.append([kind, i, sent_at, time.perf_counter() - t0, status, retry_after])
        return status

    async def decide_then_outcome(self, i: int, body: bytes) -> None:
        plan = self.plan
        rid = request_id(plan.run, i)
        status = await self.send(DECIDE, i, "/decide", rid, body)
        if status == 200 and plan.outcome_every and i % plan.outcome_every == 0:
            outcome = json.dumps({"request_id": rid, "realized_return": 0.001 * (i % 7 - 3)})
            await self.send(OUTCOME, i, "/outcome", rid + "-o", outcome.encode())


async def _run(plan: Plan) -> list[list[float]]:
    sender = _Sender(plan)
    bodies = [b.encode() for b in plan.bodies]
    n = min(plan.count, int(plan.rate * plan.seconds))
    tasks: set[asyncio.Task[None]] = set()
    loop = asyncio.get_running_loop()
    # start is wall-clock (the runner's fault times are too); pace on the monotonic clock
    t0 = loop.time() + max(0.0, plan.start - time.time())
    for i in range(n):
        delay = t0 + i / plan.rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if sender.in_flight >= plan.max_in_flight:  # saturated: counted, never sent
            sender.records.append([DECIDE, i, time.time(), 0.0, CONNECTION_ERROR, False])
            continue
        task = asyncio.create_task(sender.decide_then_outcome(i, bodies[i % len(bodies)]))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    while tasks:
        await asyncio.gather(*list(tasks))
    return sender.records


def start(plan: Plan) -> subprocess.Popen[bytes]:
    """The load, in a process of its own; wait for it, then :func:`read` the plan's out."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.chaos._load"], stdin=subprocess.PIPE, cwd=ROOT
    )
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(asdict(plan)).encode())
    proc.stdin.close()
    return proc


def read(path: str | Path) -> np.ndarray:
    """The records of a finished load, one row each (columns as the module says), in the
    order they were sent."""
    rows = json.loads(Path(path).read_text())
    records = np.array(rows, dtype=float).reshape(-1, 6)
    return records[np.argsort(records[:, 2], kind="stable")]


def main() -> None:
    plan = Plan(**json.loads(sys.stdin.read()))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    try:
        import uvloop

        records = uvloop.run(_run(plan))
    except ImportError:
        records = asyncio.run(_run(plan))
    Path(plan.out).write_text(json.dumps(records))


if __name__ == "__main__":
    main()
