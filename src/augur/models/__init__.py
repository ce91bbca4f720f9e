"""The ensemble: RF, XGBoost, RBF-SVM and logistic regression with calibrated
probabilities, dynamic weights, agreement/confidence, forward-return quantiles and
tree-SHAP explanations; model versions and model-store I/O.

Public names: :class:`Ensemble` (``fit``, ``predict``, ``predict_one``,
``update_weights``, ``evaluate``), :class:`EnsembleParams` (hyper-parameters),
:class:`EnsembleOutput` (one row, ``to_signal``), :class:`EnsemblePrediction` (batch),
:class:`DynamicWeights`, :func:`confidence_of`, :func:`confidence_features` (the
volatility and trend features the confidence reads), :class:`ModelVersion` (the unit of
deployment: the ensemble, its ``DecisionConfig``, FeatureSpec hash and lineage) with
:func:`save_version` / :func:`load_version`, :func:`save_ensemble` /
:func:`load_ensemble` (the ensemble alone), :func:`list_models`, :func:`resolve_version`, :func:`store_path` (the BentoML home in
use), :class:`ModelRecord`,
:class:`FeatureSpecMismatchError`, :class:`ModelNotFoundError`, :data:`MEMBERS`;
:func:`push_versions` / :func:`pull_versions` (versions to and from a shared model store:
a path or an fsspec URI) and :class:`ModelStoreError`; the drift reference a version carries
(:func:`reference_sample`, :func:`save_reference`, :func:`load_reference`).

Nothing heavy happens at import: scikit-learn, XGBoost and BentoML load when used.
"""

from augur.models._confidence import (
    confidence_features,
    confidence_of,
    direction_of,
    margin_of,
)
from augur.models._ensemble import MEMBERS, Ensemble, EnsembleOutput, EnsemblePrediction
from augur.models._params import EnsembleParams
from augur.models._reference import (
    REFERENCE_FILENAME,
    load_reference,
    reference_sample,
    save_reference,
)
from augur.models._remote import ModelStoreError, pull_versions, push_versions
from augur.models._store import (
    FeatureSpecMismatchError,
    ModelNotFoundError,
    ModelRecord,
    list_models,
    load_ensemble,
    load_version,
    resolve_version,
    save_ensemble,
    save_version,
    store_path,
)
from augur.models._version import ModelVersion
from augur.models._weights import CLASSES, DynamicWeights

__all__ = [
    "CLASSES",
    "MEMBERS",
    "REFERENCE_FILENAME",
    "DynamicWeights",
    "Ensemble",
    "EnsembleOutput",
    "EnsembleParams",
    "EnsemblePrediction",
    "FeatureSpecMismatchError",
    "ModelNotFoundError",
    "ModelRecord",
    "ModelStoreError",
    "ModelVersion",
    "confidence_features",
    "confidence_of",
    "direction_of",
    "list_models",
    "load_ensemble",
    "load_reference",
    "load_version",
    "margin_of",
    "pull_versions",
    "push_versions",
    "reference_sample",
    "resolve_version",
    "save_ensemble",
    "save_reference",
    "save_version",
    "store_path",
]
