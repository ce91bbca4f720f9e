"""The real processes a chaos scenario runs against, and the faults done to them.

A redis-server of its own (features and the account store; SIGKILLed and restarted by
the Redis scenario), a throwaway PostgreSQL cluster of its own (the prediction log;
stopped and started by the log scenario), and ``augur serve`` with two workers on a tiny
model trained on one symbol's sample bars (tests/integration/_one_symbol.py), a bearer
token, the routing table re-read every 0.2 s. Nothing here is shared with the other
tests' session servers: the faults would break them. :func:`another_service` starts a
second ``augur serve`` on the same model and Redis with other settings (Redis behind a
slow proxy, a prediction log on a small disk), so such a fault never reaches the first.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks._serving_requests import Quote
from tests.conftest import RedisServer, _ThrowawayPostgres, free_port
from tests.integration.test_service_http import (
    AUTH,
    TOKEN,
    _stop,
    _tree,
    _write_json,
    serve_env,
    start_serving,
    wait_ready,
)

SYMBOL = "EURUSD"
N_BARS = 400

__all__ = ["AUTH", "TOKEN", "Stack", "another_service", "running_stack"]


class Redis(RedisServer):
    """The test Redis, killed for real (SIGKILL) and restarted on the same port with what
    it had saved: a production Redis keeps its data across a crash (RDB/AOF); here the
    data is saved (``SAVE``) just before the kill, and redis-server loads it at start."""

    def save(self) -> None:
        import redis

        redis.Redis(host="127.0.0.1", port=self.port).save()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None


class Postgres(_ThrowawayPostgres):
    """The tests' throwaway PostgreSQL, stopped and started again on the same port."""

    port = 0

    def start(self) -> str:
        url = super().start()
        self.port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
        return url

    def halt(self) -> None:
        """Stop the server (fast shutdown: open sessions are ended), keeping its data."""
        self.run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def resume(self) -> None:
        log = self.workdir / "server.log"
        self.run(
            "pg_ctl", "-D", str(self.data), "-l", str(log), "-o", f"-p {self.port}", "-w", "start"
        )


@dataclass
class Stack:
    """A running ``augur serve`` and the servers behind it."""

    url: str
    port: int
    home: Path
    routes: Path
    log: Path
    tag: str
    other_tag: str  # the same model saved again: a second version to switch the table to
    quotes: list[Quote]
    redis: Redis
    postgres: Postgres
    log_url: str
    proc: subprocess.Popen[bytes]
    tree: list[Any] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # augur serve's environment

    def workers(self) -> list[Any]:
        """The worker processes now (psutil), by the BentoML worker's command line."""
        return [p for p in _tree(self.proc) if "_bentoml_impl.worker" in " ".join(_cmdline(p))]

    def table(self, data: dict[str, Any]) -> None:
        """Replace the routing table file atomically."""
        _write_json(self.routes, data)

    def good_table(self) -> dict[str, Any]:
        return {"versions": [{"name": "only", "model_tag": self.tag, "weight": 100.0}]}

    def metrics(self) -> str:
        return httpx.get(f"{self.url}/metrics", headers=AUTH, timeout=10).text

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def _cmdline(p: Any) -> list[str]:
    try:
        return list(p.cmdline())
    except Exception:  # gone meanwhile
        return []


def _quote(settings: Any) -> Quote:
    """The symbol's last bar, as the load's request bodies are built around it."""
    from augur.data import read_bars

    last = read_bars([SYMBOL], settings.bars_dir).iloc[-1]
    return Quote(SYMBOL, float(last["close"]), last["timestamp"].to_pydatetime())


@contextlib.contextmanager
def another_service(stack: Stack, name: str, **env: str) -> Iterator[Stack]:
    """A second ``augur serve`` (two workers) on the stack's model, Redis and routing
    table, with ``env`` over the stack's environment (another Redis address, another
    prediction log): for a fault that must not reach the stack's own service. Its log is
    ``<home>/<name>.log``; stopped after."""
    import dataclasses

    log = stack.home / f"{name}.log"
    full = {**stack.env, **env}
    proc, url = start_serving(full, log)
    started: list[Any] = []
    try:
        wait_ready(proc, url, log)
        started = _tree(proc)
        yield dataclasses.replace(
            stack,
            url=url,
            port=int(url.rsplit(":", 1)[1]),
            log=log,
            log_url=full.get("AUGUR_PREDICTION_LOG_URL", stack.log_url),
            proc=proc,
            tree=started,
            env=full,
        )
    finally:
        _stop(proc, started)


@contextlib.contextmanager
def running_stack(work: Path, **extra_env: str) -> Iterator[Stack]:
    """Redis, PostgreSQL and ``augur serve`` (two workers) under ``work``; stopped after."""
    from augur.decision import DecisionConfig
    from augur.models import save_version
    from tests.integration._one_symbol import one_symbol_home

    work.mkdir(parents=True, exist_ok=True)
    (work / "redis").mkdir(exist_ok=True)
    redis = Redis(free_port(), work / "redis")
    redis.start()
    postgres = Postgres()
    proc = None
    started: list[Any] = []
    try:
        log_url = postgres.start()
        home = work / "home"
        settings, ensemble = one_symbol_home(home, redis.url, SYMBOL, N_BARS)
        tag, other_tag = (
            save_version(ensemble, DecisionConfig(), store_dir=home / "bentoml").tag
            for _ in range(2)
        )
        routes = home / "routes.json"
        _write_json(routes, {"versions": [{"name": "only", "model_tag": tag, "weight": 100.0}]})
        env = serve_env(
            settings,
            routes,
            AUGUR_SERVING_WORKERS="2",
            AUGUR_PREDICTION_LOG_URL=log_url,
            AUGUR_ROUTING_RELOAD_SECONDS="0.2",
            # every request scores: the sample model is rarely confident
            AUGUR_DECISION_OVERRIDES=json.dumps({"confidence_threshold": 0.0}),
            **extra_env,
        )
        log = home / "server.log"
        proc, url = start_serving(env, log)
        wait_ready(proc, url, log)
        started = _tree(proc)
        port = int(url.rsplit(":", 1)[1])
        quotes = [_quote(settings)]
        yield Stack(url, port, home, routes, log, tag, other_tag, quotes, redis, postgres,
                    log_url, proc, started, env)  # fmt: skip
    finally:
        if proc is not None:
            _stop(proc, started)
        if redis.proc is not None:
            redis.stop()
        postgres.stop()
