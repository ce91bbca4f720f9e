"""The chart's feature job, run for real: its pod replayed on this machine against a real Redis.

The k8s tier's nodes are kwok's, which schedule pods but run no containers, so it can only
check that the CronJob is accepted. Here the CronJob that ``helm template`` renders for a
ci/ scenario is run the way the kubelet would run its pod: the init containers and then
the container, in order, each with its command, its env (the Secret-backed
``AUGUR_REDIS_URL`` resolved to a redis-server this test starts) and its volume mounts
mapped to directories of the test (one per claim, kept between runs like a
PersistentVolumeClaim; a fresh one per run for an emptyDir; the ConfigMap's files
written out). The first step to fail ends the run, as in the pod.

What the replay cannot show: the image. ``augur`` is this checkout's, run from the
repository root (the image's working directory stands in as the place ``feature_repo/``
is found), and the read-only root filesystem, user and resource limits are not enforced.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import RedisServer
from tests.unit.helm.conftest import HELM, run_helm

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
AUGUR = Path(sys.executable).parent / "augur"
# A database of its own on the session's Redis, emptied by each test.
REDIS_DB = 14  # a database of its own on the session's Redis


@dataclass
class Step:
    name: str
    returncode: int
    output: str


def render(scenario: str) -> list[dict[str, Any]]:
    if not HELM.exists():
        pytest.skip(f"no helm binary at {HELM}: `make k8s-build` builds it (needs Go)")
    proc = run_helm("template", "rel", ".", "--namespace", "augur-system", "-f", scenario)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def materialize_pod(objs: list[dict[str, Any]]) -> dict[str, Any]:
    (cron,) = [
        o for o in objs if o["kind"] == "CronJob" and o["metadata"]["name"].endswith("-materialize")
    ]
    return cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]


class Cluster:
    """What the pod's volumes and Secrets are on this machine: a directory per claim, the
    ConfigMaps and Secrets by name."""

    def __init__(self, base: Path, objs: list[dict[str, Any]], secrets: dict[str, str]) -> None:
        self.base = base
        self.config_maps = {o["metadata"]["name"]: o for o in objs if o["kind"] == "ConfigMap"}
        self.secrets = secrets  # "<secret>/<key>" -> value
        self.runs = 0

    def claim(self, name: str) -> Path:
        path = self.base / "claims" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def empty_dir(self, run: int, volume: str) -> Path:
        """The emptyDir ``volume`` of the ``run``-th pod (1 is the first)."""
        return self.base / f"pod-{run}" / "emptyDir" / volume

    def _volume(self, volume: dict[str, Any], run_dir: Path) -> Path:
        if "persistentVolumeClaim" in volume:
            return self.claim(volume["persistentVolumeClaim"]["claimName"])
        if "emptyDir" in volume:  # one per pod: a new run starts empty
            path = run_dir / "emptyDir" / volume["name"]
        elif "configMap" in volume:
            path = run_dir / "configMap" / volume["name"]
            data = self.config_maps[volume["configMap"]["name"]]["data"]
            path.mkdir(parents=True)
            for key, text in data.items():
                (path / key).write_text(text)
        else:
            raise AssertionError(f"the replay does not know the volume {volume}")
        path.mkdir(parents=True, exist_ok=True)
        return path

    def run(self, pod: dict[str, Any]) -> list[Step]:
        """Run the pod's init containers, then its container, stopping at the first failure."""
        self.runs += 1
        run_dir = self.base / f"pod-{self.runs}"
        volumes = {v["name"]: self._volume(v, run_dir) for v in pod["volumes"]}
        steps: list[Step] = []
        for container in pod.get("initContainers", []) + pod["containers"]:
            argv, env = self._process(container, volumes)
            proc = subprocess.run(
                argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
            )
            steps.append(Step(container["name"], proc.returncode, proc.stdout + proc.stderr))
            if proc.returncode != 0:
                break
        return steps

    def _process(
        self, container: dict[str, Any], volumes: dict[str, Path]
    ) -> tuple[list[str], dict[str, str]]:
        mounts: dict[str, Path] = {}
        for m in container["volumeMounts"]:
            host = volumes[m["name"]] / m.get("subPath", "")
            host.mkdir(parents=True, exist_ok=True)
            mounts[m["mountPath"]] = host

        def on_host(value: str) -> str:
            for path in sorted(mounts, key=len, reverse=True):
                if value == path or value.startswith(path + "/"):
                    return str(mounts[path]) + value[len(path) :]
            return value

        argv = [*container["command"], *container.get("args", [])]
        assert argv[0] == "augur", f"{container['name']} runs {argv[0]}, not the augur CLI"
        env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", "COLUMNS": "200"}
        for item in container["env"]:
            if "value" in item:
                env[item["name"]] = on_host(str(item["value"]))
            else:
                ref = item["valueFrom"]["secretKeyRef"]
                env[item["name"]] = self.secrets[f"{ref['name']}/{ref['key']}"]
        return [str(AUGUR), *map(on_host, argv[1:])], env


