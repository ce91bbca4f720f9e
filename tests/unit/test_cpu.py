"""Background threads in Linux's SCHED_IDLE class (augur._cpu)."""

from __future__ import annotations

import os
import threading

import pytest

from augur._cpu import set_thread_idle, thread_is_idle

pytestmark = pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux scheduling only")


def _in_thread(fn):  # type: ignore[no-untyped-def]
    """Run ``fn`` in a fresh thread (a thread's policy is its own) and return its result."""
    out: list[object] = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join()
    return out[0]


def test_a_thread_drops_to_idle_and_reports_it() -> None:
    def body() -> tuple[bool, bool, bool]:
        before = thread_is_idle()
        changed = set_thread_idle(0, True)
        return before, changed, thread_is_idle()

    assert _in_thread(body) == (False, True, True)
    assert not thread_is_idle()  # the calling thread is untouched


def test_another_thread_is_named_by_its_native_id() -> None:
    ready, done = threading.Event(), threading.Event()
    tid: list[int] = []

    def body() -> None:
        tid.append(threading.get_native_id())
        ready.set()
        done.wait(5)

    t = threading.Thread(target=body)
    t.start()
    ready.wait(5)
    try:
        assert set_thread_idle(tid[0], True) and thread_is_idle(tid[0])
        # Back to normal needs CAP_SYS_NICE (root here); refused, it says so.
        assert set_thread_idle(tid[0], False) == (not thread_is_idle(tid[0]))
    finally:
        done.set()
        t.join()


def test_a_thread_that_does_not_exist_is_refused_not_raised() -> None:
    assert set_thread_idle(2**22 + 12345, True) is False
    assert thread_is_idle(2**22 + 12345) is False
