"""The operator's composition root: registers the handlers and configures kopf once."""

from __future__ import annotations

import logging
import random
from typing import Any

import kopf

from augur.cluster import FIELD_MANAGER, GROUP
from augur.config import get_settings
from operators import _kube
from operators.decisionservice import handlers as _decisionservice  # noqa: F401 - registers
from operators.tuningjob import handlers as _tuningjob  # noqa: F401 - registers


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Settings from AUGUR_OPERATOR_*; kopf's own bookkeeping in annotations under our
    group (our status schemas are strict); one API client for every handler."""
    augur = get_settings()
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.INFO
    settings.posting.reporting_component = FIELD_MANAGER
    # `kopf run --standalone/--peering/--priority` (or `augur operator run`'s) take precedence.
    if not settings.peering.standalone and not settings.peering.mandatory:
        if augur.operator_peering:
            settings.peering.name = augur.operator_peering
            settings.peering.mandatory = True
        else:
            settings.peering.standalone = True
    if not settings.peering.standalone and not settings.peering.priority:
        settings.peering.priority = augur.operator_priority or random.randint(1, 2**31 - 1)
    memo.kube = _kube.Kube(_kube.connect())
    if not settings.peering.standalone and settings.peering.clusterwide:
        memo.kube.apply_cluster_peering(settings.peering.name)