def failed(steps: list[Step]) -> str:
    return "\n".join(f"--- {s.name} (exit {s.returncode})\n{s.output}" for s in steps)


def online(home: Path, redis_url: str, symbols: list[str]) -> dict[str, tuple[np.ndarray, Any]]:
    """What the decision service would read for ``symbols``: latest features and their time."""
    from augur.config import Settings
    from augur.features.store import OnlineFeatures

    settings = Settings(home=home, feature_repo=ROOT / "feature_repo")
    reader = OnlineFeatures(settings, "redis", redis_url)
    try:
        return reader.get(symbols)
    finally:
        reader.close()


def latest_offline(home: Path) -> pd.DataFrame:
    frame = pd.read_parquet(home / "features" / "bar_features.parquet")
    return frame.sort_values("timestamp").groupby("symbol").tail(1).set_index("symbol")


def assert_online_is_latest_offline(home: Path, url: str, symbols: list[str]) -> None:
    rows = online(home, url, symbols)
    last = latest_offline(home)
    for sym in symbols:
        vector, ts = rows[sym]
        assert pd.Timestamp(ts) == last.loc[sym, "timestamp"], sym
        offline = last.loc[sym].drop("timestamp").to_numpy(float)
        np.testing.assert_allclose(vector, offline, rtol=1e-9, equal_nan=True, err_msg=sym)


def correlations_in_redis(redis_url: str) -> Any:
    """The return correlations the decision services read from Redis (None: there are none)."""
    import redis

    from augur.features.correlations import RedisCorrelationStore, read_correlations

    host_port = redis_url.split(",")[0]
    client = redis.Redis(host="127.0.0.1", port=int(host_port.split(":")[1]), db=REDIS_DB)
    try:
        return read_correlations(RedisCorrelationStore(client))
    finally:
        client.close()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    import redis

    client = redis.Redis(host="127.0.0.1", port=redis_server.port, db=REDIS_DB)
    client.flushdb()
    client.close()
    return f"{redis_server.url},db={REDIS_DB}"


