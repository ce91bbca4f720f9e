"""The serving bench's servers: the programs it writes, and starting, checking, stopping them.

- ``UVICORN_NOOP``: a no-op FastAPI endpoint under bare uvicorn — what a Python ASGI server
  reaches here;
- ``OUR_NOOP``: our Bento (entry service, workers, traffic settings, the same HTTP layer:
  body validated as a ``DecideRequest``, request id, metrics, a ``DecisionOut`` back)
  with a pipeline that does nothing;
- ``NAIVE``: FastAPI + uvicorn doing Feast's ``get_online_features`` and each member's
  library ``predict_proba`` — the straightforward service.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from benchmarks._servers import free_port

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

UVICORN_NOOP = """
from fastapi import FastAPI, Request
app = FastAPI()

@app.post("/decide")
async def decide(request: Request):
    await request.body()
    return {"action": "no_action"}
"""

OUR_NOOP = """
import sys
sys.path.insert(0, BENTO_DIR)
from datetime import UTC, datetime
from types import SimpleNamespace

import bentoml
import service as ours

from augur.serving import BearerAuth, DecisionApp, DecisionOut
from augur.serving._telemetry import default_metrics

WHEN = datetime(2024, 1, 1, tzinfo=UTC)


class NoopPipeline:
    def decide_many(self, items):
        return [
            DecisionOut(symbol=req.symbol, action="no_action", size=0.0, direction=0,
                        probability=0.0, confidence=0.0, agreement=0.0, reasons=[],
                        model_version="noop", request_id=rid, feature_timestamp=WHEN)
            for req, rid in items
        ]


ours._current["service"] = SimpleNamespace(
    app=DecisionApp(NoopPipeline(), metrics=default_metrics()), auth=BearerAuth()
)


@bentoml.asgi_app(ours._mounted_app(), path="/")
@bentoml.service(name="noop", service_class=ours._EntryService, **ours.DecisionService.config)
class Noop:
    pass
"""

NAIVE = """
import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel

from augur.config import get_settings
from augur.features.store import FEATURE_VIEW, feature_store
from augur.models import load_ensemble

settings = get_settings()
store = feature_store(settings)
ensemble = load_ensemble(MODEL_TAG)
names = list(ensemble.feature_names)  # the model's inputs, by name
refs = [f"{FEATURE_VIEW}:{n}" for n in names]
app = FastAPI()


class Req(BaseModel):  # the other fields of a request are parsed and ignored
    symbol: str


@app.post("/decide")
def decide(req: Req):
    row = store.get_online_features(features=refs, entity_rows=[{"symbol": req.symbol}]).to_dict()
    x = np.array([[row[n][0] for n in names]], dtype=float)
    proba = ensemble.predict_library(x).mean(axis=0)[0]
    direction = int(np.argmax(proba)) - 1
    return {"direction": direction, "probability": float(proba.max())}
