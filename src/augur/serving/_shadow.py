"""Shadow scoring off the request path, never delaying or changing a primary response.

Two runners, both bounded and never blocking (a full queue drops the job and counts it):

- :class:`ShadowProcess` (the service's default): a child process at the lowest CPU
  priority (Linux ``SCHED_IDLE``, else ``nice 19``) scores the mirrored requests; the
  worker only packs a task and writes it to a non-blocking pipe (the pipe's buffer is the
  bounded queue). A thread in the worker would share its GIL: under load every shadow
  scoring held it while requests waited (measured: +61% p99 at 8 clients with a 100%
  mirror). The child competes only for CPU, and the kernel gives an idle-class process
  only what the workers leave: when they use every core, the shadow falls behind and its
  tasks are dropped and counted. Idle priority alone was not enough: on busy cores the
  child still ran in every gap between requests, and each time it evicted the workers'
  caches (measured at 8 clients with a 100% mirror: the workers' CPU per request +30%,
  p99 +72%). So it also keeps to a CPU budget (``AUGUR_SHADOW_CPU_BUDGET``, a share of one
  core): it scores in short bursts and sleeps between them; under full load it scores a
  sample and the rest is dropped and counted. Once the pipe is found full, the worker
  drops for a moment without packing (measured with the 3% default: p99 +3% to +9%).
  Even within its budget, a child that scores at all while the machine is saturated
  cost the workers ~20% of p99 (measured at 8 clients: the same with a 1% budget as
  with 3%; a child that scored nothing: within noise). So it scores only while the
  machine has CPU to spare (``AUGUR_SHADOW_MIN_SPARE_CPU``, :class:`SpareCpu`): under
  saturation the mirrored requests wait in the pipe, and once it is full they are
  dropped and counted — the shadow is the first thing a saturated service sheds.
- :class:`ShadowQueue`: a bounded queue and one daemon thread in the same process (tests,
  and ``AUGUR_SHADOW_PROCESS=false``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import queue
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from augur._cpu import CpuCgroup, set_thread_idle, thread_is_idle

log = logging.getLogger(__name__)

Job = Callable[[], None]


class ShadowQueue:
    """Bounded FIFO of shadow jobs run by a daemon thread; drops are counted."""

    def __init__(self, maxsize: int = 1024, on_drop: Callable[[int], None] | None = None) -> None:
        if maxsize < 1:
            raise ValueError("shadow queue maxsize must be >= 1")
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=maxsize)
        self._on_drop = on_drop
        self._lock = threading.Lock()
        self.submitted = 0
        self.dropped = 0
        self.failed = 0
        self.done = 0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the worker (idempotent)."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="augur-shadow", daemon=True)
            self._thread.start()

    def submit(self, job: Job) -> bool:
        """Queue a job; False (and counted) when the queue is full."""
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            with self._lock:
                self.dropped += 1
            if self._on_drop is not None:
                self._on_drop(1)
            return False
        with self._lock:
            self.submitted += 1
        return True

    def join(self, timeout: float = 10.0) -> bool:
        """Wait until every queued job ran (tests, shutdown). False on timeout."""
        import time

        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)
        return True

    def stop(self, timeout: float = 5.0) -> None:
        """Finish queued jobs and stop the worker."""
        if self._thread is not None and self._thread.is_alive():
            try:
                self._queue.put(None, timeout=timeout)
            except queue.Full:
                return
            self._thread.join(timeout)
        self._thread = None

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                job()
                with self._lock:
                    self.done += 1
            except Exception:
                # A failing shadow is the shadow's problem: log it, never propagate.
                with self._lock:
                    self.failed += 1
                log.exception("shadow scoring failed")
            finally:
                self._queue.task_done()


# A write of at most PIPE_BUF bytes to a pipe is atomic: all of it, or EAGAIN. Larger
# tasks (never seen: ~1 KB is typical) are dropped rather than risk a torn message.
PIPE_BUF = 4096
F_SETPIPE_SZ = 1031  # fcntl: resize a pipe's buffer (Linux)
TASK_BYTES = 1024  # typical pickled task, to size the pipe for ``maxsize`` tasks
DRAIN_PAUSE_SECONDS = 0.01  # the shadow process's pause between drains of its pipe
BURST_CPU_SECONDS = 0.005  # under a CPU budget, the most scoring per wake-up
FULL_BACKOFF_SECONDS = 0.005  # after the pipe was found full, drop without packing
SPARE_WINDOW_SECONDS = 0.25  # the machine's spare CPU is read over windows this long


class ShadowProcess:
    """Shadow scoring in a lowest-priority child process fed through a non-blocking pipe.

    ``submit_task(payload)`` writes a packed task (``pack_shadow``, which the child
    unpacks as a :class:`~augur.serving._pipeline.ShadowTask`), or drops and counts it
    when the pipe is full. The child (``spawn``ed: a fresh
    interpreter, no forked threads) builds its own pipeline (model store, decision engine,
    prediction log, metrics — Prometheus multiprocess files, so its counts show on the
    service's ``/metrics``) and exits when the pipe closes with its worker.
    """

    def __init__(
        self,
        feature_names: Sequence[str],
        maxsize: int = 1024,
        on_drop: Callable[[int], None] | None = None,
        nice: int = 19,
        cpu_budget: float = 0.0,
        min_spare_cpu: float = 0.0,
    ) -> None:
        self._names = list(feature_names)
        self._cpu_budget = cpu_budget
        self._min_spare = min_spare_cpu
        self._maxsize = maxsize
        self._nice = nice
        self._on_drop = on_drop
        self._lock = threading.Lock()
        self._proc: Any = None
        self._writer: Any = None
        self.submitted = 0
        self.dropped = 0
        self._warned = 0.0
        self._full_until = 0.0

    def start(self, model_tags: Sequence[str]) -> None:
        """Start the child (once) and have it load ``model_tags`` — called when a routing
        table with a shadow comes into force, so the first mirrored request finds it up."""
        import fcntl
        import multiprocessing

        with self._lock:
            if self._proc is not None:
                return
            ctx = multiprocessing.get_context("spawn")
            reader, writer = ctx.Pipe(duplex=False)
            proc = ctx.Process(
                target=_child_main,
                args=(
                    reader,
                    self._names,
                    list(model_tags),
                    self._nice,
                    self._cpu_budget,
                    self._min_spare,
                ),
                name="augur-shadow",
                daemon=True,
            )
            # SIGINT and SIGTERM blocked while it starts (the mask outlives exec); it
            # ignores them for good once running (see _child_main).
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
            try:
                proc.start()
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            reader.close()
            os.set_blocking(writer.fileno(), False)
            # Above /proc/sys/fs/pipe-max-size the kernel refuses: keep what it allows.
            with contextlib.suppress(OSError):
                fcntl.fcntl(writer.fileno(), F_SETPIPE_SZ, max(65536, self._maxsize * TASK_BYTES))
            self._proc, self._writer = proc, writer

    def submit_task(self, task: Any) -> bool:
        """Hand a task to the child — its bytes (``pack_shadow``) or a picklable value;
        False (and counted) when it cannot take it now."""
        payload = task if isinstance(task, bytes) else pickle.dumps(task, pickle.HIGHEST_PROTOCOL)
        try:
            if self._writer is None:
                raise BlockingIOError("shadow process not started")
            if len(payload) + 4 > PIPE_BUF:
                raise BlockingIOError("task larger than an atomic pipe write")
            try:
                self._writer.send_bytes(payload)
            except BlockingIOError:
                self._full_until = time.monotonic() + FULL_BACKOFF_SECONDS
                raise
        except (BlockingIOError, BrokenPipeError, OSError) as exc:
            self.drop()
            if not isinstance(exc, BlockingIOError) and time.monotonic() - self._warned > 60:
                self._warned = time.monotonic()
                log.warning("shadow process is gone (%s): shadow tasks are dropped", exc)
            return False
        with self._lock:
            self.submitted += 1
        return True

    def has_room(self) -> bool:
        """False for ``FULL_BACKOFF_SECONDS`` after the pipe was found full: the caller
        then drops the task without packing it and counts it (:meth:`drop`, once for all
        it dropped in a batch). Under full load most mirrored requests are dropped, and
        packing each one first cost the worker ~7 us."""
        return time.monotonic() >= self._full_until

    def drop(self, n: int = 1) -> None:
        """Count ``n`` tasks the child did not get: one increment of the counter for all
        of them (a Prometheus increment in multiprocess mode takes a lock, reads the pid
        and writes the metric's file — per dropped request, it was a third of what a
        100 % mirror cost the worker)."""
        with self._lock:
            self.dropped += n
        if self._on_drop is not None:
            self._on_drop(n)

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Close the pipe: the child scores what it holds, flushes its log and exits.

        The child first goes back to normal priority: at idle priority on a busy machine
        it could get no CPU before the timeout, and the mirrored requests still in the
        pipe would be lost instead of scored."""
        if self._proc is None:
            return
        _normal_priority(self._proc.pid)
        with contextlib.suppress(OSError):
            self._writer.close()
        self._proc.join(timeout)
        if self._proc.is_alive():
            self._proc.kill()  # it ignores SIGTERM
            self._proc.join(2)


# What stops a process tree from outside; the shadow child stops when its pipe closes.
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _lowest_priority(nice: int) -> None:
    """Run only on CPU time nobody else wants: Linux's SCHED_IDLE policy (a waking worker
    preempts it at once; with nice 19 alone the kernel still gave it slices of a core the
    workers were waiting for, which doubled their p99), else nice 19."""
    os.nice(nice)
    set_thread_idle(0, True)


def _normal_priority(pid: int) -> None:
    """Every thread of process ``pid`` back to the normal policy (``SCHED_OTHER``,
    nice 0 when allowed: root, or an ``RLIMIT_NICE`` that permits it)."""
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        tids = [pid]
    for tid in tids:
        set_thread_idle(tid, False)
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, tid, 0)


