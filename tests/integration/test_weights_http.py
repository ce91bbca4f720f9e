"""Outcomes change what the ensemble believes, over real HTTP: a real ``augur serve`` with
two worker processes, a real Redis online store, one tiny ensemble, and the prediction
log's SQLite database (where the shared member weights live).

Outcomes are posted that favour one member (the realised class is the one that member
gives the most probability to, beyond the label's flat band). Then both workers (told
apart by the process id ``GET /models`` answers with) show the member weights the rule
gives (:class:`augur.models.DynamicWeights`, from the weights the version was trained
with), the favoured member's raised; ``/metrics`` shows them; and a ``/decide``'s
probability is the weights' mixture of the members' probabilities.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from tests.conftest import RedisServer
from tests.integration._one_symbol import Served, client_of, one_version_served
from tests.integration.test_service_http import AUTH

pytestmark = pytest.mark.integration

REDIS_DB = 11  # a database of its own on the session's Redis
SYMBOL = "AAPL"
N_BARS = 400
N_OUTCOMES = 6


@pytest.fixture(scope="module")
def served(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("weights-home")
    with one_version_served(home, f"{redis_server.url},db={REDIS_DB}", SYMBOL, N_BARS) as s:
        yield s


@pytest.fixture(scope="module")
def client(served: Served) -> Iterator[httpx.Client]:
    with client_of(served, AUTH) as c:
        yield c


def _by_worker(client: httpx.Client, until: Any, timeout: float = 60.0) -> dict[int, dict]:
    """``GET /models``'s version entry per worker pid, asked until two workers have
    answered and ``until(entries)`` holds (the last answers when time runs out)."""
    seen: dict[int, dict] = {}
    deadline = time.monotonic() + timeout
    while True:
        body = client.get("/models").json()
        seen[body["worker"]] = body["versions"][0]
        if len(seen) >= 2 and until(seen):
            return seen
        if time.monotonic() > deadline:
            return seen
        time.sleep(0.1)


def test_outcomes_that_favour_a_member_raise_its_weight_in_both_workers(
    served: Served, client: httpx.Client
) -> None:
    from augur.features.store import OnlineFeatures
    from augur.models import MEMBERS, DynamicWeights, direction_of, load_version
    from augur.monitoring.log._weights import realised_label

    version = load_version(served.tag, store_dir=served.settings.home / "bentoml")
    ensemble = version.ensemble
    trained = DynamicWeights.from_state(ensemble.dynamic_weights.state())

    before = _by_worker(client, lambda seen: True)
    assert len(before) == 2, f"only {len(before)} worker(s) answered /models"
    for entry in before.values():
        assert entry["member_weights"] == pytest.approx(trained.as_dict(), rel=1e-12)
        assert entry["weight_updates"] == trained.n_updates and not entry["weights_frozen"]

    # What the members say about the symbol's row, as the service scores it.
    online = OnlineFeatures(served.settings)
    names = list(online.spec.names)
    vec, _ts = online.get([SYMBOL])[SYMBOL]
    x = np.array([vec[names.index(n)] for n in ensemble.feature_names])
    vol, trend = vec[names.index("vol_20")], vec[names.index("eff_ratio_20")]
    out = ensemble.predict_one(x, volatility=vol, trend_strength=trend, explain=False)
    per_model = np.array([out.per_model[m] for m in MEMBERS])
    # The class (down or up) the members disagree on most; the member that gives it the
    # most probability is the one the outcomes favour.
    column = max((0, 2), key=lambda c: np.ptp(per_model[:, c]))
    favoured = MEMBERS[int(np.argmax(per_model[:, column]))]
    label = column - 1
    band = (
        version.ensemble.context["label_dead_zone"]
        * vol
        * np.sqrt(version.ensemble.context["label_horizon"])
    )
    realized = 0.2 * label  # far beyond the flat band
    assert realised_label(realized, band) == label

    ids = []
    for _ in range(N_OUTCOMES):
        rid = f"w-{uuid.uuid4().hex[:12]}"
        r = client.post("/decide", json={"symbol": SYMBOL}, headers={"X-Request-ID": rid})
        assert r.status_code == 200, r.text
        ids.append(rid)
    for rid in ids:
        r = client.post("/outcome", json={"request_id": rid, "realized_return": realized})
        assert r.status_code == 200, r.text
    # a retried outcome moves nothing again
    r = client.post("/outcome", json={"request_id": ids[0], "realized_return": realized})
    assert r.status_code == 200, r.text

    expected = DynamicWeights.from_state(trained.state())
    for _ in range(N_OUTCOMES):
        expected.update(per_model, label)
    want = expected.as_dict()
    n_after = trained.n_updates + N_OUTCOMES

    after = _by_worker(
        client,
        lambda seen: all(e["weight_updates"] == n_after for e in seen.values()),
        timeout=30.0,
    )
    assert len(after) == 2
    for pid, entry in after.items():
        assert entry["weight_updates"] == n_after, (pid, entry)
        assert entry["member_weights"] == pytest.approx(want, rel=1e-9), pid
        assert entry["member_weights"][favoured] > trained.as_dict()[favoured], (favoured, entry)

    # /metrics: a gauge per (version, member)
    text = client.get("/metrics").text
    line = next(
        ln
        for ln in text.splitlines()
        if ln.startswith("augur_member_weight{")
        and f'member="{favoured}"' in ln
        and f'version="{served.tag}"' in ln
    )
    assert float(line.rsplit(" ", 1)[1]) == pytest.approx(want[favoured], rel=1e-9)

    # A decision now mixes the members' probabilities with the new weights, whichever
    # worker answers (each asked several times over fresh connections).
    p = expected.weights @ per_model
    direction = int(direction_of(p[None, :])[0])
    for _ in range(6):
        r = client.post("/decide", json={"symbol": SYMBOL})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["direction"] == direction
        assert body["probability"] == pytest.approx(p[direction + 1], rel=1e-9), (body, p)
