"""Linux CPU scheduling for background work: the shadow process and the prediction log's
writer run in the ``SCHED_IDLE`` class, on CPU time the request path leaves."""

from __future__ import annotations

import os


def set_thread_idle(tid: int, idle: bool) -> bool:
    """Put thread ``tid`` (0: the calling thread) in Linux's ``SCHED_IDLE`` class
    (``idle``) or back in the normal one; False when the system refuses (not Linux, or
    leaving ``SCHED_IDLE`` without ``CAP_SYS_NICE``: an unprivileged thread may lower its
    priority, not raise it)."""
    try:
        policy = os.SCHED_IDLE if idle else os.SCHED_OTHER
        os.sched_setscheduler(tid, policy, os.sched_param(0))
    except (AttributeError, OSError):
        return False
    return True


def thread_is_idle(tid: int = 0) -> bool:
    """Whether thread ``tid`` (0: the calling thread) runs in the ``SCHED_IDLE`` class."""
    try:
        return os.sched_getscheduler(tid) == os.SCHED_IDLE
    except (AttributeError, OSError):
        return False
