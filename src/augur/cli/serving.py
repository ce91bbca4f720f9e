"""``augur serve``: run the decision service locally (``bentoml serve`` on embedded defaults)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console


def bento_dir() -> Path | None:
    """``bentos/decision`` of the source checkout this package runs from (None if absent)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "bentos" / "decision"
        if (candidate / "service.py").is_file():
            return candidate
    return None


def _check_rules(path: Path, err: Console) -> None:
    """Refuse to start with a rule file that is not a valid rule set, naming each problem."""
    from augur.rules import RuleError, load_rule_set

    try:
        load_rule_set(path)
    except RuleError as exc:
        for p in exc.problems:
            err.print(f"[red]{path}:{p.line}:{p.column}[/]: {p.construct}: {p.message}")
        raise typer.Exit(2) from None
    except ValueError as exc:
        err.print(f"[red]--rules[/]: {exc}")
        raise typer.Exit(2) from None


def serve_command(port: int, host: str, bento: Path) -> list[str]:
    """The ``bentoml serve`` command line for the decision service."""
    exe = shutil.which("bentoml", path=str(Path(sys.executable).parent)) or shutil.which("bentoml")
    base = [exe] if exe else [sys.executable, "-m", "bentoml"]
    return [
        *base,
        "serve",
        "service:DecisionService",
        "--working-dir",
        str(bento),
        "--port",
        str(port),
        "--host",
        host,
    ]


def _write_table(
    settings: Any,
    model: str | None,
    canary: str | None,
    canary_percent: float,
    shadow: str | None,
    shadow_percent: float,
    err: Console,
) -> Path:
    """Write ``<home>/serving/routes.json`` from the options (tags resolved in the store)."""
    os.environ.setdefault("BENTOML_HOME", str(settings.models_dir.resolve()))
    from augur.serving import RoutingTableError, resolve_tag, write_routing_table

    try:
        primary = resolve_tag(model or f"{settings.model_name}:latest")
        versions = [{"name": "primary", "model_tag": primary, "weight": 100.0}]
        if canary:
            versions[0]["weight"] = 100.0 - canary_percent
            versions.append(
                {"name": "canary", "model_tag": resolve_tag(canary), "weight": canary_percent}
            )
        table: dict[str, Any] = {"versions": versions}
        if shadow:
            table["shadow"] = {
                "name": "shadow",
                "model_tag": resolve_tag(shadow),
                "percent": shadow_percent,
            }
        path = write_routing_table(table, Path(settings.home).resolve() / "serving" / "routes.json")
    except (LookupError, RoutingTableError, ValueError) as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    Console().print(f"routing table {path}: {json.dumps(table)}")
    return path


