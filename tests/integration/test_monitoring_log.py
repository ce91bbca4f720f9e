"""The prediction log as the service uses it: several worker processes writing one log at
once (BentoML runs one process per worker) while a report reads it — a SQLite file, and a
real PostgreSQL database."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from augur.monitoring import PredictionLog, summarize

pytestmark = pytest.mark.integration

WORKER = r"""
import json, sys
from augur.monitoring import PredictionLog, PredictionRecord

url, prefix, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
log = PredictionLog(url)
joined = 0
for i in range(n):
    rid = f"{prefix}-{i}"
    for version, role in (("v1", "primary"), ("v2", "shadow")):
        log.log_prediction(PredictionRecord(
            request_id=rid, symbol="AAA", model_version=version, role=role,
            action="enter_long", p_up=0.6, p_down=0.2, p_flat=0.2, confidence=0.4,
            agreement=0.8, size=0.01, direction=1, latency_ms=1.0))
    if i % 5 == 0:
        joined += log.log_outcome(rid, 0.001, caller=prefix)
log.close()
s = log.stats
print(json.dumps({"written": s.written, "dropped": s.dropped, "failed": s.failed,
                  "joined": joined}))
"""


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_worker_processes_share_one_log(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'predictions.db'}"
    else:
        url = request.getfixturevalue("postgres_db")  # an empty database
    # No schema yet: the workers race to create it, as BentoML workers do at start-up.
    n = 400
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, f"w{k}", str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(3)
    ]
    # Read while they write: WAL lets the reader see a consistent snapshot, never an error.
    # Generous: three interpreters importing augur and writing on a loaded 2-core machine.
    deadline = time.monotonic() + 300
    reads = 0
    try:
        while (
            backend == "sqlite"
            and not (tmp_path / "predictions.db").exists()
            and any(p.poll() is None for p in procs)
        ):
            assert time.monotonic() < deadline, "no worker created the log in 300 s"
            time.sleep(0.01)
        with PredictionLog(url, start=False) as reader:
            while any(p.poll() is None for p in procs):
                frame = reader.frame()
                assert frame.empty or frame.groupby("request_id").size().max() <= 2
                reads += 1
                assert time.monotonic() < deadline, "the workers did not finish in 300 s"
                time.sleep(0.05)
            results = []
            for p in procs:
                out, err = p.communicate(timeout=120)
                assert p.returncode == 0, err
                results.append(json.loads(out.strip().splitlines()[-1]))
            frame = reader.frame()
    finally:
        for p in procs:  # a failed wait leaves no worker behind
            if p.poll() is None:
                p.kill()
                p.wait()
    for r in results:
        assert r == {"written": 2 * n, "dropped": 0, "failed": 0, "joined": n // 5}
    assert len(frame) == 3 * 2 * n
    assert frame["request_id"].nunique() == 3 * n
    assert frame["realized_return"].notna().sum() == 3 * 2 * (n // 5)
    summary = summarize(frame)
    assert summary.n_outcomes == 3 * (n // 5)
    assert summary.agreement.iloc[0]["action_agreement"] == 1.0
    assert reads >= 1
