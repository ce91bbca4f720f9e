"""Shared model store: versions pushed from one BentoML store and pulled into another
(local paths, ``file://`` and fsspec's in-memory filesystem as the object store)."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

from augur.models import (
    ModelNotFoundError,
    ModelStoreError,
    list_models,
    load_ensemble,
    pull_versions,
    push_versions,
    save_ensemble,
)
from augur.models._store import _get


@pytest.fixture
def source(fitted, tmp_path) -> tuple[Path, str]:
    """A BentoML home holding one saved version: (home, tag)."""
    home = tmp_path / "source"
    return home, save_ensemble(fitted, "ens", store_dir=home, labels={"study": "s1"})


def _uri(kind: str, tmp_path: Path) -> str:
    if kind == "path":
        return str(tmp_path / "shared")
    if kind == "file":
        return f"file://{tmp_path / 'shared'}"
    return f"memory://augur-test-{uuid.uuid4().hex}/models"  # an fsspec object store


@pytest.mark.parametrize("kind", ["path", "file", "memory"])
def test_push_then_pull_gives_the_same_model(kind, source, xy, tmp_path) -> None:
    home, tag = source
    uri = _uri(kind, tmp_path)
    assert push_versions(["ens:latest"], uri, store_dir=home) == [tag]
    name, version = tag.split(":")
    if kind != "memory":
        folder = tmp_path / "shared" / name
        assert sorted(p.name for p in folder.iterdir()) == [f"{version}.bentomodel"]

    target = tmp_path / "pod"
    assert list_models(store_dir=target) == []
    assert pull_versions([tag], uri, store_dir=target) == [tag]
    a, b = _get(tag, home), _get(tag, target)
    assert b.info.metadata == a.info.metadata
    assert b.info.labels == a.info.labels == {"kind": "augur-ensemble", "study": "s1"}
    assert b.info.creation_time == a.info.creation_time
    assert b.info.module == a.info.module
    assert (
        Path(b.path_of("ensemble.pkl")).read_bytes() == Path(a.path_of("ensemble.pkl")).read_bytes()
    )
    assert [r.tag for r in list_models(store_dir=target)] == [tag]

    X = xy[0][:50]
    want = load_ensemble(tag, expected_hash="testhash", store_dir=home).predict(X)
    got = load_ensemble("ens:latest", expected_hash="testhash", store_dir=target)
    assert got.tag == tag
    pred = got.predict(X)
    np.testing.assert_array_equal(pred.proba, want.proba)
    np.testing.assert_array_equal(pred.quantiles, want.quantiles)
    np.testing.assert_array_equal(pred.weights, want.weights)
    # the staging store used on the way in is gone
    assert sorted(p.name for p in target.iterdir()) == ["models"]


def test_a_second_pull_is_a_no_op(source, tmp_path) -> None:
    home, tag = source
    uri = str(tmp_path / "shared")
    push_versions([tag], uri, store_dir=home)
    target = tmp_path / "pod"
    assert pull_versions([tag], uri, store_dir=target) == [tag]
    # the second pull must not even look at the model store: its file is gone now
    (tmp_path / "shared" / tag.replace(":", "/")).with_suffix(".bentomodel").unlink()
    assert pull_versions([tag], uri, store_dir=target) == []
    assert [r.tag for r in list_models(store_dir=target)] == [tag]


def test_pull_of_a_missing_version_names_tag_uri_and_the_fix(source, tmp_path) -> None:
    home, tag = source
    uri = f"file://{tmp_path / 'shared'}"
    push_versions([tag], uri, store_dir=home)
    with pytest.raises(ModelStoreError) as info:
        pull_versions([tag, "ens:v0nope"], uri, store_dir=tmp_path / "pod")
    message = str(info.value)
    assert "ens:v0nope" in message and uri in message
    assert f"augur models push ens:v0nope --to {uri}" in message
    assert isinstance(info.value, LookupError)


@pytest.mark.parametrize("tag", ["ens:latest", "ens"])
def test_pull_needs_an_exact_version(tag, source, tmp_path) -> None:
    home, _ = source
    uri = str(tmp_path / "shared")
    push_versions(["ens"], uri, store_dir=home)
    with pytest.raises(ModelStoreError, match=r"exact version \(name:version\)"):
        pull_versions([tag], uri, store_dir=tmp_path / "pod")
    assert list_models(store_dir=tmp_path / "pod") == []


def test_pull_keeps_latest_on_the_newest_version(fitted, tmp_path) -> None:
    home = tmp_path / "source"
    old = save_ensemble(fitted, "ens", store_dir=home)
    new = save_ensemble(fitted, "ens", store_dir=home)
    uri = str(tmp_path / "shared")
    assert push_versions([old, new], uri, store_dir=home) == [old, new]
    pod = tmp_path / "pod"
    pull_versions([new], uri, store_dir=pod)
    pull_versions([old], uri, store_dir=pod)  # an older version does not take latest
    assert _get("ens:latest", pod).tag == _get(new, pod).tag
    other = tmp_path / "other"
    pull_versions([old], uri, store_dir=other)
    assert str(_get("ens:latest", other).tag) == old
    pull_versions([new], uri, store_dir=other)
    assert str(_get("ens:latest", other).tag) == new


def test_a_failed_pull_leaves_nothing_behind(source, tmp_path, monkeypatch) -> None:
    import bentoml

    home, tag = source
    uri = str(tmp_path / "shared")
    push_versions([tag], uri, store_dir=home)
    real = bentoml.models.import_model

    def killed(*args, **kwargs):
        real(*args, **kwargs)  # imported into the staging store, then the pull dies
        raise KeyboardInterrupt

    monkeypatch.setattr(bentoml.models, "import_model", killed)
    pod = tmp_path / "pod"
    with pytest.raises(KeyboardInterrupt):
        pull_versions([tag], uri, store_dir=pod)
    assert list_models(store_dir=pod) == []
    assert sorted(p.name for p in pod.iterdir()) == ["models"]
    monkeypatch.setattr(bentoml.models, "import_model", real)
    assert pull_versions([tag], uri, store_dir=pod) == [tag]


def test_a_failed_local_push_leaves_no_file(source, tmp_path, monkeypatch) -> None:
    import bentoml

    home, tag = source
    real = bentoml.models.export_model
    written: list[str] = []

    def dies_after_writing(tag, path, *args, **kwargs):
        written.append(path)
        real(tag, path, *args, **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(bentoml.models, "export_model", dies_after_writing)
    with pytest.raises(OSError, match="disk full"):
        push_versions([tag], str(tmp_path / "shared"), store_dir=home)
    folder = tmp_path / "shared" / "ens"
    [partial] = written
    assert Path(partial).parent == folder and Path(partial).name.startswith(".")
    assert list(folder.iterdir()) == []  # neither the final name nor the partial file


def test_push_of_an_unknown_version(source, tmp_path) -> None:
    home, tag = source
    with pytest.raises(ModelNotFoundError, match="ens:v0nope"):
        push_versions([tag, "ens:v0nope"], str(tmp_path / "shared"), store_dir=home)
    assert not (tmp_path / "shared").exists()  # every tag is checked before any upload


def test_a_file_holding_another_version_is_refused(source, tmp_path) -> None:
    home, tag = source
    shared = tmp_path / "shared"
    push_versions([tag], str(shared), store_dir=home)
    version = tag.split(":")[1]
    (shared / "ens" / f"{version}.bentomodel").rename(shared / "ens" / "other.bentomodel")
    with pytest.raises(ModelStoreError, match=rf"holds ens:{version}, not ens:other"):
        pull_versions(["ens:other"], str(shared), store_dir=tmp_path / "pod")
    assert list_models(store_dir=tmp_path / "pod") == []


def test_a_protocol_without_its_package_says_what_to_install(source, tmp_path) -> None:
    try:
        import s3fs  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("s3fs is installed here")
    home, tag = source
    uri = "s3://bucket/augur/models"
    for call in (
        lambda: push_versions([tag], uri, store_dir=home),
        lambda: pull_versions([tag], uri, store_dir=tmp_path / "pod"),
    ):
        with pytest.raises(ModelStoreError, match=r"s3://bucket/augur/models.*pip install s3fs"):
            call()
    with pytest.raises(ModelStoreError, match="nope://x"):
        push_versions([tag], "nope://x", store_dir=home)
    with pytest.raises(ModelStoreError, match="not a model tag"):
        pull_versions(["not a tag"], str(tmp_path), store_dir=tmp_path / "pod")
