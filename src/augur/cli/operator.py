"""``augur operator run | crds``: the Kubernetes operator and its CustomResourceDefinitions."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(
    help="The Kubernetes operator: reconciles DecisionService and TuningJob resources.",
    no_args_is_help=True,
)


@app.command("run")
def run(
    namespace: Annotated[
        list[str] | None,
        typer.Option(help="Watch only this namespace (repeatable). Default: every namespace."),
    ] = None,
    priority: Annotated[
        int | None,
        typer.Option(
            help="Peering priority: of the replicas sharing a peering, the highest acts "
            "(default AUGUR_OPERATOR_PRIORITY, 0 = random)."
        ),
    ] = None,
    standalone: Annotated[
        bool, typer.Option(help="No peering: act even if other replicas run.")
    ] = False,
    health_port: Annotated[
        int | None,
        typer.Option(
            help="Port of the /healthz liveness endpoint (default AUGUR_OPERATOR_HEALTH_PORT)."
        ),
    ] = None,
) -> None:
    """Run the operator against the cluster of $KUBECONFIG (or the pod's service account).

    It creates, for each DecisionService, a Deployment, Service, HPA, PodDisruptionBudget and
    routing-table ConfigMap, and for each TuningJob a KubeRay RayJob; it records their status
    and promotes tuning winners. SIGTERM stops it cleanly.
    """
    import kopf

    from augur.config import get_settings

    settings = get_settings()
    try:
        importlib.import_module("operators.main")  # registers the handlers
    except ModuleNotFoundError as exc:
        Console(stderr=True).print(
            f"[red]cannot import the operator's handlers ({exc})[/]: the augur package is "
            "installed without its operators/ (reinstall it from the source checkout)"
        )
        raise typer.Exit(2) from None
    port = settings.operator_health_port if health_port is None else health_port
    kopf.configure(verbose=False, log_prefix=True)  # each line names its object: [ns/name]
    kopf.run(
        clusterwide=not namespace,
        namespaces=namespace or (),
        standalone=True if standalone else None,
        priority=priority or None,
        liveness_endpoint=f"http://0.0.0.0:{port}/healthz" if port else None,
    )


@app.command("crds")
def crds(
    out: Annotated[
        Path | None,
        typer.Option(help="Write one YAML file per CRD into this folder (e.g. helm/augur/crds)."),
    ] = None,
) -> None:
    """Print (or write) the CRDs generated from the typed resources in augur.cluster."""
    from augur.cluster import crd_manifests, render_crd, write_crds

    if out is None:
        for crd in crd_manifests().values():
            typer.echo("---\n" + render_crd(crd), nl=False)
        return
    for path in write_crds(out):
        typer.echo(f"wrote {path}")


__all__ = ["app"]
