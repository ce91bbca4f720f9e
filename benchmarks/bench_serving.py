"""Serving benchmark: ``POST /decide`` over real HTTP, load from a separate process.

All servers run at once on 127.0.0.1 and are measured in interleaved rounds (the machine
is shared and noisy: a figure is the median over rounds, and every ratio compares figures
from the same run):

- ``uvicorn no-op``: a no-op FastAPI endpoint under bare uvicorn (1 and 2 workers) —
  the ceiling a Python ASGI server reaches here;
- ``BentoML default no-op``: a no-op ``@bentoml.api`` with BentoML's default settings —
  the framework's floor *before* tuning;
- ``BentoML mounted no-op``: the same no-op as a mounted ASGI app with our worker count,
  still behind BentoML's per-request middlewares;
- ``our no-op``: our Bento (entry service, workers, traffic settings) answering /decide
  through the same HTTP layer (body validated as a ``DecideRequest``, request id,
  metrics, a ``DecisionOut`` serialised back) with a pipeline that does nothing — the
  ceiling *after* tuning and the "same server's no-op" of the issue; ``our raw-ASGI
  no-op``: the same Bento with a bare ASGI callable (nothing parsed) for reference;
- ``ours``: the real service: Redis online features (worker cache kept honest by Redis
  invalidations) → ensemble (outputs remembered per version and exact feature vector) →
  decision (a plain request's answer remembered per version and symbol until the next
  bar), prediction log on; ``ours, a position in every request``: the same server, each
  request decided and rendered afresh; ``ours, caches off``: every request reads Redis,
  scores the ensemble and is decided; ``ours + shadow``: a 100% mirror to another
  version (its own tag), scored by the shadow process at idle priority, within its CPU
  budget and only while the machine has CPU to spare (under the 8-client loads it is
  shed) — the table also says what share of the mirrored requests it scored over all
  loads;
- ``naive``: a minimal FastAPI app under uvicorn doing Feast ``get_online_features`` and
  each member's library ``predict_proba`` (200-tree forest) on the same features.

The load generator (this module's ``load`` entry point) keeps N HTTP/1.1 keep-alive
connections busy with asyncio + uvloop and records per-request latency. It opens them one
at a time, as a client's connection pool fills: a burst of N simultaneous connects is
taken whole by whichever worker's accept loop wakes first (measured: 8/0 in half the runs,
the other worker idle), which made a two-worker server's figure a coin toss between one
and two workers — far more for ``/decide`` than for a no-op.

``python -m benchmarks serving``; ``AUGUR_BENCH_SECONDS`` (per measurement, default 3)
and ``AUGUR_BENCH_ROUNDS`` (default 4) trade time for steadiness. Four rounds, not two:
on this 2-core VM one server's throughput swings 13,000–20,000 req/s from one second to
the next, and the same code's /decide-to-no-op ratio ranged 0.60–0.84x over six rounds;
the goal rows show that range beside the median.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks._servers import free_port, redis_server
from benchmarks._table import Row

TITLE = "Serving: POST /decide over HTTP on 127.0.0.1 (load from a separate process)"

ROOT = Path(__file__).resolve().parents[1]
BENTO_DIR = ROOT / "bentos" / "decision"
PY = sys.executable
SYMBOL = "EURUSD"
# A position the sample symbol holds: such a request is decided and rendered afresh.
HELD = {"side": "long", "size": 0.1, "entry_price": 1.17, "opened_at": "2017-12-28T00:00:00Z"}
HELD_ROW = "ours, a position in every request"


# ----------------------------------------------------------------------- load generator


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _client(
    conn: Connection,
    request: bytes,
    deadline: float,
    budget: list[int],
    latencies: list[int],
    errors: list[int],
) -> None:
    reader, writer = conn
    while time.perf_counter() < deadline and budget[0] > 0:
        budget[0] -= 1
        t0 = time.perf_counter_ns()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        i = lower.find(b"content-length:")
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
    port: int, path: str, body: bytes, clients: int, seconds: float, max_requests: int
) -> dict[str, float]:
    host = "127.0.0.1"
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    # Connect like a client pool warming up: one connection at a time, each answered once
    # before the next opens. A burst of simultaneous connects lands in whichever worker's
    # accept loop wakes first (often all of them: one worker serves, the other idles); one at
    # a time, every worker's epoll wakes for each and they race for it.
    conns: list[Connection] = []
    warm: list[int] = []
    try:
        for _ in range(clients):
            conns.append(await asyncio.open_connection(host, port))
            await _client(conns[-1], request, math.inf, [1], warm, [0])
        await asyncio.gather(
            *[_client(c, request, time.perf_counter() + 0.5, [50], warm, [0]) for c in conns]
        )
        latencies: list[int] = []
        errors = [0]
        budget = [max_requests]
        t0 = time.perf_counter()
        await asyncio.gather(
            *[_client(c, request, t0 + seconds, budget, latencies, errors) for c in conns]
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
        "errors": errors[0],
    }


def load(port: int, path: str, body: bytes, clients: int, seconds: float) -> dict[str, float]:
    """Measure one server from a separate process (so the client never shares its GIL)."""
    out = subprocess.run(
        [PY, "-m", "benchmarks.bench_serving", "load", str(port), path, str(clients), str(seconds)],
        input=body,
        capture_output=True,
        check=True,
        cwd=ROOT,
        timeout=seconds + 60,
    )
    return json.loads(out.stdout)


def _load_main(argv: list[str]) -> None:
    import uvloop

    port, path, clients, seconds = int(argv[0]), argv[1], int(argv[2]), float(argv[3])
    body = sys.stdin.buffer.read()
    print(json.dumps(uvloop.run(_load(port, path, body, clients, seconds, 10**7))))


# ---------------------------------------------------------------------- server programs

# A no-op FastAPI endpoint: the "bare uvicorn" peer (the reference).
UVICORN_NOOP = """
from fastapi import FastAPI, Request
app = FastAPI()