def _child_main(
    reader: Any,
    feature_names: list[str],
    model_tags: list[str],
    nice: int,
    cpu_budget: float,
    min_spare_cpu: float = 0.0,
) -> None:
    """The shadow process: read tasks until the pipe closes, score each, log and count.

    Its worker stops it by closing the pipe (or by dying: the pipe closes then too); then
    it scores what it holds, flushes its log and exits. So it ignores SIGINT and SIGTERM,
    which would kill it mid-backlog and lose the mirrored requests it held: Ctrl-C reaches
    the whole process group, and BentoML's process manager (circus, ``stop_children``)
    sends its stop signal to a worker's children as well as the worker. It builds its
    pipeline (loading its model) at normal priority and only then drops to idle: at idle on a
    busy machine the start-up got no CPU, and requests mirrored meanwhile filled the pipe.
    """
    for signum in _STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s [shadow] %(message)s")
    from augur.config import get_settings
    from augur.serving._pipeline import ShadowTask
    from augur.serving._service import shadow_pipeline

    pipeline = shadow_pipeline(get_settings(), feature_names, model_tags)  # loads the model
    _lowest_priority(nice)

    def score(payload: bytes) -> None:
        try:
            pipeline.score_shadow(ShadowTask.unpack(payload))
        except Exception:
            log.exception("shadow scoring failed")

    try:
        serve_tasks(
            reader,
            score,
            cpu_budget,
            spare=SpareCpu().share,
            min_spare=min_spare_cpu,
            stopping=stopping_check(os.getppid()),
        )
    finally:
        if pipeline.log is not None:
            pipeline.log.close()


