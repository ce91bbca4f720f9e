"""Augur on Kubernetes: the custom resources, their CRDs, and what the operators render.

Pure code: every function here turns a resource (and what the cluster reports) into
manifests or a status, so the kopf handlers in ``operators/`` only read, apply and record.
"""

from augur.cluster._constants import API_VERSION, FIELD_MANAGER, GROUP, VERSION
from augur.cluster._crd import crd_manifests, render_crd, write_crds
from augur.cluster._decisionservice_resource import (
    DecisionService,
    DecisionServiceSpec,
    DecisionServiceStatus,
)
from augur.cluster._tuningjob_resource import TuningJob, TuningJobSpec, TuningJobStatus

__all__ = [
    "API_VERSION",
    "FIELD_MANAGER",
    "GROUP",
    "VERSION",
    "DecisionService",
    "DecisionServiceSpec",
    "DecisionServiceStatus",
    "TuningJob",
    "TuningJobSpec",
    "TuningJobStatus",
    "crd_manifests",
    "render_crd",
    "write_crds",
]
