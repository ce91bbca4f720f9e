"""Where mirrored requests are scored: off the request path, never delaying or changing a
primary answer. Each runner is a :class:`~augur.serving._ports.ShadowSink`: ``offer``
never blocks, and a task there is no room for is dropped and counted.

- :class:`ShadowProcess` (one machine, the default): a child process of the worker at the
  lowest CPU priority (``SCHED_IDLE``, else ``nice 19``), fed through a non-blocking pipe
  whose buffer is the bounded queue. A child, not a thread: scoring in the worker would
  hold its GIL while requests wait.
- :class:`ShadowSocket` (a cluster): the shadow runs in its own container of the pod, with
  a CPU limit the kubelet enforces (``augur serve-shadow``, :func:`serve_socket`); workers
  send tasks as datagrams over a Unix socket on a shared volume.
- :class:`ShadowQueue`: a bounded queue and a thread in the worker (tests, and
  ``AUGUR_SHADOW_PROCESS=false``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from augur._cpu import set_thread_idle
from augur.serving._shadow_codec import ShadowTask

log = logging.getLogger(__name__)

Score = Callable[[ShadowTask], Any]
DropCounter = Callable[[int], None]

# A pipe write of at most PIPE_BUF bytes is atomic (all of it, or EAGAIN): a larger task
# (none seen) is dropped rather than risk a torn message.
PIPE_BUF = 4096
F_SETPIPE_SZ = 1031  # fcntl: resize a pipe's buffer (Linux)
TASK_BYTES = 1024  # a packed task's typical size, to size the pipe for ``maxsize`` tasks
# What stops a process tree from outside; the shadow child stops when its pipe closes.
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class _Drops:
    """Counts what a runner could not take, and warns (at most once a minute) when the
    reason is a broken channel rather than a full one."""

    def __init__(self, on_drop: DropCounter | None) -> None:
        self._on_drop = on_drop
        self._lock = threading.Lock()
        self._warned = 0.0
        self.submitted = 0
        self.dropped = 0

    def taken(self) -> bool:
        with self._lock:
            self.submitted += 1
        return True

    def drop(self, reason: BaseException | None = None) -> bool:
        with self._lock:
            self.dropped += 1
        if self._on_drop is not None:
            self._on_drop(1)
        broken = reason is not None and not isinstance(reason, BlockingIOError)
        if broken and time.monotonic() - self._warned > 60:
            self._warned = time.monotonic()
            log.warning("the shadow is unreachable (%s): mirrored requests are dropped", reason)
        return False


class ShadowQueue(_Drops):
    """A bounded FIFO of shadow tasks scored by a daemon thread in this process."""

    def __init__(self, score: Score, maxsize: int = 1024, on_drop: DropCounter | None = None):
        if maxsize < 1:
            raise ValueError("shadow queue maxsize must be >= 1")
        super().__init__(on_drop)
        self._score = score
        self._queue: queue.Queue[ShadowTask | None] = queue.Queue(maxsize=maxsize)
        self._thread: threading.Thread | None = None
        self.done = 0
        self.failed = 0

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="augur-shadow", daemon=True)
            self._thread.start()

    def offer(self, task: ShadowTask) -> bool:
        try:
            self._queue.put_nowait(task)
        except queue.Full:
            return self.drop()
        return self.taken()

    def join(self, timeout: float = 10.0) -> bool:
        """Wait until every queued task was scored (tests, shutdown). False on timeout."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)
        return True

    def stop(self, timeout: float = 5.0) -> None:
        """Score what is queued, then stop the thread."""
        if self._thread is not None and self._thread.is_alive():
            with contextlib.suppress(queue.Full):
                self._queue.put(None, timeout=timeout)
                self._thread.join(timeout)
        self._thread = None

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def _run(self) -> None:
        while (task := self._queue.get()) is not None:
            try:
                self._score(task)
                self.done += 1
            except Exception:  # a failing shadow is the shadow's problem
                self.failed += 1
                log.exception("shadow scoring failed")
            finally:
                self._queue.task_done()
        self._queue.task_done()


