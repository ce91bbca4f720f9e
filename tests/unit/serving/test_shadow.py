"""Shadow runners: off the caller's thread (or process), bounded, drops counted, failures
contained. The shadow process end to end (a real child scoring, logging and counting on
/metrics) is exercised through ``bentoml serve`` in tests/integration/test_service_http.py."""

from __future__ import annotations

import itertools
import os
import pickle
import threading
import time
from collections.abc import Callable

import pytest

from augur.serving._shadow import ShadowProcess, ShadowQueue


def test_jobs_run_off_the_callers_thread() -> None:
    q = ShadowQueue(8)
    q.start()
    ran: list[str] = []
    q.submit(lambda: ran.append(threading.current_thread().name))
    assert q.join(5)
    assert ran == ["augur-shadow"]
    q.stop()


def test_full_queue_drops_and_counts_without_blocking() -> None:
    drops: list[int] = []
    q = ShadowQueue(2, on_drop=drops.append)  # not started: nothing drains
    assert q.submit(lambda: None) and q.submit(lambda: None)
    assert q.submit(lambda: None) is False
    assert q.dropped == 1 and drops == [1] and q.pending == 2
    q.start()
    assert q.join(5)
    assert q.done == 2
    q.stop()


def test_a_failing_job_is_counted_and_the_worker_survives(caplog: pytest.LogCaptureFixture) -> None:
    q = ShadowQueue(4)
    q.start()

    def boom() -> None:
        raise RuntimeError("shadow model broke")

    q.submit(boom)
    ok: list[int] = []
    q.submit(lambda: ok.append(1))
    assert q.join(5)
    assert q.failed == 1 and ok == [1]
    assert "shadow scoring failed" in caplog.text
    q.stop()


def test_bad_size() -> None:
    with pytest.raises(ValueError):
        ShadowQueue(0)


def _unread_pipe(process: ShadowProcess) -> int:
    """Give ``process`` a non-blocking pipe nobody reads (no child): returns the read end."""
    from multiprocessing.connection import Connection

    r, w = os.pipe()
    os.set_blocking(w, False)
    process._writer = Connection(w, readable=False)
    return r


def test_shadow_process_drops_and_counts_when_its_pipe_is_full() -> None:
    drops: list[int] = []
    process = ShadowProcess(["a", "b"], maxsize=4, on_drop=drops.append)
    r = _unread_pipe(process)
    try:
        t0 = time.perf_counter()
        results = [process.submit_task({"x": "y" * 500}) for _ in range(500)]
        assert time.perf_counter() - t0 < 2.0  # never blocks, however full
        assert results[0] and not results[-1]
        assert process.submitted == results.count(True) > 0
        assert process.dropped == results.count(False) == sum(drops) > 0
        # What went in comes out whole: length-prefixed pickles, never torn.
        from multiprocessing.connection import Connection

        reader = Connection(r, writable=False)
        assert pickle.loads(reader.recv_bytes()) == {"x": "y" * 500}
    finally:
        os.close(r)


def test_shadow_process_refuses_what_it_cannot_write_atomically() -> None:
    process = ShadowProcess(["a"])
    assert not process.submit_task({"x": 1})  # not started: dropped, not raised
    r = _unread_pipe(process)
    try:
        assert not process.submit_task({"x": "y" * 10_000})  # over PIPE_BUF
        assert process.submit_task({"x": 1})
        assert process.dropped == 2 and process.submitted == 1
    finally:
        os.close(r)


def test_shadow_task_survives_the_pipe_unchanged() -> None:
    from datetime import UTC, datetime

    import numpy as np

    from augur.decision import MarketContext, PositionContext, RiskState
    from augur.serving._pipeline import ShadowTask
    from augur.serving._routing import Route

    now = datetime(2024, 1, 2, 9, tzinfo=UTC)
    task = ShadowTask(
        route=Route("next", "m:3", "shadow"),
        symbol="AAA",
        x=np.linspace(-1, 1, 7),
        ts=now,
        market=MarketContext(symbol="AAA", price=1.1, timestamp=now, volatility=0.01),
        pos=PositionContext(side="long", size=0.1, entry_price=1.0, opened_at=now, bars_held=3),
        risk=RiskState(equity=0.9, peak_equity=1.0, open_exposure={"BBB": -0.2}),
        routing_key="k",
        request_id="rid-1",
        primary_action="enter_long",
        digest="d",
    )
    back = ShadowTask.unpack(task.pack())
    np.testing.assert_array_equal(back.x, task.x)
    assert back.market == task.market and back.pos == task.pos and back.risk == task.risk
    assert (back.route, back.ts, back.request_id, back.primary_action) == (
        task.route,
        task.ts,
        task.request_id,
        task.primary_action,
    )


