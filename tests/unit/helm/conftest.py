"""Fixtures for the chart's tests: the ``helm`` the k8s tier builds, and the chart rendered.

Without that binary (no Go, or `make k8s-build` not run) every test here is skipped with
that reason in the summary.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.k8s.controlplane import _build

CHART = Path(__file__).resolve().parents[3] / "helm" / "augur"
HELM = _build.BIN / "helm"

Render = Callable[..., list[dict[str, Any]]]


def run_helm(*args: str) -> subprocess.CompletedProcess[str]:
    """``helm <args>`` with the chart's directory as the working directory."""
    return subprocess.run(
        [str(HELM), *args], cwd=CHART, capture_output=True, text=True, check=False, timeout=60
    )


@pytest.fixture(scope="session")
def helm() -> Path:
    if not HELM.exists():
        pytest.skip(f"no helm binary at {HELM}: `make k8s-build` builds it (needs Go)")
    return HELM


@pytest.fixture(scope="session")
def render(helm: Path) -> Render:
    """``helm template`` → the rendered objects; ``values`` files and ``--set`` pairs."""

    def _render(*values: str, sets: tuple[str, ...] = (), namespace: str = "augur-system"):
        args = ["template", "rel", ".", "--namespace", namespace]
        for v in values:
            args += ["-f", v]
        for s in sets:
            args += ["--set", s]
        proc = run_helm(*args)
        assert proc.returncode == 0, proc.stderr
        return [d for d in yaml.safe_load_all(proc.stdout) if d]

    return _render
