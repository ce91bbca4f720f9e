"""The core starts no framework when it is imported.

import-linter (``make lint``, contracts in ``pyproject.toml``) sees every import, also
those inside functions, so its framework contract can only say *which* core modules may
import BentoML, Ray, kopf and Feast. This test says *where*: never at a module's top
level or in a class body, so ``import augur.serving`` (or any core module) loads none of
them and the adapters (``bentos/``, ``tuning/``, ``operators/``, ``augur.cli``) decide
when a framework starts.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import augur

FRAMEWORKS = frozenset({"bentoml", "ray", "kopf", "feast", "openai"})
CORE = Path(augur.__file__).parent
ADAPTERS_INSIDE_CORE = ("cli",)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_time_imports(node: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, top-level package) of every import that runs when the module is imported:
    not inside a function, not under ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.orelse:
                yield from _import_time_imports(stmt)
            continue
        if isinstance(child, ast.Import):
            for alias in child.names:
                yield child.lineno, alias.name.split(".")[0]
        elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
            yield child.lineno, child.module.split(".")[0]
        yield from _import_time_imports(child)


def _core_modules() -> list[Path]:
    return sorted(
        p for p in CORE.rglob("*.py") if p.relative_to(CORE).parts[0] not in ADAPTERS_INSIDE_CORE
    )


def test_the_core_imports_no_framework_at_import_time() -> None:
    found = [
        f"{path.relative_to(CORE.parent)}:{line}: import {package}"
        for path in _core_modules()
        for line, package in _import_time_imports(ast.parse(path.read_text(), str(path)))
        if package in FRAMEWORKS
    ]
    assert not found, (
        "the core imports a framework when it is imported; move the import into the "
        "function that needs it (or into an adapter):\n" + "\n".join(found)
    )


def test_the_scan_sees_a_module_level_import() -> None:
    """The walk above must not pass by seeing nothing."""
    tree = ast.parse(
        "import bentoml\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import ray\n"
        "class C:\n    from feast import Field\n"
        "def f():\n    import kopf\n"
    )
    assert [pkg for _, pkg in _import_time_imports(tree) if pkg in FRAMEWORKS] == [
        "bentoml",
        "feast",
    ]
    assert len(_core_modules()) > 50


def test_the_import_contracts_hold() -> None:
    """The contracts ``make lint`` checks, here too, so a clean clone's ``make test`` (what
    CI runs) refuses a layer crossed, a framework imported outside its wrapper or a cycle."""
    import subprocess
    import sys

    root = CORE.parents[1]
    lint = Path(sys.executable).parent / "lint-imports"
    out = subprocess.run(
        [str(lint), "--no-logo", "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "BROKEN" not in out.stdout and "KEPT" in out.stdout