class SpareCpu:
    """The share of CPU nobody else wanted, where this process runs.

    On the node: idle time plus this process's own CPU time, over all CPU time (the first
    line of ``/proc/stat``). In a container with a CPU limit (its cgroup's quota,
    :class:`~augur._cpu.CpuCgroup`) also within the limit: the part of it the cgroup's
    other processes left unused over the same wall time — a container at its limit is
    throttled while the node may look idle. The share is the smaller of the two.

    The kernel's counters tick 100 times a second per CPU, so :meth:`share` reads them
    at most once a ``window`` and returns the last share in between. 1.0 (no gate) where
    ``/proc/stat`` cannot be read.
    """

    def __init__(
        self,
        window: float = SPARE_WINDOW_SECONDS,
        stat_path: str = "/proc/stat",
        clock: Callable[[], float] = time.monotonic,
        cpu_clock: Callable[[], float] = time.process_time,
        cgroup: CpuCgroup | Literal["auto"] | None = "auto",
    ) -> None:
        self._window = window
        self._path = stat_path
        self._clock = clock
        self._cpu_clock = cpu_clock
        self._cgroup = CpuCgroup.of_process() if cgroup == "auto" else cgroup
        self._ticks_per_second = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._share = 1.0
        self._last = self._read()

    def share(self) -> float:
        """The spare share (0..1) over the last window that ended."""
        if self._last is None or self._clock() - self._last.when < self._window:
            return self._share
        now = self._read()
        if now is None:
            return self._share
        last, self._last = self._last, now
        own = now.own - last.own
        total = now.ticks - last.ticks
        if total > 0:
            node = (now.idle - last.idle + own * self._ticks_per_second) / total
            self._share = max(0.0, min(1.0, node))
        if now.limit is not None and now.used is not None and last.used is not None:
            allowed = now.limit * (now.when - last.when)
            if allowed > 0:
                others = now.used - last.used - own
                self._share = min(self._share, max(0.0, 1.0 - others / allowed))
        return self._share

    def _read(self) -> _CpuReading | None:
        try:
            with open(self._path, "rb") as f:
                fields = f.readline().split()
            # cpu user nice system idle iowait irq softirq steal (guest time is in user)
            ticks = [int(v) for v in fields[1:9]]
        except (OSError, ValueError):
            return None
        if fields[:1] != [b"cpu"] or len(ticks) < 5:
            return None
        cgroup = self._cgroup
        limit = cgroup.limit() if cgroup is not None else None
        used = cgroup.usage() if limit is not None and cgroup is not None else None
        return _CpuReading(
            idle=ticks[3] + ticks[4],  # idle counts I/O wait too
            ticks=sum(ticks),
            own=self._cpu_clock(),
            when=self._clock(),
            limit=limit,
            used=used,
        )


