"""``augur serve``: option checks and the bentoml command line (serving itself is covered by
tests/integration/test_service_http.py, which starts the service through this command)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from augur.cli import app
from augur.cli.serving import bento_dir, serve_command


def test_bento_dir_and_command() -> None:
    d = bento_dir()
    assert d is not None and (d / "service.py").is_file()
    cmd = serve_command(3001, "127.0.0.1", d)
    assert cmd[-7:] == [
        "service:DecisionService",
        "--working-dir",
        str(d),
        "--port",
        "3001",
        "--host",
        "127.0.0.1",
    ]


def test_routing_table_excludes_canary(tmp_path: Path) -> None:
    table = tmp_path / "routes.json"
    table.write_text("{}")
    result = CliRunner().invoke(app, ["serve", "--routing-table", str(table), "--canary", "m:2"])
    assert result.exit_code == 2 and "excludes" in result.output


def test_unknown_canary_tag_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUGUR_HOME", str(tmp_path))
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "bentoml"))
    from augur.config import get_settings

    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["serve", "--model", "augur-ensemble:nope"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert "augur-ensemble:nope" in result.output and "Traceback" not in result.output


def test_missing_bento_dir(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["serve", "--bento", str(tmp_path)])
    assert result.exit_code == 2 and "bentos/decision/service.py" in result.output
