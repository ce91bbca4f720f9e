"""``augur`` — the command line. Thin: parses arguments and calls the core.

Each command group lives in its own module (``augur.cli.data``, ``augur.cli.features``,
…) and is registered here.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="augur",
    help="Augur: risk-managed decisions on noisy sequential data.\n\n"
    "Typical flow: `augur data sample` → `augur features build` → `augur features apply` → "
    "`augur features materialize` → `augur train` → `augur backtest` → `augur serve`.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

# (module, group name or None for top-level commands). A group's module defines `app`
# (a typer.Typer) or `register(app)` for top-level commands.
_COMMAND_MODULES: list[tuple[str, str | None]] = [
    ("augur.cli.data", "data"),  # augur data sample | import
    (
        "augur.cli.features",
        "features",
    ),  # augur features build | apply | materialize | push | training-set
    ("augur.cli.models", None),  # augur train; augur models list
    ("augur.cli.backtest", None),  # augur backtest
    ("augur.cli.simulate", None),  # augur simulate
    ("augur.cli.serving", None),  # augur serve
    ("augur.cli.report", None),  # augur report serving
    ("augur.cli.tune", None),  # augur tune
    ("augur.cli.drift", "drift"),  # augur drift check
    ("augur.cli.weights", "weights"),  # augur weights show | freeze | unfreeze
    ("augur.cli.retrain", None),  # augur retrain
    ("augur.cli.rules", "rules"),  # augur rules check
    ("augur.cli.stream", "stream"),  # augur stream publish | replay | consume
    ("augur.cli.operator", "operator"),  # augur operator run | crds
]


def _register() -> None:
    for module_name, group in _COMMAND_MODULES:
        module = importlib.import_module(module_name)
        if group is None:
            module.register(app)
        else:
            app.add_typer(module.app, name=group)


_register()


def main() -> None:
    """Console-script entry point."""
    app()
