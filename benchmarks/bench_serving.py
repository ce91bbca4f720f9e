"""Serving benchmark: ``POST /decide`` over real HTTP against ``bentoml serve``.

Every server runs at once on 127.0.0.1 and the load (``benchmarks/_load.py``, a separate
process) visits them in interleaved rounds; a figure is the median over rounds, and every
ratio compares figures from the same run. The rows:

- ``ours, realistic mix`` (the headline): the service with every mechanism on, sent the
  pool of ``benchmarks/_serving_requests.py`` — every symbol in the bench's feature
  store, most requests with an account, a position and a price, routed by account id
  (entries, holds and exits all occur: ``benchmarks/_serving_stores.py`` lifts the
  confidence floor the sample model rarely clears);
- ``ours, plain request``: one symbol and nothing else, the cheapest request;
- ``uvicorn no-op`` / ``our no-op``: a no-op under bare uvicorn, and our HTTP layer with
  a pipeline that does nothing (``benchmarks/_serving_servers.py``);
- ``naive``: FastAPI + Feast's online read + library ``predict_proba``, sent the same mix;
- ``ours + shadow``: a 100% mirror to another version, scored by each worker's idle-priority
  child process, and the share of it scored; ``ours + shadow container``: the same mirror
  sent to ``augur serve-shadow`` in a CPU cgroup with a CFS quota (how the kubelet limits
  the pod's shadow container), and the share of it scored;
- ``<mechanism> off``: one server per entry of ``MECHANISMS`` with that mechanism off;
  the ratio is all-on against it (above 1: the mechanism pays);
- ``baseline <commit>``: with ``AUGUR_BENCH_BASELINE=<git ref>``, that commit's code
  (a git worktree) serves the same stores and requests, with a model its own code trained
  on the same bars (a model serves only with the FeatureSpec it was trained on).

``python -m benchmarks serving``; ``AUGUR_BENCH_SECONDS`` (per measurement, default 3),
``AUGUR_BENCH_ROUNDS`` (default 4), ``AUGUR_BENCH_BASELINE`` (default: none).
"""

from __future__ import annotations

import os
import re
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import NamedTuple

from benchmarks import _serving_servers as srv
from benchmarks import _serving_stores as stores
from benchmarks._load import load
from benchmarks._servers import redis_server
from benchmarks._serving_requests import plain, realistic_mix
from benchmarks._table import Row

TITLE = "Serving: POST /decide over HTTP on 127.0.0.1 (load from a separate process)"

ROOT = Path(__file__).resolve().parents[1]
BENTO_DIR = ROOT / "bentos" / "decision"
PLAIN_SYMBOL = "EURUSD"


class Mechanism(NamedTuple):
    """A mechanism of the service, the ``AUGUR_*`` settings that turn it off, and the
    all-on server it is compared with."""

    name: str
    off: dict[str, str]
    against: str = "ours"


# One server each, sent the realistic mix; a mechanism whose setting the served code no
# longer has (or refuses) is skipped, with a printed line.
MECHANISMS: list[Mechanism] = [
    Mechanism("prediction memo", {"AUGUR_PREDICTION_CACHE_SIZE": "0"}),
    Mechanism("natural batching", {"AUGUR_DECIDE_BATCH_MAX": "1"}),
    Mechanism("feature cache", {"AUGUR_FEATURE_CACHE": "false"}),
    Mechanism("idle-priority log writer", {"AUGUR_PREDICTION_LOG_WRITER_PRIORITY": "normal"}),
    Mechanism("shadow process", {"AUGUR_SHADOW_PROCESS": "false"}, against="ours + shadow"),
]

MIX, PLAIN = "realistic mix", "plain request"
SHADOW_CPUS = 0.25  # the shadow container's CPU limit in the bench (a share of one core)
CONTAINER = "ours + shadow container"


