"""Features: the spec (single source of truth) and the vectorised engine.

Public names: :class:`FeatureSpec`, :class:`FeatureDef`, :func:`default_spec`,
:data:`ENGINE_VERSION`.
"""

from augur.features.spec import ENGINE_VERSION, FeatureDef, FeatureSpec, default_spec

__all__ = [
    "ENGINE_VERSION",
    "FeatureDef",
    "FeatureSpec",
    "default_spec",
]
