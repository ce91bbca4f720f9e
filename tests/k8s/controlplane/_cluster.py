"""A real Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver (RBAC on),
kube-controller-manager, kube-scheduler and kwok with two simulated Nodes.

No Docker is needed: the binaries come from ``_build``. ``Cluster.start()`` picks free
ports, makes certificates, starts each process with its log in ``<dir>/logs/``, waits for
``/readyz``, creates the Nodes and writes ``<dir>/kubeconfig`` (client-certificate admin,
self-contained). ``Cluster.stop()`` ends them all. A ``state.json`` lets another process
(``make k8s-down``) stop a cluster it did not start.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from . import _build, _versions
from ._pki import make_pki

NODES = ("kwok-node-0", "kwok-node-1")
SERVICE_CIDR = "10.0.0.0/24"
POD_CIDR = "10.244.0.0/16"
# Controllers a DecisionService and a TuningJob rely on, as on a real cluster.
CONTROLLERS = (
    "garbage-collector-controller",
    "deployment-controller",
    "replicaset-controller",
    "horizontal-pod-autoscaler-controller",
    "disruption-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "namespace-controller",
    "job-controller",
    "endpointslice-controller",
    "root-ca-certificate-publisher-controller",
    "node-lifecycle-controller",  # lifts the not-ready taint once kwok reports Ready
    "persistentvolume-binder-controller",  # binds claims (a model store on a volume)
    # The chart's Redis (a StatefulSet and its claim), its CronJobs, and claims that can be
    # deleted (the pvc-protection finalizer is lifted once no pod uses them).
    "statefulset-controller",
    "cronjob-controller",
    "persistentvolumeclaim-protection-controller",
)
KWOK_STAGES = ("node/fast", "node/heartbeat", "pod/fast")


class ClusterError(RuntimeError):
    """The control plane did not come up; the message names the component and its log."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(path: Path, server: str, pki: Path, user: str) -> Path:
    """A self-contained kubeconfig (certificates inline) for one of the PKI's clients."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "augur-k8s",
                "cluster": {"server": server, "certificate-authority-data": _b64(pki / "ca.crt")},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": _b64(pki / f"{user}.crt"),
                    "client-key-data": _b64(pki / f"{user}.key"),
                },
            }
        ],
        "contexts": [{"name": "augur-k8s", "context": {"cluster": "augur-k8s", "user": user}}],
        "current-context": "augur-k8s",
    }
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(config, indent=2))
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    return path


def kwok_stages_config() -> str:
    """kwok's own fast node/pod stages (Nodes become Ready, Pods Running), from its module."""
    root = _build.module_dir(_versions.KWOK_MODULE, _versions.KWOK) / "kustomize" / "stage"
    import yaml

    docs = []
    for stage in KWOK_STAGES:
        kustomization = yaml.safe_load((root / stage / "kustomization.yaml").read_text())
        docs += [(root / stage / name).read_text() for name in kustomization["resources"]]
    return "\n---\n".join(docs)