def _say(line: str) -> None:
    print(f"[bench serving] {line}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- the run


class Load(NamedTuple):
    """One measurement per round: a row's server, request bodies and clients."""

    server: str
    bodies: str
    clients: int


def _median(results: list[dict[str, float]], key: str) -> float:
    return float(statistics.median(r[key] for r in results))


def run() -> list[Row]:
    seconds = float(os.environ.get("AUGUR_BENCH_SECONDS", "3"))
    rounds = int(os.environ.get("AUGUR_BENCH_ROUNDS", "4"))
    baseline_ref = os.environ.get("AUGUR_BENCH_BASELINE", "").strip()
    workers = int(os.environ.get("AUGUR_SERVING_WORKERS", "2"))

    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="augur-bench-")))
        logs, progs = work / "logs", work / "progs"
        logs.mkdir()
        progs.mkdir()
        redis_url = f"127.0.0.1:{stack.enter_context(redis_server())}"
        t0 = time.monotonic()
        env, tag, quotes = stores.prepare_home(work / "home", redis_url, PLAIN_SYMBOL)
        tables = stores.routing_tables(work, tag, stores.second_version(tag, env))
        srv.write_programs(progs, tag, BENTO_DIR)
        symbols = ", ".join(q.symbol for q in quotes)
        _say(f"stores ready in {time.monotonic() - t0:.0f} s; symbols: {symbols}")
        bodies = {MIX: realistic_mix(quotes), PLAIN: [plain(PLAIN_SYMBOL)]}

        def log_db(name: str) -> Path:
            return work / ("log-" + re.sub(r"\W+", "-", name) + ".db")

        def ours(name: str, table: str, extra: dict[str, str] | None = None) -> srv.Spec:
            run_env = {
                **env,
                "AUGUR_ROUTING_TABLE": str(tables[table]),
                "AUGUR_PREDICTION_LOG_URL": f"sqlite:///{log_db(name)}",
                **(extra or {}),
            }
            return srv.Spec(name, srv.bentoml_cmd("service:DecisionService"), run_env, BENTO_DIR)

        specs = [
            ours("ours", "plain"),
            srv.Spec(
                "uvicorn no-op", srv.uvicorn_cmd("uvicorn_noop:app", workers), env, progs, "/docs"
            ),
            srv.Spec("our no-op", srv.bentoml_cmd("our_noop:Noop"), env, progs),
            srv.Spec("naive", srv.uvicorn_cmd("naive:app"), env, progs, "/docs"),
            ours("ours + shadow", "shadow"),
        ]
        loads = [
            Load("ours", MIX, 8),
            Load("ours", MIX, 1),
            Load("ours", PLAIN, 8),
            Load("uvicorn no-op", PLAIN, 8),
            Load("our no-op", MIX, 8),
            Load("our no-op", MIX, 1),
            Load("our no-op", PLAIN, 8),
            Load("naive", MIX, 8),
            Load("ours + shadow", MIX, 8),
        ]
        rejected = srv.rejected_settings([(m.name, m.off) for m in MECHANISMS], env)
        for m in MECHANISMS:
            if m.name in rejected:
                _say(f"mechanism {m.name!r} skipped: {rejected[m.name]}")
                continue
            table = "shadow" if m.against == "ours + shadow" else "plain"
            specs.append(ours(f"{m.name} off", table, m.off))
            loads.append(Load(f"{m.name} off", MIX, 8))
        # The shadow in its own container: one serve-shadow for both workers, CPU-limited.
        socket = work / "shadow.sock"
        side_env = {**env, "AUGUR_PREDICTION_LOG_URL": f"sqlite:///{log_db(CONTAINER)}"}
        limit, sidecar = stack.enter_context(
            srv.shadow_container(socket, side_env, SHADOW_CPUS, logs)
        )
        if sidecar is None:
            _say("the shadow container did not start: its rows are left out")
        else:
            _say(f"shadow container: {limit}")
            specs.append(ours(CONTAINER, "shadow", {"AUGUR_SHADOW_SOCKET": str(socket)}))
            loads.append(Load(CONTAINER, MIX, 8))
        baseline = None
        if baseline_ref:
            tree, commit = stack.enter_context(srv.baseline_checkout(baseline_ref))
            baseline = f"baseline {commit[:9]}"
            # the baseline serves a model its own code trained (same bars, same store)
            b_tag = stores.train_version(srv.baseline_env(env, tree), PLAIN_SYMBOL)
            tables["baseline"] = stores.single_route(work, "baseline", b_tag)
            spec = ours(baseline, "baseline")
            b_env, b_dir = srv.baseline_env(spec.env, tree), tree / "bentos" / "decision"
            specs.append(srv.Spec(baseline, spec.cmd, b_env, b_dir))
            loads += [Load(baseline, MIX, 8), Load(baseline, PLAIN, 8)]

        servers = stack.enter_context(_serving(specs, logs))
        results = _measure(servers, loads, bodies, rounds, seconds)
        shadow = servers.get("ours + shadow")
        coverage = _shadow_coverage(shadow.port) if shadow else None
        in_container = _logged_shadow_share(log_db(CONTAINER)) if CONTAINER in servers else None
    return _rows(results, coverage, baseline, (limit, in_container))


