"""Shadow queue: off the caller's thread, bounded, drops counted, failures contained."""

from __future__ import annotations

import threading

import pytest

from augur.serving._shadow import ShadowQueue


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
    q = ShadowQueue(2, on_drop=lambda: drops.append(1))  # not started: nothing drains
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
