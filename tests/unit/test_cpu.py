"""CPU scheduling helpers: a process's cgroup CPU limit and usage (augur._cpu)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
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


def test_spare_cpu_is_the_smaller_of_the_node_and_the_cgroup(tmp_path: Path) -> None:
    """Half the node idle, but the container's other processes used its whole one-CPU
    limit: nothing is spare. What this process used itself does not count against it."""
    from augur.serving._shadow import SpareCpu

    stat = tmp_path / "stat"
    leaf = _v2_cgroup(tmp_path / "cg", "100000 100000", 0)  # one CPU
    now, own = [0.0], [0.0]

    def write(user: int, idle: int, usage_seconds: float) -> None:
        stat.write_text(f"cpu  {user} 0 0 {idle} 0 0 0 0 0 0\n")
        (leaf / "cpu.stat").write_text(f"usage_usec {int(usage_seconds * 1e6)}\n")

    write(1000, 1000, 10.0)
    meter = SpareCpu(
        window=0.25,
        stat_path=str(stat),
        clock=lambda: now[0],
        cpu_clock=lambda: own[0],
        cgroup=CpuCgroup(2, leaf, leaf),
    )
    ticks = os.sysconf("SC_CLK_TCK")
    write(1000 + ticks, 1000 + ticks, 11.0)  # 1 s on 2 CPUs: half idle; the cgroup used 1 s
    now[0] = 1.0
    assert meter.share() == pytest.approx(0.0)
    write(1000 + 2 * ticks, 1000 + 2 * ticks, 11.8)  # the next second: 0.8 s used ...
    own[0] = 0.3  # ... 0.3 s of them by this process
    now[0] = 2.0
    assert meter.share() == pytest.approx(0.5)  # others used 0.5 of the 1 CPU allowed
    (leaf / "cpu.max").write_text("max 100000\n")  # the limit lifted: the node's share
    write(1000 + 3 * ticks, 1000 + 3 * ticks, 12.0)
    now[0] = 3.0
    assert meter.share() == pytest.approx(0.5 + 0.0)  # half the node idle, own time 0


V1_CPU = Path("/sys/fs/cgroup/cpu")
V1_CPUACCT = Path("/sys/fs/cgroup/cpuacct")


@pytest.mark.skipif(
    not (
        os.geteuid() == 0
        and (V1_CPU / "cpu.cfs_quota_us").is_file()
        and (V1_CPUACCT / "cpuacct.usage").is_file()
        and os.access(V1_CPU, os.W_OK)
    ),
    reason="needs root and a writable cgroup v1 cpu/cpuacct hierarchy",
)
def test_a_throttled_cgroup_has_no_spare_cpu_on_an_idle_node() -> None:
    """The kernel's own accounting: a busy loop in a real cgroup limited to 0.2 CPU uses
    its whole limit, so nothing is spare in it — while the node, with one busy loop at
    0.2 CPU on two or more CPUs, has most of its CPU spare."""
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
        in_cgroup = SpareCpu(window=0.5, cgroup=cgroup)
        on_node = SpareCpu(window=0.5, cgroup=None)
        time.sleep(1.0)
        throttled, node = in_cgroup.share(), on_node.share()
        assert throttled < 0.15, f"{throttled:.2f} of the 0.2-CPU limit seen spare"
        if (os.cpu_count() or 1) >= 2:
            assert node > 0.4, f"the node's spare share {node:.2f}: is something else busy?"
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