def _measure(
    servers: dict[str, srv.Server],
    loads: list[Load],
    bodies: dict[str, list[bytes]],
    rounds: int,
    seconds: float,
) -> dict[Load, list[dict[str, float]]]:
    """Every load once per round. A server (other than ``ours``) that answers with errors
    is dropped, with a printed line."""
    loads = [ld for ld in loads if ld.server in servers]
    _say(f"{len(servers)} servers ready; {rounds} rounds of {len(loads)} loads x {seconds:g} s")
    results: dict[Load, list[dict[str, float]]] = {}
    dropped: set[str] = set()
    for i in range(rounds):
        # Each round starts one load further on: no server always follows the same one
        # (whose logging or shadow backlog it would meet).
        for ld in loads[i % len(loads) :] + loads[: i % len(loads)]:
            if ld.server in dropped:
                continue
            server = servers[ld.server]
            r = load(server.port, bodies[ld.bodies], ld.clients, seconds)
            if r["errors"]:
                why = f"{ld.server}: {r['errors']:.0f} error answers to the {ld.bodies}"
                if ld.server == "ours":
                    raise RuntimeError(f"{why}; log: {srv.tail(server.log)}")
                _say(f"{why}: left out; log: {srv.tail(server.log, 600)}")
                dropped.add(ld.server)
                continue
            results.setdefault(ld, []).append(r)
    return {ld: r for ld, r in results.items() if ld.server not in dropped}


@contextmanager
def _serving(specs: list[srv.Spec], logs: Path) -> Iterator[dict[str, srv.Server]]:
    """Start every server at once; yields the ready ones by name. ``ours`` must start;
    another server that does not is left out, with a printed line."""
    started = [(spec, srv.start(spec, logs)) for spec in specs]
    try:
        ready: dict[str, srv.Server] = {}
        for spec, server in started:
            try:
                srv.wait_ready(server, spec.ready)
            except RuntimeError as exc:
                if spec.name == "ours":
                    raise
                _say(f"{spec.name} left out: {str(exc)[-600:]}")
                srv.stop(server)
                continue
            ready[spec.name] = server
        srv.wait_quiet()
        yield ready
    finally:
        for _, server in started:
            srv.stop(server)


def _shadow_coverage(port: int) -> tuple[float, float]:
    """(shadow decisions, primary decisions) from the server's /metrics, after a pause
    that lets the shadow process finish what its pipe still holds."""
    time.sleep(3)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
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


def _logged_shadow_share(db: Path) -> tuple[float, float]:
    """(shadow rows, served rows) in a server's prediction log, once the shadow container
    has had a moment to finish what its socket still holds."""
    import sqlite3

    time.sleep(3)
    with sqlite3.connect(db) as conn:
        roles = dict(conn.execute("SELECT role, COUNT(*) FROM predictions GROUP BY role"))
    return float(roles.pop("shadow", 0)), float(sum(roles.values()))