def hourly_bars(end: datetime, n: int, seed: int) -> pd.DataFrame:
    """``n`` hourly bars ending at ``end`` (a random walk: the features need only be bars)."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    open_ = np.concatenate([[close[0]], close[:-1]])
    spread = np.abs(rng.normal(0, 0.001, n)) * close
    return pd.DataFrame(
        {
            "timestamp": pd.date_range(end=end, periods=n, freq="1h").strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
            "open": open_,
            "high": np.maximum(open_, close) + spread,
            "low": np.minimum(open_, close) - spread,
            "close": close,
            "volume": rng.integers(100, 1000, n),
        }
    )


def test_the_sample_scenario_fills_redis_with_the_sample_symbols(
    tmp_path: Path, redis_url: str
) -> None:
    """ci/redis-in-chart-values.yaml (a demo on the image's sample bars): one run of the
    CronJob's pod leaves each sample symbol's latest features in Redis."""
    objs = render("ci/redis-in-chart-values.yaml")
    pod = materialize_pod(objs)
    assert [c["name"] for c in pod["initContainers"]] == ["bars", "build", "apply"]
    cluster = Cluster(tmp_path, objs, {"rel-augur-redis/redis-url": redis_url})

    steps = cluster.run(pod)

    assert [s.name for s in steps] == ["bars", "build", "apply", "materialize"], failed(steps)
    assert all(s.returncode == 0 for s in steps), failed(steps)
    assert "2 symbols online" in steps[-1].output
    home = cluster.claim("rel-augur-features")
    assert_online_is_latest_offline(home, redis_url, ["EURUSD", "SP500"])
    # numba's cache of the feature kernels went to /tmp, not beside the (read-only) package
    assert list((cluster.empty_dir(1, "tmp") / "numba").rglob("*.nbi"))


def test_bar_files_on_a_claim_reach_redis_and_each_run_brings_the_new_bars(
    tmp_path: Path, redis_url: str
) -> None:
    """ci/external-redis-values.yaml: bar files a vendor sync drops on the claim
    market-bars (under daily/) are in Redis after a run; a bar that lands before the next
    run is online after it, even when it is stamped before this run started (a bar is
    stamped when it closes and lands some minutes later)."""
    objs = render("ci/external-redis-values.yaml")
    pod = materialize_pod(objs)
    cluster = Cluster(tmp_path, objs, {"managed-redis/connection-string": redis_url})
    drop = cluster.claim("market-bars") / "daily"
    drop.mkdir()
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    eurusd = hourly_bars(hour - timedelta(hours=1), 300, seed=1)
    eurusd.to_csv(drop / "EURUSD.csv", index=False)
    hourly_bars(hour, 300, seed=2).to_parquet(drop / "GBPUSD.parquet")
    home = cluster.claim("augur-features")

    first = cluster.run(pod)

    assert all(s.returncode == 0 for s in first) and len(first) == 4, failed(first)
    assert_online_is_latest_offline(home, redis_url, ["EURUSD", "GBPUSD"])
    assert pd.Timestamp(online(home, redis_url, ["EURUSD"])["EURUSD"][1]) == pd.Timestamp(
        hour - timedelta(hours=1)
    )

    # EURUSD's bar of the last hour lands after that run.
    grown = pd.concat([eurusd, hourly_bars(hour, 301, seed=1).tail(1)], ignore_index=True)
    grown.to_csv(drop / "EURUSD.csv", index=False)
    second = cluster.run(pod)

    assert all(s.returncode == 0 for s in second) and len(second) == 4, failed(second)
    assert pd.Timestamp(online(home, redis_url, ["EURUSD"])["EURUSD"][1]) == pd.Timestamp(hour)
    assert_online_is_latest_offline(home, redis_url, ["EURUSD", "GBPUSD"])
    # and the return correlations the exposure cap reads, up to that bar
    matrix = correlations_in_redis(redis_url)
    assert matrix is not None and pd.Timestamp(matrix.as_of) == pd.Timestamp(hour)
    assert ("EURUSD", "GBPUSD") in matrix.among("EURUSD", ["GBPUSD"])


def test_a_bad_bar_file_fails_the_run_at_its_first_step_and_keeps_what_is_online(
    tmp_path: Path, redis_url: str
) -> None:
    """A file breaking a rule fails the `bars` step (so the Job, and `kubectl get jobs`
    shows it); nothing after it runs and Redis keeps the last good features."""
    objs = render("ci/external-redis-values.yaml")
    pod = materialize_pod(objs)
    cluster = Cluster(tmp_path, objs, {"managed-redis/connection-string": redis_url})
    drop = cluster.claim("market-bars") / "daily"
    drop.mkdir()
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    hourly_bars(hour, 300, seed=3).to_csv(drop / "EURUSD.csv", index=False)
    assert all(s.returncode == 0 for s in cluster.run(pod))
    before = online(cluster.claim("augur-features"), redis_url, ["EURUSD"])["EURUSD"]

    bad = hourly_bars(hour + timedelta(hours=1), 300, seed=3)
    bad.loc[len(bad) - 1, "high"] = bad["low"].iloc[-1] - 1  # a high below its low
    bad.to_csv(drop / "EURUSD.csv", index=False)
    steps = cluster.run(pod)

    assert [(s.name, s.returncode) for s in steps] == [("bars", 1)], failed(steps)
    assert "EURUSD.csv" in steps[0].output and "nothing was written" in steps[0].output
    after = online(cluster.claim("augur-features"), redis_url, ["EURUSD"])["EURUSD"]
    assert after[1] == before[1]
    np.testing.assert_array_equal(after[0], before[0])