"""


def write_programs(progs: Path, model_tag: str, bento_dir: Path) -> None:
    """Write the server programs into ``progs`` (the cwd of the servers that use them)."""
    (progs / "uvicorn_noop.py").write_text(UVICORN_NOOP)
    (progs / "our_noop.py").write_text(OUR_NOOP.replace("BENTO_DIR", repr(str(bento_dir))))
    (progs / "naive.py").write_text(NAIVE.replace("MODEL_TAG", repr(model_tag)))


def uvicorn_cmd(app: str, workers: int = 1) -> list[str]:
    return [
        str(BIN / "uvicorn"),
        app,
        "--port",
        "{PORT}",
        "--no-access-log",
        "--log-level",
        "warning",
        "--workers",
        str(workers),
    ]


def bentoml_cmd(service: str) -> list[str]:
    return [str(BIN / "bentoml"), "serve", service, "--port", "{PORT}"]


@dataclass
class Spec:
    """A server to start: its row name, command, environment, directory, readiness path."""

    name: str
    cmd: list[str]
    env: dict[str, str]
    cwd: Path
    ready: str = "/readyz"


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path


def start(spec: Spec, logdir: Path) -> Server:
    port = free_port()
    log = logdir / f"{spec.name.replace(' ', '_').replace(',', '').replace('/', '_')}.log"
    cmd = [c.replace("{PORT}", str(port)) for c in spec.cmd]
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            cmd, env=spec.env, cwd=spec.cwd, stdout=fh, stderr=subprocess.STDOUT
        )
    return Server(spec.name, port, proc, log)


def wait_ready(server: Server, path: str, timeout: float = 240.0) -> None:
    """Until ``path`` answers 200; raises RuntimeError (with the log's tail) if the
    server exits or is not ready in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(
                f"{server.name} exited ({server.proc.returncode}): {tail(server.log)}"
            )
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{server.name} not ready after {timeout:.0f}s: {tail(server.log)}")


def tail(log: Path, chars: int = 2000) -> str:
    return log.read_text(errors="replace")[-chars:]


def wait_quiet(busy_below: float = 15.0, timeout: float = 90.0) -> float:
    """Wait until under ``busy_below`` percent of the machine's CPU has been busy for a
    second (at most ``timeout`` s): a server answers ``/readyz`` while its shadow process
    may still be loading models, which would be measured as the next server's slowness."""
    import psutil  # BentoML's own dependency

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout and psutil.cpu_percent(interval=1.0) >= busy_below:
        pass
    return time.monotonic() - t0


def stop(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(2)  # SIGINT: BentoML and uvicorn shut down cleanly
        try:
            server.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()


SHADOW_CGROUP = Path("/sys/fs/cgroup/cpu/augur-bench-shadow")  # cgroup v1 cpu controller


@contextmanager
def shadow_container(
    socket: Path, env: dict[str, str], cpus: float, logdir: Path
) -> Iterator[tuple[str, Server | None]]:
    """``augur serve-shadow`` on ``socket`` in a CPU cgroup with a CFS quota of ``cpus``
    (what the kubelet sets for a container's CPU limit). Yields (a label saying the limit
    held, or why none could be set, and the process; None when it did not start)."""
    label = f"{cpus:g} CPU limit"
    prefix = ""
    try:
        SHADOW_CGROUP.mkdir(exist_ok=True)
        period = int((SHADOW_CGROUP / "cpu.cfs_period_us").read_text())
        (SHADOW_CGROUP / "cpu.cfs_quota_us").write_text(str(int(cpus * period)))
        prefix = f"echo $$ > {SHADOW_CGROUP / 'cgroup.procs'} && "
    except OSError as exc:
        label = f"no CPU limit: cannot make a cgroup ({exc.strerror})"
    cmd = ["sh", "-c", prefix + f"exec {BIN / 'augur'} serve-shadow --socket {socket}"]
    server = start(Spec("shadow container", cmd, env, ROOT), logdir)
    try:
        deadline = time.monotonic() + 120
        while not socket.exists() and server.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        yield label, server if socket.exists() else None
    finally:
        stop(server)
        if prefix:
            # the processes left (none after the stop) go back to the root group first
            for pid in (SHADOW_CGROUP / "cgroup.procs").read_text().split():
                with open(SHADOW_CGROUP.parent / "cgroup.procs", "w") as f:
                    f.write(pid)
            SHADOW_CGROUP.rmdir()


# Run under the served code's environment: which overrides its Settings would not take.
_SETTINGS_CHECK = """
import json, os, sys
from pydantic import ValidationError
from augur.config import Settings

out = {}
for name, overrides in json.loads(sys.argv[1]):
    unknown = [k for k in overrides if k.removeprefix("AUGUR_").lower() not in Settings.model_fields]
    if unknown:
        out[name] = "the served code has no setting " + ", ".join(unknown)
        continue
    before = dict(os.environ)
    os.environ.update(overrides)  # read as the server will: from the environment
    try:
        Settings()
    except ValidationError as exc:
        out[name] = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    finally:
        os.environ.clear()
        os.environ.update(before)
print(json.dumps(out))
"""


def rejected_settings(
    overrides: list[tuple[str, dict[str, str]]], env: dict[str, str]
) -> dict[str, str]:
    """Name → why, for each set of ``AUGUR_*`` overrides the code under ``env`` does not
    take: a setting it does not have (it would be ignored silently) or a value it refuses."""
    out = subprocess.run(
        [sys.executable, "-c", _SETTINGS_CHECK, json.dumps(overrides)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if out.returncode != 0:
        why = f"cannot read the served code's settings: {out.stderr.strip()[-300:]}"
        return {name: why for name, _ in overrides}
    return dict(json.loads(out.stdout))


@contextmanager
def baseline_checkout(ref: str) -> Iterator[tuple[Path, str]]:
    """A detached git worktree of ``ref``; yields (its directory, the commit)."""
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", f"{ref}^{{commit}}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    tmp = Path(tempfile.mkdtemp(prefix="augur-bench-baseline-"))
    tree = tmp / "tree"
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(tree), commit],
        cwd=ROOT,
        capture_output=True,
        check=True,
    )
    try:
        yield tree, commit
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, capture_output=True
        )
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run(["git", "worktree", "prune"], cwd=ROOT, capture_output=True)


def baseline_env(env: dict[str, str], tree: Path) -> dict[str, str]:
    """``env`` with the baseline's code first on the path; checks that ``augur`` is
    imported from ``tree`` (not the editable install) by the interpreter the servers use."""
    out = {**env, "PYTHONPATH": os.pathsep.join([str(tree / "src"), str(tree)])}
    where = subprocess.run(
        [sys.executable, "-c", "import augur; print(augur.__file__)"],
        env=out,
        cwd=tree / "bentos" / "decision",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not Path(where).resolve().is_relative_to(tree.resolve()):
        raise RuntimeError(f"the baseline's servers would import augur from {where}, not {tree}")
    return out
