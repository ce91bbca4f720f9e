"""CPU scheduling helpers: a process's cgroup CPU limit and usage (augur._cpu)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from augur._cpu import CpuCgroup


def _mountinfo(*mounts: tuple[str, str, str, str]) -> str:
    """mountinfo lines for (root, mount point, fstype, super options)."""
    return (
        "".join(
            f"{30 + i} 25 0:{40 + i} {root} {point} rw,nosuid - {fstype} {fstype} {options}\n"
            for i, (root, point, fstype, options) in enumerate(mounts)
        )
        + "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n"
    )


def _files(tmp_path: Path, cgroup: str, mountinfo: str) -> dict[str, str]:
    (tmp_path / "cgroup").write_text(cgroup)
    (tmp_path / "mountinfo").write_text(mountinfo)
    return {"cgroup_file": str(tmp_path / "cgroup"), "mountinfo_file": str(tmp_path / "mountinfo")}


def _v2_cgroup(directory: Path, cpu_max: str, usage_usec: int) -> Path:
    """A cgroup v2 directory with its cpu.max and cpu.stat."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "cpu.max").write_text(f"{cpu_max}\n")
    (directory / "cpu.stat").write_text(f"usage_usec {usage_usec}\nuser_usec 0\nsystem_usec 0\n")
    return directory


def test_cgroup_v2_limit_and_usage(tmp_path: Path) -> None:
    """A Kubernetes container on cgroup v2: its quota over its period is the limit in CPUs,
    ``usage_usec`` its usage; "max" means no limit."""
    mount = tmp_path / "sys-fs-cgroup"
    leaf = _v2_cgroup(mount / "kubepods" / "pod-a" / "ctr-1", "50000 100000", 1_500_000)
    files = _files(
        tmp_path,
        "0::/kubepods/pod-a/ctr-1\n",
        _mountinfo(("/", str(mount), "cgroup2", "rw,nsdelegate")),
    )
    cgroup = CpuCgroup.of_process(**files)
    assert cgroup == CpuCgroup(2, leaf, leaf)
    assert cgroup.limit() == 0.5
    assert cgroup.usage() == 1.5
    (leaf / "cpu.max").write_text("max 100000\n")
    assert cgroup.limit() is None  # no limit: the node's figures alone apply
    (leaf / "cpu.max").unlink()
    assert cgroup.limit() is None  # unreadable: no limit known


def test_cgroup_seen_from_inside_a_container(tmp_path: Path) -> None:
    """Without a cgroup namespace a container sees its full cgroup path and the mount's
    root is that path: the directory is the mount point itself."""
    mount = _v2_cgroup(tmp_path / "cg", "150000 100000", 42)
    files = _files(
        tmp_path,
        "0::/kubepods/burstable/pod-b/ctr-2\n",
        _mountinfo(("/kubepods/burstable/pod-b/ctr-2", str(mount), "cgroup2", "rw")),
    )
    cgroup = CpuCgroup.of_process(**files)
    assert cgroup is not None and cgroup.limit_dir == mount
    assert cgroup.limit() == 1.5


def test_cgroup_v1_behind_a_hybrid_unified_hierarchy(tmp_path: Path) -> None:
    """A hybrid system mounts a unified (v2) hierarchy without the cpu controller: the
    limit then comes from v1's cpu controller, the usage from cpuacct (nanoseconds)."""
    unified = tmp_path / "unified"
    unified.mkdir()
    (unified / "cpu.stat").write_text("usage_usec 1\n")  # no cpu.max: controller not here
    v1 = tmp_path / "cpu,cpuacct"
    leaf = v1 / "docker" / "abc"
    leaf.mkdir(parents=True)
    (leaf / "cpu.cfs_quota_us").write_text("25000\n")
    (leaf / "cpu.cfs_period_us").write_text("100000\n")
    (leaf / "cpuacct.usage").write_text("2000000000\n")
    files = _files(
        tmp_path,
        "5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n",
        _mountinfo(
            ("/", str(unified), "cgroup2", "rw"),
            ("/", str(v1), "cgroup", "rw,cpu,cpuacct"),
            ("/", str(tmp_path / "memory"), "cgroup", "rw,memory"),
        ),
    )
    cgroup = CpuCgroup.of_process(**files)
    assert cgroup == CpuCgroup(1, leaf, leaf)
    assert cgroup.limit() == 0.25
    assert cgroup.usage() == 2.0
    (leaf / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup.limit() is None


def test_no_cgroup_to_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = _files(tmp_path, "0::/\n", _mountinfo())  # nothing mounted
    assert CpuCgroup.of_process(**files) is None
    _v2_cgroup(tmp_path / "cg", "max 100000", 0)
    files = _files(tmp_path, "0::/\n", _mountinfo(("/", str(tmp_path / "cg"), "cgroup2", "rw")))
    assert CpuCgroup.of_process(**files) is not None

    def forbidden(self: Path) -> bool:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "is_dir", forbidden)  # a directory we may not look into
    assert CpuCgroup.of_process(**files) is None
    assert CpuCgroup.of_process(str(tmp_path / "missing"), str(tmp_path / "missing")) is None
    gone = CpuCgroup(2, tmp_path / "gone", tmp_path / "gone")
    assert gone.limit() is None and gone.usage() is None