@dataclass(frozen=True)
class _CpuReading:
    idle: int  # node: idle ticks so far
    ticks: int  # node: all ticks so far
    own: float  # this process's CPU seconds so far
    when: float  # the clock, seconds
    limit: float | None  # the cgroup's CPU limit (CPUs), None: none
    used: float | None  # the cgroup's CPU seconds so far (read only under a limit)


def stopping_check(parent: int) -> Callable[[], bool]:
    """Whether the shadow process is stopping: :meth:`ShadowProcess.stop` put it back to
    normal priority, or its worker ``parent`` is gone. Then it neither waits for spare CPU
    nor keeps to its budget: it scores what its pipe holds at full speed and exits (under
    the budget, a backlog of a few hundred tasks outlasted ``stop()``'s timeout)."""

    def stopping() -> bool:
        return not thread_is_idle() or os.getppid() != parent

    return stopping


def serve_tasks(
    reader: Any,
    score: Callable[[bytes], None],
    cpu_budget: float = 0.0,
    cpu_clock: Callable[[], float] = time.process_time,
    spare: Callable[[], float] | None = None,
    min_spare: float = 0.0,
    stopping: Callable[[], bool] | None = None,
) -> None:
    """Read tasks from ``reader`` and ``score`` them until the pipe closes.

    Each wake-up drains what queued meanwhile, then pauses, so under load the process
    wakes ~100 times a second rather than once per request (each wake-up is a context
    switch on cores the workers and their clients share). With ``cpu_budget`` (a share of
    one core, e.g. 0.03) a wake-up scores for at most ``BURST_CPU_SECONDS`` of CPU and the
    pause stretches until the process's CPU time is within the budget: what does not fit
    waits in the pipe, and once the pipe is full the worker drops and counts it.

    With ``spare`` (the share of CPU the machine leaves spare, :class:`SpareCpu`) and
    ``min_spare``, it reads no task while the share is below ``min_spare``: the tasks
    wait in the pipe, and once it is full the worker drops and counts them. Once
    ``stopping()`` says so, neither the spare-CPU gate nor the budget holds it back.
    """
    while True:
        done = stopping is not None and stopping()
        while not done and spare is not None and min_spare > 0 and spare() < min_spare:
            time.sleep(SPARE_WINDOW_SECONDS)
            done = stopping is not None and stopping()
        budget = 0.0 if done else cpu_budget
        cpu0 = cpu_clock()
        try:
            score(reader.recv_bytes())  # blocks while there is nothing to do
            started = time.monotonic()
            while reader.poll(0):
                score(reader.recv_bytes())
                if budget and cpu_clock() - cpu0 >= BURST_CPU_SECONDS:
                    break
        except (EOFError, OSError):
            return
        time.sleep(pause_after(cpu_clock() - cpu0, time.monotonic() - started, budget))


def pause_after(cpu_used: float, elapsed: float, cpu_budget: float) -> float:
    """Seconds to sleep after a burst that used ``cpu_used`` CPU-seconds in ``elapsed``
    wall seconds, so that the burst plus the pause stay within ``cpu_budget`` (a share of
    one core; 0: no budget, only the drain pause)."""
    if cpu_budget <= 0:
        return DRAIN_PAUSE_SECONDS
    return max(DRAIN_PAUSE_SECONDS, cpu_used / cpu_budget - elapsed)


__all__ = ["ShadowProcess", "ShadowQueue", "SpareCpu"]