@app.post("/decide")
async def decide(request: Request):
    await request.body()
    return {"action": "no_action"}
"""

# The same no-op as a bare ASGI callable (no framework at all): uvicorn's own floor.
UVICORN_RAW_NOOP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    body = b'{"action":"no_action"}'
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})
"""

# BentoML's defaults: a no-op @bentoml.api, nothing tuned.
BENTO_DEFAULT_NOOP = """
import bentoml

@bentoml.service
class Noop:
    @bentoml.api
    def decide(self, symbol: str) -> dict:
        return {"action": "no_action"}
"""

# The no-op as a mounted ASGI app, our worker count, access log off — but behind
# BentoML's generic middlewares (no entry fast path).
BENTO_MOUNTED_NOOP = """
import bentoml
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

async def decide(request):
    await request.body()
    return Response(b'{"action":"no_action"}', media_type="application/json")

@bentoml.asgi_app(Starlette(routes=[Route("/decide", decide, methods=["POST"])]), path="/")
@bentoml.service(workers=WORKERS, traffic={"timeout": 10}, logging={"access": {"enabled": False}})
class Noop:
    pass
"""

# Our Bento (entry service, workers, traffic) serving /decide through the same HTTP layer
# (body parsed and validated as a DecideRequest, request id, metrics, a DecisionOut
# serialised back) with the pipeline swapped for a no-op: the same server doing no work —
# the analogue of the no-op @bentoml.api, whose framework also validates and
# serialises. OUR_RAW_NOOP swaps in a bare ASGI callable instead (nothing parsed at all).
OUR_NOOP = """
import sys
sys.path.insert(0, BENTO_DIR)
from datetime import UTC, datetime
from types import SimpleNamespace

import bentoml
import service as ours

from augur.serving import BearerAuth
from augur.serving._asgi import DecisionApp
from augur.serving._pipeline import Answer
from augur.serving._schemas import DecisionOut
from augur.serving._telemetry import default_metrics

WHEN = datetime(2024, 1, 1, tzinfo=UTC)


class NoopPipeline:
    def decide_many(self, items):
        return [
            Answer.of(DecisionOut(symbol=req.symbol, action="no_action", size=0.0, direction=0,
                                  probability=0.0, confidence=0.0, agreement=0.0, reasons=[],
                                  model_version="noop", request_id=rid, feature_timestamp=WHEN))
            for req, rid in items
        ]


ours._current["service"] = SimpleNamespace(
    app=DecisionApp(NoopPipeline(), metrics=default_metrics()), auth=BearerAuth()
)


@bentoml.asgi_app(ours._mounted_app(), path="/")
@bentoml.service(name="noop", service_class=ours._EntryService, **ours.DecisionService.config)
class Noop:
    pass
"""

