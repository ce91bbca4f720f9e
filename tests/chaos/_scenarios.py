"""The scenarios: each loads the running stack, does its fault, and checks what a user of
the service would notice. A scenario leaves the stack as it found it (Redis back, a
worker replaced, a good routing table, PostgreSQL up) for the next one."""

from __future__ import annotations

import contextlib
import errno
import json
import re
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from tests.chaos._load import CONNECTION_ERROR, DECIDE, OUTCOME, TIMED_OUT, request_id
from tests.chaos._measure import (
    INDEX,
    KIND,
    RETRY_AFTER,
    SENT,
    STATUS,
    Result,
    Run,
    by_status,
    drive,
    failures_text,
    logged,
    p99_ms,
    recovery_seconds,
    slope_per_minute,
)
from tests.chaos._proxy import LatencyProxy
from tests.chaos._stack import AUTH, Stack, another_service


@dataclass(frozen=True)
class Scale:
    """How long and how hard: ``make chaos`` runs :data:`FULL`, ``make test`` :data:`SHORT`."""

    rate: float = 300.0
    soak_seconds: float = 600.0
    soak_window: float = 60.0  # p99 of the first and the last window are compared
    lead: float = 10.0  # load before a fault
    outage: float = 10.0  # how long Redis or PostgreSQL stays down
    tail: float = 20.0  # load after the fault is undone
    token_requests: int = 10_000
    token_rate: float = 500.0
    fuzz_examples: int = 500  # generated requests per operation
    fuzz_seconds: float = 200.0  # the steady load's length beside the fuzz
    # RSS (MiB) and open fds may grow by at most this much a minute per worker over the
    # soak (after its first quarter): a longer soak tells a leak from noise more finely.
    rss_slope: float = 2.0
    fds_slope: float = 1.0
    # A p99 under this is "stable" whatever the ratio: at a few ms a scheduler hiccup on a
    # shared machine is a 1.5x (make test shares it with the whole suite).
    p99_floor_ms: float = 10.0


FULL = Scale()
SHORT = Scale(
    rate=200.0,
    soak_seconds=20.0,
    soak_window=5.0,
    lead=3.0,
    outage=4.0,
    tail=6.0,
    token_requests=2_000,
    token_rate=500.0,
    fuzz_examples=25,
    fuzz_seconds=10.0,
    # 20 s: connections in flight (an fd each) move the fd count by a few either way; a
    # leak of one fd per request would be 12,000/min at this rate
    rss_slope=10.0,
    fds_slope=60.0,
    p99_floor_ms=50.0,
)

# A client's retry of a request may still be asked for within this long after the
# server is back: recovery is measured from the first request sent after that.
RECOVERY_LIMIT = 5.0
# The prediction log's buffer holds a worker's rows about two lingers (50 ms each); a
# killed worker loses what it held: rows of requests sent this long before the kill.
BUFFER_SECONDS = 1.0


def _worker_stats(stack: Stack) -> dict[str, float]:
    out: dict[str, float] = {}
    for w in stack.workers():
        try:
            out[f"rss:{w.pid}"] = w.memory_info().rss / 2**20
            out[f"fds:{w.pid}"] = float(w.num_fds())
        except Exception:  # replaced meanwhile
            continue
    return out


def _check_log(result: Result, run: Run, stack: Stack, *, every_outcome: bool = True) -> None:
    log = logged(stack.log_url, run, expect=len(run.answered(DECIDE)))
    lost, unjoined = result.describe_log(run, log)
    result.expect(
        not lost,
        f"{len(lost)} requests answered 200 have no prediction row (e.g. {sorted(lost)[:2]})",
    )
    if every_outcome:
        result.expect(
            not unjoined,
            f"{len(unjoined)} outcomes answered 200 are not joined (e.g. {sorted(unjoined)[:2]})",
        )


