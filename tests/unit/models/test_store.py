"""Model store: versioned save/load round trip, FeatureSpec guard, listing."""

from __future__ import annotations

import numpy as np
import pytest

from augur.models import (
    Ensemble,
    FeatureSpecMismatchError,
    ModelNotFoundError,
    list_models,
    load_ensemble,
    save_ensemble,
)
from augur.models._store import store_path


def test_save_load_round_trip(fitted, xy, tmp_path) -> None:
    tag = save_ensemble(fitted, "test-ens", store_dir=tmp_path)
    assert tag.startswith("test-ens:")
    assert (tmp_path / "models" / "test-ens").is_dir()
    loaded = load_ensemble("test-ens:latest", expected_hash="testhash", store_dir=tmp_path)
    assert loaded.tag == tag
    X = xy[0][:40]
    a, b = fitted.predict(X), loaded.predict(X)
    np.testing.assert_array_equal(a.proba, b.proba)
    np.testing.assert_array_equal(a.quantiles, b.quantiles)
    np.testing.assert_array_equal(a.weights, b.weights)
    assert loaded.predict_one(X[0]).contributions == fitted.predict_one(X[0]).contributions
    assert loaded.dynamic_weights.n_updates == fitted.dynamic_weights.n_updates
    [rec] = list_models("test-ens", store_dir=tmp_path)
    meta = rec.metadata
    assert rec.tag == tag and rec.name == "test-ens" and rec.version == tag.split(":")[1]
    assert meta["feature_spec_hash"] == "testhash"
    assert meta["feature_names"] == list(fitted.feature_names)
    assert meta["label_horizon"] == 2 and meta["symbols"] == ["AAA"]
    assert meta["params"]["rf_n_estimators"] == fitted.params.rf_n_estimators
    assert meta["metrics"]["ensemble"]["accuracy"] == pytest.approx(
        fitted.metrics["ensemble"]["accuracy"]
    )
    assert meta["training_seconds"] > 0


def test_versions_are_listed_newest_first(fitted, tmp_path) -> None:
    first = save_ensemble(fitted, "ens", store_dir=tmp_path)
    second = save_ensemble(fitted, "ens", store_dir=tmp_path)
    assert [r.tag for r in list_models(store_dir=tmp_path)] == [second, first]
    assert load_ensemble("ens", expected_hash="testhash", store_dir=tmp_path).tag == second
    assert list_models("nothing-here", store_dir=tmp_path) == []


def test_feature_spec_mismatch_fails_clearly(fitted, tmp_path) -> None:
    tag = save_ensemble(fitted, "ens", store_dir=tmp_path)
    with pytest.raises(
        FeatureSpecMismatchError,
        match=r"trained on FeatureSpec testhash.*running code's FeatureSpec is other.*augur train",
    ):
        load_ensemble(tag, expected_hash="other", store_dir=tmp_path)


def test_default_hash_is_the_running_codes(fitted, tmp_path) -> None:
    from augur.features import FeatureSpec

    tag = save_ensemble(fitted, "ens", store_dir=tmp_path)
    with pytest.raises(FeatureSpecMismatchError, match=FeatureSpec.from_settings().hash):
        load_ensemble(tag, store_dir=tmp_path)


def test_missing_and_unsaveable(fitted, tmp_path) -> None:
    with pytest.raises(ModelNotFoundError, match="augur train"):
        load_ensemble("absent:latest", expected_hash="x", store_dir=tmp_path)
    with pytest.raises(ValueError, match="not fitted"):
        save_ensemble(Ensemble(), "x", store_dir=tmp_path)
    import copy

    unguarded = copy.copy(fitted)
    unguarded.feature_spec_hash = ""
    with pytest.raises(ValueError, match="feature_spec_hash"):
        save_ensemble(unguarded, "x", store_dir=tmp_path)


def test_store_location_follows_bentoml_home(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "bh"))
    assert store_path() == tmp_path / "bh"
    monkeypatch.delenv("BENTOML_HOME")
    from augur.config import get_settings

    assert store_path() == get_settings().models_dir


def test_drift_reference_is_saved_beside_the_model(fitted, xy, tmp_path) -> None:
    import pandas as pd

    from augur.models._store import _get
    from augur.monitoring import load_reference

    X = pd.DataFrame(xy[0], columns=list(fitted.feature_names))
    tag = save_ensemble(fitted, "ens", store_dir=tmp_path, reference=X)
    reference = load_reference(_get(tag, tmp_path).path)
    assert reference is not None
    assert list(reference.columns) == list(fitted.feature_names)
    assert 0 < len(reference) <= min(len(X), 5_000)
    # every sampled row is a real training row
    assert reference.merge(X, how="inner").shape[0] == len(reference)
    # without a reference nothing is written and the service skips drift for that version
    bare = save_ensemble(fitted, "ens", store_dir=tmp_path)
    assert load_reference(_get(bare, tmp_path).path) is None