def register(app: typer.Typer) -> None:
    """Add the top-level ``serve`` command."""

    @app.command("serve")
    def serve(
        port: Annotated[int, typer.Option(help="Port to listen on.")] = 3000,
        host: Annotated[str, typer.Option(help="Address to bind (0.0.0.0 for all).")] = "127.0.0.1",
        routing_table: Annotated[
            Path | None,
            typer.Option(
                help="Routing table file (versions with weights, optional shadow); re-read on "
                "change. Default: every request to the latest model.",
                exists=True,
                dir_okay=False,
            ),
        ] = None,
        model: Annotated[
            str | None,
            typer.Option(help="Primary model tag (default: the latest in the model store)."),
        ] = None,
        canary: Annotated[
            str | None, typer.Option(help="Canary model tag (writes a routing table).")
        ] = None,
        canary_percent: Annotated[
            float, typer.Option(min=0.0, max=100.0, help="Share of traffic for the canary.")
        ] = 10.0,
        shadow: Annotated[
            str | None, typer.Option(help="Shadow model tag, scored off the request path.")
        ] = None,
        shadow_percent: Annotated[
            float, typer.Option(min=0.0, max=100.0, help="Share of requests mirrored.")
        ] = 100.0,
        workers: Annotated[
            int | None, typer.Option(min=1, help="Worker processes (AUGUR_SERVING_WORKERS).")
        ] = None,
        token_file: Annotated[
            Path | None,
            typer.Option(
                help="Require 'Authorization: Bearer <token>' with a token from this file.",
                exists=True,
                dir_okay=False,
            ),
        ] = None,
        rules: Annotated[
            Path | None,
            typer.Option(
                "--rules",
                help="A decision-rule file every version's entries pass through "
                "(AUGUR_RULE_SET_FILE; check it with `augur rules check FILE`).",
                exists=True,
                dir_okay=False,
            ),
        ] = None,
        bento: Annotated[
            Path | None, typer.Option(help="Directory of the Bento source (bentos/decision).")
        ] = None,
    ) -> None:
        """Serve decisions over HTTP: POST /decide {"symbol": "EURUSD"} (docs at /openapi.json).

        Reads features from the online store (`augur features materialize` first) and the
        model from the model store (`augur train` first). Settings come from AUGUR_*
        environment variables; Ctrl-C stops the server.
        """
        err = Console(stderr=True)
        directory = bento or bento_dir()
        if directory is None or not (directory / "service.py").is_file():
            err.print(
                "[red]cannot find the Bento source (bentos/decision/service.py)[/]: run from a "
                "source checkout or pass --bento DIR"
            )
            raise typer.Exit(2)
        env = dict(os.environ)
        from augur.config import get_settings

        settings = get_settings()
        env.setdefault("AUGUR_HOME", str(Path(settings.home).resolve()))
        env.setdefault("BENTOML_HOME", str(settings.models_dir.resolve()))
        env.setdefault("BENTOML_DO_NOT_TRACK", "True")
        if routing_table is not None and (canary or shadow or model):
            err.print(
                "[red]--routing-table excludes --model/--canary/--shadow[/]: use one or the other"
            )
            raise typer.Exit(2)
        if canary or shadow or model:
            routing_table = _write_table(
                settings, model, canary, canary_percent, shadow, shadow_percent, err
            )
        if routing_table is not None:
            env["AUGUR_ROUTING_TABLE"] = str(routing_table.resolve())
        if workers is not None:
            env["AUGUR_SERVING_WORKERS"] = str(workers)
        if token_file is not None:
            env["AUGUR_SERVING_TOKEN_FILE"] = str(token_file.resolve())
        if rules is not None:
            _check_rules(rules, err)
            env["AUGUR_RULE_SET_FILE"] = str(rules.resolve())
        cmd = serve_command(port, host, directory.resolve())
        Console().print(f"serving decisions on http://{host}:{port} (Ctrl-C to stop)")
        sys.stdout.flush()
        sys.stderr.flush()
        # The server takes this process's place, so the stop signal a supervisor or a
        # container runtime sends (SIGTERM), or Ctrl-C, reaches bentoml serve itself, which
        # stops its workers: nothing of `augur serve` is left holding the port.
        os.execve(cmd[0], cmd, env)

    @app.command("serve-shadow")
    def serve_shadow(
        socket_path: Annotated[
            Path | None,
            typer.Option(
                "--socket",
                help="Unix socket to receive mirrored requests on (default: "
                "AUGUR_SHADOW_SOCKET, which the serving container sends to).",
            ),
        ] = None,
        metrics_port: Annotated[
            int | None,
            typer.Option(
                min=0,
                max=65535,
                help="Serve Prometheus /metrics (the shadow's decisions and their agreement "
                "with the primary's) on this port; 0: none (default: "
                "AUGUR_SHADOW_METRICS_PORT).",
            ),
        ] = None,
    ) -> None:
        """Score the requests a DecisionService mirrors to its shadow version.

        Runs as the pod's shadow container, beside the serving container: its CPU is
        bounded by the container's limit. Each mirrored request is decided with the shadow
        version and logged (role 'shadow') under the request's id. Stops on SIGTERM after
        scoring what is queued."""
        import threading

        from augur.config import get_settings
        from augur.features.spec import FeatureSpec
        from augur.serving import serve_socket, shadow_scorer

        settings = get_settings()
        path = socket_path or settings.shadow_socket
        if path is None:
            Console(stderr=True).print(
                "[red]no socket[/]: pass --socket PATH or set AUGUR_SHADOW_SOCKET"
            )
            raise typer.Exit(2)
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        scorer = shadow_scorer(list(FeatureSpec.from_settings(settings).names), settings)
        port = settings.shadow_metrics_port if metrics_port is None else metrics_port
        if port:
            from prometheus_client import start_http_server

            start_http_server(port)
            Console().print(f"metrics on :{port}/metrics")
        Console().print(f"scoring mirrored requests from {path} (SIGTERM to stop)")
        try:
            scored = serve_socket(path, scorer, stop)
        finally:
            scorer.close()
        Console().print(f"stopped after scoring {scored} mirrored requests")


__all__ = ["bento_dir", "register", "serve_command"]