def _fake_cgroup(tmp_path: Path, version: int, cpus: float) -> tuple[CpuCgroup, Callable]:
    """A cgroup (v2: one directory; v1: the cpu and cpuacct controllers' directories)
    limited to ``cpus``, and a function setting the CPU seconds it has used."""
    period = 100_000
    if version == 2:
        leaf = _v2_cgroup(tmp_path / "cg", f"{int(cpus * period)} {period}", 0)

        def used(seconds: float) -> None:
            (leaf / "cpu.stat").write_text(f"usage_usec {round(seconds * 1e6)}\n")

        return CpuCgroup(2, leaf, leaf), used
    cpu, cpuacct = tmp_path / "cpu" / "ctr", tmp_path / "cpuacct" / "ctr"
    for directory in (cpu, cpuacct):
        directory.mkdir(parents=True)
    (cpu / "cpu.cfs_quota_us").write_text(f"{int(cpus * period)}\n")
    (cpu / "cpu.cfs_period_us").write_text(f"{period}\n")

    def used_v1(seconds: float) -> None:
        (cpuacct / "cpuacct.usage").write_text(f"{round(seconds * 1e9)}\n")  # nanoseconds

    return CpuCgroup(1, cpu, cpuacct), used_v1


@pytest.mark.parametrize("version", [2, 1])
def test_spare_cpu_is_the_smaller_of_the_node_and_the_cgroup(tmp_path: Path, version: int) -> None:
    """Half the node idle, but the container's other processes used its whole one-CPU
    limit (throttled): nothing is spare. What this process used itself does not count
    against it. (The kernel's own accounting is exercised by the root-only test below;
    these fake cgroup trees cover the same reading everywhere.)"""
    from augur.serving._shadow import SpareCpu

    stat = tmp_path / "stat"
    cgroup, used = _fake_cgroup(tmp_path, version, cpus=1.0)
    now, own = [0.0], [0.0]

    def write(user: int, idle: int, usage_seconds: float) -> None:
        stat.write_text(f"cpu  {user} 0 0 {idle} 0 0 0 0 0 0\n")
        used(usage_seconds)

    write(1000, 1000, 10.0)
    meter = SpareCpu(
        window=0.25,
        stat_path=str(stat),
        clock=lambda: now[0],
        cpu_clock=lambda: own[0],
        cgroup=cgroup,
    )
    ticks = os.sysconf("SC_CLK_TCK")
    write(1000 + ticks, 1000 + ticks, 11.0)  # 1 s on 2 CPUs: half idle; the cgroup used 1 s
    now[0] = 1.0
    assert meter.share() == pytest.approx(0.0)
    write(1000 + 2 * ticks, 1000 + 2 * ticks, 11.8)  # the next second: 0.8 s used ...
    own[0] = 0.3  # ... 0.3 s of them by this process
    now[0] = 2.0
    assert meter.share() == pytest.approx(0.5)  # others used 0.5 of the 1 CPU allowed
    if version == 2:
        (cgroup.limit_dir / "cpu.max").write_text("max 100000\n")  # the limit lifted
    else:
        (cgroup.limit_dir / "cpu.cfs_quota_us").write_text("-1\n")
    write(1000 + 3 * ticks, 1000 + 3 * ticks, 12.0)
    now[0] = 3.0
    assert meter.share() == pytest.approx(0.5 + 0.0)  # the node's share: half idle, own 0


