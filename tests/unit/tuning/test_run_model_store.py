"""``tuning.run``'s outputs: the summary to a path or URI, the promoted version pushed to a
model store. The study itself (Ray) is replaced by a stub; pushing uses a real store."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

import augur.tuning
from tests.unit.tuning.helpers import make_study
from tuning.run import main

SUMMARY = {"study": "unit", "trials_complete": 4, "trials_pruned": 0, "best": {"score": 1.5}}


@pytest.fixture
def study_file(tmp_path: Path, bars_root: Path) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(make_study(bars_root, tmp_path)))
    return path


@pytest.fixture
def runs(monkeypatch) -> list[dict[str, Any]]:
    """Stub the study run; each call's keyword arguments are recorded."""
    calls: list[dict[str, Any]] = []

    def fake(study, **kwargs):
        calls.append(kwargs)
        return dict(SUMMARY)

    monkeypatch.setattr(augur.tuning, "run_and_report", fake)
    monkeypatch.delenv("AUGUR_MODEL_STORE", raising=False)
    return calls


def test_summary_file_accepts_a_file_uri(study_file, runs, tmp_path, capsys) -> None:
    target = tmp_path / "out" / "summary.json"
    assert main(["--config", str(study_file), "--summary-file", f"file://{target}"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(target.read_text()) == json.loads(printed) == SUMMARY
    assert [p.name for p in target.parent.iterdir()] == ["summary.json"]  # no temp file left
    assert runs == [{"smoke_test": False, "promote": False, "model_store": None}]


def test_summary_file_to_an_fsspec_uri_and_a_plain_path(study_file, runs, tmp_path) -> None:
    import fsspec

    uri = f"memory://augur-test-{uuid.uuid4().hex}/summary.json"
    assert main(["--config", str(study_file), "--summary-file", uri]) == 0
    with fsspec.open(uri, "r") as fh:
        assert json.loads(fh.read()) == SUMMARY
    plain = tmp_path / "plain" / "summary.json"
    assert main(["--config", str(study_file), "--summary-file", str(plain)]) == 0
    assert json.loads(plain.read_text()) == SUMMARY


def test_model_store_option_and_environment(study_file, runs, tmp_path, monkeypatch) -> None:
    shared = str(tmp_path / "shared")
    assert main(["--config", str(study_file), "--promote", "--model-store", shared]) == 0
    assert runs[-1]["model_store"] == shared and runs[-1]["promote"] is True
    monkeypatch.setenv("AUGUR_MODEL_STORE", shared)
    assert main(["--config", str(study_file), "--promote"]) == 0
    assert runs[-1]["model_store"] == shared
    assert main(["--config", str(study_file)]) == 0  # without --promote: nothing to push
    assert runs[-1]["model_store"] is None and runs[-1]["promote"] is False


def test_unusable_uris_fail_before_the_study_runs(study_file, runs, capsys) -> None:
    try:
        import s3fs  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("s3fs is installed here")
    args = ["--config", str(study_file), "--promote", "--model-store", "s3://bucket/models"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "s3://bucket/models" in err and "pip install s3fs" in err
    assert main(["--config", str(study_file), "--summary-file", "nope://x/summary.json"]) == 2
    assert "--summary-file" in capsys.readouterr().err and runs == []


def _fake_run(monkeypatch, tmp_path: Path, promote_fn) -> None:
    """run_and_report with the study run and its results stubbed, promotion replaced."""
    import augur.tuning._api as api
    import augur.tuning._results as results
    import augur.tuning._runner as runner

    run = SimpleNamespace(result_grid=None, results_dir=tmp_path, seconds=1.0, resumed=False)
    monkeypatch.setattr(runner, "run_study", lambda study: run)
    monkeypatch.setattr(results, "write_results", lambda *a, **k: dict(SUMMARY))
    monkeypatch.setattr(api, "promote", promote_fn)


def test_the_promoted_version_is_pushed_to_the_model_store(
    tmp_path, bars_root, monkeypatch
) -> None:
    from augur.models import Ensemble, list_models, pull_versions, save_ensemble
    from augur.tuning import parse_study, run_and_report
    from tests.unit.models._ensemble_fixtures import small_params, synthetic_xy

    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "trainer"))
    X, y, r = synthetic_xy(n=200)
    ensemble = Ensemble(small_params()).fit(
        X, y, r, [f"f{i}" for i in range(X.shape[1])], feature_spec_hash="h", purge=2
    )

    def promote(study, best_json):
        return {"tag": save_ensemble(ensemble, "tuned"), "lineage": {"trial_id": "t1"}}

    _fake_run(monkeypatch, tmp_path, promote)
    study = parse_study(make_study(bars_root, tmp_path))
    shared = f"file://{tmp_path / 'shared'}"
    summary = run_and_report(study, promote=True, model_store=shared)
    tag = summary["promoted"]["tag"]
    assert summary["promoted"]["model_store"] == shared
    assert (tmp_path / "shared" / "tuned" / f"{tag.split(':')[1]}.bentomodel").is_file()
    assert pull_versions([tag], shared, store_dir=tmp_path / "pod") == [tag]
    assert [m.tag for m in list_models(store_dir=tmp_path / "pod")] == [tag]

    # without a model store nothing is pushed and the summary does not name one
    summary = run_and_report(study, promote=True)
    assert "model_store" not in summary["promoted"]
    assert [p.name for p in (tmp_path / "shared" / "tuned").iterdir()] == [
        f"{tag.split(':')[1]}.bentomodel"
    ]
