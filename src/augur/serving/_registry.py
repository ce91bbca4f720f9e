"""The model versions a service holds, by tag, each with the decision settings it
decides with and its volatility reference; and the loader that reads them from the model
store."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from augur.models import ModelVersion

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """A loaded ensemble, the columns of the feature row it reads, its decision config
    and its volatility reference (0: none, so sizes are not scaled by volatility)."""

    tag: str
    model: Any  # predict_one(x, volatility=, trend_strength=, explain=) and predict(X, ...)
    columns: np.ndarray  # indices into the reader's row, in the model's feature order
    config: Any  # DecisionConfig
    volatility_ref: float = 0.0


class ModelRegistry:
    """Loaded models by tag; a routing table's versions are loaded before it is used.

    The loader returns a :class:`~augur.models.ModelVersion`, which decides with its own
    ``decision``, or a bare scoring model (tests, benchmarks), which decides with
    ``default_config``. ``overrides`` (DecisionConfig field → value, the service's
    ``AUGUR_DECISION_OVERRIDES``) are applied on top when it is loaded.
    """

    def __init__(
        self,
        loader: Callable[[str], Any],
        feature_names: Sequence[str],
        default_config: Any,
        overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self._loader = loader
        self._names = list(feature_names)
        self._default_config = default_config
        self._overrides = dict(overrides or {})
        self._models: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()

    def __getitem__(self, tag: str) -> LoadedModel:
        return self._models[tag]

    def __contains__(self, tag: str) -> bool:
        return tag in self._models

    @property
    def tags(self) -> list[str]:
        return list(self._models)

    def ensure(self, tags: Sequence[str]) -> None:
        """Load every tag not loaded yet; raises ValueError naming a tag that cannot be."""
        with self._lock:
            for tag in tags:
                if tag not in self._models:
                    self._models[tag] = self._load(tag)
                    log.info("model %s loaded (%d features)", tag, len(self._models[tag].columns))

    def _load(self, tag: str) -> LoadedModel:
        try:
            loaded = self._loader(tag)
        except Exception as exc:
            raise ValueError(f"model {tag!r} cannot be loaded: {exc}") from exc
        if isinstance(loaded, ModelVersion):
            model, config = loaded.ensemble, loaded.decision
        else:
            model, config = loaded, self._default_config
        names = list(getattr(model, "feature_names", ()) or self._names)
        missing = [n for n in names if n not in self._names]
        if missing:
            raise ValueError(
                f"model {tag!r} needs features the online store lacks: {', '.join(missing[:5])}"
            )
        columns = np.array([self._names.index(n) for n in names], dtype=np.intp)
        if self._overrides:
            try:
                config = replace(config, **self._overrides)
            except (TypeError, ValueError) as exc:
                raise ValueError(
                    f"model {tag!r}: the decision overrides {self._overrides} do not fit "
                    f"its decision config: {exc}"
                ) from exc
        volatility_ref = float(getattr(model, "volatility_ref", None) or 0.0)
        return LoadedModel(tag, model, columns, config, volatility_ref)

    def thresholds(self, tag: str) -> dict[str, Any] | None:
        """A loaded version's decision config as a dict (None when it is not loaded)."""
        if tag not in self._models:
            return None
        to_dict = getattr(self._models[tag].config, "to_dict", None)
        return to_dict() if to_dict is not None else None


def resolve_tag(tag: str) -> str:
    """``name:latest`` (or a bare name) → the concrete tag in the model store."""
    from augur.models import resolve_version

    return resolve_version(tag)[0]


def model_store_loader(drift: Any = None) -> Callable[[str], ModelVersion]:
    """Load a version from the model store, registering its drift reference with
    ``drift`` (a :class:`~augur.monitoring.DriftMonitor`) when it has one."""

    def load(tag: str) -> ModelVersion:
        from augur.models import load_reference, load_version, resolve_version

        version = load_version(tag)
        if drift is not None:
            reference = load_reference(resolve_version(tag)[1])
            if reference is not None:
                drift.set_reference(tag, reference)
        return version

    return load


__all__ = ["LoadedModel", "ModelRegistry", "model_store_loader", "resolve_tag"]
