"""The routing table the operator writes is the one a real ``augur serve`` reads: the
ConfigMap's ``routes.json``, given to the service as its routing-table file, is accepted
and splits real traffic by its weights (the contract holds end to end)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from tests.conftest import free_port
from tests.k8s.conftest import ROOT, Kubectl, Operator, wait_for
from tests.k8s.test_decisionservice_operator import decision_service, routes, wait_ready

SYMBOL = "EURUSD"
TINY = {
    "rf_n_estimators": 5,
    "xgb_n_estimators": 5,
    "quantile_n_estimators": 5,
    "svm_max_samples": 200,
    "calibration_folds": 2,
    "n_jobs": 1,
}


@pytest.fixture(scope="module")
def model_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """Features in the embedded (SQLite) online store and two saved model versions."""
    from augur.config import Settings
    from augur.data import load_sample, write_bars
    from augur.features import store as fs
    from augur.models import EnsembleParams, save_ensemble
    from augur.models._train import train_on_bars

    home = tmp_path_factory.mktemp("contract-home")
    settings = Settings(home=home, feature_repo=ROOT / "feature_repo")
    bars = pd.concat([load_sample([SYMBOL])[SYMBOL].tail(400)], ignore_index=True)
    write_bars(bars, settings.bars_dir)
    fs.build_offline_features(settings)
    fs.apply(settings)
    fs.materialize(settings)
    result = train_on_bars(bars, params=EnsembleParams(**TINY), settings=settings)
    tags = [
        save_ensemble(result.ensemble, "augur-ensemble", store_dir=home / "bentoml")
        for _ in range(2)
    ]
    return home, tags


@pytest.fixture
def serve(model_home: tuple[Path, list[str]]) -> Iterator[Any]:
    """Start ``augur serve`` on a routing-table file; stopped with SIGINT afterwards."""
    home, _ = model_home
    procs: list[subprocess.Popen[bytes]] = []

    def start(table: Path) -> str:
        port = free_port()
        env = {
            **os.environ,
            "AUGUR_HOME": str(home),
            "BENTOML_HOME": str(home / "bentoml"),
            "AUGUR_FEATURE_REPO": str(ROOT / "feature_repo"),
            "AUGUR_ROUTING_TABLE": str(table),
            "AUGUR_SERVING_WORKERS": "1",
            "AUGUR_MAX_FEATURE_AGE_SECONDS": str(60 * 365 * 86400),
            "BENTOML_DO_NOT_TRACK": "True",
        }
        log = home / f"serve-{port}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(Path(sys.executable).parent / "augur"), "serve", "--port", str(port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                start_new_session=True,
            )
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"augur serve exited:\n{log.read_text()[-3000:]}")
            try:
                return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for("augur serve ready", ready, timeout=240, interval=0.5)
        return url

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def test_the_operators_routing_table_routes_a_real_service_by_its_weights(
    kubectl: Kubectl,
    operator: Operator,
    namespace: str,
    model_home: tuple[Path, list[str]],
    serve: Any,
    tmp_path: Path,
) -> None:
    _, tags = model_home
    body = decision_service("contract", namespace, canary=30, shadow=False)
    body["spec"]["versions"][0]["modelTag"] = tags[0]
    body["spec"]["versions"][1]["modelTag"] = tags[1]
    kubectl.apply(body)
    wait_ready(kubectl, "contract", namespace)
    cm = kubectl.get("configmap", "contract-routes", namespace)
    assert cm is not None
    table = tmp_path / "routes.json"
    table.write_text(cm["data"]["routes.json"])  # the bytes the pods would mount

    url = serve(table)
    models = httpx.get(f"{url}/models", timeout=10).json()
    assert [(v["role"], v["model_tag"], v["loaded"]) for v in models["versions"]] == [
        ("primary", tags[0], True),
        ("canary", tags[1], True),
    ]

    n = 600
    seen: Counter[str] = Counter()
    on_primary = []
    with httpx.Client(base_url=url, timeout=10) as client:
        for i in range(n):
            r = client.post("/decide", json={"symbol": SYMBOL, "routing_key": f"client-{i}"})
            assert r.status_code == 200, r.text
            seen[r.json()["model_version"]] += 1
            if r.json()["model_version"] == tags[0]:
                on_primary.append(f"client-{i}")
    assert set(seen) == set(tags)
    share = seen[tags[1]] / n
    assert share == pytest.approx(0.30, abs=0.06), seen  # 600 keys: ±6 pts is > 3 sigma

    # The operator shifts traffic; the service, re-reading the same file, follows.
    body["spec"]["versions"][0]["weight"], body["spec"]["versions"][1]["weight"] = 0, 100
    kubectl.apply(body)
    wait_for(
        "the new weights in the ConfigMap",
        lambda: (
            [v["weight"] for v in routes(kubectl, "contract", namespace)["versions"]]
            == [0.0, 100.0]
        ),
    )
    cm = kubectl.get("configmap", "contract-routes", namespace)
    assert cm is not None
    tmp = table.with_suffix(".tmp")
    tmp.write_text(cm["data"]["routes.json"])
    tmp.replace(table)  # atomic, as the kubelet swaps a ConfigMap volume's files

    def all_canary() -> bool:
        key = on_primary[0]  # a key the old table sent to the primary
        r = httpx.post(f"{url}/decide", json={"symbol": SYMBOL, "routing_key": key}, timeout=10)
        return r.json()["model_version"] == tags[1]

    wait_for("the service to reload the table", all_canary, timeout=30)
    versions = {
        httpx.post(
            f"{url}/decide", json={"symbol": SYMBOL, "routing_key": f"k{i}"}, timeout=10
        ).json()["model_version"]
        for i in range(50)
    }
    assert versions == {tags[1]}
