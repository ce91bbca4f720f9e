"""`augur models push` / `augur models pull` end to end through a shared folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from augur.cli import app
from augur.models import list_models, save_ensemble


@pytest.fixture
def homes(monkeypatch, tmp_path, fitted) -> tuple[Path, Path, str]:
    """A trainer's BentoML home with one version and a pod's empty one: (trainer, pod, tag)."""
    monkeypatch.setenv("COLUMNS", "300")
    trainer, pod = tmp_path / "trainer", tmp_path / "pod"
    return trainer, pod, save_ensemble(fitted, "cli-ens", store_dir=trainer)


def test_push_then_pull(homes, tmp_path, monkeypatch) -> None:
    trainer, pod, tag = homes
    uri = f"file://{tmp_path / 'shared'}"
    runner = CliRunner()
    monkeypatch.setenv("BENTOML_HOME", str(trainer))
    res = runner.invoke(app, ["models", "push", "cli-ens:latest", "--to", uri])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines() == [f"pushed {tag} to {uri}"]
    assert (tmp_path / "shared" / "cli-ens" / f"{tag.split(':')[1]}.bentomodel").is_file()

    monkeypatch.setenv("BENTOML_HOME", str(pod))
    res = runner.invoke(app, ["models", "pull", tag, "--from", uri])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines() == [f"pulled {tag} from {uri}"]
    assert [r.tag for r in list_models()] == [tag]
    res = runner.invoke(app, ["models", "pull", tag, "--from", uri])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines() == [f"{tag} already in the local model store"]


def test_user_errors_exit_2_naming_the_problem(homes, tmp_path, monkeypatch) -> None:
    trainer, pod, tag = homes
    shared = str(tmp_path / "shared")
    runner = CliRunner()
    monkeypatch.setenv("BENTOML_HOME", str(trainer))
    res = runner.invoke(app, ["models", "push", "cli-ens:v0nope", "--to", shared])
    assert res.exit_code == 2 and "error:" in res.output and "cli-ens:v0nope" in res.output
    assert "Traceback" not in res.output

    monkeypatch.setenv("BENTOML_HOME", str(pod))
    res = runner.invoke(app, ["models", "pull", "cli-ens:latest", "--from", shared])
    assert res.exit_code == 2 and "exact version" in res.output
    res = runner.invoke(app, ["models", "pull", tag, "--from", shared])
    assert res.exit_code == 2
    assert tag in res.output and shared in res.output and "augur models push" in res.output
    assert list_models() == []


def test_help_texts() -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["models", "push", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "--to" in res.output and "s3://" in res.output
    res = runner.invoke(app, ["models", "pull", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "--from" in res.output and "latest is refused" in res.output
