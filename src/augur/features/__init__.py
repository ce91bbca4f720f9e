"""Features: the spec (single source of truth) and the vectorised engine.

- :class:`FeatureSpec` / :class:`FeatureDef` / :func:`default_spec`: the feature list,
  its column order and its stable hash.
- :func:`compute_features`: every feature for every bar (offline, numba kernels).
- :func:`latest_features`: each symbol's latest row from a short history (online).
- :func:`make_labels`, :func:`training_frame`: labels and the offline training set.
- :data:`REGIMES`: the codes of the ``regime`` feature (trending/ranging x calm/volatile).

numba is imported on the first computation, not here.
"""

from augur.features._engine import compute_features, latest_features
from augur.features.labels import make_labels, training_frame
from augur.features.spec import ENGINE_VERSION, REGIMES, FeatureDef, FeatureSpec, default_spec
from augur.features.store import OnlineFeatures, OnlineStoreUnavailable, UnknownSymbolError

__all__ = [
    "ENGINE_VERSION",
    "REGIMES",
    "FeatureDef",
    "FeatureSpec",
    "OnlineFeatures",
    "OnlineStoreUnavailable",
    "UnknownSymbolError",
    "compute_features",
    "default_spec",
    "latest_features",
    "make_labels",
    "training_frame",
]
