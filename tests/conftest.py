"""Shared fixtures. Servers are real: a fixture starts what it needs and stops it, and a
test that needs a server fails (never silently passes) when it cannot have one."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
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
                # each test module keeps to a database of its own (REDIS_DB; a unit test
                # checks no two share one): room for more than Redis's default 16
                "--databases",
                "64",
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


def _postgres_bindir() -> Path | None:
    """Where initdb/pg_ctl live: Debian keeps them off PATH, in /usr/lib/postgresql/N/bin."""
    debian = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
    if debian:
        return max(debian, key=lambda b: int(b.parent.name) if b.parent.name.isdigit() else 0)
    exe = shutil.which("initdb")
    if exe is not None and (Path(exe).resolve().parent / "pg_ctl").exists():
        return Path(exe).resolve().parent
    return None


class _ThrowawayPostgres:
    """initdb + pg_ctl in a temp dir; as root, everything runs as the `postgres` user."""

    def __init__(self) -> None:
        bindir = _postgres_bindir()
        if bindir is None:
            pytest.fail(
                "PostgreSQL is not installed (no initdb/pg_ctl in /usr/lib/postgresql/*/bin or "
                "on PATH): run `make setup` (`make test` runs it and installs the Debian "
                "package `postgresql`), or set AUGUR_TEST_POSTGRES_URL to an existing server"
            )
        self.bindir = bindir
        self.prefix: list[str] = []
        # Not under pytest's basetemp (0700, root's); a short path for the unix socket.
        self.workdir = Path(tempfile.mkdtemp(prefix="augur-pg-"))
        self.data = self.workdir / "data"
        if os.getuid() == 0:
            # PostgreSQL refuses to run as root.
            runuser = shutil.which("runuser")
            try:
                shutil.chown(self.workdir, user="postgres", group="postgres")
            except LookupError:
                runuser = None
            if runuser is None:
                self.remove()
                pytest.fail(
                    "running as root, PostgreSQL must run as the `postgres` system user via "
                    "`runuser`: install the Debian package `postgresql` (`make setup`), or "
                    "set AUGUR_TEST_POSTGRES_URL"
                )
            self.prefix = [runuser, "-u", "postgres", "--"]

    def run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [*self.prefix, str(self.bindir / tool), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if check and proc.returncode != 0:
            self.remove()
            pytest.fail(f"{tool} {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
        return proc

    def start(self) -> str:
        """initdb (trust, superuser `augur`) and start on a free loopback port; the URL."""
        self.run(
            "initdb",
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "augur",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            # A test server: loopback only, the socket in our own dir, durability off.
            conf.write(
                "listen_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.workdir}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            )
        for _ in range(5):  # the free port may be taken before the server binds it
            port = free_port()
            log = self.workdir / "server.log"
            proc = self.run(
                "pg_ctl",
                "-D",
                str(self.data),
                "-l",
                str(log),
                "-o",
                f"-p {port}",
                "-w",
                "-t",
                "60",
                "start",
                check=False,
            )
            if proc.returncode == 0:
                return f"postgresql+psycopg://augur@127.0.0.1:{port}/postgres"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        self.remove()
        pytest.fail(f"PostgreSQL did not start:\n{proc.stdout}{proc.stderr}\n{tail}")

    def stop(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)
        self.remove()

    def remove(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A real PostgreSQL's SQLAlchemy URL: AUGUR_TEST_POSTGRES_URL when set (its user may
    CREATE DATABASE), else a throwaway cluster started here,
    ``postgresql+psycopg://augur@127.0.0.1:PORT/postgres``, removed afterwards."""
    named = os.environ.get("AUGUR_TEST_POSTGRES_URL")
    if named:
        yield named
        return
    server = _ThrowawayPostgres()
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture
def postgres_db(postgres_server: str) -> Iterator[str]:
    """A new, empty database on :func:`postgres_server` for one test (dropped after it)."""
    import sqlalchemy as sa

    name = f"augur_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        yield sa.make_url(postgres_server).set(database=name).render_as_string(False)
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def ar1_bars(n: int, phi: float, seed: int = 0, symbol: str = "AAA") -> pd.DataFrame:
    """Hourly OHLCV bars whose 1-bar log returns are AR(1) with coefficient ``phi``: a little
    predictable, like a real edge (``phi = 0``: independent returns, nothing to predict)."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    ret = lfilter([1.0], [1.0, -phi], rng.normal(0, 0.004, n))
    close = 100 * np.exp(np.cumsum(ret))
    open_ = np.r_[close[0], close[:-1]]
    spread = np.abs(rng.normal(0, 0.001, n)) * close
    return pd.DataFrame(
        {
            "timestamp": pd.date_range("2021-01-04", periods=n, freq="h", tz="UTC"),
            "symbol": symbol,
            "open": open_,
            "high": np.maximum(open_, close) + spread,
            "low": np.minimum(open_, close) - spread,
            "close": close,
            "volume": rng.integers(100, 1000, n).astype(float),
        }
    )


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
