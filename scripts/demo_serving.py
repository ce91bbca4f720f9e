"""Demo: serve decisions with a canary and a shadow, post outcomes, write the serving report.

Started by ``make demo`` after training and tuning. It runs the real service
(``augur serve`` → ``bentoml serve``) on 127.0.0.1, sends ``/decide`` for every sample
symbol under many routing keys (so both the primary and the canary take traffic, and
the shadow mirrors it), posts an outcome for each decision, stops the server and runs
``augur report serving``.

The sample bars are history, so there is no future to observe: each request's
``as_of`` is its symbol's latest feature time (a replay), and each outcome is drawn
from that symbol's own historical 5-bar returns — illustrative, and labelled so.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import numpy as np


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    from augur.data import read_bars
    from augur.models import list_models

    tags = [r.tag for r in sorted(list_models(), key=lambda r: r.created)]
    if len(tags) < 2:
        print("need two model versions (augur train, then augur tune --promote)", file=sys.stderr)
        return 1
    primary, candidate = tags[-2], tags[-1]
    print(f"primary {primary}; canary 20% and shadow 100%: {candidate}")

    bars = read_bars()
    port = _free_port()
    server = subprocess.Popen(
        [
            "augur",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--model",
            primary,
            "--canary",
            candidate,
            "--canary-percent",
            "20",
            "--shadow",
            candidate,
            "--shadow-percent",
            "100",
        ],
        env=os.environ.copy(),
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    rng = np.random.default_rng(7)
    counts: dict[str, int] = {}
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            deadline = time.monotonic() + 300
            while True:
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    print("the service did not become ready", file=sys.stderr)
                    return 1
                time.sleep(1)
            before = {
                v["model_tag"]: v.get("member_weights") or {}
                for v in client.get("/models").json()["versions"]
            }
            for symbol, history in bars.groupby("symbol"):
                as_of = history["timestamp"].max().isoformat()
                past = np.log(history["close"]).diff(5).dropna().to_numpy()
                for caller in range(40):
                    r = client.post(
                        "/decide",
                        json={"symbol": symbol, "as_of": as_of, "routing_key": f"client-{caller}"},
                    )
                    r.raise_for_status()
                    decision = r.json()
                    counts[decision["model_version"]] = counts.get(decision["model_version"], 0) + 1
                    outcome = float(rng.choice(past))
                    client.post(
                        "/outcome",
                        json={"request_id": decision["request_id"], "realized_return": outcome},
                    ).raise_for_status()
                print(
                    f"{symbol:7s} last decision: {decision['action']:14s} size {decision['size']:.2e} "
                    f"confidence {decision['confidence']:.2f} "
                    f"reasons {[x['code'] for x in decision['reasons']]}"
                )
            print("responses per version:", counts)
            time.sleep(1.5)  # every worker re-reads the shared weights within a second
            models = client.get("/models").json()
            print("GET /models:", models.get("routing_table"))
            # Each version decides with its own thresholds: the tuned ones for the promoted
            # version, the defaults (or those given to `augur train --decision`) otherwise.
            for v in models["versions"]:
                config = v.get("decision_config") or {}
                print(
                    f"  {v['role']:8s} {v['model_tag']}: confidence threshold "
                    f"{config.get('confidence_threshold')}, Kelly fraction "
                    f"{config.get('kelly_fraction')}, cool-down after "
                    f"{config.get('cooldown_losses')} losses"
                )
                # the outcomes posted above moved each version's member weights
                after = v.get("member_weights") or {}
                moved = ", ".join(
                    f"{m} {before.get(v['model_tag'], {}).get(m, float('nan')):.3f}→{w:.3f}"
                    for m, w in after.items()
                )
                print(
                    f"           member weights after {v.get('weight_updates')} outcomes: {moved}"
                )
    finally:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
    return subprocess.call(["augur", "report", "serving"])


if __name__ == "__main__":
    raise SystemExit(main())