class ShadowProcess(_Drops):
    """Shadow scoring in a lowest-priority child process fed through a non-blocking pipe.

    ``make_scorer`` (picklable: the child is ``spawn``ed, a fresh interpreter) builds the
    child's :class:`~augur.serving._shadow_scorer.ShadowScorer` — its own model store
    reads, prediction log and metrics. The child exits when the pipe closes (``stop``, or
    its worker died)."""

    def __init__(
        self,
        make_scorer: Callable[[], Any],
        maxsize: int = 1024,
        on_drop: DropCounter | None = None,
    ) -> None:
        super().__init__(on_drop)
        self._make_scorer = make_scorer
        self._maxsize = maxsize
        self._lock = threading.Lock()
        self._proc: Any = None
        self._writer: Any = None

    def start(self, model_tags: Sequence[str]) -> None:
        """Start the child (once), which loads ``model_tags`` before it takes tasks."""
        import fcntl
        import multiprocessing

        with self._lock:
            if self._proc is not None:
                return
            ctx = multiprocessing.get_context("spawn")
            reader, writer = ctx.Pipe(duplex=False)
            proc = ctx.Process(
                target=_child_main,
                args=(reader, self._make_scorer, list(model_tags)),
                name="augur-shadow",
                daemon=True,
            )
            # It ignores stop signals once _child_main runs. Until then (interpreter start
            # and imports) a stop signal ends it: spawn resets the signal mask, so blocking
            # them here would not carry over, and a worker stopped in that window loses
            # what it mirrored to the child.
            proc.start()
            reader.close()
            os.set_blocking(writer.fileno(), False)
            with contextlib.suppress(OSError):  # above pipe-max-size: keep what it allows
                fcntl.fcntl(writer.fileno(), F_SETPIPE_SZ, max(65536, self._maxsize * TASK_BYTES))
            self._proc, self._writer = proc, writer

    def offer(self, task: ShadowTask) -> bool:
        payload = task.pack()
        try:
            if self._writer is None:
                raise BlockingIOError("shadow process not started")
            if len(payload) + 4 > PIPE_BUF:
                raise BlockingIOError("task larger than an atomic pipe write")
            self._writer.send_bytes(payload)
        except OSError as exc:  # BlockingIOError: full; BrokenPipeError: the child is gone
            return self.drop(exc)
        return self.taken()

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def stop(self, timeout: float = 60.0) -> None:
        """Close the pipe: the child scores what it holds, flushes its log and exits. It
        goes back to normal priority first, or on a busy machine it might get no CPU
        before the timeout and the tasks still in the pipe would be lost. The timeout
        leaves room for a child still loading its model when the service is stopped."""
        if self._proc is None:
            return
        _normal_priority(self._proc.pid)
        with contextlib.suppress(OSError):
            self._writer.close()
        self._proc.join(timeout)
        if self._proc.is_alive():
            self._proc.kill()  # it ignores SIGTERM
            self._proc.join(2)


def _normal_priority(pid: int) -> None:
    """Every thread of process ``pid`` back to the normal scheduling policy and nice 0."""
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        tids = [pid]
    for tid in tids:
        set_thread_idle(tid, False)
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, tid, 0)


def _child_main(reader: Any, make_scorer: Callable[[], Any], model_tags: list[str]) -> None:
    """The shadow process: load, drop to the lowest priority, score until the pipe closes.

    It ignores SIGINT and SIGTERM: Ctrl-C reaches the whole process group and BentoML's
    process manager signals a worker's children too, and either would lose the tasks it
    holds. Its worker stops it by closing the pipe (or by dying, which closes it too)."""
    for signum in _STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s [shadow] %(message)s")
    scorer = make_scorer()
    scorer.models.ensure(model_tags)  # at normal priority: at idle it may never start
    os.nice(19)
    set_thread_idle(0, True)
    try:
        while True:
            try:
                payload = reader.recv_bytes()
            except (EOFError, OSError):
                return
            _score_safely(scorer.score, payload)
    finally:
        scorer.close()


def _score_safely(score: Score, payload: bytes) -> None:
    try:
        score(ShadowTask.unpack(payload))
    except Exception:
        log.exception("shadow scoring failed")


class ShadowSocket(_Drops):
    """Sends mirrored requests to the pod's shadow container: one datagram per task on a
    Unix socket (``AUGUR_SHADOW_SOCKET``, on a volume both containers mount). The bound is
    the kernel's queue of unread datagrams (``net.unix.max_dgram_qlen``); a full queue, or
    a shadow not up yet, drops and counts."""

    def __init__(self, path: str | Path, on_drop: DropCounter | None = None) -> None:
        super().__init__(on_drop)
        self.path = str(path)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)

    def offer(self, task: ShadowTask) -> bool:
        try:
            self._sock.sendto(task.pack(), self.path)
        except OSError as exc:  # full (EAGAIN), or no shadow listening (ENOENT, ECONNREFUSED)
            return self.drop(exc)
        return self.taken()

    def stop(self) -> None:
        self._sock.close()


def serve_socket(path: str | Path, scorer: Any, stop: threading.Event | None = None) -> int:
    """The shadow container's loop: bind ``path`` and score each task until ``stop`` is
    set (SIGTERM in ``augur serve-shadow``), then score what is still queued and return
    how many tasks were scored."""
    stop = stop or threading.Event()
    path = Path(path)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # a socket left by a previous run of this container
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.2)
    scored = 0
    try:
        while True:
            try:
                payload = sock.recv(1 << 20)
            except TimeoutError:
                if stop.is_set():
                    return scored
                continue
            _score_safely(scorer.score, payload)
            scored += 1
    finally:
        sock.close()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


__all__ = ["ShadowProcess", "ShadowQueue", "ShadowSocket", "serve_socket"]
