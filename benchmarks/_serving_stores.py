"""The serving bench's stores: sample bars → features in Redis → a model, and routing tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from benchmarks._serving_requests import Quote

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def _augur(args: list[str], env: dict[str, str]) -> None:
    exe = str(Path(PY).parent / "augur")
    subprocess.run([exe, *args], env=env, cwd=ROOT, check=True, capture_output=True, timeout=1800)


def _python(code: str, env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [PY, "-c", code, *args], env=env, capture_output=True, text=True, check=True, timeout=600
    )
    return out.stdout.strip().splitlines()[-1]


def prepare_home(
    home: Path, redis_url: str, train_on: str
) -> tuple[dict[str, str], str, list[Quote]]:
    """Every sample symbol's bars → features in Redis → an ensemble trained on
    ``train_on``; returns (the servers' env, the model tag, each symbol's last bar)."""
    env = {
        **os.environ,
        "AUGUR_HOME": str(home),
        "BENTOML_HOME": str(home / "bentoml"),
        "AUGUR_ONLINE_STORE": "redis",
        "AUGUR_REDIS_URL": redis_url,
        "AUGUR_FEATURE_REPO": str(ROOT / "feature_repo"),
        "BENTOML_DO_NOT_TRACK": "True",
        # The sample bars are history: judge staleness against their own time span.
        "AUGUR_MAX_FEATURE_AGE_SECONDS": str(100 * 365 * 86400),
        # The sample model is rarely confident: with no confidence floor a directional
        # signal enters, so requests run every stage of the decision (sizing, portfolio).
        "AUGUR_DECISION_OVERRIDES": '{"confidence_threshold": 0.0}',
        "PYTHONPATH": str(ROOT),
    }
    for step in (["data", "sample"], ["features", "build"], ["features", "apply"]):
        _augur(step, env)
    _augur(["features", "materialize"], env)
    # One symbol's history trains a model that scores every symbol's features (training on
    # all of them takes minutes; the bench measures serving, not the model).
    _augur(["train", "--symbols", train_on], env)
    tag = _python(
        "import bentoml, sys; print(bentoml.models.get(sys.argv[1]).tag)",
        env,
        "augur-ensemble:latest",
    )
    last = json.loads(
        _python(
            "import json; from augur.data import read_bars; "
            "b = read_bars().groupby('symbol').last(); "
            "print(json.dumps({s: [float(r.close), r.timestamp.isoformat()] "
            "for s, r in b.iterrows()}))",
            env,
        )
    )
    quotes = [Quote(s, c, datetime.fromisoformat(t)) for s, (c, t) in sorted(last.items())]
    return env, tag, quotes


def train_version(env: dict[str, str], symbol: str) -> str:
    """A model of ``symbol`` trained by the code ``env`` runs (a baseline's own: its
    FeatureSpec may differ from ours, and a model serves only with its own); its tag."""
    _augur(["train", "--symbols", symbol], env)
    code = "import bentoml, sys; print(bentoml.models.get(sys.argv[1]).tag)"
    return _python(code, env, "augur-ensemble:latest")


def second_version(tag: str, env: dict[str, str]) -> str:
    """Save the trained ensemble again as a new version (the shadow's own tag)."""
    code = (
        "import sys; from augur.models import load_ensemble, save_ensemble; "
        "print(save_ensemble(load_ensemble(sys.argv[1]), labels={'stage': 'shadow'}))"
    )
    return _python(code, env, tag)


def single_route(work: Path, name: str, tag: str) -> Path:
    """A routing table sending every request to ``tag``."""
    path = work / f"routes-{name}.json"
    path.write_text(json.dumps({"versions": [{"name": name, "model_tag": tag, "weight": 100}]}))
    return path


def routing_tables(work: Path, tag: str, shadow_tag: str) -> dict[str, Path]:
    """'plain': every request to ``tag``; 'shadow': the same, mirrored 100% to
    ``shadow_tag`` (another version with the same weights: shadow work is never shared
    with the primary's)."""
    stable = {"name": "stable", "model_tag": tag, "weight": 100}
    tables = {
        "plain": {"versions": [stable]},
        "shadow": {
            "versions": [stable],
            "shadow": {"name": "shadow", "model_tag": shadow_tag, "percent": 100},
        },
    }
    paths = {}
    for name, table in tables.items():
        paths[name] = work / f"routes-{name}.json"
        paths[name].write_text(json.dumps(table))
    return paths
