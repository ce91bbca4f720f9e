"""Demo: live bars — a replay of the last sample hours decided on as they arrive.

Started by ``make demo`` after the serving demo. It starts a redis-server on a free
loopback port, makes a home of its own (``$AUGUR_HOME/stream-demo``) whose EURUSD
history stops ``HOURS`` bars before the end of the sample, materialises it into Redis,
serves the last trained version with ``AUGUR_CLOCK=feed``, runs ``augur stream consume``
and ``augur stream replay --last HOURS``, and prints each decision as a new bar's features
arrive: the same commands a user types. The sample bars are history; on the feed clock
they are decided as if they were live.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pandas as pd

SYMBOL = "EURUSD"
HOURS = 24
SPEED = 3 * 3600.0  # three market hours a second


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.05)


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def main() -> int:
    redis_exe = shutil.which("redis-server")
    if redis_exe is None:
        print("skipped: redis-server is not installed (make setup installs it)")
        return 0
    from augur.config import Settings
    from augur.data import load_sample, write_bars
    from augur.features import store as fs
    from augur.models import list_models

    main_home = Path(os.environ.get("AUGUR_HOME", ".augur")).resolve()
    tags = [r.tag for r in sorted(list_models(), key=lambda r: r.created)]
    if not tags:
        print("need a trained version (augur train)", file=sys.stderr)
        return 1
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="augur-stream-demo-redis-")
    redis = subprocess.Popen(
        [redis_exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    procs: list[subprocess.Popen[bytes]] = []
    try:
        _wait_port(port, redis)
        home = main_home / "stream-demo"
        shutil.rmtree(home, ignore_errors=True)
        settings = Settings(home=home, online_store="redis", redis_url=f"127.0.0.1:{port}")
        bars = load_sample([SYMBOL])[SYMBOL]
        write_bars(bars.iloc[:-HOURS], settings.bars_dir)
        fs.build_offline_features(settings)
        fs.apply(settings)
        fs.materialize(settings)
        env = {
            **os.environ,
            "AUGUR_HOME": str(home),
            "BENTOML_HOME": str(main_home / "bentoml"),  # the versions trained above
            "AUGUR_ONLINE_STORE": "redis",
            "AUGUR_REDIS_URL": settings.redis_url,
            "AUGUR_CLOCK": "feed",
            "AUGUR_STREAM_METRICS_PORT": "0",
            "AUGUR_SERVING_WORKERS": "1",
        }
        serve_port = _free_port()
        procs.append(
            subprocess.Popen(
                ["augur", "serve", "--host", "127.0.0.1", "--port", str(serve_port),
                 "--model", tags[-1]],
                env=env,
                start_new_session=True,
            )
        )  # fmt: skip
        procs.append(
            subprocess.Popen(
                ["augur", "stream", "consume", "--name", "demo"], env=env, start_new_session=True
            )
        )
        base = f"http://127.0.0.1:{serve_port}"
        with httpx.Client(base_url=base, timeout=30) as client:
            deadline = time.monotonic() + 300
            while True:
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if procs[0].poll() is not None or time.monotonic() > deadline:
                    print("the service did not become ready", file=sys.stderr)
                    return 1
                time.sleep(1)
            first = client.post("/decide", json={"symbol": SYMBOL}).json()
            print(
                f"before the replay (no feed time yet, the machine's clock): {first['action']} "
                f"{[r['code'] for r in first['reasons']]}"
            )
            replay = subprocess.Popen(
                ["augur", "stream", "replay", "--symbol", SYMBOL, "--last", str(HOURS),
                 "--speed", str(SPEED), "--quiet"],
                env=env,
                start_new_session=True,
            )  # fmt: skip
            procs.append(replay)
            last_seen = None
            shown = 0
            end = time.monotonic() + HOURS * 3600 / SPEED + 30
            while time.monotonic() < end:
                d = client.post("/decide", json={"symbol": SYMBOL}).json()
                if d["feature_timestamp"] != last_seen:
                    last_seen = d["feature_timestamp"]
                    shown += 1
                    print(
                        f"bar {last_seen}: {d['action']:13s} size {d['size']:.2e} confidence "
                        f"{d['confidence']:.2f} {[r['code'] for r in d['reasons']]}"
                    )
                done = (
                    last_seen is not None and pd.Timestamp(last_seen) == bars["timestamp"].iloc[-1]
                )
                if replay.poll() is not None and done:
                    break
                time.sleep(0.1)
            print(f"{shown} feature times seen while {HOURS} bars were replayed")
    finally:
        for proc in reversed(procs):
            _stop(proc, signal.SIGINT if proc is procs[0] else signal.SIGTERM)
        _stop(redis)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