OUR_RAW_NOOP = """
import sys
sys.path.insert(0, BENTO_DIR)
from types import SimpleNamespace

import bentoml
import service as ours

from augur.serving import BearerAuth


class NoopDecisionApp:
    async def __call__(self, scope, receive, send):
        while (await receive()).get("more_body"):
            pass
        body = b'{"action":"no_action"}'
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})


ours._current["service"] = SimpleNamespace(app=NoopDecisionApp(), auth=BearerAuth())


@bentoml.asgi_app(ours._mounted_app(), path="/")
@bentoml.service(name="noop", service_class=ours._EntryService, **ours.DecisionService.config)
class Noop:
    pass
"""

# The naive baseline: Feast's standard online read + each member's library predict_proba.
NAIVE = """
import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel

from augur.config import get_settings
from augur.features import FeatureSpec
from augur.features.store import FEATURE_VIEW, feature_store
from augur.models import load_ensemble

settings = get_settings()
store = feature_store(settings)
names = list(FeatureSpec.from_settings(settings).names)
refs = [f"{FEATURE_VIEW}:{n}" for n in names]
ensemble = load_ensemble(MODEL_TAG)
app = FastAPI()


class Req(BaseModel):
    symbol: str


@app.post("/decide")
def decide(req: Req):
    row = store.get_online_features(features=refs, entity_rows=[{"symbol": req.symbol}]).to_dict()
    x = np.array([[row[n][0] for n in names]], dtype=float)
    proba = ensemble.predict_library(x).mean(axis=0)[0]
    direction = int(np.argmax(proba)) - 1
    return {"direction": direction, "probability": float(proba.max())}
"""


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path


def _wait_ready(server: Server, path: str, timeout: float = 180.0) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(
                f"{server.name} exited ({server.proc.returncode}): "
                + server.log.read_text()[-3000:]
            )
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise TimeoutError(
        f"{server.name} not ready after {timeout}s: " + server.log.read_text()[-3000:]
    )


def _wait_quiet(busy_below: float = 15.0, timeout: float = 90.0) -> float:
    """Wait until the machine has been quiet (under ``busy_below`` percent of its CPUs
    busy) for a second, at most ``timeout`` seconds; returns the seconds waited. A server
    answers ``/readyz`` while its shadow process may still be importing and loading
    models, which would be measured as the next server's slowness."""
    import psutil  # BentoML's own dependency

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout and psutil.cpu_percent(interval=1.0) >= busy_below:
        pass
    return time.monotonic() - t0


def _start(name: str, cmd: list[str], env: dict[str, str], cwd: Path, logdir: Path) -> Server:
    port = free_port()
    log = logdir / f"{name.replace(' ', '_')}.log"
    cmd = [c.replace("{PORT}", str(port)) for c in cmd]
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT)
    return Server(name, port, proc, log)