V1_CPU = Path("/sys/fs/cgroup/cpu")
V1_CPUACCT = Path("/sys/fs/cgroup/cpuacct")


def _cgroup_fs_type() -> str:
    """The file system type mounted at /sys/fs/cgroup (cgroup2: v2 only; tmpfs: v1 or
    hybrid, with one mount per v1 controller below it)."""
    try:
        for line in Path("/proc/self/mounts").read_text().splitlines():
            fields = line.split()
            if len(fields) > 2 and fields[1] == "/sys/fs/cgroup":
                return fields[2]
    except OSError:
        pass
    return "nothing"


def _no_writable_v1_cpu_cgroup() -> str:
    """Why the real-kernel test cannot run here ("" when it can), naming what is missing."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        euid = os.geteuid() if hasattr(os, "geteuid") else "n/a"
        return f"needs root to create a cgroup (euid is {euid})"
    missing = [
        str(path)
        for path in (V1_CPU / "cpu.cfs_quota_us", V1_CPUACCT / "cpuacct.usage")
        if not path.is_file()
    ]
    if missing:
        return (
            f"needs the cgroup v1 cpu and cpuacct controllers; /sys/fs/cgroup is "
            f"{_cgroup_fs_type()} and {', '.join(missing)} does not exist"
        )
    if not os.access(V1_CPU, os.W_OK) or not os.access(V1_CPUACCT, os.W_OK):
        return f"{V1_CPU} or {V1_CPUACCT} is read-only (a container without cgroup rights?)"
    return ""


@pytest.mark.skipif(
    bool(_no_writable_v1_cpu_cgroup()),
    reason=f"real-kernel throttling not tested: {_no_writable_v1_cpu_cgroup()}; the fake "
    "v1/v2 trees of test_spare_cpu_is_the_smaller_of_the_node_and_the_cgroup cover the "
    "reading",
)
def test_a_throttled_cgroup_has_no_spare_cpu_on_an_idle_node(tmp_path: Path) -> None:
    """The kernel's own accounting: a busy loop in a real cgroup limited to 0.2 CPU uses
    its whole limit, so nothing is spare in it even where the node is idle. The node is
    a frozen, idle /proc/stat (this machine may be busy with other work), the cgroup the
    kernel's; this process is outside the cgroup, so its own CPU time counts as none."""
    from augur.serving._shadow import SpareCpu

    name = f"augur-test-{os.getpid()}"
    cpu, cpuacct = V1_CPU / name, V1_CPUACCT / name
    cpu.mkdir()
    cpuacct.mkdir()
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        (cpu / "cpu.cfs_period_us").write_text("100000")
        (cpu / "cpu.cfs_quota_us").write_text("20000")
        for directory in (cpu, cpuacct):
            (directory / "cgroup.procs").write_text(str(burner.pid))
        cgroup = CpuCgroup(1, cpu, cpuacct)
        assert cgroup.limit() == pytest.approx(0.2)
        idle_node = tmp_path / "stat"
        idle_node.write_text("cpu  1000 0 0 1000 0 0 0 0 0 0\n")
        started, used_before = time.monotonic(), cgroup.usage()
        assert used_before is not None
        meter = SpareCpu(window=0.5, stat_path=str(idle_node), cpu_clock=lambda: 0.0, cgroup=cgroup)

        # wait (generous deadline) until the window has passed and the busy loop has used
        # 0.1 CPU-second in the cgroup: at least half a second at its 0.2-CPU limit
        def ran() -> bool:
            busy = (cgroup.usage() or 0.0) - used_before
            return time.monotonic() - started >= 0.5 and busy >= 0.1

        deadline = started + 60
        while not ran():
            assert time.monotonic() < deadline, "the busy loop used no CPU in its cgroup"
            time.sleep(0.05)  # a poll interval, not a measurement: this process stays idle
        ticks = os.sysconf("SC_CLK_TCK")
        idle_node.write_text(f"cpu  1000 0 0 {1000 + 100 * ticks} 0 0 0 0 0 0\n")  # all idle
        throttled = meter.share()
        assert throttled < 0.15, f"{throttled:.2f} of the 0.2-CPU limit seen spare"
    finally:
        burner.kill()
        burner.wait()
        for directory in (cpu, cpuacct):
            for _ in range(50):  # the kernel empties the cgroup once the process is reaped
                try:
                    directory.rmdir()
                    break
                except OSError:
                    time.sleep(0.02)