def test_a_model_trained_without_holdout_can_be_saved(tmp_path) -> None:
    from augur.models import EnsembleParams
    from augur.models._train import train_on_bars
    from tests.conftest import synthetic_bars

    params = EnsembleParams(
        rf_n_estimators=10, xgb_n_estimators=10, quantile_n_estimators=10, svm_max_samples=200
    )
    result = train_on_bars(synthetic_bars(400), params=params, holdout_fraction=0.0)
    tag = save_ensemble(result.ensemble, "noholdout", store_dir=tmp_path)
    [rec] = list_models("noholdout", store_dir=tmp_path)
    assert rec.tag == tag and "holdout_start" not in rec.metadata


def test_the_private_bentoml_store_api_is_the_one_checked() -> None:
    """``_model_store`` is the one private BentoML use (no public way to open a store by
    path). On a BentoML upgrade this fails: check whether a public way exists now, and
    that ``ModelStore(path)`` and the ``_model_store`` argument still work, then bump
    ``BENTOML_CHECKED``."""
    import inspect
    from importlib.metadata import version

    import bentoml
    from bentoml._internal.models.model import ModelStore

    from augur.models._store import BENTOML_CHECKED

    assert version("bentoml") == BENTOML_CHECKED, (
        f"BentoML {version('bentoml')} is installed; augur.models._store._model_store was "
        f"checked against {BENTOML_CHECKED}: re-check it (see this test's docstring)"
    )
    assert callable(ModelStore)
    for fn in (bentoml.models.create, bentoml.models.get, bentoml.models.list):
        assert "_model_store" in inspect.signature(fn).parameters, fn.__name__


# --------------------------------------------------------------- versions and thresholds


def test_a_version_round_trips_with_its_decision_thresholds(fitted, xy, tmp_path) -> None:
    from augur.decision import DecisionConfig
    from augur.models import ModelVersion, load_version, save_version

    tuned = DecisionConfig(
        confidence_threshold=0.6, kelly_fraction=0.5, cooldown_losses=2, exit_units="return"
    )
    saved = save_version(fitted, tuned, "ens", store_dir=tmp_path)
    assert isinstance(saved, ModelVersion) and saved.tag.startswith("ens:")
    loaded = load_version(saved.tag, expected_hash="testhash", store_dir=tmp_path)
    assert loaded.tag == saved.tag and loaded.decision == tuned
    assert loaded.feature_spec_hash == "testhash"
    assert loaded.volatility_ref == fitted.volatility_ref == 1.0
    assert loaded.lineage["symbols"] == ["AAA"]
    assert loaded.lineage["decision_config"] == tuned.to_dict()
    X = xy[0][:20]
    np.testing.assert_array_equal(loaded.ensemble.predict(X).proba, fitted.predict(X).proba)
    # the ensemble alone, as before: its version decides with the defaults
    tag = save_ensemble(fitted, "ens", store_dir=tmp_path)
    assert load_version(tag, expected_hash="testhash", store_dir=tmp_path).decision == (
        DecisionConfig()
    )


def _edit_metadata(tmp_path, tag: str, edit) -> None:
    """Rewrite a stored version's metadata, as a version saved by other code would hold."""
    import yaml

    name, version = tag.split(":")
    path = tmp_path / "models" / name / version / "model.yaml"
    info = yaml.safe_load(path.read_text())
    edit(info["metadata"])
    path.write_text(yaml.safe_dump(info))


def test_a_version_saved_before_versions_carried_thresholds_loads_with_the_defaults(
    fitted, tmp_path
) -> None:
    from augur.decision import DecisionConfig
    from augur.models import load_version, save_version

    tag = save_version(fitted, DecisionConfig(confidence_threshold=0.6), store_dir=tmp_path).tag
    _edit_metadata(tmp_path, tag, lambda meta: meta.pop("decision_config"))
    assert load_version(tag, expected_hash="testhash", store_dir=tmp_path).decision == (
        DecisionConfig()
    )


def test_stored_thresholds_the_code_refuses_fail_the_load_naming_the_version(
    fitted, tmp_path
) -> None:
    from augur.models import load_version, save_version

    tag = save_version(fitted, store_dir=tmp_path).tag
    _edit_metadata(tmp_path, tag, lambda meta: meta["decision_config"].update(gate=0.5))
    with pytest.raises(ValueError, match=rf"{tag} stores decision thresholds.*'gate'"):
        load_version(tag, expected_hash="testhash", store_dir=tmp_path)
