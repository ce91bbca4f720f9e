"""The unit of deployment: a model version — the fitted ensemble, the decision thresholds
it was chosen with, its FeatureSpec hash and its lineage, saved and loaded as one thing.

What tuning or ``augur train --decision`` chose is what serving decides with: the
:class:`~augur.decision.DecisionConfig` travels in the version's metadata, and the
service applies only its explicit overrides (``AUGUR_DECISION_OVERRIDES``) on top.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from augur.decision import DecisionConfig
from augur.models._ensemble import Ensemble


@dataclass(frozen=True)
class ModelVersion:
    """One stored version: what ``save_version`` writes and ``load_version`` returns."""

    #: ``name:version`` in the model store
    tag: str
    ensemble: Ensemble
    #: the thresholds this version decides with (the defaults for a version saved
    #: before versions carried them)
    decision: DecisionConfig = field(default_factory=DecisionConfig)
    #: the metadata saved with it: data range, symbols, params, metrics, tuning lineage
    lineage: Mapping[str, Any] = field(default_factory=dict)

    @property
    def feature_spec_hash(self) -> str:
        return str(self.ensemble.feature_spec_hash)

    @property
    def volatility_ref(self) -> float | None:
        """The training range's median volatility: the decision engine scales sizes by
        ``volatility_ref / volatility``, as the backtest does."""
        return self.ensemble.volatility_ref


__all__ = ["ModelVersion"]