def soak(stack: Stack, scale: Scale, work: Path) -> Result:
    """Fixed rate, realistic mix, outcomes for every 10th request: no error, p99 stable,
    workers' RSS and fds flat, every answer in the log."""
    result = Result("soak")
    pids = sorted(w.pid for w in stack.workers())
    run = drive(
        stack,
        name="soak",
        rate=scale.rate,
        seconds=scale.soak_seconds,
        work=work,
        sample=lambda: _worker_stats(stack),
        sample_every=max(1.0, scale.soak_seconds / 120),
    )
    result.describe_load(run)
    w = scale.soak_window
    first = p99_ms(run.window(run.at(0), run.at(w)))
    last = p99_ms(run.window(run.at(scale.soak_seconds - w), run.at(scale.soak_seconds)))
    result.p99_during, result.p99_after = first, last
    result.recovery = 0.0
    for kind, rows in (("decide", run.decides), ("outcome", run.outcomes)):
        counts = by_status(rows)
        result.expect(set(counts) <= {200}, f"{kind} errors under a steady load: {dict(counts)}")
    result.expect(
        last <= max(1.5 * first, scale.p99_floor_ms),
        f"p99 of the last {w:g} s ({last:.1f} ms) is over 1.5x the first's ({first:.1f} ms)",
    )
    for pid in pids:
        rss = slope_per_minute(run.samples, f"rss:{pid}")
        fds = slope_per_minute(run.samples, f"fds:{pid}")
        result.notes.append(f"worker {pid}: RSS {rss:+.2f} MiB/min, fds {fds:+.2f}/min")
        result.expect(rss <= scale.rss_slope, f"worker {pid}'s RSS grows {rss:.2f} MiB/min")
        result.expect(fds <= scale.fds_slope, f"worker {pid}'s open fds grow {fds:.2f}/min")
    now = sorted(w.pid for w in stack.workers())
    result.expect(now == pids, f"workers were replaced during the soak: {pids} → {now}")
    _check_log(result, run, stack)
    return result


def redis_kill(stack: Stack, scale: Scale, work: Path) -> Result:
    """Redis SIGKILLed under load and restarted ``outage`` seconds later: 503 with
    Retry-After meanwhile, no 500, no hung request, back within 5 s, no answered request
    missing from the log."""
    result = Result("online store (Redis) SIGKILL")
    redis = stack.redis

    def kill() -> None:
        redis.save()  # what a persistent Redis would have on disk
        redis.kill()

    run = drive(
        stack,
        name="redis",
        rate=scale.rate,
        seconds=scale.lead + scale.outage + scale.tail,
        work=work,
        faults=[
            (scale.lead, "kill", kill),
            (scale.lead + scale.outage, "restart", redis.start),
        ],
    )
    result.describe_load(run)
    down, up = run.events["kill"], run.events["restart_done"]  # the kill starts with a SAVE
    result.recovery = recovery_seconds(run, up)
    result.p99_during = p99_ms(run.window(down, up))
    result.p99_after = p99_ms(run.window(up + min(result.recovery, scale.tail), run.at(1e9)))
    _fault_answers(result, run, down)
    outage = run.window(down + 0.5, up)
    result.expect(
        bool(np.any(outage[:, STATUS] == 503)),
        "no 503 while Redis was down: the outage was not noticed",
    )
    result.expect(
        result.recovery <= RECOVERY_LIMIT,
        f"not all 200 until {result.recovery:.2f} s after Redis was back (limit "
        f"{RECOVERY_LIMIT:g} s)",
    )
    _check_log(result, run, stack)
    return result


def _fault_answers(result: Result, run: Run, fault_at: float) -> None:
    """All 200 before the fault; after it only 503s with Retry-After: no 500, no
    connection dropped, no client timeout."""
    before = run.window(0, fault_at)
    result.expect(
        bool(np.all(before[:, STATUS] == 200)),
        f"errors before the fault: {dict(by_status(before))}",
    )
    failed = run.records[run.records[:, STATUS] != 200]
    counts = by_status(failed)
    for status, what in ((500, "500s"), (CONNECTION_ERROR, "dropped connections"),
                         (TIMED_OUT, "client timeouts (hung requests)")):  # fmt: skip
        result.expect(counts.get(status, 0) == 0, f"{counts.get(status, 0)} {what}")
    others = {s: n for s, n in counts.items() if s not in (503, 500, CONNECTION_ERROR, TIMED_OUT)}
    result.expect(not others, f"unexpected statuses: {others}")
    unavailable = failed[failed[:, STATUS] == 503]
    result.expect(
        bool(np.all(unavailable[:, RETRY_AFTER] == 1)),
        f"{int(np.sum(unavailable[:, RETRY_AFTER] == 0))} 503s without Retry-After",
    )


