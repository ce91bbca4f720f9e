"""What every command module shares: the user-error exit and ``--param KEY=VALUE`` parsing."""

from __future__ import annotations

import json
from typing import Any, NoReturn

import typer
from rich.console import Console


def fail(message: str, code: int = 1) -> NoReturn:
    """Print a user error (no traceback) on stderr and exit non-zero."""
    Console(stderr=True).print(f"[red]error:[/red] {message}")
    raise typer.Exit(code=code)


def parse_params(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; values parsed as JSON when they can be (numbers, null, true)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            fail(
                f"--param {item!r}: use KEY=VALUE (a field of augur.models.EnsembleParams), "
                "e.g. --param rf_n_estimators=100"
            )
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out
