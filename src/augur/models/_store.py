"""Model-store I/O: fitted ensembles as versioned entries of the BentoML model store.

One entry = one ``name:version`` directory holding ``ensemble.pkl`` (the pickled
:class:`~augur.models.Ensemble`) plus metadata BentoML keeps in ``model.yaml``: the
decision thresholds the version decides with (``decision_config``), the FeatureSpec hash,
feature names, data range, hyper-parameters, out-of-sample metrics, training time and
label horizon/dead zone. :func:`save_version` and :func:`load_version` write and read
the whole :class:`~augur.models.ModelVersion`; :func:`save_ensemble` and
:func:`load_ensemble` are the same for callers that need only the ensemble. BentoML writes the entry in a temporary
directory and moves it into the store only when complete, so a crash never leaves a
half-written version behind.

Where the store lives: ``store_dir`` when given, else ``$BENTOML_HOME`` (what
``bentoml serve`` reads), else ``Settings.models_dir`` (``$AUGUR_HOME/bentoml``).
BentoML is imported inside the functions (core code imports no BentoML at module level).
Every read and write goes through BentoML's public ``bentoml.models`` functions; the one
private piece is :func:`_model_store` (see there why).
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from augur.decision import DecisionConfig
from augur.models._ensemble import Ensemble
from augur.models._reference import reference_sample, save_reference
from augur.models._version import ModelVersion

_ARTIFACT = "ensemble.pkl"
_KIND = "augur-ensemble"

#: The BentoML release whose private ``ModelStore`` :func:`_model_store` was checked
#: against; a unit test fails when the installed BentoML differs, so an upgrade re-checks
#: whether a public way to name a store by path exists yet.
BENTOML_CHECKED = "1.4.39"


class FeatureSpecMismatchError(RuntimeError):
    """The stored model was trained on a different FeatureSpec than the running code's."""


class ModelNotFoundError(LookupError):
    """No model with the requested tag in the store."""


@dataclass(frozen=True)
class ModelRecord:
    """One stored version as ``augur models list`` shows it."""

    tag: str
    created: datetime
    metadata: dict[str, Any]

    @property
    def name(self) -> str:
        return self.tag.split(":", 1)[0]

    @property
    def version(self) -> str:
        return self.tag.split(":", 1)[1]


def store_path(store_dir: str | os.PathLike[str] | None = None) -> Path:
    """The BentoML home in use (see the module docstring for the order)."""
    if store_dir is not None:
        return Path(store_dir)
    env = os.environ.get("BENTOML_HOME")
    if env:
        return Path(env)
    from augur.config import get_settings

    return get_settings().models_dir


def _model_store(store_dir: str | os.PathLike[str] | None) -> Any:
    """The BentoML model store under ``store_path(store_dir)``, for the ``_model_store``
    argument of the ``bentoml.models`` functions.

    Private API, on purpose: BentoML's public functions use one store per process, fixed
    from ``$BENTOML_HOME`` the first time BentoML reads it, and BentoML 1.4 has no public
    way to open a store by path. Augur addresses several stores in one process (a pull
    from a shared store into a pod's, tests' temporary stores), so it builds BentoML's
    ``ModelStore`` here (checked against :data:`BENTOML_CHECKED`; ``_remote._import``
    builds one more, for its staging store).
    """
    from bentoml._internal.models.model import ModelStore

    models = store_path(store_dir) / "models"
    models.mkdir(parents=True, exist_ok=True)
    return ModelStore(str(models))


def save_ensemble(
    ensemble: Ensemble,
    name: str | None = None,
    *,
    labels: dict[str, str] | None = None,
    store_dir: str | os.PathLike[str] | None = None,
    reference: Any = None,
) -> str:
    """Save a fitted ensemble as a new version with the default decision thresholds;
    returns its tag (``name:version``). See :func:`save_version`."""
    return save_version(
        ensemble, None, name, labels=labels, store_dir=store_dir, reference=reference
    ).tag


def save_version(
    ensemble: Ensemble,
    decision: DecisionConfig | None = None,
    name: str | None = None,
    *,
    labels: dict[str, str] | None = None,
    store_dir: str | os.PathLike[str] | None = None,
    reference: Any = None,
) -> ModelVersion:
    """Save a fitted ensemble and the decision thresholds it serves with (default
    ``DecisionConfig()``) as a new version; returns the saved :class:`ModelVersion`.

    ``reference`` (the training feature matrix, a DataFrame in the model's feature
    order) is sampled (at most 5,000 rows) into ``drift_reference.parquet`` beside the
    model: the service's drift tests compare served features against it.

    ``name`` defaults to ``Settings.model_name``. The ensemble must carry its
    FeatureSpec hash (``fit(..., feature_spec_hash=...)``): a model without one could
    later meet features it was never trained on.
    """
    import bentoml

    if not ensemble.is_fitted:
        raise ValueError("cannot save an ensemble that is not fitted")
    if not ensemble.feature_spec_hash:
        raise ValueError(
            "the ensemble has no feature_spec_hash: pass fit(..., feature_spec_hash=spec.hash) "
            "so loading can check the features match"
        )
    if name is None:
        from augur.config import get_settings

        name = get_settings().model_name
    ctx = ensemble.context
    decision = decision if decision is not None else DecisionConfig()
    metadata: dict[str, Any] = {
        "kind": _KIND,
        "decision_config": decision.to_dict(),
        "feature_spec_hash": ensemble.feature_spec_hash,
        "feature_names": list(ensemble.feature_names),
        "data_range": {
            "start": str(ctx.get("data_start", "")),
            "end": str(ctx.get("data_end", "")),
        },
        "symbols": [str(s) for s in ctx.get("symbols", [])],
        "label_horizon": ctx.get("label_horizon"),
        "label_dead_zone": ctx.get("label_dead_zone"),
        "params": ensemble.params.to_dict(),
        "metrics": _plain(ensemble.metrics),
        "training_seconds": float(ensemble.training_seconds),
        "weights": ensemble.dynamic_weights.as_dict(),
        "volatility_ref": ensemble.volatility_ref,
    }
    metadata.update(
        {k: v for k, v in ctx.items() if k not in metadata and k not in ("data_start", "data_end")}
    )
    metadata = _plain(metadata)
    with (
        bentoml.models.create(
            name,
            labels={"kind": _KIND, **(labels or {})},
            metadata=metadata,
            _model_store=_model_store(store_dir),
        ) as model,
        open(model.path_of(_ARTIFACT), "wb") as fh,
    ):
        pickle.dump(ensemble, fh, protocol=pickle.HIGHEST_PROTOCOL)
        if reference is not None:
            sample = reference_sample(
                reference, seed=int(ensemble.params.seed), feature_names=ensemble.feature_names
            )
            save_reference(sample[list(ensemble.feature_names)], model.path)
    return ModelVersion(str(model.tag), ensemble, decision, metadata)


