"""Shared fixtures. Servers are real: a fixture starts what it needs and stops it, and a
test that needs a server fails (never silently passes) when it cannot have one."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


class RedisServer:
    """A real redis-server on a loopback port (``stop``/``start`` for fault tests)."""

    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Feast-style connection string."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.fail(
                "redis-server is not installed: run `make test` (it installs it) "
                "or `apt-get install redis-server`, or set AUGUR_TEST_REDIS_URL"
            )
        self.proc = subprocess.Popen(
            [
                exe,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real Redis: the one named by AUGUR_TEST_REDIS_URL (host:port), else one we start."""
    named = os.environ.get("AUGUR_TEST_REDIS_URL")
    if named:
        host, port = named.split(":")
        server = RedisServer(int(port), tmp_path_factory.mktemp("redis"))
        wait_for_port(int(port), host=host)
        yield server
        return
    server = RedisServer(free_port(), tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


def synthetic_bars(
    n: int = 500, symbols: tuple[str, ...] = ("AAA", "BBB"), seed: int = 0, freq: str = "h"
) -> pd.DataFrame:
    """Valid OHLCV bars (the Bars contract) from a random walk — for unit tests."""
    rng = np.random.default_rng(seed)
    frames = []
    for i, sym in enumerate(symbols):
        ts = pd.date_range("2020-01-01", periods=n, freq=freq, tz="UTC")
        close = 100.0 * (1 + i) * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
        open_ = np.r_[close[0], close[:-1]]
        spread = np.abs(rng.normal(0, 0.004, n)) * close
        high = np.maximum(open_, close) + spread
        low = np.minimum(open_, close) - spread
        volume = rng.integers(100, 10_000, n).astype(float)
        frames.append(
            pd.DataFrame(
                {
                    "timestamp": ts,
                    "symbol": sym,
                    "open": open_,
                    "high": high,
                    "low": low,
                    "close": close,
                    "volume": volume,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


@pytest.fixture
def bars() -> pd.DataFrame:
    return synthetic_bars()
