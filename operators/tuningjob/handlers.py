"""TuningJob → study ConfigMap + KubeRay RayJob; status from the RayJob and the summary;
on success, the winner promoted to the target DecisionService.

Level-triggered like the DecisionService handlers: events on the TuningJob, events on its
RayJob and a periodic resync all run ``reconcile``. A bad study or a missing promotion
target is a permanent error: recorded in the status, nothing created, no retry loop.
"""

from __future__ import annotations

from typing import Any

import kopf
import yaml

from augur.cluster import GROUP, VERSION, DecisionService, TuningJob
from augur.cluster._constants import TUNING_JOB_LABEL
from augur.cluster._tuningjob import (
    PromotionError,
    promote,
    promoted_tag,
    promotion_record,
    render_children,
    summary_from_text,
    summary_uri,
    tuning_job_status,
)
from augur.config import get_settings
from operators._kube import Kube, event
from operators.decisionservice.handlers import PLURAL as DS_PLURAL
from operators.decisionservice.handlers import now

PLURAL = "tuningjobs"


def _study(job: TuningJob, namespace: str, kube: Kube) -> tuple[dict[str, Any] | None, str, str]:
    """(the study mapping as written, its name, '') once valid, else (None, '', the problem)."""
    from augur.tuning import StudyError, parse_study

    study = job.spec.study
    if study.inline is not None:
        raw: Any = study.inline
        where = "spec.study.inline"
    else:
        ref = study.config_map_ref
        assert ref is not None
        text = kube.config_map_value(namespace, ref.name, ref.key)
        where = f"ConfigMap {ref.name} key {ref.key}"
        if text is None:
            return None, "", f"spec.study.configMapRef: {where} not found"
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            return None, "", f"{where}: not valid YAML: {exc}"
    try:
        cfg = parse_study(raw, check_data=False)  # the bars live in the Ray pods
    except StudyError as exc:
        return None, "", f"{where}: {exc}"
    return raw, cfg.name, ""


def read_summary(uri: str) -> dict[str, Any] | None:
    """The entry point's summary at ``uri`` (fsspec), None while it is not written."""
    import fsspec

    try:
        with fsspec.open(uri, "r") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    return summary_from_text(text, uri)


def reconcile(body: dict[str, Any], kube: Kube, logger: kopf.Logger) -> None:
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    job = TuningJob.model_validate(body)
    problems: list[str] = []
    study, study_name, problem = _study(job, namespace, kube)
    if problem:
        problems.append(problem)
    target = None
    if job.spec.promote is not None:
        target = kube.get(
            f"{GROUP}/{VERSION}", "DecisionService", namespace, job.spec.promote.decision_service
        )
        if target is None:
            problems.append(
                f"spec.promote.decisionService: DecisionService "
                f"{job.spec.promote.decision_service!r} not found in {namespace}"
            )
    if problems:
        event(body, reason="InvalidSpec", message="; ".join(problems), warning=True)
        status = tuning_job_status(body, None, None, problems, now())
        kube.patch_status(PLURAL, namespace, name, status.model_dump(by_alias=True, mode="json"))
        return
    assert study is not None
    store = DecisionService.model_validate(target).spec.model_store if target else None
    for manifest in render_children(body, study, study_name, store):
        _, outcome = kube.apply(manifest)
        if outcome != "unchanged":
            event(
                body,
                reason=outcome.capitalize(),
                message=f"{outcome} {manifest['kind']} {manifest['metadata']['name']}",
            )
    ray_job = kube.get("ray.io/v1", "RayJob", namespace, name)
    summary = read_summary(summary_uri(job.spec.storage_uri, study_name))
    tag = ""
    status = tuning_job_status(body, ray_job, summary, [], now())
    if status.phase == "Succeeded" and job.spec.promote is not None and target is not None:
        tag = promoted_tag(summary)
        if tag and tag != (job.status.promoted_model_tag if job.status else ""):
            _promote(body, job, target, tag, kube, logger)
        status = tuning_job_status(body, ray_job, summary, [], now(), promoted_tag=tag)
    kube.patch_status(PLURAL, namespace, name, status.model_dump(by_alias=True, mode="json"))


def _promote(
    body: dict[str, Any],
    job: TuningJob,
    target: dict[str, Any],
    tag: str,
    kube: Kube,
    logger: kopf.Logger,
) -> None:
    """Add the winner to the DecisionService (optimistic concurrency: a concurrent edit
    fails the patch with 409, retried by kopf from a fresh read)."""
    meta = target["metadata"]
    try:
        spec = promote(target, tag, job)
    except PromotionError as exc:
        event(body, reason="PromotionFailed", message=str(exc), warning=True)
        raise kopf.PermanentError(str(exc)) from None
    if spec is not None:
        kube.patch_spec(DS_PLURAL, meta["namespace"], meta["name"], spec, meta["resourceVersion"])
    record = promotion_record(tag, job, now()).model_dump(by_alias=True, mode="json")
    kube.patch_status(DS_PLURAL, meta["namespace"], meta["name"], {"lastPromotion": record})
    assert job.spec.promote is not None
    message = (
        f"{tag} from TuningJob {job.metadata['name']} added as {job.spec.promote.as_} at "
        f"{job.spec.promote.percent}%"
    )
    event(body, reason="Promoted", message=message)
    event(target, reason="Promoted", message=message)
    logger.info("promoted: %s", message)


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
def on_change(body: kopf.Body, memo: Any, logger: kopf.Logger, **_: Any) -> None:
    reconcile(dict(body), memo.kube, logger)


@kopf.timer(
    GROUP,
    VERSION,
    PLURAL,
    interval=get_settings().operator_resync_seconds,
    initial_delay=get_settings().operator_resync_seconds,
)
def resync(body: kopf.Body, memo: Any, logger: kopf.Logger, **_: Any) -> None:
    """Periodic reconcile: the summary appears in storage without any event."""
    reconcile(dict(body), memo.kube, logger)


@kopf.on.event("ray.io", "v1", "rayjobs", labels={TUNING_JOB_LABEL: kopf.PRESENT})
def ray_job_changed(
    body: kopf.Body, namespace: str | None, memo: Any, logger: kopf.Logger,
    type: str, **_: Any,
) -> None:  # fmt: skip
    """KubeRay moved the RayJob (started, finished): follow it at once."""
    owner = body["metadata"]["labels"][TUNING_JOB_LABEL]
    parent = memo.kube.get(f"{GROUP}/{VERSION}", "TuningJob", namespace, owner)
    if parent is not None and type != "DELETED":
        reconcile(parent, memo.kube, logger)
