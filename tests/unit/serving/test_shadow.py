"""Shadow runners: off the caller's thread (or process), bounded, never blocking, drops
counted, failures contained; the wire format. The shadow in a served service (a child of
each ``bentoml serve`` worker, scoring to the log and /metrics) is exercised in
tests/integration/test_service_http.py."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from augur.decision import DecisionConfig, MarketContext, PositionContext, RiskState, decide
from augur.serving._routing import Route
from augur.serving._shadow import ShadowProcess, ShadowQueue, ShadowSocket, serve_socket
from augur.serving._shadow_codec import ShadowTask

NOW = datetime(2024, 1, 2, 9, tzinfo=UTC)


def task(request_id: str = "rid-1", n: int = 4) -> ShadowTask:
    return ShadowTask(
        route=Route("next", "m:3", "shadow"),
        symbol="AAA",
        x=np.linspace(-0.01, 0.03, n),
        ts=NOW,
        market=MarketContext(symbol="AAA", price=1.1, timestamp=NOW, volatility=0.01),
        pos=PositionContext(side="long", size=0.1, entry_price=1.0, opened_at=NOW, bars_held=3),
        risk=RiskState(equity=0.9, peak_equity=1.0, open_exposure={"BBB": -0.2}),
        routing_key="k",
        request_id=request_id,
        primary_action="enter_long",
        digest="d",
    )


def test_a_task_survives_the_wire_unchanged() -> None:
    sent = task()
    back = ShadowTask.unpack(sent.pack())
    np.testing.assert_array_equal(back.x, sent.x)
    assert back.market == sent.market and back.pos == sent.pos and back.risk == sent.risk
    assert (back.route, back.ts, back.request_id, back.primary_action, back.digest) == (
        sent.route,
        sent.ts,
        sent.request_id,
        sent.primary_action,
        sent.digest,
    )
    import pickle

    with pytest.raises(ValueError, match="not a shadow task"):
        ShadowTask.unpack(pickle.dumps({"x": 1}))


# --------------------------------------------------------------------- in a thread


def test_tasks_are_scored_off_the_callers_thread() -> None:
    scored: list[tuple[str, str]] = []
    q = ShadowQueue(lambda t: scored.append((t.request_id, threading.current_thread().name)), 8)
    q.start()
    assert q.offer(task("a")) and q.join(5)
    assert scored == [("a", "augur-shadow")]
    q.stop()


def test_a_full_queue_drops_and_counts_without_blocking() -> None:
    drops: list[int] = []
    scored: list[str] = []
    q = ShadowQueue(lambda t: scored.append(t.request_id), 2, on_drop=drops.append)
    assert q.offer(task("a")) and q.offer(task("b"))  # not started: nothing drains
    assert q.offer(task("c")) is False
    assert (q.submitted, q.dropped, drops, q.pending) == (2, 1, [1], 2)
    q.start()
    assert q.join(5) and scored == ["a", "b"] and q.done == 2
    q.stop()


def test_a_failing_scoring_is_counted_and_the_thread_survives(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def score(t: ShadowTask) -> None:
        if t.request_id == "boom":
            raise RuntimeError("shadow model broke")

    q = ShadowQueue(score, 4)
    q.start()
    q.offer(task("boom"))
    q.offer(task("fine"))
    assert q.join(5) and (q.failed, q.done) == (1, 1)
    assert "shadow scoring failed" in caplog.text
    q.stop()
    with pytest.raises(ValueError):
        ShadowQueue(score, 0)


# --------------------------------------------------------------- in a child process


class _FileScorer:
    """What the child builds: scores by appending the request id to a file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.models = self  # .ensure(tags) is called before the first task

    def ensure(self, tags: list[str]) -> None:
        Path(self.path).write_text(f"loaded {','.join(tags)} pid {os.getpid()}\n")

    def score(self, t: ShadowTask) -> None:
        with open(self.path, "a") as f:
            f.write(f"{t.request_id} {os.sched_getscheduler(0) == os.SCHED_IDLE}\n")

    def close(self) -> None:
        with open(self.path, "a") as f:
            f.write("closed\n")


def _file_scorer(path: str) -> _FileScorer:
    return _FileScorer(path)