@dataclass
class Cluster:
    """One control plane; ``directory`` holds its PKI, data, logs, kubeconfig and state."""

    directory: Path
    ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def kubeconfig(self) -> Path:
        return self.directory / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    @property
    def logs(self) -> Path:
        return self.directory / "logs"

    # --- start -----------------------------------------------------------------------

    def start(self, log=print, timeout: float = 90.0) -> Cluster:
        """Build (or reuse) the binaries, start every component, wait until ready. On
        failure nothing is left running."""
        try:
            return self._start(log, timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, log, timeout: float) -> Cluster:
        started = time.monotonic()
        bin_dir = _build.build(log=log)
        if self.directory.exists():
            shutil.rmtree(self.directory)
        self.logs.mkdir(parents=True)
        pki = make_pki(self.directory / "pki")
        self.ports = {
            name: free_port() for name in ("etcd", "etcd-peer", "apiserver", "cm", "sched")
        }
        self.ports["kwok"] = free_port()
        self._write_state()
        etcd_url = f"http://127.0.0.1:{self.ports['etcd']}"
        self._spawn(
            "etcd",
            [
                str(bin_dir / "etcd"),
                "--name=augur",
                f"--data-dir={self.directory / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{self.ports['etcd-peer']}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{self.ports['etcd-peer']}",
                f"--initial-cluster=augur=http://127.0.0.1:{self.ports['etcd-peer']}",
                "--listen-metrics-urls=",
                "--quota-backend-bytes=1073741824",
                "--unsafe-no-fsync",  # a throwaway store: fsync only slows tests
            ],
        )
        self._spawn(
            "kube-apiserver",
            [
                str(bin_dir / "kube-apiserver"),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.ports['apiserver']}",
                f"--cert-dir={self.directory / 'apiserver-certs'}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                "--authorization-mode=Node,RBAC",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                "--endpoint-reconciler-type=none",  # 127.0.0.1 cannot be an Endpoint
                "--enable-priority-and-fairness=false",
                "--profiling=false",
            ],
        )
        self._wait_ready("kube-apiserver", pki, deadline=started + timeout)
        write_kubeconfig(self.kubeconfig, self.server, pki, "admin")
        for stem in ("controller-manager", "scheduler"):
            write_kubeconfig(self.directory / f"{stem}.kubeconfig", self.server, pki, stem)
        self._spawn(
            "kube-controller-manager",
            [
                str(bin_dir / "kube-controller-manager"),
                f"--kubeconfig={self.directory / 'controller-manager.kubeconfig'}",
                f"--authentication-kubeconfig={self.directory / 'controller-manager.kubeconfig'}",
                f"--authorization-kubeconfig={self.directory / 'controller-manager.kubeconfig'}",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.ports['cm']}",
                f"--cert-dir={self.directory / 'cm-certs'}",
                "--leader-elect=false",
                f"--controllers={','.join(CONTROLLERS)}",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                f"--cluster-cidr={POD_CIDR}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--use-service-account-credentials=true",  # per-controller RBAC, as kubeadm sets it
                "--horizontal-pod-autoscaler-sync-period=5s",
                "--concurrent-gc-syncs=5",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                str(bin_dir / "kube-scheduler"),
                f"--kubeconfig={self.directory / 'scheduler.kubeconfig'}",
                f"--authentication-kubeconfig={self.directory / 'scheduler.kubeconfig'}",
                f"--authorization-kubeconfig={self.directory / 'scheduler.kubeconfig'}",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.ports['sched']}",
                f"--cert-dir={self.directory / 'sched-certs'}",
                "--leader-elect=false",
            ],
        )
        stages = self.directory / "kwok-stages.yaml"
        stages.write_text(kwok_stages_config())
        self._spawn(
            "kwok",
            [
                str(bin_dir / "kwok"),
                f"--kubeconfig={self.kubeconfig}",
                f"--config={stages}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                "--manage-nodes-with-label-selector=",
                "--disregard-status-with-annotation-selector=kwok.x-k8s.io/status=custom",
                "--disregard-status-with-label-selector=",
                f"--cidr={POD_CIDR}",
                "--node-ip=127.0.0.1",
                f"--server-address=127.0.0.1:{self.ports['kwok']}",
                "--enable-crds=",
            ],
        )
        self._create_nodes()
        self._wait_nodes_ready(deadline=started + timeout)
        log(f"control plane ready in {time.monotonic() - started:.1f} s: {self.server}")
        return self

    def _spawn(self, name: str, argv: list[str]) -> None:
        out = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        out.close()
        self.pids[name] = proc.pid
        self._write_state()

    def _write_state(self) -> None:
        state = {
            "ports": self.ports,
            "pids": self.pids,
            "server": self.server if self.ports else "",
        }
        tmp = self.directory / ".state.json.tmp"
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.directory / "state.json")

    def _alive(self, name: str) -> bool:
        try:
            pid, _status = os.waitpid(self.pids[name], os.WNOHANG)
        except ChildProcessError:  # not our child (another process started it)
            try:
                os.kill(self.pids[name], 0)
            except ProcessLookupError:
                return False
            return True
        return pid == 0

    def _died(self, name: str) -> ClusterError:
        tail = (self.logs / f"{name}.log").read_text(errors="replace").splitlines()[-15:]
        return ClusterError(
            f"{name} exited during start; last lines of {self.logs / (name + '.log')}:\n"
            + "\n".join(tail)
        )

    def _wait_ready(self, name: str, pki: Path, deadline: float) -> None:
        context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        url = f"{self.server}/readyz"
        last = ""
        while time.monotonic() < deadline:
            if not self._alive(name) or not self._alive("etcd"):
                raise self._died(name if self._alive("etcd") else "etcd")
            try:
                with urllib.request.urlopen(url, context=context, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError as exc:
                last = str(exc)
            time.sleep(0.2)
        raise ClusterError(f"{name} not ready at {url} in time ({last}); see {self.logs}")

    def _kubectl(self, *args: str, stdin: str | None = None) -> str:
        proc = subprocess.run(
            ["kubectl", f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def _create_nodes(self) -> None:
        nodes = [
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    # kwok manages Nodes with this annotation; no taint, so workloads
                    # schedule here as on a real cluster.
                    "annotations": {
                        "kwok.x-k8s.io/node": "fake",
                        "node.alpha.kubernetes.io/ttl": "0",
                    },
                    "labels": {
                        "type": "kwok",
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                    },
                },
                "status": {
                    "allocatable": {"cpu": "16", "memory": "64Gi", "pods": "110"},
                    "capacity": {"cpu": "16", "memory": "64Gi", "pods": "110"},
                },
            }
            for name in NODES
        ]
        self._kubectl(
            "apply",
            "-f",
            "-",
            stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": nodes}),
        )

    def _wait_nodes_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            for name in ("kube-controller-manager", "kube-scheduler", "kwok"):
                if not self._alive(name):
                    raise self._died(name)
            out = self._kubectl(
                "get", "nodes", "-o",
                "jsonpath={range .items[*]}{.status.conditions[?(@.type=='Ready')].status}"
                "/{.spec.taints[*].key}{' '}{end}",
            )  # fmt: skip
            if out.split() == ["True/"] * len(NODES):  # Ready, and schedulable (no taint)
                return
            time.sleep(0.3)
        raise ClusterError(
            f"the kwok Nodes did not become Ready in time; see {self.logs / 'kwok.log'}"
        )

    # --- stop ------------------------------------------------------------------------

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM every component (newest first), SIGKILL what is left after ``timeout``."""
        for name in reversed(list(self.pids)):
            _signal(self.pids[name], signal.SIGTERM)
        end = time.monotonic() + timeout
        for name in reversed(list(self.pids)):
            while self._alive(name) and time.monotonic() < end:
                time.sleep(0.1)
            if self._alive(name):
                _signal(self.pids[name], signal.SIGKILL)
        self.pids = {}
        self._write_state()

    @classmethod
    def attach(cls, directory: Path) -> Cluster:
        """The cluster whose state.json is in ``directory`` (started by another process)."""
        state = json.loads((directory / "state.json").read_text())
        return cls(directory=directory, ports=state["ports"], pids=state["pids"])

    def running(self) -> bool:
        return bool(self.pids) and all(self._alive(n) for n in self.pids)


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)  # each component leads its own session
