"""The demo's cluster stage: the same versions, served by the operator on a real control plane.

A kube-apiserver, controller-manager, scheduler and two kwok Nodes start on 127.0.0.1
(binaries built once from Go modules, cached under ~/.cache/augur/k8s); the CRDs are
applied; ``augur operator run`` reconciles a DecisionService whose canary is the version
tuning just promoted; traffic is shifted with ``kubectl patch`` (only the routing table
changes, no pod restarts); deleting the resource garbage-collects everything. kwok pods
run no containers: this stage shows the control plane's side, `make kind-up` the rest.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.k8s.controlplane._cluster import Cluster, free_port  # noqa: E402

HOME = Path(os.environ.get("AUGUR_HOME", ".augur")).resolve()


def kubectl(cluster: Cluster, *args: str, show: bool = True) -> str:
    out = subprocess.run(
        ["kubectl", f"--kubeconfig={cluster.kubeconfig}", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if show:
        print(f"$ kubectl {' '.join(args)}\n{out}")
    return out


def wait(what: str, check, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.5)


def newest_tags(n: int) -> list[str]:
    import bentoml

    models = sorted(
        bentoml.models.list("augur-ensemble"), key=lambda m: m.creation_time, reverse=True
    )
    return [str(m.tag) for m in models[:n]]


def main() -> int:
    promoted, primary = newest_tags(2)
    store = HOME / "model-store"
    subprocess.run(["augur", "models", "push", primary, promoted, "--to", str(store)], check=True)
    cluster = Cluster(HOME / "k8s-demo").start()
    operator = None
    try:
        kubectl(cluster, "get", "nodes")
        kubectl(cluster, "apply", "--server-side", "-f", str(ROOT / "helm" / "augur" / "crds"))
        kubectl(cluster, "wait", "--for=condition=Established", "crd/decisionservices.augur.dev")
        env = {
            **os.environ,
            "KUBECONFIG": str(cluster.kubeconfig),
            "AUGUR_OPERATOR_RESYNC_SECONDS": "5",
        }
        log = (cluster.logs / "operator.log").open("wb")
        operator = subprocess.Popen(
            ["augur", "operator", "run", "--standalone", "--health-port", str(free_port())],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        service = {
            "apiVersion": "augur.dev/v1alpha1",
            "kind": "DecisionService",
            "metadata": {"name": "demo", "namespace": "default"},
            "spec": {
                "versions": [
                    {"name": "stable", "modelTag": primary, "weight": 80},
                    {"name": "tuned", "modelTag": promoted, "weight": 20},
                ],
                "modelStore": {"uri": f"file://{store}"},
                "autoscaling": {"minReplicas": 2, "maxReplicas": 4},
            },
        }
        subprocess.run(
            ["kubectl", f"--kubeconfig={cluster.kubeconfig}", "apply", "-f", "-"],
            input=json.dumps(service),
            text=True,
            check=True,
        )
        ready = "jsonpath={.status.conditions[?(@.type=='Ready')].status}"
        wait(
            f"the DecisionService to be Ready (operator log: {cluster.logs / 'operator.log'})",
            lambda: (
                kubectl(cluster, "get", "dsvc", "demo", "-o", ready, show=False) == "True"
                and kubectl(
                    cluster, "get", "dsvc", "demo", "-o", "jsonpath={.status.ready}", show=False
                )
                == "2/2"
            ),
            timeout=120,
        )
        kubectl(cluster, "get", "decisionservices")
        kubectl(
            cluster,
            "get",
            "deploy,svc,hpa,pdb,configmap,pods",
            "-l",
            "augur.dev/decisionservice=demo",
        )
        template = kubectl(
            cluster, "get", "deploy", "demo", "-o", "jsonpath={.metadata.generation}", show=False
        )

        print("shift traffic to 50/50: only the routing table changes")
        patch = {"spec": {"versions": [
            {"name": "stable", "modelTag": primary, "weight": 50},
            {"name": "tuned", "modelTag": promoted, "weight": 50},
        ]}}  # fmt: skip
        kubectl(
            cluster, "patch", "decisionservice", "demo", "--type=merge", "-p", json.dumps(patch)
        )
        routes = "jsonpath={.data.routes\\.json}"
        wait(
            "the new routing table",
            lambda: (
                '"weight": 50.0'
                in kubectl(cluster, "get", "configmap", "demo-routes", "-o", routes, show=False)
            ),
        )
        kubectl(cluster, "get", "configmap", "demo-routes", "-o", "jsonpath={.data.routes\\.json}")
        after = kubectl(
            cluster, "get", "deploy", "demo", "-o", "jsonpath={.metadata.generation}", show=False
        )
        print(f"Deployment generation before and after: {template} → {after} (no rollout)\n")
        wait(
            "the status to show 50%",
            lambda: (
                "50"
                in kubectl(
                    cluster,
                    "get",
                    "dsvc",
                    "demo",
                    "-o",
                    "jsonpath={.status.canaryPercent}",
                    show=False,
                )
            ),
        )
        kubectl(cluster, "get", "decisionservices")

        print("delete it: the garbage collector removes every child")
        kubectl(cluster, "delete", "decisionservice", "demo")
        wait(
            "garbage collection",
            lambda: not kubectl(
                cluster, "get", "deploy,svc,hpa,pdb,cm", "-l", "augur.dev/decisionservice=demo",
                "-o", "name", show=False,
            ).strip(),
        )  # fmt: skip
        print("children gone")
    finally:
        if operator is not None:
            operator.send_signal(signal.SIGTERM)
            operator.wait(timeout=30)
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