def worker_kill(stack: Stack, scale: Scale, work: Path) -> Result:
    """A worker SIGKILLed under load: the server starts another; only the requests in
    flight on it fail; the new one serves; every answered request is in the log."""
    result = Result("worker SIGKILL")
    before = {w.pid for w in stack.workers()}
    victim = min(before)
    replaced: dict[str, object] = {}

    def kill() -> None:
        import os

        os.kill(victim, signal.SIGKILL)

    def wait_replaced() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            new = [w for w in stack.workers() if w.pid not in before]
            if new and len(stack.workers()) == len(before):
                replaced["worker"] = new[0]
                replaced["cpu"] = sum(new[0].cpu_times()[:2])
                return
            time.sleep(0.1)

    run = drive(
        stack,
        name="worker",
        rate=scale.rate,
        seconds=scale.lead + scale.tail * 2,
        work=work,
        faults=[(scale.lead, "kill", kill), (scale.lead, "replaced", wait_replaced)],
    )
    result.describe_load(run)
    killed_at = run.events["kill_done"]
    back_at = run.events["replaced_done"]
    result.recovery = back_at - killed_at
    result.notes.append(f"worker {victim} killed; replaced in {result.recovery:.1f} s")
    result.notes.append("failures, from the kill: " + failures_text(run, killed_at))
    result.p99_during = p99_ms(run.window(killed_at, back_at))
    result.p99_after = p99_ms(run.window(back_at, run.at(1e9)))
    result.expect("worker" in replaced, "the killed worker was not replaced within 120 s")
    # The killed worker's log buffer dies with it: rows of the requests it answered in
    # the last lingers before the kill (50 ms each) are lost, no others; an outcome
    # posted for one of those is rightly 404 (its prediction is not in the log).
    log = logged(stack.log_url, run, expect=len(run.answered(DECIDE)))
    lost, unjoined = result.describe_log(run, log)
    failed = run.records[run.records[:, STATUS] != 200]
    orphans = (failed[:, KIND] == OUTCOME) & (failed[:, STATUS] == 404)
    orphans &= np.array([r in lost for r in _ids(run, failed)], dtype=bool)
    counts = by_status(failed[~orphans])
    result.expect(
        set(counts) <= {CONNECTION_ERROR},
        f"failures other than the killed worker's dropped connections: {dict(counts)}",
    )
    if orphans.any():
        result.notes.append(f"{int(orphans.sum())} outcomes of lost rows answered 404")
    late = failed[failed[:, SENT] > killed_at + 0.2]
    result.expect(
        len(late) == 0,
        f"{len(late)} requests sent after the kill failed (first {late[0, SENT] - killed_at:.2f}"
        " s after)"
        if len(late)
        else "",
    )
    if "worker" in replaced:
        worker = replaced["worker"]
        cpu = sum(worker.cpu_times()[:2]) - float(replaced["cpu"])  # type: ignore[attr-defined,arg-type]
        result.expect(cpu > 0.2, f"the new worker did not serve ({cpu:.2f} s of CPU after start)")
    sent = run.sent_at()
    early = sorted(r for r in lost if sent[r] < killed_at - BUFFER_SECONDS)
    late = sorted(r for r in lost if sent[r] > killed_at)
    result.notes.append(f"{len(lost)} rows lost with the killed worker's buffer")
    result.expect(
        not early and not late,
        f"rows lost beyond the killed worker's buffer: {len(early)} sent over "
        f"{BUFFER_SECONDS:g} s before the kill, {len(late)} after it",
    )
    result.expect(not unjoined, f"{len(unjoined)} outcomes answered 200 are not joined")
    return result


def _ids(run: Run, rows: np.ndarray) -> list[str]:
    """The request id of each row (an outcome's: the request it answers), in order."""
    return [request_id(run.plan.run, int(i)) for i in rows[:, INDEX]]


def _table_watch(stack: Stack) -> tuple[int, str]:
    """(refused tables counted on /metrics, the server log)."""
    text = stack.metrics()
    found = re.findall(r"^augur_routing_table_rejected_total(?:\{[^}]*\})? ([0-9.e+]+)$", text,
                       re.M)  # fmt: skip
    return int(sum(float(v) for v in found)), stack.log_text()


