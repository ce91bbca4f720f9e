"""Linux CPU scheduling for background work: the prediction log's writer and the shadow
process run in the ``SCHED_IDLE`` class, on CPU time the request path leaves; and the
CPU limit and usage of this process's cgroup (a container's CPU limit), so that "spare
CPU" means spare within the container, not only on the node."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


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


@dataclass(frozen=True)
class CpuCgroup:
    """The CPU cgroup a process runs in: its CPU limit and the CPU time it has used.

    Version 2 (``cpu.max``, ``cpu.stat``'s ``usage_usec``) or version 1 (the ``cpu``
    controller's ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``, ``cpuacct.usage``). In
    Kubernetes a container's CPU limit is its cgroup's quota: a container at its limit is
    throttled while the node may look idle. Only this cgroup's own limit is read, not its
    parents' (Kubernetes sets the container's).
    """

    version: int
    limit_dir: Path  # holds the limit (v1: the cpu controller's directory)
    usage_dir: Path  # holds the usage (v1: the cpuacct controller's directory)

    def limit(self) -> float | None:
        """The limit in CPUs (0.5: half a CPU), None when unlimited or unreadable (read
        each time: Kubernetes can resize a running pod)."""
        try:
            if self.version == 2:
                quota, period = (self.limit_dir / "cpu.max").read_text().split()[:2]
                if quota == "max":
                    return None
                return int(quota) / int(period)
            quota_us = int((self.limit_dir / "cpu.cfs_quota_us").read_text())
            if quota_us <= 0:
                return None
            return quota_us / int((self.limit_dir / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError, ZeroDivisionError):
            return None

    def usage(self) -> float | None:
        """CPU seconds every process of the cgroup has used so far (None: unreadable)."""
        try:
            if self.version == 2:
                for line in (self.usage_dir / "cpu.stat").read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "usage_usec":
                        return int(value) / 1e6
                return None
            return int((self.usage_dir / "cpuacct.usage").read_text()) / 1e9
        except (OSError, ValueError):
            return None

    @classmethod
    def of_process(
        cls, cgroup_file: str = "/proc/self/cgroup", mountinfo_file: str = "/proc/self/mountinfo"
    ) -> CpuCgroup | None:
        """The calling process's CPU cgroup, found from its ``/proc`` files the way the
        kernel documents them: the cgroup path per hierarchy, and where each hierarchy is
        mounted. None where there is none to read (not Linux, no cgroup mounted)."""
        try:
            return cls._find(Path(cgroup_file).read_text(), Path(mountinfo_file).read_text())
        except OSError:  # unreadable, or a directory we may not look into
            return None

    @classmethod
    def _find(cls, cgroup_text: str, mountinfo_text: str) -> CpuCgroup | None:
        paths = _cgroup_paths(cgroup_text)
        mounts = _cgroup_mounts(mountinfo_text)
        # Version 2 where its cpu controller is on (cpu.max exists); a hybrid system's
        # unified hierarchy without it falls through to version 1.
        v2 = _cgroup_dir(mounts.get("cgroup2"), paths.get(""))
        if v2 is not None and (v2 / "cpu.max").is_file() and (v2 / "cpu.stat").is_file():
            return cls(2, v2, v2)
        cpu = _cgroup_dir(mounts.get("cpu"), paths.get("cpu"))
        cpuacct = _cgroup_dir(mounts.get("cpuacct"), paths.get("cpuacct"))
        if cpu is not None and cpuacct is not None and (cpuacct / "cpuacct.usage").is_file():
            return cls(1, cpu, cpuacct)
        return None


def _cgroup_paths(text: str) -> dict[str, str]:
    """``/proc/<pid>/cgroup`` (``id:controllers:path`` per line) as controller -> path;
    version 2's line has no controllers and is keyed ``""``."""
    paths: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if not controllers:
            paths[""] = path
        for controller in controllers.split(","):
            if controller:
                paths[controller] = path
    return paths


def _cgroup_mounts(text: str) -> dict[str, tuple[str, str]]:
    """``/proc/<pid>/mountinfo``'s cgroup mounts as controller (``"cgroup2"`` for version
    2) -> (root of the hierarchy at the mount, mount point)."""
    mounts: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, extra = left.split(), right.split()
        if len(fields) < 5 or len(extra) < 3:
            continue
        root, point = fields[3], fields[4].replace("\\040", " ")
        if extra[0] == "cgroup2":
            mounts.setdefault("cgroup2", (root, point))
        elif extra[0] == "cgroup":
            for option in extra[2].split(","):
                mounts.setdefault(option, (root, point))
    return mounts


def _cgroup_dir(mount: tuple[str, str] | None, path: str | None) -> Path | None:
    """The directory of cgroup ``path`` under a hierarchy's ``mount`` (a container sees
    its own cgroup as the mount's root: the path is then relative to that root)."""
    if mount is None or path is None:
        return None
    root, point = mount
    if root != "/" and (path == root or path.startswith(root + "/")):
        path = path[len(root) :]
    directory = Path(point) / path.lstrip("/")
    return directory if directory.is_dir() else None


__all__ = ["CpuCgroup", "set_thread_idle", "thread_is_idle"]
