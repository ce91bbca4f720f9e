"""The shared model store: versions exported to a volume or an object store, so that
serving pods (which start with an empty local BentoML store) can fetch them.

Layout: ``<uri>/<name>/<version>.bentomodel``, one file per version, as
``bentoml.models.export_model`` writes it (an xz tar of the version's directory). ``uri``
is a local path (a mounted volume; ``file:///models`` too) or an fsspec URI such as
``s3://bucket/augur/models`` — a protocol whose package is missing (s3fs for ``s3://``)
fails with a :class:`ModelStoreError` naming the URI and the package.

- :func:`push_versions` exports from the local store; on a local path each file is
  written under a temporary name and renamed, so a reader never sees half a file.
- :func:`pull_versions` imports the named versions into the local store, skipping those
  already there (an init container may run twice). A version is imported into a staging
  store beside the local one and renamed into it whole, so a pull killed half way never
  leaves a half-copied version that a second pull would take as present.

BentoML and fsspec are imported inside the functions.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from augur.models._store import ModelNotFoundError, _get, _model_store, store_path

__all__ = ["ModelStoreError", "pull_versions", "push_versions"]

_EXT = "bentomodel"


class ModelStoreError(LookupError):
    """A version is missing from the shared model store, or the store cannot be used."""


def _local_root(uri: str) -> Path | None:
    """The local directory of ``uri`` (a plain path or ``file://``), else ``None``."""
    if "://" not in uri:
        return Path(uri)
    scheme, _, rest = uri.partition("://")
    if scheme.lower() in ("file", "local"):
        return Path(rest)
    return None


def _check_uri(uri: str, what: str = "the model store") -> str:
    """``uri`` without trailing slashes; raises :class:`ModelStoreError` when fsspec has
    no filesystem for its protocol (unknown, or its package is not installed)."""
    uri = uri.strip()
    if not uri:
        raise ModelStoreError(f"{what}: the URI is empty: give a path or a URI such as s3://…")
    if _local_root(uri) is not None:
        return uri.rstrip("/") or "/"
    import fsspec
    from fsspec.registry import known_implementations

    protocol = uri.partition("://")[0]
    try:
        fsspec.get_filesystem_class(protocol)
    except ImportError as exc:
        impl = known_implementations.get(protocol, {}).get("class", "")
        package = impl.split(".", 1)[0] or f"the fsspec package for {protocol}://"
        raise ModelStoreError(
            f"cannot use {what} {uri}: {exc} (`pip install {package}` where this command runs)"
        ) from exc
    except ValueError as exc:
        raise ModelStoreError(f"cannot use {what} {uri}: {exc}") from exc
    return uri.rstrip("/")


def _parse(raw: str) -> Any:
    """``raw`` as a BentoML ``Tag``; :class:`ModelStoreError` when it is not one."""
    from bentoml import Tag
    from bentoml.exceptions import BentoMLException

    try:
        return Tag.from_taglike(raw)
    except (ValueError, BentoMLException) as exc:
        raise ModelStoreError(f"{raw!r} is not a model tag (name:version): {exc}") from exc


def _location(root: str, tag: Any) -> str:
    return f"{root}/{tag.name}/{tag.version}.{_EXT}"


def push_versions(
    tags: list[str], uri: str, *, store_dir: str | os.PathLike[str] | None = None
) -> list[str]:
    """Export each version (``name:version``, or ``name:latest`` / ``name`` resolved in the
    local store) to ``<uri>/<name>/<version>.bentomodel``; returns the concrete tags.

    An existing file for the same version is replaced (a version's content never changes).
    Raises :class:`~augur.models.ModelNotFoundError` for a tag not in the local store and
    :class:`ModelStoreError` for a URI that cannot be used.
    """
    import bentoml

    root = _check_uri(uri)
    local = _local_root(root)
    store = _model_store(store_dir)
    # every tag resolves before anything is written
    models = [_get(str(_parse(tag)), store_dir) for tag in tags]
    pushed: list[str] = []
    for model in models:
        tag = model.tag
        if local is None:
            bentoml.models.export_model(str(tag), _location(root, tag), _model_store=store)
        else:
            folder = local / tag.name
            folder.mkdir(parents=True, exist_ok=True)
            final = folder / f"{tag.version}.{_EXT}"
            # ends with .bentomodel, else BentoML appends the extension
            tmp = folder / f".{tag.version}.{uuid.uuid4().hex[:12]}.partial.{_EXT}"
            try:
                bentoml.models.export_model(str(tag), str(tmp), _model_store=store)
                with open(tmp, "rb") as fh:
                    os.fsync(fh.fileno())
                os.replace(tmp, final)
            finally:
                tmp.unlink(missing_ok=True)
        pushed.append(str(tag))
    return pushed


def pull_versions(
    tags: list[str], uri: str, *, store_dir: str | os.PathLike[str] | None = None
) -> list[str]:
    """Import each version (exact ``name:version`` tags) from ``<uri>`` into the local
    store; versions already there are skipped. Returns the tags actually imported (so
    ``[]`` when every one was present).

    Raises :class:`ModelStoreError` for a tag without an exact version (``name:latest``:
    a pod must name the versions it serves), a version missing from the model store, or a
    URI that cannot be used.
    """
    wanted = []
    for raw in tags:
        tag = _parse(raw)
        if tag.version in (None, "latest"):
            raise ModelStoreError(
                f"{raw!r}: pull needs an exact version (name:version), not latest — a pod "
                "must name the versions it serves; see `augur models list` where they were "
                "trained"
            )
        wanted.append(tag)
    root = _check_uri(uri)
    pulled: list[str] = []
    for tag in wanted:
        try:
            _get(str(tag), store_dir)
            continue  # already in the local store
        except ModelNotFoundError:
            pass
        _import(tag, root, uri, store_dir)
        pulled.append(str(tag))
    return pulled


def _exists(location: str, local: Path | None) -> bool:
    if local is not None:
        return Path(location).is_file()
    import fsspec

    fs, path = fsspec.core.url_to_fs(location)
    return bool(fs.exists(path))


def _import(tag: Any, root: str, uri: str, store_dir: str | os.PathLike[str] | None) -> None:
    """Import one version via a staging store, then rename it into the local store."""
    import bentoml
    from bentoml._internal.models.model import ModelStore

    local = _local_root(root)
    location = str(local / tag.name / f"{tag.version}.{_EXT}") if local else _location(root, tag)
    if not _exists(location, local):
        raise ModelStoreError(
            f"model version {tag} is not in the model store {uri} (no {location}): push it "
            f"with `augur models push {tag} --to {uri}`"
        )
    home = store_path(store_dir)
    models = home / "models"
    models.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".augur-pull-", dir=home))
    try:
        model = bentoml.models.import_model(location, _model_store=ModelStore(str(staging)))
        if str(model.tag) != str(tag):
            raise ModelStoreError(
                f"{location} in the model store {uri} holds {model.tag}, not {tag}"
            )
        target = models / tag.name / tag.version
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(staging / tag.name / tag.version, target)
        except OSError:
            if not target.exists():
                raise
            return  # another pull put it there first
        _point_latest(tag, store_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _point_latest(tag: Any, store_dir: str | os.PathLike[str] | None) -> None:
    """``name:latest`` follows the newest version, as BentoML's own store keeps it."""
    from bentoml.exceptions import NotFound

    store = _model_store(store_dir)
    latest = store_path(store_dir) / "models" / tag.name / "latest"
    try:
        newer = latest.exists() and store.get(tag.name).creation_time > store.get(tag).creation_time
    except NotFound:
        newer = False
    if not newer:
        tmp = latest.with_name(f".latest.{uuid.uuid4().hex[:12]}")
        tmp.write_text(str(tag.version))
        os.replace(tmp, latest)