def routing_corrupt(stack: Stack, scale: Scale, work: Path) -> Result:
    """The routing table file truncated, then not JSON, then weights summing to 90, under
    load: the last good table stays in force (no error, every prediction from its
    version), each refusal is logged and counted on /metrics; a valid table then takes
    effect without a restart."""
    result = Result("routing table corrupted")
    good = stack.good_table()
    text = json.dumps(good)
    ninety = {"versions": [{"name": "only", "model_tag": stack.tag, "weight": 90.0}]}
    refused_before, log_before = _table_watch(stack)

    def overwrite(data: str) -> Callable[[], None]:
        def act() -> None:
            with stack.routes.open("w") as fh:  # in place, as a careless editor would
                fh.write(data)

        return act

    switch = {"versions": [{"name": "next", "model_tag": stack.other_tag, "weight": 100.0}]}
    step = 2.0
    run = drive(
        stack,
        name="routes",
        rate=scale.rate,
        seconds=scale.lead + 4 * step + scale.tail / 2,
        work=work,
        faults=[
            (scale.lead, "truncated", overwrite(text[: len(text) // 2])),
            (scale.lead + step, "invalid", overwrite("versions: [{name: only, weight: }")),
            (scale.lead + 2 * step, "ninety", overwrite(json.dumps(ninety))),
            (scale.lead + 3 * step, "valid", lambda: stack.table(switch)),
        ],
    )
    result.describe_load(run)
    valid_at = run.events["valid_done"]
    result.p99_during = p99_ms(run.window(run.events["truncated"], valid_at))
    result.p99_after = p99_ms(run.window(valid_at, run.at(1e9)))
    counts = by_status(run.records)
    result.expect(set(counts) == {200}, f"errors while the table was bad: {dict(counts)}")
    log = logged(stack.log_url, run, expect=len(run.answered(DECIDE)))
    result.describe_log(run, log)
    versions = log["versions"]
    sent = run.sent_at()
    # sent well before the valid table (a request sent just before may wait in the
    # socket's backlog until after the reload)
    early = {v for r, v in versions.items() if sent.get(r, 0) < valid_at - 1.0}
    late = [(sent[r], v) for r, v in versions.items() if sent.get(r, 0) >= valid_at]
    result.expect(early == {stack.tag}, f"versions served while the table was bad: {early}")
    switched = sorted(t for t, v in late if v == stack.other_tag)
    result.recovery = (switched[0] - valid_at) if switched else float("inf")
    stale = [t for t, v in late if v != stack.other_tag and t > valid_at + 2.0]
    result.expect(bool(switched), "the valid table never took effect")
    result.expect(not stale, f"{len(stale)} requests 2 s after the valid table used the old one")
    refused, log_text = _table_watch(stack)
    new_log = log_text[len(log_before) :]
    lines = [ln for ln in new_log.splitlines() if "routing table refused" in ln]
    result.expect(len(lines) >= 3, f"{len(lines)} 'routing table refused' log lines, not 3+")
    for what in ("not valid YAML/JSON", "must sum to 100, got 90"):
        result.expect(what in new_log, f"no log line says {what!r}")
    result.expect(refused - refused_before >= 3,
                  f"augur_routing_table_rejected_total rose by {refused - refused_before}, not 3+")  # fmt: skip
    result.expect("routing table reloaded" in new_log, "no log line for the valid table")
    stack.table(good)
    return result


def missing_version(stack: Stack, scale: Scale, work: Path) -> Result:
    """A table naming a version the model store lacks: refused, the old table keeps
    serving, the log names the tag."""
    result = Result("table names a missing version")
    missing = "augur-ensemble:chaosmissing00"
    serving = json.loads(stack.routes.read_text())["versions"][0]["model_tag"]
    refused_before, log_before = _table_watch(stack)
    bad = {"versions": [{"name": "only", "model_tag": missing, "weight": 100.0}]}
    run = drive(
        stack,
        name="missing",
        rate=scale.rate,
        seconds=scale.lead + scale.tail / 2,
        work=work,
        faults=[(scale.lead, "table", lambda: stack.table(bad))],
    )
    result.describe_load(run)
    at = run.events["table_done"]
    result.p99_during = p99_ms(run.window(at, at + 2))
    result.p99_after = p99_ms(run.window(at + 2, run.at(1e9)))
    result.recovery = 0.0
    counts = by_status(run.records)
    result.expect(set(counts) == {200}, f"errors after the bad table: {dict(counts)}")
    log = logged(stack.log_url, run, expect=len(run.answered(DECIDE)))
    result.describe_log(run, log)
    versions = set(log["versions"].values())
    result.expect(versions == {serving}, f"versions served: {versions}, not {serving} alone")
    refused, log_text = _table_watch(stack)
    named = [
        ln for ln in log_text[len(log_before) :].splitlines()
        if "routing table refused" in ln and missing in ln
    ]  # fmt: skip
    result.expect(bool(named), f"no 'routing table refused' log line names {missing}")
    result.expect(refused > refused_before, "the refusal is not counted on /metrics")
    ready = httpx.get(f"{stack.url}/readyz", timeout=5).status_code
    result.expect(ready == 200, f"/readyz answers {ready} with the old table in force")
    stack.table(stack.good_table())
    return result


def _dropped(stack: Stack) -> float:
    text = stack.metrics()
    return sum(
        float(v)
        for v in re.findall(r"^augur_prediction_log_dropped_total ([0-9.e+]+)$", text, re.M)
    )


def log_restart(stack: Stack, scale: Scale, work: Path) -> Result:
    """PostgreSQL (the prediction log) stopped under load and started ``outage`` seconds
    later: every decision still served; the rows of the outage written after it; any
    dropped row counted on /metrics and logged; none written twice."""
    result = Result("prediction log (PostgreSQL) restart")
    pg = stack.postgres
    dropped_before = _dropped(stack)
    log_before = stack.log_text()
    run = drive(
        stack,
        name="pglog",
        rate=scale.rate,
        seconds=scale.lead + scale.outage + scale.tail,
        work=work,
        faults=[(scale.lead, "stop", pg.halt), (scale.lead + scale.outage, "start", pg.resume)],
    )
    result.describe_load(run)
    down, up = run.events["stop"], run.events["start_done"]
    result.p99_during = p99_ms(run.window(down, up))
    result.p99_after = p99_ms(run.window(up, run.at(1e9)))
    result.notes.append(
        f"failures, from the stop (back at +{up - down:.1f} s): " + failures_text(run, down)
    )
    decides = run.decides
    result.expect(
        bool(np.all(decides[:, STATUS] == 200)),
        f"decisions failed while the log was down: {dict(by_status(decides))}",
    )
    outcomes = run.outcomes
    bad = outcomes[outcomes[:, STATUS] != 200]
    result.expect(
        bool(np.all((bad[:, STATUS] == 503) & (bad[:, RETRY_AFTER] == 1))),
        f"outcomes while the log was down answered {dict(by_status(bad))}, not 503 + Retry-After",
    )
    after = outcomes[outcomes[:, SENT] > up + RECOVERY_LIMIT]
    result.expect(bool(np.all(after[:, STATUS] == 200)), "outcomes still fail after the restart")
    result.recovery = recovery_seconds(run, up, outcomes)  # decisions never failed
    log = logged(stack.log_url, run, expect=len(run.answered(DECIDE)))
    lost, unjoined = result.describe_log(run, log)
    dropped = _dropped(stack) - dropped_before
    result.notes.append(f"rows lost {len(lost)}, counted dropped {dropped:g}")
    result.expect(not lost, f"{len(lost)} answered requests have no prediction row")
    result.expect(len(lost) <= dropped, f"{len(lost)} rows lost but {dropped:g} counted dropped")
    if lost:
        result.expect("rows dropped" in stack.log_text()[len(log_before) :],
                      "dropped rows are not logged")  # fmt: skip
    result.expect(not unjoined, f"{len(unjoined)} outcomes answered 200 are not joined")
    return result


def bad_tokens(stack: Stack, scale: Scale, work: Path) -> Result:
    """Auth on, requests with wrong, malformed or missing tokens: every one 401, nothing
    logged, no token text in the server log."""
    from tests.chaos._stack import TOKEN

    result = Result("wrong or missing tokens")
    n = scale.token_requests
    kinds = [
        lambda i: "",
        lambda i: f"Bearer chaoswrong{i:06d}",
        lambda i: f"Basic chaoswrong{i:06d}",
        lambda i: f"Bearer {TOKEN}chaoswrong{i:06d}",
        lambda i: f"bearer  chaoswrong{i:06d} x",
    ]
    authorizations = [kinds[i % len(kinds)](i) for i in range(n)]
    log_before = stack.log_text()
    run = drive(
        stack,
        name="tokens",
        rate=scale.token_rate,
        seconds=n / scale.token_rate,
        work=work,
        authorizations=authorizations,
    )
    result.describe_load(run)
    result.p99_during = p99_ms(run.decides)
    counts = by_status(run.records)
    result.expect(counts == {401: n}, f"answers: {dict(counts)}, not {n:,} 401s")
    new_log = stack.log_text()[len(log_before) :]
    result.expect("chaoswrong" not in new_log, "a token's text is in the server log")
    log = logged(stack.log_url, run, timeout=3)
    result.predictions = f"{len(log['predicted'])} (0 expected)"
    result.expect(not log["predicted"], f"{len(log['predicted'])} refused requests were logged")
    return result


def _fuzz(url: str, examples: int) -> tuple[int, list[str]]:
    """schemathesis over every operation of ``/openapi.json``, ``examples`` generated
    requests each: (requests sent, failures: a 5xx or an answer off the schema)."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.core.result import Err
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", headers=AUTH)
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    sent = [0]
    failures: list[str] = []
    for found in schema.get_all_operations():
        if isinstance(found, Err):
            failures.append(f"unreadable operation in the schema: {found.err()}")
            continue
        operation = found.ok()

        @settings(
            max_examples=examples,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            sent[0] += 1
            case.call_and_validate(base_url=url, headers=AUTH, checks=checks, timeout=5)

        try:
            check()
        except (Exception, BaseExceptionGroup) as exc:  # every operation's, not the first only
            failures.append(f"{operation.label}: {str(exc)[:300]}")
    return sent[0], failures


def fuzz(stack: Stack, scale: Scale, work: Path) -> Result:
    """schemathesis at volume (generated bodies for every operation) while the steady
    load runs: no 5xx, every answer on the schema, and the steady load unharmed."""
    result = Result("API fuzz (schemathesis) under load")
    pids = sorted(w.pid for w in stack.workers())
    fuzzed: dict[str, Any] = {}

    def act() -> None:
        fuzzed["sent"], fuzzed["failures"] = _fuzz(stack.url, scale.fuzz_examples)

    run = drive(
        stack,
        name="fuzz",
        rate=scale.rate / 2,
        seconds=scale.lead + scale.fuzz_seconds,
        work=work,
        faults=[(scale.lead, "fuzz", act)],
    )
    result.describe_load(run)
    start, end = run.events["fuzz"], run.events["fuzz_done"]
    result.load += f" + {fuzzed.get('sent', 0):,} fuzzed in {end - start:.0f} s"
    result.p99_during = p99_ms(run.window(start, end))
    result.p99_after = p99_ms(run.window(end, run.at(1e9)))
    result.recovery = 0.0
    for failure in fuzzed.get("failures", ["the fuzzer did not run"]):
        result.expect(False, failure)
    counts = by_status(run.records)
    result.expect(set(counts) == {200}, f"the steady load saw errors: {dict(counts)}")
    now = sorted(w.pid for w in stack.workers())
    result.expect(now == pids, f"workers were replaced during the fuzz: {pids} → {now}")
    _check_log(result, run, stack)
    return result


# --- a slow online store ---------------------------------------------------------------
SLOW_DELAY = 0.2  # what the proxy adds to every Redis round trip
FEATURE_BUDGET = 0.1  # AUGUR_FEATURE_TIMEOUT_SECONDS of the slowed service
# While the store is slow no answer may take longer than this (p99 of every 1-s window):
# requests wait at most about one budget, not for a queue that grows.
SLOW_BOUND = 1.0
# A request sent this long before a fault may still meet it (it reaches the store after).
IN_FLIGHT_SECONDS = 0.1


def _store_errors(metrics: str) -> float:
    found = re.findall(r"^augur_online_store_errors_total ([0-9.e+]+)$", metrics, re.M)
    return sum(float(v) for v in found)


def slow_store(stack: Stack, scale: Scale, work: Path) -> Result:
    """Every Redis round trip 200 ms slower (a proxy between the service and Redis) under
    load, the feature cache off (every request reads Redis, as with a Redis cluster):
    requests answered within the budget, 503 with Retry-After when the store is too slow,
    never a client timeout or a queue that grows; all 200 again once it is fast."""
    result = Result("online store (Redis) 200 ms slower")
    return _slow(stack, scale, work, result, "slow", {"AUGUR_FEATURE_CACHE": "false"})


def _with_account_ids(stack: Stack) -> list[bytes]:
    """The realistic mix, every other body naming an account the service keeps (its state
    in Redis) instead of carrying the account inline."""
    from benchmarks._serving_requests import realistic_mix

    out = []
    for i, raw in enumerate(realistic_mix(stack.quotes)):
        body = json.loads(raw)
        if i % 2 == 0:
            body.pop("account", None)
            body["account_id"] = f"chaos-slow-{i % 8}"
        out.append(json.dumps(body).encode())
    return out


def slow_accounts(stack: Stack, scale: Scale, work: Path) -> Result:
    """As :func:`slow_store` with the feature cache on (the default: features are served
    from the worker's cache) and half the requests naming an account the service keeps in
    Redis: the account reads are what is slow."""
    result = Result("account store (Redis) 200 ms slower, feature cache on")
    bodies = _with_account_ids(stack)
    named = np.array([b'"account_id"' in b for b in bodies])

    def others_served(run: Run) -> None:
        d = run.decides
        plain = d[~named[d[:, INDEX].astype(int) % len(bodies)]]
        result.expect(
            bool(np.all(plain[:, STATUS] == 200)),
            f"requests naming no account failed: {dict(by_status(plain[plain[:, STATUS] != 200]))}",
        )

    return _slow(stack, scale, work, result, "slowacct", {}, bodies=bodies, check=others_served)


def _slow(
    stack: Stack,
    scale: Scale,
    work: Path,
    result: Result,
    name: str,
    env: dict[str, str],
    bodies: list[bytes] | None = None,
    check: Callable[[Run], None] | None = None,
) -> Result:
    proxy = LatencyProxy(stack.redis.port).start()
    try:
        with another_service(
            stack,
            name,
            AUGUR_REDIS_URL=proxy.address,
            AUGUR_FEATURE_TIMEOUT_SECONDS=str(FEATURE_BUDGET),
            **env,
        ) as svc:
            errors_before = _store_errors(svc.metrics())
            log_before = svc.log_text()

            def slow() -> None:
                proxy.delay = SLOW_DELAY

            def fast() -> None:
                proxy.delay = 0.0

            run = drive(
                svc,
                name=name,
                rate=scale.rate,
                seconds=scale.lead + scale.outage + scale.tail,
                work=work,
                faults=[(scale.lead, "slow", slow), (scale.lead + scale.outage, "fast", fast)],
                bodies=bodies,
            )
            errors = _store_errors(svc.metrics()) - errors_before
            new_log = svc.log_text()[len(log_before) :]
            result.describe_load(run)
            down, up = run.events["slow"], run.events["fast"]
            result.recovery = recovery_seconds(run, up)
            result.p99_during = p99_ms(run.window(down, up))
            result.p99_after = p99_ms(
                run.window(up + min(result.recovery, scale.tail), run.at(1e9))
            )
            result.notes.append("failures, from the slowdown: " + failures_text(run, down))
            # a request sent just before the slowdown reads Redis just after it
            _fault_answers(result, run, down - IN_FLIGHT_SECONDS)
            slow_rows = run.window(down + 0.5, up)
            result.expect(
                bool(np.any(slow_rows[:, STATUS] == 503)),
                f"no 503 while every Redis read took {SLOW_DELAY * 1000:.0f} ms more than the "
                f"{FEATURE_BUDGET * 1000:.0f} ms budget",
            )
            worst = max(
                (p99_ms(run.window(t, t + 1.0)) for t in np.arange(down, up, 1.0)
                 if len(run.window(t, t + 1.0))),
                default=float("nan"),
            )  # fmt: skip
            result.notes.append(f"worst 1-s p99 while slow: {worst:.0f} ms")
            result.expect(
                worst <= SLOW_BOUND * 1000,
                f"answers piled up while the store was slow: a 1-s window's p99 was "
                f"{worst:.0f} ms (bound {SLOW_BOUND * 1000:.0f} ms)",
            )
            result.expect(
                result.recovery <= RECOVERY_LIMIT,
                f"not all 200 until {result.recovery:.2f} s after the store was fast again",
            )
            result.expect(errors > 0, "augur_online_store_errors_total did not rise")
            result.expect(
                "AUGUR_FEATURE_TIMEOUT_SECONDS" in new_log,
                "no log line says the store missed the budget (AUGUR_FEATURE_TIMEOUT_SECONDS)",
            )
            _check_log(result, run, svc)
            if check is not None:
                check(run)
    finally:
        proxy.stop()
    return result


# --- a full disk under the SQLite prediction log ------------------------------------
DISK_BYTES = 16 * 2**20  # the tmpfs the SQLite log lives on


def _fill(path: Path) -> int:
    """Write ``path`` until the file system is full (ENOSPC), in ever smaller pieces so
    no room is left; returns the bytes written."""
    written = 0
    with path.open("wb", buffering=0) as fh:
        for size in (2**20, 2**16, 2**12, 2**9, 1):
            block = b"\0" * size
            while True:
                try:
                    written += fh.write(block) or 0
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    return written


def _integrity(db: Path) -> str:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return "; ".join(str(r[0]) for r in conn.execute("PRAGMA integrity_check"))
    finally:
        conn.close()


class _MountRefused(RuntimeError):
    pass


@contextlib.contextmanager
def _tmpfs(path: Path, size: int) -> Any:
    """A tmpfs of ``size`` bytes mounted on ``path`` (needs root), unmounted after."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        raise _MountRefused(
            f"mount -t tmpfs was refused ({done.stderr.strip()}): the scenario needs root "
            "(or CAP_SYS_ADMIN) to make a small file system"
        )
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False, capture_output=True)


def _log_metrics(metrics: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, value in re.findall(
        r"^(augur_prediction_log_[a-z_]+_total)(?:\{[^}]*\})? ([0-9.e+]+)$", metrics, re.M
    ):
        out[name] = out.get(name, 0.0) + float(value)
    return out


def disk_full(stack: Stack, scale: Scale, work: Path) -> Result:
    """The file system under a SQLite prediction log filled to the last byte under load
    for ``outage`` seconds, then freed: every decision still served; outcomes 200 or 503
    with Retry-After; the full disk named in the log and counted on /metrics; the rows of
    the outage written once there is room (or counted); the database passes
    ``PRAGMA integrity_check`` afterwards."""
    result = Result("prediction log (SQLite) disk full")
    try:
        with _tmpfs(work / "disk", DISK_BYTES) as disk:
            _disk_full(stack, scale, work, disk, result)
    except _MountRefused as exc:
        result.skipped = str(exc)
    return result


def _disk_full(stack: Stack, scale: Scale, work: Path, disk: Path, result: Result) -> None:
    """The scenario in the mounted ``disk`` (see :func:`disk_full`)."""
    db = disk / "predictions.db"
    url = f"sqlite:///{db}"
    filler = disk / "filler"
    filled: dict[str, int] = {}

    def fill() -> None:
        filled["bytes"] = _fill(filler)

    with another_service(stack, "disk", AUGUR_PREDICTION_LOG_URL=url) as svc:
        metrics_before = _log_metrics(svc.metrics())
        log_before = svc.log_text()
        run = drive(
            svc,
            name="disk",
            rate=scale.rate,
            seconds=scale.lead + scale.outage + scale.tail,
            work=work,
            faults=[
                (scale.lead, "fill", fill),
                (scale.lead + scale.outage, "free", filler.unlink),
            ],
        )
        result.describe_load(run)
        full, freed = run.events["fill_done"], run.events["free_done"]
        result.notes.append(f"disk filled with {filled.get('bytes', 0):,} bytes")
        result.p99_during = p99_ms(run.window(full, freed))
        result.p99_after = p99_ms(run.window(freed, run.at(1e9)))
        result.notes.append("failures, from the fill: " + failures_text(run, full))
        decides = run.decides
        result.expect(
            bool(np.all(decides[:, STATUS] == 200)),
            f"decisions failed while the disk was full: {dict(by_status(decides))}",
        )
        outcomes = run.outcomes
        bad = outcomes[outcomes[:, STATUS] != 200]
        result.expect(
            bool(np.all((bad[:, STATUS] == 503) & (bad[:, RETRY_AFTER] == 1))),
            f"outcomes while the disk was full answered {dict(by_status(bad))}, not 503 + "
            "Retry-After",
        )
        late = outcomes[outcomes[:, SENT] > freed + RECOVERY_LIMIT]
        result.expect(bool(np.all(late[:, STATUS] == 200)),
                      "outcomes still fail after the disk was freed")  # fmt: skip
        result.recovery = recovery_seconds(run, freed, outcomes)
        log = logged(url, run, expect=len(run.answered(DECIDE)))
        lost, unjoined = result.describe_log(run, log)
        counted = _log_metrics(svc.metrics())
        new_counts = {k: v - metrics_before.get(k, 0.0) for k, v in counted.items()}
        new_counts = {k: v for k, v in new_counts.items() if v}
        result.notes.append(f"rows lost {len(lost)}; /metrics rose: {new_counts or 'none'}")
        new_log = svc.log_text()[len(log_before) :]
        result.expect(
            "disk is full" in new_log,
            "no log line says the disk is full",
        )
        result.expect(bool(new_counts), "nothing on /metrics shows the failed writes")
        uncounted = len(lost) - sum(
            v for k, v in new_counts.items() if "dropped" in k or "failed" in k
        )
        result.expect(uncounted <= 0, f"{len(lost)} rows lost, {uncounted:g} of them uncounted")
        sent = run.sent_at()
        late_lost = [r for r in lost if sent[r] > freed + RECOVERY_LIMIT]
        result.expect(not late_lost, f"{len(late_lost)} rows lost after the disk was freed")
        result.expect(not unjoined, f"{len(unjoined)} outcomes answered 200 are not joined")
    check = _integrity(db)  # the service stopped: the file as it was left
    result.notes.append(f"integrity_check: {check}")
    result.expect(check == "ok", f"PRAGMA integrity_check after the disk was full: {check}")


SCENARIOS: dict[str, Callable[[Stack, Scale, Path], Result]] = {
    "soak": soak,
    "redis": redis_kill,
    "worker": worker_kill,
    "routes": routing_corrupt,
    "missing": missing_version,
    "pglog": log_restart,
    "tokens": bad_tokens,
    "fuzz": fuzz,
    "slow": slow_store,
    "slowacct": slow_accounts,
    "disk": disk_full,
}
