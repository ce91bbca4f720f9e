"""What can go wrong on the request path, as the HTTP layer maps it to a status."""

from __future__ import annotations


class UnknownSymbolError(LookupError):
    """The online store has no features for the symbol (HTTP 404)."""

    def __init__(self, symbol: str) -> None:
        super().__init__(symbol)
        self.symbol = symbol

    def __str__(self) -> str:
        return (
            f"unknown symbol {self.symbol!r}: the online store has no features for it "
            "(materialize or push its features first)"
        )


class StoreUnavailableError(RuntimeError):
    """The online feature store cannot be reached (HTTP 503 with Retry-After)."""


class AccountStoreUnavailableError(StoreUnavailableError):
    """The account store cannot be reached, or the service keeps none (HTTP 503)."""


class WeightsUnavailableError(StoreUnavailableError):
    """The shared member weights (in the prediction log's database) could not be updated
    by an outcome (HTTP 503: post the outcome again)."""


class PredictionLogUnavailableError(StoreUnavailableError):
    """The prediction log's database cannot be reached, so an outcome cannot be joined
    now (HTTP 503: post it again)."""


class PredictionLogOffError(LookupError):
    """An outcome was posted to a service that keeps no prediction log (HTTP 404)."""

    def __init__(self, request_id: str) -> None:
        super().__init__(request_id)
        self.request_id = request_id

    def __str__(self) -> str:
        return (
            f"request_id {self.request_id!r}: the prediction log is off in this service, "
            "so outcomes cannot be joined (set AUGUR_PREDICTION_LOG_URL)"
        )


__all__ = [
    "AccountStoreUnavailableError",
    "PredictionLogOffError",
    "PredictionLogUnavailableError",
    "StoreUnavailableError",
    "UnknownSymbolError",
    "WeightsUnavailableError",
]
