"""Augur's Feast repository: bar features per symbol.

The schema is derived from the feature spec (``augur.features.FeatureSpec``), never
listed by hand; paths follow AUGUR_HOME. Applied by ``augur features apply`` (or
``feast apply`` from this directory with AUGUR_HOME set).
"""

from feast import Entity, FeatureService, FeatureView, FileSource, PushSource, ValueType

from augur.features import FeatureSpec
from augur.features.store import (
    FEATURE_SERVICE,
    FEATURE_TTL,
    FEATURE_VIEW,
    PUSH_SOURCE,
    SOURCE,
    definition_settings,
    feast_schema,
    offline_features_path,
)

settings = definition_settings()
spec = FeatureSpec.from_settings(settings)

symbol = Entity(
    name="symbol",
    join_keys=["symbol"],
    value_type=ValueType.STRING,
    description="A traded instrument, e.g. EURUSD or AAPL.",
)

bar_features_source = FileSource(
    name=SOURCE,
    path=str(offline_features_path(settings).resolve()),
    timestamp_field="timestamp",
    description="Offline features, one row per bar (written by `augur features build`).",
)

bar_features_push_source = PushSource(
    name=PUSH_SOURCE,
    batch_source=bar_features_source,
    description="Live feature rows pushed by `augur features push` as new bars arrive.",
)

bar_features_fv = FeatureView(
    name=FEATURE_VIEW,
    entities=[symbol],
    ttl=FEATURE_TTL,
    schema=feast_schema(spec),
    online=True,
    source=bar_features_push_source,
    description="Rolling features of a symbol's bars at the bar's timestamp (no look-ahead).",
    tags={"spec_hash": spec.hash},
)

decision_v1 = FeatureService(
    name=FEATURE_SERVICE,
    features=[bar_features_fv],
    description="Features the decision service's models consume (spec order).",
    tags={"spec_hash": spec.hash},
)