def _get(tag: str, store_dir: str | os.PathLike[str] | None) -> Any:
    """The stored ``bentoml.models.Model`` for ``tag``; :class:`ModelNotFoundError` if none."""
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        return bentoml.models.get(tag, _model_store=_model_store(store_dir))
    except NotFound as exc:
        raise ModelNotFoundError(
            f"no model {tag!r} in the model store at {store_path(store_dir)}: "
            "train one with `augur train` or list them with `augur models list`"
        ) from exc


def resolve_version(
    tag: str, *, store_dir: str | os.PathLike[str] | None = None
) -> tuple[str, Path]:
    """The concrete ``name:version`` of ``tag`` (``name:latest`` or a bare name resolved)
    and the version's directory; :class:`ModelNotFoundError` if the store has none."""
    model = _get(tag, store_dir)
    return str(model.tag), Path(model.path)


def current_feature_spec_hash() -> str:
    """The FeatureSpec hash of the running code (and settings)."""
    from augur.features import FeatureSpec

    return str(FeatureSpec.from_settings().hash)


def load_ensemble(
    tag: str | None = None,
    *,
    expected_hash: str | None = None,
    store_dir: str | os.PathLike[str] | None = None,
) -> Ensemble:
    """The ensemble of :func:`load_version` (its ``tag`` attribute holds the concrete
    ``name:version``)."""
    return load_version(tag, expected_hash=expected_hash, store_dir=store_dir).ensemble


def load_version(
    tag: str | None = None,
    *,
    expected_hash: str | None = None,
    store_dir: str | os.PathLike[str] | None = None,
) -> ModelVersion:
    """Load ``tag`` (default ``<model_name>:latest``) from the model store.

    Raises :class:`FeatureSpecMismatchError` — before unpickling anything — when the
    stored FeatureSpec hash differs from ``expected_hash`` (default: the running
    code's :func:`current_feature_spec_hash`), and ValueError when its stored decision
    thresholds are ones the running code refuses. A version saved before versions
    carried thresholds decides with the defaults.
    """
    if tag is None:
        from augur.config import get_settings

        tag = f"{get_settings().model_name}:latest"
    model = _get(tag, store_dir)
    meta = dict(model.info.metadata)
    if meta.get("kind") != _KIND:
        raise ModelNotFoundError(
            f"{model.tag} is not an Augur ensemble (kind={meta.get('kind')!r})"
        )
    want = expected_hash if expected_hash is not None else current_feature_spec_hash()
    stored = meta.get("feature_spec_hash")
    if stored != want:
        raise FeatureSpecMismatchError(
            f"model {model.tag} was trained on FeatureSpec {stored} but the running code's "
            f"FeatureSpec is {want}: the features would not mean what the model learnt. "
            "Retrain with `augur train` (or serve with the code/settings that trained it; "
            f"its features were {', '.join(meta.get('feature_names', [])[:8])}…)."
        )
    try:
        decision = DecisionConfig.from_dict(dict(meta.get("decision_config") or {}))
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"model {model.tag} stores decision thresholds the running code refuses: {exc}. "
            "Save the version again with thresholds of this code (`augur train --decision`)."
        ) from exc
    with open(model.path_of(_ARTIFACT), "rb") as fh:
        ensemble = pickle.load(fh)
    if not isinstance(ensemble, Ensemble):
        raise ModelNotFoundError(f"{model.tag} does not hold an Augur Ensemble")
    ensemble.tag = str(model.tag)
    return ModelVersion(str(model.tag), ensemble, decision, meta)


def list_models(
    name: str | None = None, *, store_dir: str | os.PathLike[str] | None = None
) -> list[ModelRecord]:
    """Stored Augur ensembles (all names, or one), newest first."""
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        models = bentoml.models.list(name, _model_store=_model_store(store_dir))
    except NotFound:
        return []
    records = [
        ModelRecord(str(m.tag), m.info.creation_time, dict(m.info.metadata))
        for m in models
        if m.info.metadata.get("kind") == _KIND
    ]
    return sorted(records, key=lambda r: r.created, reverse=True)


def _plain(value: Any) -> Any:
    """Metadata BentoML can write as YAML (numpy scalars → Python, NaN kept as float)."""
    # BentoML refuses None in metadata: an absent figure is left out of a mapping
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