def _rows(
    results: dict[Load, list[dict[str, float]]],
    coverage: tuple[float, float] | None,
    baseline: str | None,
    container: tuple[str, tuple[float, float] | None],
) -> list[Row]:
    def fig(ld: Load, key: str) -> float | None:
        r = results.get(ld)
        return None if r is None else _median(r, key)

    def spread(a: Load, b: Load, key: str, higher: bool) -> str:
        """The ratio round by round: how far one round's figure can be trusted here."""
        ratios = sorted(
            (x[key] / y[key] if higher else y[key] / x[key])
            for x, y in zip(results.get(a, []), results.get(b, []), strict=False)
            if x[key] and y[key]
        )
        return f"rounds {ratios[0]:.2f}–{ratios[-1]:.2f}x" if len(ratios) > 1 else ""

    def compare(label: str, a: Load, b: Load, key: str, goal: str = "") -> list[Row]:
        if a not in results:
            return []
        higher = key == "rps"
        note = "; ".join(s for s in (goal, spread(a, b, key, higher)) if s)
        return [
            Row(
                "serving",
                label,
                fig(a, key) or 0.0,
                f"{b.server}, {b.bodies}",
                fig(b, key),
                "req/s" if higher else "ms",
                higher,
                note,
            )
        ]

    ours, noop, naive = (
        Load("ours", MIX, 8),
        Load("our no-op", MIX, 8),
        Load("naive", MIX, 8),
    )
    ours1, noop1 = Load("ours", MIX, 1), Load("our no-op", MIX, 1)
    plain_ours, plain_noop = Load("ours", PLAIN, 8), Load("our no-op", PLAIN, 8)
    gap = (fig(ours1, "p50") or 0.0) - (fig(noop1, "p50") or 0.0)
    shadow = Load("ours + shadow", MIX, 8)
    rows = [
        *compare("/decide vs our no-op, realistic mix, 8 clients", ours, noop, "rps", ">= 0.70x"),
        *compare("/decide vs naive, realistic mix, 8 clients", ours, naive, "rps", ">= 6x"),
        *compare("/decide p99, realistic mix, 8 clients", ours, naive, "p99", "<= 30 ms"),
        *compare(
            "/decide p50 vs our no-op p50, realistic mix, 1 client",
            ours1,
            noop1,
            "p50",
            f"<= +1.5 ms (now {gap:+.2f} ms)",
        ),
        *compare("/decide vs our no-op, plain request, 8 clients", plain_ours, plain_noop, "rps"),
        *compare("/decide, realistic mix vs plain request, 8 clients", ours, plain_ours, "rps"),
        *compare(
            "our no-op vs bare uvicorn no-op, plain request, 8 clients",
            plain_noop,
            Load("uvicorn no-op", PLAIN, 8),
            "rps",
            ">= 0.60x",
        ),
        *compare(
            "p99 with shadow vs without, realistic mix, 8 clients",
            shadow,
            ours,
            "p99",
            ">= 0.91x (<= 10% more)",
        ),
    ]
    limit, in_container = container
    rows += compare(
        f"p99 with shadow container ({limit}) vs without, realistic mix, 8 clients",
        Load(CONTAINER, MIX, 8),
        ours,
        "p99",
        ">= 0.91x (<= 10% more)",
    )
    if in_container is not None:
        scored, mirrored = in_container
        rows.append(
            Row(
                "serving",
                f"shadow container ({limit}): mirrored requests scored (rest dropped, counted)",
                100.0 * scored / max(mirrored, 1),
                "mirrored",
                100.0,
                "%",
                True,
                f"{scored:,.0f} of {mirrored:,.0f}, from its prediction log",
            )
        )
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
    for m in MECHANISMS:
        on, off = Load(m.against, MIX, 8), Load(f"{m.name} off", MIX, 8)
        if off in results:
            rows += compare(f"{m.name}: on vs off, realistic mix, 8 clients", on, off, "rps")
            rows += compare(f"{m.name}: on vs off, p99, realistic mix, 8 clients", on, off, "p99")
    if baseline is not None:
        for bodies in (MIX, PLAIN):
            a, b = Load("ours", bodies, 8), Load(baseline, bodies, 8)
            rows += compare(f"/decide vs {baseline}, {bodies}, 8 clients", a, b, "rps")
            rows += compare(f"/decide p99 vs {baseline}, {bodies}, 8 clients", a, b, "p99")
    # Every measurement on its own: throughput, and latency in the goal column.
    for ld in results:
        rows.append(
            Row(
                "serving",
                f"{ld.server}, {ld.bodies}: req/s, {ld.clients} client(s)",
                fig(ld, "rps") or 0.0,
                "",
                None,
                "req/s",
                True,
                f"p50 {fig(ld, 'p50') or 0:.2f} ms, p99 {fig(ld, 'p99') or 0:.2f} ms",
            )
        )
    return rows


if __name__ == "__main__":
    from benchmarks._table import print_table

    print_table(TITLE, run())
