"""``bentoml build`` makes a Bento (with its Dockerfile) from the repository's bento source."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_bentoml_build_makes_a_bento_with_a_dockerfile(tmp_path: Path) -> None:
    uv = Path(sys.executable).parent / "uv"
    bentoml = Path(sys.executable).parent / "bentoml"
    # The bentofile's paths, reproduced in a scratch copy (the build never touches the repo).
    ctx = tmp_path / "repo" / "bentos" / "decision"
    shutil.copytree(
        ROOT / "bentos" / "decision", ctx, ignore=shutil.ignore_patterns("__pycache__", "dist")
    )
    shutil.copy(ROOT / "requirements.lock", tmp_path / "repo" / "requirements.lock")
    subprocess.run(
        [str(uv), "build", "--wheel", "--out-dir", str(ctx / "dist"), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml"), "BENTOML_DO_NOT_TRACK": "True"}
    out = subprocess.run(
        [str(bentoml), "build", "bentos/decision", "--output", "tag"],
        env=env,
        cwd=tmp_path / "repo",  # bentoml reads files under the working directory only
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    bentos = list((tmp_path / "bentoml" / "bentos" / "augur_decision").glob("*/bento.yaml"))
    assert len(bentos) == 1
    bento = bentos[0].parent
    info = yaml.safe_load(bentos[0].read_text())
    service = next(s for s in info["services"] if s["name"] == "augur_decision")
    assert service["config"]["traffic"]["timeout"] == 10
    assert service["config"]["resources"]["cpu"] == "2"
    assert (bento / "env" / "docker" / "Dockerfile").is_file()
    assert list((bento / "env" / "python" / "wheels").glob("augur-*.whl"))
