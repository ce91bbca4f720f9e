"""`augur features …` through the real CLI on a tmp AUGUR_HOME (SQLite, and Redis)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from augur.cli import app
from augur.config import get_settings
from augur.data import load_sample, read_bars, write_bars
from tests.conftest import free_port

pytestmark = pytest.mark.integration
REDIS_DB = 6  # a database of its own on the session's Redis

REPO = Path(__file__).resolve().parents[2] / "feature_repo"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("AUGUR_HOME", str(tmp_path))
    monkeypatch.setenv("AUGUR_FEATURE_REPO", str(REPO))
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["features", *args])
    return result.exit_code, result.output


def test_full_flow_on_sqlite(home: Path) -> None:
    code, out = _run("apply")  # nothing built yet: a clear error, no traceback
    assert code == 2 and "augur features build" in out
    sample = load_sample(["EURUSD", "SP500"])
    write_bars(pd.concat([df.tail(250) for df in sample.values()]), home / "data" / "bars")

    code, out = _run("build")
    assert code == 0 and "500 rows" in out, out
    code, out = _run("apply")
    assert code == 0 and "decision_v1" in out, out
    code, out = _run("materialize")
    assert code == 0 and "full materialisation" in out and "2 symbols" in out, out
    code, out = _run("show")
    assert code == 0 and "EURUSD" in out and "SP500" in out and "2017-12-29 22:00" in out, out

    last = read_bars(["SP500"], home / "data" / "bars").iloc[-1]
    bar = {
        "timestamp": str(last["timestamp"] + pd.Timedelta(days=1)),
        "open": 2500.0,
        "high": 2520.0,
        "low": 2490.0,
        "close": 2510.0,
        "volume": 1e9,
    }
    code, out = _run("push", "-s", "SP500", "--bar", json.dumps(bar))
    assert code == 0 and "pushed SP500" in out, out
    code, out = _run("show", "-s", "SP500")
    assert "2019-01-01 21:00" in out, out

    bad = {**bar, "timestamp": "2030-01-01T00:00:00Z", "high": 1.0}
    code, out = _run("push", "-s", "SP500", "--bar", json.dumps(bad))
    assert code == 1 and "high_ge_open_close" in out and "nothing was written" in out
    assert _run("push", "-s", "SP500", "--bar", "{nope")[0] == 2
    assert _run("push", "-s", "SP500", "--bar", "[1]")[0] == 2
    code, out = _run("show", "-s", "NOPE")
    assert code == 2 and "NOPE" in out
    assert _run("apply", "--online-store", "mongo")[0] == 2

    code, out = _run("materialize", "--incremental")
    assert code == 0 and "incremental" in out, out

    target = home / "ts.parquet"
    code, out = _run("training-set", "--last", "30", "--out", str(target))
    assert code == 0 and "→" in out, out
    frame = pd.read_parquet(target)
    assert set(frame["symbol"]) == {"EURUSD", "SP500"} and len(frame) <= 60


def test_redis_store_and_unreachable_redis(home: Path, redis_server) -> None:  # type: ignore[no-untyped-def]
    write_bars(load_sample(["EURUSD"])["EURUSD"].tail(200), home / "data" / "bars")
    assert _run("build")[0] == 0
    url = f"{redis_server.url},db={REDIS_DB}"
    code, out = _run("apply", "--online-store", "redis", "--redis-url", url)
    assert code == 0, out
    code, out = _run("materialize", "--online-store", "redis", "--redis-url", url)
    assert code == 0 and "(redis)" in out, out
    code, out = _run("show", "--online-store", "redis", "--redis-url", url)
    assert code == 0 and "EURUSD" in out, out
    dead = f"127.0.0.1:{free_port()}"
    code, out = _run("materialize", "--online-store", "redis", "--redis-url", dead)
    assert code == 3 and "unreachable" in out, out
