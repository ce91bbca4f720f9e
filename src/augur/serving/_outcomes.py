"""``POST /outcome``: a realised return joined to the request it answers in the prediction
log and, for a request of an account the service keeps, that account's position settled
(its equity, peak and losing streak moved).

Each logged prediction of the request (the serving version's, and the shadow's when it has
been written already) is counted per version on /metrics: a *call* is a prediction with a
direction, a *hit* when the realised return has that sign, its *signed return*
``direction x realised return`` (the definitions of :mod:`augur.monitoring.analysis`).

With shared member weights (:class:`~augur.serving._weights.SharedWeights`) the outcome
also moves the member weights of each version that predicted the request, once per
request (a retry does not move them again); when that update fails the answer is 503 and
a retry (the outcome is kept) completes it.
"""

from __future__ import annotations

import logging
from typing import Any

from augur.serving._errors import (
    AccountStoreUnavailableError,
    PredictionLogOffError,
    PredictionLogUnavailableError,
    WeightsUnavailableError,
)
from augur.serving._ports import AccountStore, Clock, Metrics, PredictionSink
from augur.serving._schemas import AccountOut, OutcomeRequest, OutcomeResponse

# Writes (outcomes) are audit-logged with the caller on a logger of their own.
audit = logging.getLogger("augur.audit")
log = logging.getLogger(__name__)


def logged_calls(prediction_log: Any, request_id: str) -> list[tuple[str, str, int]]:
    """(model version, role, direction) of each logged prediction of ``request_id``: from
    the sink's own ``logged_calls`` when it has one (the in-memory log), else read from the
    SQL log's ``predictions`` table; [] for a sink that can say neither."""
    own = getattr(prediction_log, "logged_calls", None)
    if own is not None:
        return list(own(request_id))
    engine = getattr(prediction_log, "engine", None)
    if engine is None:
        return []
    import sqlalchemy as sa

    from augur.monitoring.log._schema import predictions_table as t

    query = sa.select(t.c.model_version, t.c.role, t.c.direction).where(
        t.c.request_id == request_id
    )
    with engine.connect() as conn:
        return [(str(v), str(r), int(d)) for v, r, d in conn.execute(query)]


def outcome_known(prediction_log: Any, request_id: str) -> bool:
    """Whether an outcome of ``request_id`` is logged already (a retry, which the log
    replaces and the metrics must not count twice). False when it cannot say."""
    own = getattr(prediction_log, "outcome_known", None)
    if own is not None:
        return bool(own(request_id))
    engine = getattr(prediction_log, "engine", None)
    if engine is None:
        return False
    import sqlalchemy as sa

    from augur.monitoring.log._schema import outcomes_table as t

    try:
        with engine.connect() as conn:
            query = sa.select(t.c.request_id).where(t.c.request_id == request_id).limit(1)
            return conn.execute(query).first() is not None
    except Exception:  # counted as new: the outcome path goes on
        log.warning("outcome %s: could not check for an earlier one", request_id, exc_info=True)
        return False


def _count_calls(prediction_log: Any, metrics: Metrics, req: OutcomeRequest) -> None:
    """The per-version outcome metrics. The outcome is stored already, so a failed read
    here is logged and never fails the request; no row found counts nothing."""
    try:
        calls = logged_calls(prediction_log, req.request_id)
    except Exception:  # the log's database: the outcome itself is recorded
        log.warning("outcome %s: its predictions could not be read for the metrics",
                    req.request_id, exc_info=True)  # fmt: skip
        return
    for version, role, direction in calls:
        metrics.outcome_realised(version, role, direction, req.realized_return)


def record_outcome(
    req: OutcomeRequest,
    caller: str,
    prediction_log: PredictionSink | None,
    accounts: AccountStore | None,
    metrics: Metrics | None,
    clock: Clock,
    weights: Any = None,
) -> OutcomeResponse:
    """Join a realised return to a logged request. Raises
    :class:`~augur.monitoring.UnknownRequestIdError` when no prediction has its id."""
    from augur.monitoring import LogUnavailable, UnknownRequestIdError

    if prediction_log is None:
        raise PredictionLogOffError(req.request_id)
    retry = metrics is not None and outcome_known(prediction_log, req.request_id)
    try:
        matched = bool(prediction_log.log_outcome(req.request_id, req.realized_return, caller))
    except LogUnavailable as exc:  # a database outage: the caller posts it again
        raise PredictionLogUnavailableError(str(exc)) from None
    if metrics is not None:
        metrics.outcome_posted(matched)
    audit.info(
        "outcome request_id=%s realized_return=%g caller=%s matched=%s",
        req.request_id,
        req.realized_return,
        caller,
        matched,
    )
    if not matched:
        raise UnknownRequestIdError(req.request_id)
    if metrics is not None and not retry:
        _count_calls(prediction_log, metrics, req)
    if weights is not None:
        try:
            weights.apply_outcome(req.request_id, req.realized_return)
        except Exception as exc:  # kept: a retry folds it in (once)
            log.warning("outcome %s: the member weights were not updated", req.request_id,
                        exc_info=True)  # fmt: skip
            raise WeightsUnavailableError(
                f"the outcome is recorded but the member weights could not be updated "
                f"({type(exc).__name__}); post it again"
            ) from exc
    if req.account_id is None:
        return OutcomeResponse(request_id=req.request_id, recorded=True)
    if accounts is None:
        raise AccountStoreUnavailableError("this service keeps no accounts")
    after = accounts.settle(req.account_id, req.request_id, req.realized_return, clock())
    state = after if after is not None else accounts.get(req.account_id)
    return OutcomeResponse(
        request_id=req.request_id,
        recorded=True,
        position_closed=after is not None,
        account=AccountOut(
            account_id=req.account_id,
            equity=state.equity,
            peak_equity=state.peak_equity,
            consecutive_losses=state.consecutive_losses,
            open_exposure=state.open_exposure,
        ),
    )


__all__ = ["logged_calls", "outcome_known", "record_outcome"]
