"""``python -m tests.k8s.controlplane build|up|down|status|gomod`` — the k8s tier's cluster.

build   build (or reuse) the binaries under ~/.cache/augur/k8s/<version>/bin, and fetch
        the CRDs the tests apply (KubeRay's, the Prometheus operator's) from Go modules
up      start a control plane; kubeconfig at <dir>/kubeconfig, logs in <dir>/logs
down    stop the control plane started by `up` in <dir>
status  say whether it runs, and where
gomod   regenerate tests/k8s/cluster/go.mod from k8s.io/kubernetes's go.mod
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import _build
from ._cluster import Cluster, ClusterError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.k8s.controlplane",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("command", choices=["build", "up", "down", "status", "gomod"])
    parser.add_argument(
        "--dir", type=Path, default=Path(".augur/k8s"), help="the cluster's folder (.augur/k8s)"
    )
    args = parser.parse_args(argv)
    directory = args.dir.resolve()
    try:
        if args.command == "build":
            print(f"binaries in {_build.build()}")
            # CRDs the tests apply, fetched into the module cache now (not mid-test)
            for crd in (*_build.kuberay_crds(), *_build.prometheus_operator_crds()):
                if not crd.is_file():
                    raise _build.BuildError(f"{crd} is not in its module")
        elif args.command == "gomod":
            print(f"wrote {_build.write_gomod()}")
        elif args.command == "up":
            if (directory / "state.json").exists() and Cluster.attach(directory).running():
                print(f"already running; kubeconfig: {directory / 'kubeconfig'}")
                return 0
            cluster = Cluster(directory).start()
            print(
                f"kubeconfig: {cluster.kubeconfig}  (kubectl --kubeconfig {cluster.kubeconfig} get nodes)"
            )
            print(f"logs: {cluster.logs}; stop with `make k8s-down`")
        elif args.command == "down":
            if not (directory / "state.json").exists():
                print(f"no control plane in {directory}")
                return 0
            Cluster.attach(directory).stop()
            print("control plane stopped")
        else:
            if (directory / "state.json").exists() and Cluster.attach(directory).running():
                print(
                    f"running: {Cluster.attach(directory).server}, kubeconfig {directory / 'kubeconfig'}"
                )
            else:
                print(f"not running ({directory})")
                return 1
    except (_build.BuildError, ClusterError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