def _wait_for(predicate, timeout: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_the_child_scores_at_idle_priority_ignores_sigterm_and_drains_on_stop(
    tmp_path: Path,
) -> None:
    """The child loads first, then scores at SCHED_IDLE; SIGTERM (BentoML's process
    manager signals a worker's children) does not make it lose what it holds; stop()
    closes the pipe and the child scores everything before it exits."""
    out = tmp_path / "scored.txt"
    process = ShadowProcess(functools.partial(_file_scorer, str(out)), maxsize=64)
    process.start(["m:3"])
    try:
        assert _wait_for(lambda: out.exists() and "loaded m:3" in out.read_text())
        pid = int(out.read_text().split()[-1])
        assert process.offer(task("first"))
        assert _wait_for(lambda: "first" in out.read_text())
        os.kill(pid, signal.SIGTERM)
        time.sleep(0.2)
        assert process.alive
        for i in range(20):
            assert process.offer(task(f"t{i}"))
    finally:
        process.stop()
    lines = out.read_text().splitlines()
    assert lines[0].startswith("loaded m:3") and lines[-1] == "closed"
    scored = [line.split() for line in lines[1:-1]]
    assert [rid for rid, _ in scored] == ["first"] + [f"t{i}" for i in range(20)]
    assert scored[0][1] == "True"  # at idle priority while running
    assert not process.alive and process.submitted == 21 and process.dropped == 0


def _unread_pipe(process: ShadowProcess) -> int:
    """Give ``process`` a non-blocking pipe nobody reads (no child): returns the read end."""
    from multiprocessing.connection import Connection

    r, w = os.pipe()
    os.set_blocking(w, False)
    process._writer = Connection(w, readable=False)
    return r


def test_a_full_pipe_drops_and_counts_without_blocking() -> None:
    drops: list[int] = []
    process = ShadowProcess(lambda: None, maxsize=4, on_drop=drops.append)
    assert process.offer(task("early")) is False  # not started: dropped, not raised
    r = _unread_pipe(process)
    try:
        t0 = time.perf_counter()
        results = [process.offer(task(f"t{i}")) for i in range(2000)]
        assert time.perf_counter() - t0 < 5.0  # never blocks, however full
        assert results[0] and not results[-1]
        assert process.submitted == results.count(True) > 0
        assert process.dropped == results.count(False) + 1 == sum(drops)
        # What went in comes out whole: length-prefixed messages, never torn.
        from multiprocessing.connection import Connection

        reader = Connection(r, writable=False)
        r = -1  # the connection owns it now
        assert ShadowTask.unpack(reader.recv_bytes()).request_id == "t0"
        assert process.offer(task("huge", n=1000)) is False  # over an atomic pipe write
        reader.close()
    finally:
        if r >= 0:
            os.close(r)


def test_stopping_returns_the_child_to_normal_priority() -> None:
    """At idle priority on a busy machine the child could get no CPU before stop()'s
    timeout; stop() first puts every thread of it back to the normal policy."""
    from augur.serving._shadow import _normal_priority

    code = (
        "import os, sys, threading, time\n"
        "from augur._cpu import set_thread_idle\n"
        "os.nice(19); set_thread_idle(0, True)\n"
        "threading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n"
        "print('ready', flush=True); sys.stdin.read()\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        tids = [int(t) for t in os.listdir(f"/proc/{child.pid}/task")]
        assert len(tids) == 2
        assert {os.sched_getscheduler(t) for t in tids} == {os.SCHED_IDLE}
        _normal_priority(child.pid)
        assert {os.sched_getscheduler(t) for t in tids} == {os.SCHED_OTHER}
        if os.geteuid() == 0:  # lowering nice needs the privilege
            assert {os.getpriority(os.PRIO_PROCESS, t) for t in tids} == {0}
    finally:
        child.kill()
        child.wait()


# ---------------------------------------------------- in its own container (a socket)


def test_a_socket_shadow_scores_every_datagram_and_drains_on_stop(tmp_path: Path) -> None:
    """The pod's shadow container: serve_socket scores each task the workers send, and on
    stop scores what is still queued before it returns."""
    path = tmp_path / "shadow.sock"
    scored: list[str] = []

    class Scorer:
        def score(self, t: ShadowTask) -> None:
            scored.append(t.request_id)

    stop = threading.Event()
    result: list[int] = []
    server = threading.Thread(target=lambda: result.append(serve_socket(path, Scorer(), stop)))
    server.start()
    assert _wait_for(path.exists, 5)
    senders = [ShadowSocket(path), ShadowSocket(path)]  # two workers
    for i in range(20):  # at a pace the shadow keeps up with: every task scored
        assert senders[i % 2].offer(task(f"t{i}"))
        assert _wait_for(lambda i=i: len(scored) == i + 1, 5)
    # A burst beyond the socket's queue: what does not fit is dropped and counted, and
    # what fits is still scored after stop is asked for.
    taken = sum(senders[i % 2].offer(task(f"b{i}")) for i in range(300))
    stop.set()
    server.join(10)
    dropped = sum(s.dropped for s in senders)
    assert 0 < taken < 300 and taken + dropped == 300
    assert result == [20 + taken] and len(scored) == 20 + taken
    assert not path.exists()  # the socket is removed when the container stops
    for s in senders:
        s.stop()


def test_a_socket_with_no_shadow_listening_drops_counts_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    drops: list[int] = []
    sender = ShadowSocket(tmp_path / "nobody.sock", on_drop=drops.append)
    assert sender.offer(task("a")) is False and sender.offer(task("b")) is False
    assert sender.dropped == 2 and drops == [1, 1]
    assert caplog.text.count("the shadow is unreachable") == 1
    sender.stop()


def test_a_real_scorer_in_the_socket_shadow_logs_its_decisions(tmp_path: Path) -> None:
    """serve_socket with the ShadowScorer the container builds: each task decided by the
    shadow version and logged under its request id with role 'shadow'."""
    from augur.serving._memory import MemoryPredictionLog
    from augur.serving._registry import ModelRegistry
    from augur.serving._shadow_scorer import ShadowScorer
    from tests.unit.serving.conftest import NAMES, LinearModel

    sink = MemoryPredictionLog()
    scorer = ShadowScorer(
        ModelRegistry({"m:3": LinearModel(0.5)}.__getitem__, NAMES, DecisionConfig()),
        decide,
        sink,
    )
    path = tmp_path / "s.sock"
    stop = threading.Event()
    server = threading.Thread(target=serve_socket, args=(path, scorer, stop))
    server.start()
    assert _wait_for(path.exists, 5)
    sender = ShadowSocket(path)
    assert sender.offer(task("logged-1"))
    assert _wait_for(lambda: len(sink.predictions) == 1, 5)
    stop.set()
    server.join(10)
    (row,) = sink.predictions
    assert (row.request_id, row.role, row.model_version) == ("logged-1", "shadow", "m:3")
    sender.stop()