def test_stopping_returns_the_shadow_process_to_normal_priority() -> None:
    """At idle priority on a busy machine the child could get no CPU before stop()'s
    timeout; stop() first puts every thread of it back to the normal policy."""
    import subprocess
    import sys

    from augur.serving._shadow import _normal_priority

    code = (
        "import sys, threading, time\n"
        "from augur.serving._shadow import _lowest_priority\n"
        "_lowest_priority(19)\n"
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


def test_packed_shadow_defaults_and_a_market_time_of_its_own_survive() -> None:
    """A flat position and a default risk state travel as None; a market timestamp that
    is not the features' time is kept as itself."""
    from datetime import UTC, datetime, timedelta

    import numpy as np

    from augur.decision import MarketContext, PositionContext, RiskState
    from augur.serving._pipeline import ShadowTask, pack_shadow
    from augur.serving._routing import Route

    ts = datetime(2024, 1, 2, 9, tzinfo=UTC)
    market = MarketContext(symbol="AAA", price=1.2, timestamp=ts + timedelta(hours=1))
    payload = pack_shadow(
        Route("next", "m:3", "shadow"),
        "AAA",
        np.arange(5.0),
        ts,
        market,
        PositionContext(),
        RiskState(),
        "k",
        "rid-2",
        "no_action",
        "d",
    )
    back = ShadowTask.unpack(payload)
    assert back.market == market and back.ts == ts
    assert back.pos == PositionContext() and back.risk == RiskState()
    np.testing.assert_array_equal(back.x, np.arange(5.0))


def test_pause_keeps_the_shadow_within_its_cpu_budget() -> None:
    from augur.serving._shadow import DRAIN_PAUSE_SECONDS, pause_after

    assert pause_after(0.004, 0.001, 0.0) == DRAIN_PAUSE_SECONDS  # no budget
    assert pause_after(0.005, 0.005, 0.05) == pytest.approx(0.095)  # 5 ms of 100 ms
    assert pause_after(0.0001, 0.0001, 0.5) == DRAIN_PAUSE_SECONDS  # never busier than that


class _VirtualTime:
    """A wall clock and a CPU clock that move only when told: ``sleep`` advances the wall
    clock (and is noted), ``work`` spends CPU (and as much wall time). Installed as the
    shadow module's ``time``, it lets serve_tasks' budget arithmetic be checked exactly,
    whatever the machine's load."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.wall

    def thread_time(self) -> float:
        return self.cpu

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.wall += seconds

    def work(self, seconds: float) -> None:
        self.cpu += seconds
        self.wall += seconds

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from types import SimpleNamespace

        from augur.serving import _shadow

        monkeypatch.setattr(
            _shadow, "time", SimpleNamespace(monotonic=self.monotonic, sleep=self.sleep)
        )


def _one_ms_of_cpu(clock: _VirtualTime, scored: list[float]) -> Callable[[bytes], None]:
    """A scorer that spends 1 ms of (virtual) CPU per task and notes when each one ended."""

    def score(_payload: bytes) -> None:
        clock.work(0.001)
        scored.append(clock.monotonic())

    return score


def _bursts(scored: list[float]) -> list[int]:
    """How many tasks each wake-up scored: a run of tasks 1 ms apart is one burst."""
    sizes = [1]
    for a, b in itertools.pairwise(scored):
        if b - a > 0.0015:
            sizes.append(1)
        else:
            sizes[-1] += 1
    return sizes


def test_a_budgeted_shadow_scores_in_bursts_and_leaves_the_rest_waiting(monkeypatch) -> None:
    """A shadow on a 10% budget with 200 tasks of 1 ms each waiting: it scores about
    what 10% of a core allows (not all 200), at most a burst per wake-up, and the rest
    stays in the pipe (where the worker's next writes find it full). On virtual clocks:
    the budget arithmetic is checked exactly, without wall time."""
    from multiprocessing import Pipe

    from augur.serving._shadow import BURST_CPU_SECONDS, serve_tasks

    clock = _VirtualTime()
    clock.install(monkeypatch)
    reader, writer = Pipe(duplex=False)
    for i in range(200):
        writer.send_bytes(b"task %d" % i)
    writer.close()  # the worker goes away: the loop ends once the pipe is drained
    scored: list[float] = []

    serve_tasks(reader, _one_ms_of_cpu(clock, scored), 0.10, clock.thread_time)
    assert len(scored) == 200  # and scored the rest (slowly) before ending
    # 10% of a core for 0.6 s is ~60 ms: ~60 tasks, give or take a burst.
    per_burst = BURST_CPU_SECONDS / 0.001 + 1
    done = sum(1 for t in scored if t <= 0.6)
    assert 6 <= done <= 0.6 * 0.10 / 0.001 + 2 * per_burst, done
    bursts = _bursts(scored)
    assert max(bursts) <= per_burst and len(bursts) >= 3, bursts  # scored in bursts
    # it slept between bursts (with no budget: one drain, no pause), each pause long
    # enough to bring the burst within the budget
    assert len(clock.sleeps) >= len(bursts) - 1
    assert min(clock.sleeps) >= 0.015, clock.sleeps
    # over the whole backlog it kept to its 10% (and did not starve far below it)
    assert 0.08 <= clock.cpu / clock.wall <= 0.10 + 1e-9, (clock.cpu, clock.wall)
    assert clock.wall > 1.0


def test_a_stopping_shadow_drains_at_full_speed(monkeypatch) -> None:
    """Once stopping, the budget no longer holds it back: the same 200 tasks of 1 ms
    that take a 10 % budget seconds are scored in one go."""
    from multiprocessing import Pipe

    from augur.serving._shadow import DRAIN_PAUSE_SECONDS, serve_tasks

    clock = _VirtualTime()
    clock.install(monkeypatch)
    reader, writer = Pipe(duplex=False)
    for i in range(200):
        writer.send_bytes(b"task %d" % i)
    writer.close()
    scored: list[float] = []

    serve_tasks(
        reader, _one_ms_of_cpu(clock, scored), 0.10, clock.thread_time, stopping=lambda: True
    )
    assert len(scored) == 200
    assert _bursts(scored) == [200]  # no pauses
    assert clock.sleeps in ([], [DRAIN_PAUSE_SECONDS])  # at most the one drain pause
    assert clock.wall < 1.0


def test_a_full_pipe_makes_the_next_tasks_drop_before_they_are_packed(monkeypatch) -> None:
    from augur.serving._shadow import FULL_BACKOFF_SECONDS

    clock = _VirtualTime()
    clock.wall = 1000.0
    clock.install(monkeypatch)
    drops: list[int] = []
    process = ShadowProcess(["a"], maxsize=4, on_drop=drops.append)
    r = _unread_pipe(process)
    try:
        assert process.has_room()
        while process.submit_task({"x": "y" * 500}):
            pass  # fill the pipe
        assert not process.has_room()  # found full: callers drop without packing
        process.drop(3)  # the caller counts what it dropped unpacked, once per batch
        assert process.dropped == sum(drops) == 4 and drops == [1, 3]
        clock.sleep(FULL_BACKOFF_SECONDS / 2)
        assert not process.has_room()  # still backing off
        clock.sleep(FULL_BACKOFF_SECONDS)
        assert process.has_room()  # and try again a moment later
    finally:
        os.close(r)


def test_task_times_cross_the_pipe_exactly() -> None:
    """UTC times travel as whole microseconds since the epoch (an aware datetime is slow to
    pickle); they come back equal to the microsecond, and other zones come back as sent."""
    from datetime import UTC, datetime, timedelta, timezone

    import numpy as np

    from augur.decision import MarketContext, PositionContext, RiskState
    from augur.serving._pipeline import ShadowTask, _position_to_wire, _to_wire, pack_shadow
    from augur.serving._routing import Route

    rng = np.random.default_rng(7)
    eastern = timezone(timedelta(hours=-5))
    times = [
        datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(us))
        for us in rng.integers(-(10**15), 10**17, size=200)
    ]
    for ts, market_ts in [*zip(times, reversed(times), strict=True), (None, times[0])]:
        for market_time in (market_ts, market_ts.astimezone(eastern)):
            market = MarketContext(symbol="AAA", price=1.0, timestamp=market_time)
            # an open position's opening time travels the same way (a zone, or none)
            opened = None if ts is None else market_time
            position = PositionContext("long", 0.1, 1.2, opened_at=opened, bars_held=4)
            back = ShadowTask.unpack(
                pack_shadow(
                    Route("next", "m:3", "shadow"),
                    "AAA",
                    np.zeros(2),
                    ts,
                    market,
                    position,
                    RiskState(),
                    "k",
                    "r",
                    "no_action",
                    "d",
                )
            )
            assert back.ts == ts and back.market.timestamp == market_time
            assert back.market.timestamp.utcoffset() == market_time.utcoffset()
            assert back.pos == position
            if opened is not None:
                assert back.pos.opened_at.utcoffset() == opened.utcoffset()
    assert isinstance(_to_wire(times[0]), int)  # the fast path is taken for UTC
    wire = _position_to_wire(PositionContext("long", 0.1, 1.2, opened_at=times[0]))
    assert any(isinstance(v, int) and not isinstance(v, bool) and v > 10**9 for v in wire)


def test_spare_cpu_is_idle_plus_own_time_over_all_time(tmp_path) -> None:
    """The share of the machine left spare, from /proc/stat's first line: idle and I/O
    wait, plus this process's own CPU time, over all CPU time — read once a window."""
    from augur.serving._shadow import SpareCpu

    stat = tmp_path / "stat"
    now, own = [0.0], [0.0]

    def write(user: int, idle: int, iowait: int) -> None:
        stat.write_text(f"cpu  {user} 0 0 {idle} {iowait} 0 0 0 0 0\ncpu0 1 2 3 4\n")

    write(1000, 1000, 0)
    meter = SpareCpu(
        window=0.25, stat_path=str(stat), clock=lambda: now[0], cpu_clock=lambda: own[0]
    )
    assert meter.share() == 1.0  # nothing measured yet
    write(1000 + 90, 1000 + 5, 5)  # 100 ticks: 90 busy, 10 idle
    now[0] = 0.1
    assert meter.share() == 1.0  # within the window: the last share stands
    now[0] = 0.3
    assert meter.share() == pytest.approx(0.10)
    write(1090 + 95, 1005 + 5, 5)  # 100 ticks: 95 busy, 5 of them our own, 5 idle
    own[0] = 5 / os.sysconf("SC_CLK_TCK")
    now[0] = 0.6
    assert meter.share() == pytest.approx(0.10)
    stat.unlink()
    now[0] = 0.9
    assert meter.share() == pytest.approx(0.10)  # unreadable now: the last share stands
    assert SpareCpu(stat_path=str(tmp_path / "missing")).share() == 1.0  # never readable


def test_a_gated_shadow_waits_for_spare_cpu_and_drains_when_stopping(monkeypatch) -> None:
    """At idle priority on a busy machine the shadow reads nothing (the tasks wait in the
    pipe); once stop() puts it back to normal priority it scores them all and ends."""
    from multiprocessing import Pipe

    from augur._cpu import set_thread_idle
    from augur.serving import _shadow
    from augur.serving._shadow import SpareCpu, serve_tasks, stopping_check

    monkeypatch.setattr(_shadow, "SPARE_WINDOW_SECONDS", 0.01)
    busy = SpareCpu()
    busy.share = lambda: 0.02  # type: ignore[method-assign]  # 2% spare: below the gate
    reader, writer = Pipe(duplex=False)
    scored: list[bytes] = []
    tid: list[int] = []
    consulted = [0]  # how often the loop asked for the spare share

    def spare() -> float:
        consulted[0] += 1
        return busy.share()

    def score(payload: bytes) -> None:
        scored.append(payload)
        if len(scored) == 20:  # busy again before the loop next looks at the gate
            busy.share = lambda: 0.02  # type: ignore[method-assign]

    def shadow() -> None:
        tid.append(threading.get_native_id())
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        serve_tasks(
            reader,
            score,
            spare=spare,
            min_spare=0.1,
            stopping=stopping_check(os.getppid()),
        )

    def wait_until(condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 30
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting until {what}"
            time.sleep(0.005)

    def held_for(n: int) -> None:
        """Wait until the loop consulted the gate ``n`` more times (each time it found
        too little spare CPU and left the pipe alone), or scored anything meanwhile."""
        seen, had = consulted[0], len(scored)
        wait_until(
            lambda: consulted[0] >= seen + n or len(scored) != had,
            f"the gate was consulted {n} more times",
        )

    runner = threading.Thread(target=shadow, daemon=True)
    runner.start()
    for i in range(20):
        writer.send_bytes(b"task %d" % i)
    held_for(3)
    assert scored == []  # busy machine: everything waits in the pipe
    busy.share = lambda: 0.5  # type: ignore[method-assign]
    wait_until(lambda: len(scored) >= 20, "the 20 tasks were scored")
    assert len(scored) == 20  # spare CPU again: scored
    held_for(1)  # back at the gate (busy again since the 20th task)
    writer.send_bytes(b"late")
    held_for(3)
    assert len(scored) == 20
    set_thread_idle(tid[0], False)  # what stop() does before it closes the pipe
    writer.close()
    runner.join(30)
    assert not runner.is_alive() and scored[-1] == b"late"
