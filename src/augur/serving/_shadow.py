"""Shadow scoring off the request path: a bounded queue and one daemon worker thread.

``submit`` never blocks: when the queue is full the job is dropped and counted, so a slow
or broken shadow version can never delay (or change) a primary response.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

Job = Callable[[], None]


class ShadowQueue:
    """Bounded FIFO of shadow jobs run by a daemon thread; drops are counted."""

    def __init__(self, maxsize: int = 1024, on_drop: Callable[[], None] | None = None) -> None:
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
                self._on_drop()
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


__all__ = ["ShadowQueue"]
