"""`augur retrain`: a drifted version gets a successor, trained as it was on the bar store's
bars and routed as its shadow; without drift (and --if-drifted) nothing is trained."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from augur.cli import app
from augur.config import get_settings
from tests.unit.models._ensemble_fixtures import small_params

SMALL = {"rf_n_estimators": 10, "xgb_n_estimators": 10, "quantile_n_estimators": 10}


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory) -> tuple[Path, str]:
    """A home with bars and one small version, trained once for the module."""
    from augur.data import write_bars
    from augur.decision import DecisionConfig
    from augur.models import save_version
    from augur.models._train import train_on_bars
    from tests.conftest import synthetic_bars

    home = tmp_path_factory.mktemp("retrain") / "home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUGUR_HOME", str(home))
        mp.setenv("BENTOML_HOME", str(home / "bentoml"))
        get_settings.cache_clear()
        write_bars(synthetic_bars(n=260))
        result = train_on_bars(
            synthetic_bars(n=260).query("symbol == 'AAA'"),
            params=small_params(**SMALL),
            settings=get_settings(),
        )
        # Thresholds of its own: a successor must decide as it did.
        tag = save_version(
            result.ensemble, DecisionConfig(confidence_threshold=0.5), reference=result.reference
        ).tag
    get_settings.cache_clear()
    return home, tag


@pytest.fixture
def home(trained_home, monkeypatch, tmp_path) -> Path:
    template, _ = trained_home
    home = tmp_path / "home"
    shutil.copytree(template, home)
    monkeypatch.setenv("AUGUR_HOME", str(home))
    monkeypatch.setenv("BENTOML_HOME", str(home / "bentoml"))
    monkeypatch.delenv("AUGUR_PREDICTION_LOG_URL", raising=False)
    monkeypatch.delenv("AUGUR_ROUTING_TABLE", raising=False)
    monkeypatch.setenv("COLUMNS", "80")
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


@pytest.fixture
def tag(trained_home) -> str:
    return trained_home[1]


def serve(tag: str, *, shift: float) -> None:
    """What the serving workers do: test served rows (the version's own reference rows,
    moved by ``shift`` standard deviations) against its reference and store the result."""
    from augur.models import load_reference, resolve_version
    from tests.unit.cli.test_drift import serve_rows

    reference = load_reference(resolve_version(tag)[1])
    assert reference is not None
    rows = reference.sample(300, replace=True, random_state=0).reset_index(drop=True)
    serve_rows(reference, rows + shift * reference.std(), version=tag)


def write_routes(home: Path, table: dict) -> Path:
    routes = home / "serving" / "routes.json"
    routes.parent.mkdir(parents=True, exist_ok=True)
    routes.write_text(json.dumps(table))
    return routes


def retrain(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, ["retrain", *args])
    assert "Traceback" not in res.output, res.output
    return res.exit_code, " ".join(res.output.split())


def test_a_drifted_version_gets_a_shadow_trained_as_it_was(home, tag) -> None:
    from augur.models import list_models, load_ensemble, load_version

    table = {
        "versions": [
            {"name": "stable", "model_tag": tag, "weight": 80.0},
            {"name": "canary", "model_tag": tag, "weight": 20.0},
        ],
        "shadow": {"name": "mirror", "model_tag": tag, "percent": 10.0},
    }
    routes = write_routes(home, table)
    serve(tag, shift=3.0)
    code, out = retrain("--if-drifted", "--shadow-percent", "25")
    assert code == 0, out
    assert f"features of {tag} moved" in out

    tags = [r.tag for r in list_models()]
    assert len(tags) == 2 and tags[1] == tag
    new = tags[0]
    assert f"saved {new}" in out
    written = json.loads(routes.read_text())
    assert written["versions"] == table["versions"]  # what serves is untouched
    assert written["shadow"] == {"name": "mirror", "model_tag": new, "percent": 25.0}
    old, fresh = load_ensemble(tag), load_ensemble(new)
    assert fresh.params == old.params  # the drifted version's recipe (small trees)
    assert load_version(new).decision == load_version(tag).decision  # and its thresholds
    assert load_version(new).decision.confidence_threshold == 0.5
    assert fresh.context["symbols"] == ["AAA"]  # and its symbols, not every one stored


def test_no_drift_trains_nothing(home, tag) -> None:
    from augur.models import list_models

    serve(tag, shift=0.0)
    code, out = retrain("--if-drifted")
    assert code == 0, out
    assert f"nothing drifted: {tag} keeps serving, no version trained" in out
    assert [r.tag for r in list_models()] == [tag]
    assert not (home / "serving" / "routes.json").exists()


def test_without_if_drifted_it_always_retrains(home, tag) -> None:
    from augur.models import list_models

    code, out = retrain("--last-bars", "240", "-p", "rf_n_estimators=5")
    assert code == 0, out
    new = list_models()[0].tag
    assert new != tag
    written = json.loads((home / "serving" / "routes.json").read_text())
    assert written == {
        "versions": [{"name": "primary", "model_tag": tag, "weight": 100.0}],
        "shadow": {"name": "shadow", "model_tag": new, "percent": 100.0},
    }

    from augur.models import load_ensemble

    fresh = load_ensemble(new)
    assert fresh.params.rf_n_estimators == 5
    assert pd.Timestamp(fresh.context["data_start"]) > pd.Timestamp("2020-01-01", tz="UTC")


@pytest.mark.parametrize(
    ("routes", "args", "said"),
    [
        (None, ["--if-drifted"], "no prediction log at"),
        ("other", [], "is not served by the routing table"),
        (None, ["--version", "nothing:latest"], "no model 'nothing'"),
        (None, ["-p", "rf_n_estimators=0"], "EnsembleParams.rf_n_estimators=0"),
    ],
)
def test_nothing_to_judge_or_a_bad_option_exits_2_without_training(
    home, tag, routes, args, said
) -> None:
    from augur.models import list_models

    if routes == "other":  # the table serves another version than the one named
        write_routes(
            home, {"versions": [{"name": "p", "model_tag": "augur-ensemble:other", "weight": 100}]}
        )
        args = ["--version", tag, *args]
    code, out = retrain(*args)
    assert code == 2, out
    assert said in out
    assert [r.tag for r in list_models()] == [tag]


def test_served_rows_drawn_from_the_reference_do_not_drift(home, tag) -> None:
    # the no-drift case above is honest: the rule does not flag the reference's own rows
    from augur.models import load_reference, resolve_version

    reference = load_reference(resolve_version(tag)[1])
    assert reference is not None and np.isfinite(reference.to_numpy()).all()
    serve(tag, shift=0.0)
    res = CliRunner().invoke(app, ["drift", "check"])
    assert res.exit_code == 0, res.output
