"""The k8s tier's fixtures: a real control plane (session), the CRDs applied with kubectl,
the operator as a process, and a namespace per test.

Without Go the tier cannot build its control plane: every test here is skipped with that
one-line reason in the summary (never silently passed).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port
from tests.k8s.controlplane import _build
from tests.k8s.controlplane._cluster import Cluster

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "helm" / "augur" / "crds"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = _build.go_available()
    for item in items:
        if "tests/k8s/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.k8s)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@dataclass
class Kubectl:
    """kubectl against the test control plane."""

    kubeconfig: Path

    def run(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["kubectl", f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr}")
        return proc

    def apply(self, obj: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
        return self.run("apply", "-f", "-", *args, stdin=json.dumps(obj))

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        ns = ["-n", namespace] if namespace else []
        proc = self.run("get", kind, name, *ns, "-o", "json", check=False)
        if proc.returncode != 0:
            if "NotFound" in proc.stderr:
                return None
            raise AssertionError(proc.stderr)
        return json.loads(proc.stdout)

    def list(self, kind: str, namespace: str, selector: str = "") -> list[dict[str, Any]]:
        sel = ["-l", selector] if selector else []
        proc = self.run("get", kind, "-n", namespace, *sel, "-o", "json")
        return json.loads(proc.stdout)["items"]


def wait_for(
    what: str, check: Callable[[], Any], timeout: float = 60.0, interval: float = 0.25
) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """etcd + kube-apiserver + controller-manager + scheduler + kwok, for the session."""
    directory = tmp_path_factory.mktemp("k8s")
    started = Cluster(directory).start(log=lambda m: print(m, file=sys.stderr))
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="session")
def kubectl(cluster: Cluster) -> Kubectl:
    """kubectl with the CRDs applied: ours (from helm/augur/crds) and KubeRay's."""
    k = Kubectl(cluster.kubeconfig)
    k.run("apply", "--server-side", "-f", str(CRDS))
    for crd in _build.kuberay_crds():  # 1.3 MB RayJob CRD: too big for client-side apply
        k.run("apply", "--server-side", "-f", str(crd))
    names = [
        "decisionservices.augur.dev",
        "tuningjobs.augur.dev",
        "clusterkopfpeerings.kopf.dev",
        "rayjobs.ray.io",
    ]
    for name in names:
        wait_for(
            f"CRD {name} Established",
            lambda n=name: (
                k.run(
                    "wait", "--for=condition=Established", f"crd/{n}", "--timeout=10s", check=False
                ).returncode
                == 0
            ),
        )
    return k


@dataclass
class Operator:
    """``augur operator run`` as a process against the test cluster."""

    kubeconfig: Path
    log: Path
    priority: int
    health_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    def start(self) -> Operator:
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "AUGUR_OPERATOR_RESYNC_SECONDS": "2",
            "AUGUR_OPERATOR_PEERING": "augur-test",
            "AUGUR_OPERATOR_PRIORITY": str(self.priority),
            "AUGUR_OPERATOR_HEALTH_PORT": str(self.health_port),
            **self.env,
        }
        augur = str(Path(sys.executable).parent / "augur")
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [augur, "operator", "run"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                start_new_session=True,
            )
        import httpx

        def healthy() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"the operator exited:\n{self.log.read_text()[-3000:]}")
            try:
                return (
                    httpx.get(f"http://127.0.0.1:{self.health_port}/healthz", timeout=1).status_code
                    == 200
                )
            except httpx.TransportError:
                return False

        wait_for("the operator's /healthz", healthy, timeout=60)
        return self

    def send(self, sig: int) -> None:
        """Send ``sig`` (SIGSTOP freezes it, SIGCONT thaws it) to the operator's group."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL: no cleanup, as when a node dies."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> int | None:
        """SIGTERM, as the kubelet sends; the exit code (None if it had to be killed)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="session")
def operator(kubectl: Kubectl, cluster: Cluster) -> Iterator[Operator]:
    """The operator every test shares (tests that kill it start it again)."""
    op = Operator(cluster.kubeconfig, cluster.logs / "operator.log", priority=100).start()
    try:
        yield op
    finally:
        op.stop()


@contextlib.contextmanager
def fresh_namespace(kubectl: Kubectl) -> Iterator[str]:
    """A namespace of its own, deleted afterwards (without waiting)."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    kubectl.run("create", "namespace", name)
    try:
        yield name
    finally:
        kubectl.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def namespace(kubectl: Kubectl) -> Iterator[str]:
    """A fresh namespace per test."""
    with fresh_namespace(kubectl) as name:
        yield name