def _stop(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(2)  # SIGINT: BentoML and uvicorn shut down cleanly
        try:
            server.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()


# --------------------------------------------------------------------------- fixtures


@contextmanager
def _redis() -> Iterator[str]:
    with redis_server() as port:
        yield f"127.0.0.1:{port}"


def _augur(args: list[str], env: dict[str, str]) -> None:
    exe = str(Path(PY).parent / "augur")
    subprocess.run([exe, *args], env=env, cwd=ROOT, check=True, capture_output=True, timeout=1800)


def prepare_home(home: Path, redis_url: str) -> tuple[dict[str, str], str]:
    """Sample bars → features in Redis → a trained ensemble; returns (env, model tag)."""
    env = {
        **os.environ,
        "AUGUR_HOME": str(home),
        "BENTOML_HOME": str(home / "bentoml"),
        "AUGUR_ONLINE_STORE": "redis",
        "AUGUR_REDIS_URL": redis_url,
        "AUGUR_FEATURE_REPO": str(ROOT / "feature_repo"),
        "BENTOML_DO_NOT_TRACK": "True",
        # The sample bars are history: judge staleness against their own time span.
        "AUGUR_MAX_FEATURE_AGE_SECONDS": str(100 * 365 * 86400),
        "PYTHONPATH": str(ROOT),
    }
    _augur(["data", "sample", "--symbol", SYMBOL], env)
    _augur(["features", "build"], env)
    _augur(["features", "apply"], env)
    _augur(["features", "materialize"], env)
    _augur(["train"], env)
    out = subprocess.run(
        [
            PY,
            "-c",
            "import bentoml, sys; print(bentoml.models.get(sys.argv[1]).tag)",
            "augur-ensemble:latest",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return env, out.stdout.strip()


def second_version(tag: str, env: dict[str, str]) -> str:
    """Save the trained ensemble again as a new version (the shadow's own tag)."""
    code = (
        "import sys; from augur.models import load_ensemble, save_ensemble; "
        "print(save_ensemble(load_ensemble(sys.argv[1]), labels={'stage': 'shadow'}))"
    )
    out = subprocess.run(
        [PY, "-c", code, tag], env=env, capture_output=True, text=True, check=True, timeout=300
    )
    return out.stdout.strip().splitlines()[-1]


# ----------------------------------------------------------------------------- the run


def _median(results: list[dict[str, float]], key: str) -> float:
    return float(statistics.median(r[key] for r in results))


def run() -> list[Row]:
    seconds = float(os.environ.get("AUGUR_BENCH_SECONDS", "3"))
    rounds = int(os.environ.get("AUGUR_BENCH_ROUNDS", "4"))
    only_noop = os.environ.get("AUGUR_BENCH_ONLY_NOOP") == "1"
    workers = int(os.environ.get("AUGUR_SERVING_WORKERS", "2"))
    coverage: tuple[float, float] | None = None
    bentoml_exe = str(Path(PY).parent / "bentoml")
    uvicorn_exe = str(Path(PY).parent / "uvicorn")
    body = json.dumps({"symbol": SYMBOL}).encode()
    # The same symbol holding a position: decided (exit logic) and rendered per request,
    # where a plain request's answer is remembered until the next bar.
    held = json.dumps({"symbol": SYMBOL, "position": HELD}).encode()

    with tempfile.TemporaryDirectory(prefix="augur-bench-serving-") as tmp:
        work = Path(tmp)
        logs = work / "logs"
        logs.mkdir()
        progs = work / "progs"
        progs.mkdir()
        (progs / "uvicorn_noop.py").write_text(UVICORN_NOOP)
        (progs / "uvicorn_raw_noop.py").write_text(UVICORN_RAW_NOOP)
        (progs / "bento_default_noop.py").write_text(BENTO_DEFAULT_NOOP)
        (progs / "bento_mounted_noop.py").write_text(
            BENTO_MOUNTED_NOOP.replace("WORKERS", str(workers))
        )
        (progs / "our_noop.py").write_text(OUR_NOOP.replace("BENTO_DIR", repr(str(BENTO_DIR))))
        (progs / "our_raw_noop.py").write_text(
            OUR_RAW_NOOP.replace("BENTO_DIR", repr(str(BENTO_DIR)))
        )
        base_env = {
            **os.environ,
            "BENTOML_HOME": str(work / "bentoml"),
            "BENTOML_DO_NOT_TRACK": "True",
            "AUGUR_HOME": str(work / "home"),
            "PYTHONPATH": str(ROOT),
        }
        servers: list[Server] = []
        try:
            specs: list[tuple[str, list[str], dict[str, str], Path, str]] = [
                (
                    "uvicorn no-op (1 worker)",
                    [
                        uvicorn_exe,
                        "uvicorn_noop:app",
                        "--port",
                        "{PORT}",
                        "--no-access-log",
                        "--log-level",
                        "warning",
                    ],
                    base_env,
                    progs,
                    "/docs",
                ),
                (
                    f"uvicorn no-op ({workers} workers)",
                    [
                        uvicorn_exe,
                        "uvicorn_noop:app",
                        "--port",
                        "{PORT}",
                        "--no-access-log",
                        "--log-level",
                        "warning",
                        "--workers",
                        str(workers),
                    ],
                    base_env,
                    progs,
                    "/docs",
                ),
                (
                    f"uvicorn raw-ASGI no-op ({workers} workers)",
                    [
                        uvicorn_exe,
                        "uvicorn_raw_noop:app",
                        "--port",
                        "{PORT}",
                        "--no-access-log",
                        "--log-level",
                        "warning",
                        "--workers",
                        str(workers),
                    ],
                    base_env,
                    progs,
                    "/",
                ),
                (
                    "BentoML default no-op",
                    [bentoml_exe, "serve", "bento_default_noop:Noop", "--port", "{PORT}"],
                    base_env,
                    progs,
                    "/readyz",
                ),
                (
                    "BentoML mounted no-op",
                    [bentoml_exe, "serve", "bento_mounted_noop:Noop", "--port", "{PORT}"],
                    base_env,
                    progs,
                    "/readyz",
                ),
                (
                    "our no-op",
                    [bentoml_exe, "serve", "our_noop:Noop", "--port", "{PORT}"],
                    base_env,
                    progs,
                    "/readyz",
                ),
                (
                    "our raw-ASGI no-op",
                    [bentoml_exe, "serve", "our_raw_noop:Noop", "--port", "{PORT}"],
                    base_env,
                    progs,
                    "/readyz",
                ),
            ]
            with _redis() if not only_noop else _nullcontext("") as redis_url:
                if not only_noop:
                    env, tag = prepare_home(work / "home", redis_url)
                    shadow_tag = second_version(tag, env)
                    table = work / "routes.json"
                    table.write_text(
                        json.dumps(
                            {"versions": [{"name": "stable", "model_tag": tag, "weight": 100}]}
                        )
                    )
                    shadow_table = work / "routes_shadow.json"
                    shadow_table.write_text(
                        json.dumps(
                            {
                                "versions": [{"name": "stable", "model_tag": tag, "weight": 100}],
                                # Another version (same weights, its own tag): shadow work
                                # is never shared with the primary's.
                                "shadow": {
                                    "name": "shadow",
                                    "model_tag": shadow_tag,
                                    "percent": 100,
                                },
                            }
                        )
                    )
                    (progs / "naive.py").write_text(NAIVE.replace("MODEL_TAG", repr(tag)))
                    specs += [
                        (
                            "ours",
                            [bentoml_exe, "serve", "service:DecisionService", "--port", "{PORT}"],
                            {**env, "AUGUR_ROUTING_TABLE": str(table)},
                            BENTO_DIR,
                            "/readyz",
                        ),
                        (
                            "ours + shadow",
                            [bentoml_exe, "serve", "service:DecisionService", "--port", "{PORT}"],
                            {
                                **env,
                                "AUGUR_ROUTING_TABLE": str(shadow_table),
                                "AUGUR_PREDICTION_LOG_URL": f"sqlite:///{work / 'shadow_log.db'}",
                            },
                            BENTO_DIR,
                            "/readyz",
                        ),
                        (
                            "ours, caches off",
                            [bentoml_exe, "serve", "service:DecisionService", "--port", "{PORT}"],
                            {
                                **env,
                                "AUGUR_ROUTING_TABLE": str(table),
                                "AUGUR_FEATURE_CACHE": "false",
                                "AUGUR_PREDICTION_CACHE_SIZE": "0",
                                "AUGUR_PREDICTION_LOG_URL": f"sqlite:///{work / 'nocache.db'}",
                            },
                            BENTO_DIR,
                            "/readyz",
                        ),
                        (
                            "naive",
                            [
                                uvicorn_exe,
                                "naive:app",
                                "--port",
                                "{PORT}",
                                "--no-access-log",
                                "--log-level",
                                "warning",
                            ],
                            env,
                            progs,
                            "/docs",
                        ),
                    ]
                for name, cmd, env_, cwd, _ready in specs:
                    servers.append(_start(name, cmd, env_, cwd, logs))
                for s, spec in zip(servers, specs, strict=True):
                    _wait_ready(s, spec[4])
                _wait_quiet()
                results: dict[tuple[str, int], list[dict[str, float]]] = {}
                for _ in range(rounds):
                    for s in servers:
                        for clients in (8, 1):
                            r = load(s.port, "/decide", body, clients, seconds)
                            if r["errors"]:
                                raise RuntimeError(
                                    f"{s.name}: {r['errors']} error answers; log: "
                                    + s.log.read_text()[-2000:]
                                )
                            results.setdefault((s.name, clients), []).append(r)
                        if s.name == "ours":
                            r = load(s.port, "/decide", held, 8, seconds)
                            results.setdefault((HELD_ROW, 8), []).append(r)
                shadow_server = next((s for s in servers if s.name == "ours + shadow"), None)
                coverage = _shadow_coverage(shadow_server) if shadow_server else None
        finally:
            for s in servers:
                _stop(s)
    rows = _rows(results, workers)
    if coverage is not None:
        scored, mirrored = coverage
        rows.append(
            Row(
                "serving",
                "shadow: mirrored requests the shadow process scored (rest dropped, counted)",
                100.0 * scored / max(mirrored, 1),
                "mirrored",
                100.0,
                "%",
                True,
                f"{scored:,.0f} of {mirrored:,.0f}, all loads",
            )
        )
    return rows


def _shadow_coverage(server: Server) -> tuple[float, float]:
    """(shadow decisions, primary decisions) from the server's /metrics, after a pause
    that lets the shadow process finish what its pipe still holds."""
    import urllib.request

    time.sleep(3)
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as r:
        text = r.read().decode()
    scored = mirrored = 0.0
    for line in text.splitlines():
        if line.startswith("augur_decisions_total{"):
            value = float(line.rsplit(" ", 1)[1])
            if 'role="shadow"' in line:
                scored += value
            else:
                mirrored += value
    return scored, mirrored


@contextmanager
def _nullcontext(value: Any = None) -> Iterator[Any]:
    yield value


def _rows(results: dict[tuple[str, int], list[dict[str, float]]], workers: int) -> list[Row]:
    def fig(name: str, clients: int, key: str) -> float | None:
        r = results.get((name, clients))
        return None if r is None else _median(r, key)

    bare = f"uvicorn no-op ({workers} workers)"
    rows: list[Row] = []
    # One row per server and load: throughput against the bare-uvicorn ceiling, latency.
    for name, clients in sorted(results, key=lambda k: (k[1] == 1, list(results).index(k))):
        rows.append(
            Row(
                "serving",
                f"{name}: req/s, {clients} client(s)",
                fig(name, clients, "rps") or 0.0,
                bare,
                fig(bare, clients, "rps"),
                "req/s",
                True,
            )
        )
        rows.append(
            Row(
                "serving",
                f"{name}: p50 / p99 ms, {clients} client(s)",
                fig(name, clients, "p50") or 0.0,
                f"p99 {fig(name, clients, 'p99') or 0:.2f} ms",
                None,
                "ms",
                False,
            )
        )

    def spread(name: str, peer: str, clients: int, key: str, higher: bool = True) -> str:
        """The ratio round by round (each round's two loads minutes apart at most): how
        far one round's figure can be trusted on this machine."""
        a, b = results.get((name, clients), []), results.get((peer, clients), [])
        ratios = sorted(
            (x[key] / y[key] if higher else y[key] / x[key])
            for x, y in zip(a, b, strict=False)
            if x[key] and y[key]
        )
        if len(ratios) < 2:
            return ""
        return f"; rounds {ratios[0]:.2f}–{ratios[-1]:.2f}x"

    def ratio_row(
        label: str, name: str, peer: str, clients: int, key: str, note: str, higher: bool = True
    ) -> Row:
        unit = "req/s" if key == "rps" else "ms"
        return Row(
            "serving",
            label,
            fig(name, clients, key) or 0.0,
            peer,
            fig(peer, clients, key),
            unit,
            higher,
            note,
        )

    raw_uvicorn = f"uvicorn raw-ASGI no-op ({workers} workers)"
    goals: list[Row] = [
        ratio_row(
            "BEFORE: BentoML default no-op vs bare uvicorn, 8 clients",
            "BentoML default no-op",
            bare,
            8,
            "rps",
            "ceiling before tuning",
        ),
        ratio_row(
            "AFTER: our no-op vs bare uvicorn, 8 clients",
            "our no-op",
            bare,
            8,
            "rps",
            ">= 0.60x",
        ),
        ratio_row(
            "AFTER: our raw-ASGI no-op vs uvicorn raw-ASGI no-op (no framework), 8 clients",
            "our raw-ASGI no-op",
            raw_uvicorn,
            8,
            "rps",
            "BentoML's remaining cost",
        ),
    ]
    if ("ours", 8) in results:
        p50_gap = (fig("ours", 1, "p50") or 0) - (fig("our no-op", 1, "p50") or 0)
        goals += [
            ratio_row(
                "/decide vs our no-op (same HTTP layer, no work), 8 clients, plain requests",
                "ours",
                "our no-op",
                8,
                "rps",
                ">= 0.70x" + spread("ours", "our no-op", 8, "rps"),
            ),
            ratio_row(
                "/decide vs our raw-ASGI no-op (nothing parsed), 8 clients",
                "ours",
                "our raw-ASGI no-op",
                8,
                "rps",
                "for reference",
            ),
            ratio_row(
                "/decide with a position in every request (no answer memo) vs our no-op, 8 clients",
                HELD_ROW,
                "our no-op",
                8,
                "rps",
                "for reference" + spread(HELD_ROW, "our no-op", 8, "rps"),
            ),
            ratio_row(
                "/decide with caches off (Redis read + ensemble every request) vs our no-op",
                "ours, caches off",
                "our no-op",
                8,
                "rps",
                "for reference",
            ),
            ratio_row("/decide vs naive baseline, 8 clients", "ours", "naive", 8, "rps", ">= 6x"),
            ratio_row(
                "/decide p99, 8 clients", "ours", "naive", 8, "p99", "<= 30 ms", higher=False
            ),
            ratio_row(
                "/decide p50 vs our no-op p50, 1 client",
                "ours",
                "our no-op",
                1,
                "p50",
                f"<= +1.5 ms (now {p50_gap:+.2f} ms)",
                higher=False,
            ),
            ratio_row(
                "/decide p50, caches off, vs our no-op p50, 1 client",
                "ours, caches off",
                "our no-op",
                1,
                "p50",
                "now "
                f"{(fig('ours, caches off', 1, 'p50') or 0) - (fig('our no-op', 1, 'p50') or 0):+.2f}"
                " ms",
                higher=False,
            ),
            ratio_row(
                "p99 with shadow vs without, 8 clients",
                "ours + shadow",
                "ours",
                8,
                "p99",
                ">= 0.91x (<= 10% more)" + spread("ours + shadow", "ours", 8, "p99", higher=False),
                higher=False,
            ),
        ]
    return goals + rows


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "load":
        _load_main(sys.argv[2:])
    else:
        from benchmarks._table import print_table

        print_table(TITLE, run())
