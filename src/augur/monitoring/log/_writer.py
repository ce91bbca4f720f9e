"""The log's background writer: :meth:`BatchWriter.put` appends a record to a bounded
buffer and returns at once (a full buffer drops the record, counted), and a thread
writes the buffer in batches, one transaction each, so writes never sit on the request
path."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from augur._cpu import set_thread_idle
from augur.monitoring.log._schema import PredictionRecord

log = logging.getLogger(__name__)

Write = Callable[[list[PredictionRecord]], tuple[int, int]]
"""Writes a batch; returns (written, failed), or raises :class:`LogUnavailable` to keep it."""

# How long the writer waits before it tries an unreachable database again, at most.
_MAX_BACKOFF = 1.0
# How long after a database outage the writers may still hold rows of it (this one's, or
# another worker's): an outcome whose prediction is not found meanwhile is asked again
# later (503), not called unknown.
_CATCH_UP_SECONDS = 10.0


class LogUnavailable(Exception):
    """The database cannot be reached now (down, restarting): the batch is kept in the
    buffer and written once it is back."""


@dataclass(frozen=True, slots=True)
class LogStats:
    """Counters of the buffered writer."""

    enqueued: int
    written: int
    dropped: int
    failed: int
    pending: int


class BatchWriter:
    """A bounded buffer of records and the thread that writes it in batches.

    ``write`` is called on the writer thread with up to ``batch_size`` records; an
    exception from it fails that batch (counted and logged), never the writer, except
    :class:`LogUnavailable`: the batch goes back to the front of the buffer and is tried
    again after a backoff (up to 1 s), so rows of a database outage are written once it
    ends; meanwhile the buffer fills, and records beyond it are dropped (counted). Once a
    record arrives the thread waits ``linger`` seconds for more, then writes what is
    buffered. After each write it warns of records dropped (see :meth:`warn_drops`).

    ``priority="idle"`` runs the thread in Linux's ``SCHED_IDLE`` class: its batches use
    the CPU time the request path leaves, so a batch never takes a core from a request
    mid-flight (the serving benchmark's "idle-priority log writer" row). A writer that
    falls a quarter of the buffer behind (no CPU is left idle) returns to normal priority
    until it has caught up, where the system allows it (``CAP_SYS_NICE``); else it warns.
    """

    def __init__(
        self,
        write: Write,
        *,
        max_queue: int = 10_000,
        batch_size: int = 512,
        linger: float = 0.05,
        on_drop: Callable[[], None] | None = None,
        on_unavailable: Callable[[], None] | None = None,
        priority: Literal["normal", "idle"] = "normal",
    ) -> None:
        if max_queue < 1 or batch_size < 1:
            raise ValueError("max_queue and batch_size must be >= 1")
        if priority not in ("normal", "idle"):
            raise ValueError(f"priority must be 'normal' or 'idle', not {priority!r}")
        self.priority = priority
        self.boosted = False  # an idle-priority writer back at normal priority, catching up
        self._write_batch = write
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.linger = linger
        self._on_drop = on_drop
        self._on_unavailable = on_unavailable  # called for each batch kept for a retry
        # The request path appends, the writer pops from the other end: both are atomic on
        # a deque, so enqueueing takes no lock.
        self._queue: deque[PredictionRecord] = deque()
        self._lock = threading.Lock()  # the counters, and taking records off the buffer
        # Set by a record that finds the writer idle (an idle writer sleeps on it: an idle
        # log costs nothing), and by flush and stop (write now, do not linger).
        self._wake = threading.Event()
        self._idle = False
        self._hurry = False  # a flush is waiting: no linger before the next write
        self._stopping = False
        self.closed = False
        self._taken = 0  # records the writer has taken off the buffer
        self._settled = 0  # ... and written or failed
        self._written = 0
        self._dropped = 0
        self._failed = 0
        self._thread: threading.Thread | None = None
        self._warned_at = -math.inf
        self._warned_drops = 0
        self._backoff = 0.0  # > 0 while the database is unreachable
        self._back_at = -math.inf  # when it was reachable again after an outage
        self._halt = threading.Event()  # set by stop: no more waiting out a backoff

    def start(self) -> None:
        """Start the writer thread (again, if it has stopped)."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._run, name="augur-prediction-log", daemon=True
            )
            self._thread.start()

    def put(self, record: PredictionRecord) -> bool:
        """Enqueue one record; never blocks. False (and counted) when the buffer is full."""
        if self.closed:
            raise RuntimeError("PredictionLog is closed")
        queue = self._queue
        if len(queue) >= self.max_queue:
            with self._lock:
                self._dropped += 1
            if self._on_drop is not None:
                self._on_drop()
            return False
        queue.append(record)
        # Append, then look: the writer marks itself idle, then looks at the buffer, then
        # sleeps — one of the two always sees the other.
        if self._idle:
            self._wake.set()
        return True

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything enqueued so far is written (or failed). False on timeout.
        Without a running writer thread the records are written on the calling thread."""
        deadline = time.monotonic() + timeout
        # What is enqueued now, not an empty buffer: under a steady load the buffer is
        # never empty, and a flush waiting for that would wait out its timeout.
        with self._lock:
            target = self._taken + len(self._queue)
        while True:
            with self._lock:
                if self._settled >= target:
                    return True
            if time.monotonic() > deadline:
                return False
            if self._thread is None or not self._thread.is_alive():
                self._write_buffered()
                if self._backoff:
                    self._halt.wait(min(self._backoff, max(0.0, deadline - time.monotonic())))
                continue
            self._hurry = True
            self._wake.set()
            time.sleep(0.002)

    def stop(self, timeout: float = 30.0) -> None:
        """Refuse new records, write what is buffered and end the thread."""
        self.closed = True
        self._stopping = True
        self._halt.set()
        self._wake.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def stats(self) -> LogStats:
        with self._lock:
            return LogStats(
                enqueued=self._taken + len(self._queue),
                written=self._written,
                dropped=self._dropped,
                failed=self._failed,
                pending=len(self._queue),
            )

    def _run(self) -> None:
        # Batching: the first record to find the writer idle wakes it; it waits ``linger``
        # seconds for the batch to fill, then writes what is buffered, one transaction per
        # batch (a commit per request would cost the database far more). Only that first
        # record wakes it: a writer woken by every append is a thread switch per request
        # on the request path. A record is written within about two lingers.
        wake = self._wake
        if self.priority == "idle" and not set_thread_idle(0, True):
            log.info("prediction log: no SCHED_IDLE here; the writer runs at normal priority")
            self.priority = "normal"
        while not (self._stopping and not self._queue):
            self._idle = True
            if not self._queue and not self._stopping:
                wake.wait()  # idle until a record arrives (or flush/stop)
            self._idle = False
            wake.clear()
            # let the batch fill (unless a flush or stop is waiting)
            if not (self._stopping or self._hurry) and wake.wait(self.linger):
                wake.clear()
            self._mind_backlog()  # behind: write this look at normal priority
            self._write_buffered()
            self.warn_drops()
            self._mind_backlog()  # caught up: back to idle
            if self._backoff and not self._stopping:
                self._halt.wait(self._backoff)  # the database is down: not every linger

    def _mind_backlog(self) -> None:
        """An idle-priority writer a quarter of the buffer behind goes back to normal
        priority until the buffer is nearly empty (warned, at most once a minute, when the
        system refuses)."""
        if self.priority != "idle":
            return
        backlog = len(self._queue)
        if not self.boosted and backlog >= self.max_queue // 4:
            self.boosted = set_thread_idle(0, False)
            if self.boosted:
                log.info("prediction log: %d rows waiting, writer at normal priority", backlog)
            elif time.monotonic() - self._warned_at >= 60:
                self._warned_at = time.monotonic()
                log.warning(
                    "prediction log: %d rows waiting and the writer may not leave idle "
                    "priority (no CAP_SYS_NICE): add CPU, or set "
                    "AUGUR_PREDICTION_LOG_WRITER_PRIORITY=normal",
                    backlog,
                )
        elif self.boosted and backlog <= self.max_queue // 64:
            self.boosted = not set_thread_idle(0, True)

    def warn_drops(self) -> None:
        """Warn when records were dropped (the buffer was full) since the last warning, at
        most once a minute: the drops are otherwise only a counter, and a writer that
        cannot keep up should not flood the log as well."""
        dropped = self._dropped
        now = time.monotonic()
        if dropped > self._warned_drops and now - self._warned_at >= 60:
            self._warned_at = now
            self._warned_drops = dropped
            log.warning(
                "prediction log: %d rows dropped so far: the buffer (%d rows) was full",
                dropped,
                self.max_queue,
            )

    def _write_buffered(self) -> None:
        """Write the records buffered now, ``batch_size`` at a time. Records that arrive
        meanwhile wait for the next look: draining until empty would write a record or
        two per transaction while requests keep coming."""
        self._hurry = False
        n = len(self._queue)
        while n > 0:
            batch = self._take(min(n, self.batch_size))
            if not batch:
                break
            n -= len(batch)
            if not self._write(batch):
                break  # kept for later: the database is unreachable

    def _take(self, n: int) -> list[PredictionRecord]:
        """``n`` records off the buffer, counted as taken in the same step (so ``flush``
        never sees a record in neither place)."""
        queue = self._queue
        with self._lock:
            batch = [queue.popleft() for _ in range(min(n, len(queue)))]
            self._taken += len(batch)
        return batch

    def _write(self, batch: list[PredictionRecord]) -> bool:
        """Write ``batch``; False when it went back to the buffer (database unreachable)."""
        written, failed = 0, len(batch)
        try:
            written, failed = self._write_batch(batch)
        except LogUnavailable as exc:
            if not self._stopping:  # at shutdown the batch fails: no waiting for the database
                self._keep(batch, exc)
                return False
            log.error("prediction log: %d rows not written at shutdown: %s", len(batch), exc)
        except Exception:
            # The log must never take the service down: count and carry on.
            log.exception("prediction log: writing %d rows failed", len(batch))
        finally:
            with self._lock:  # one step: flush returns only once the counters are in
                self._written += written
                self._failed += failed
                self._settled += len(batch)
        if self._backoff:
            log.warning("prediction log: the database is back; writing the buffered rows")
            self._backoff = 0.0
            self._back_at = time.monotonic()
        return True

    @property
    def catching_up(self) -> bool:
        """The database is unreachable, or was until a few seconds ago: rows of the outage
        may not be written yet, here or in another worker."""
        return bool(self._backoff) or time.monotonic() - self._back_at < _CATCH_UP_SECONDS

    def _keep(self, batch: list[PredictionRecord], exc: LogUnavailable) -> None:
        """Put ``batch`` back in front of the buffer, in order, not taken any more."""
        with self._lock:
            self._queue.extendleft(reversed(batch))
            self._taken -= len(batch)
        if self._on_unavailable is not None:
            self._on_unavailable()
        if not self._backoff:
            log.warning(
                "prediction log: the database cannot take writes now (%s); keeping rows in the "
                "buffer (%d rows at most) and retrying",
                exc,
                self.max_queue,
            )
        self._backoff = min(_MAX_BACKOFF, max(0.1, 2 * self._backoff))
