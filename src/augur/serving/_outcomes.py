"""``POST /outcome``: a realised return joined to the request it answers in the prediction
log and, for a request of an account the service keeps, that account's position settled
(its equity, peak and losing streak moved)."""

from __future__ import annotations

import logging

from augur.serving._errors import AccountStoreUnavailableError, PredictionLogOffError
from augur.serving._ports import AccountStore, Clock, Metrics, PredictionSink
from augur.serving._schemas import AccountOut, OutcomeRequest, OutcomeResponse

# Writes (outcomes) are audit-logged with the caller on a logger of their own.
audit = logging.getLogger("augur.audit")


def record_outcome(
    req: OutcomeRequest,
    caller: str,
    prediction_log: PredictionSink | None,
    accounts: AccountStore | None,
    metrics: Metrics | None,
    clock: Clock,
) -> OutcomeResponse:
    """Join a realised return to a logged request. Raises
    :class:`~augur.monitoring.UnknownRequestIdError` when no prediction has its id."""
    from augur.monitoring import UnknownRequestIdError

    if prediction_log is None:
        raise PredictionLogOffError(req.request_id)
    matched = bool(prediction_log.log_outcome(req.request_id, req.realized_return, caller))
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


__all__ = ["record_outcome"]
