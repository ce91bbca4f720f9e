"""Feast wiring without a server: schema from the spec, config paths, definitions, yaml."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
import yaml

from augur.config import Settings
from augur.data import write_bars
from augur.features import FeatureSpec, compute_features
from augur.features import store as fs
from tests.conftest import synthetic_bars

REPO = Path(__file__).resolve().parents[3] / "feature_repo"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", feature_repo=REPO, windows=[5, 10])


def test_schema_is_derived_from_the_spec() -> None:
    spec = FeatureSpec(windows=(5, 20))
    fields = fs.feast_schema(spec)
    assert [f.name for f in fields] == spec.names
    assert all(
        f.description == d.description and f.description
        for f, d in zip(fields, spec.features, strict=True)
    )
    assert fs.feature_refs(spec)[0] == f"bar_features:{spec.names[0]}"


def test_repo_config_follows_augur_home(settings: Settings) -> None:
    cfg = fs.repo_config(settings)
    home = settings.home.resolve()
    assert cfg.project == "augur" and cfg.provider == "local"
    assert Path(cfg.registry.path) == home / "feast" / "sqlite" / "registry.db"
    assert Path(cfg.online_store.path) == home / "feast" / "sqlite" / "online.db"
    red = fs.repo_config(settings, "redis", "127.0.0.1:7777,db=3")
    assert red.online_store.connection_string == "127.0.0.1:7777,db=3"
    assert Path(red.registry.path) == home / "feast" / "redis" / "registry.db"
    with pytest.raises(ValueError, match="sqlite' or 'redis"):
        fs.repo_config(settings, "mongo")  # type: ignore[arg-type]
    assert fs.offline_features_path(settings) == settings.home / "features" / "bar_features.parquet"


def test_definitions_follow_the_style_and_the_settings(settings: Settings) -> None:
    from feast import Entity, FeatureService, FeatureView, FileSource, PushSource

    objects = {type(o).__name__: o for o in fs.load_definitions(settings)}
    assert set(objects) == {"Entity", "FileSource", "PushSource", "FeatureView", "FeatureService"}
    entity: Entity = objects["Entity"]
    assert entity.name == "symbol" and entity.join_key == "symbol"
    source: FileSource = objects["FileSource"]
    assert source.path == str(fs.offline_features_path(settings).resolve())
    push: PushSource = objects["PushSource"]
    assert push.name == fs.PUSH_SOURCE and push.batch_source.name == fs.SOURCE
    fv: FeatureView = objects["FeatureView"]
    spec = FeatureSpec(windows=(5, 10))
    assert fv.online and fv.ttl == fs.FEATURE_TTL == timedelta(days=30)
    assert [f.name for f in fv.features] == spec.names  # windows from these settings
    assert all(f.description for f in fv.features)
    assert fv.tags["spec_hash"] == spec.hash
    service: FeatureService = objects["FeatureService"]
    assert service.name == "decision_v1"


def test_missing_repo_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(fs.FeatureStoreError, match="AUGUR_FEATURE_REPO"):
        fs.load_definitions(Settings(home=tmp_path, feature_repo=tmp_path / "nope"))


def test_build_writes_offline_features_atomically(settings: Settings) -> None:
    with pytest.raises(fs.FeatureStoreError, match="augur data sample"):
        fs.build_offline_features(settings)
    bars = synthetic_bars(80)
    write_bars(bars, settings.bars_dir)
    frame = fs.build_offline_features(settings)
    on_disk = pd.read_parquet(fs.offline_features_path(settings))
    spec = FeatureSpec(windows=(5, 10))
    pd.testing.assert_frame_equal(on_disk, compute_features(bars, spec))
    pd.testing.assert_frame_equal(frame, on_disk)
    assert [p.name for p in fs.offline_features_path(settings).parent.iterdir()] == [
        "bar_features.parquet"
    ]


def test_apply_before_build_says_what_to_run(settings: Settings) -> None:
    with pytest.raises(fs.FeatureStoreError, match="augur features build"):
        fs.apply(settings)
    with pytest.raises(fs.FeatureStoreError, match="augur features build"):
        fs.materialize(settings)


def test_reader_before_apply_says_what_to_run(settings: Settings) -> None:
    with pytest.raises(fs.FeatureStoreError, match="augur features apply"):
        fs.OnlineFeatures(settings)


@pytest.mark.parametrize("path", ["feature_store.yaml", "cluster/feature_store.yaml"])
def test_yaml_configs_match_the_code(
    path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from feast.repo_config import load_repo_config

    monkeypatch.setenv("AUGUR_HOME", str(tmp_path))
    monkeypatch.setenv("AUGUR_REDIS_URL", "10.0.0.5:6379,db=2")
    text = (REPO / path).read_text()
    assert all(
        line.split("#")[0].strip() == "" or "#" in line
        for line in text.splitlines()
        if ":" in line and not line.startswith(" ")
    ), "every top-level key is commented"
    cfg = load_repo_config(REPO, REPO / path)
    kind = "redis" if "cluster" in path else "sqlite"
    expected = fs.repo_config(
        Settings(home=tmp_path, feature_repo=REPO, redis_url=os.environ["AUGUR_REDIS_URL"]), kind
    )  # type: ignore[arg-type]
    assert cfg.project == expected.project
    assert Path(cfg.registry.path) == Path(expected.registry.path)
    assert cfg.online_store.type == expected.online_store.type
    if kind == "redis":
        assert cfg.online_store.connection_string == "10.0.0.5:6379,db=2"
    else:
        assert Path(cfg.online_store.path) == Path(expected.online_store.path)
    assert yaml.safe_load(text)["entity_key_serialization_version"] == 3
