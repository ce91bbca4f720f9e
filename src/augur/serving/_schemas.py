"""Request and response bodies of the decision service (pydantic, JSON).

The same models validate requests (``model_validate_json`` straight from the body
bytes — the fastest path pydantic offers), serialise responses and generate the
OpenAPI document, so the docs cannot drift from what the service accepts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

# Symbols as the sample data and the feature store spell them (EURUSD, AAPL, ^GSPC, BTC-USD).
SYMBOL_PATTERN = r"^[A-Za-z0-9._:^=/-]{1,64}$"
# Account ids as clients may spell them (no braces: the Redis keys use a hash tag).
ACCOUNT_ID_PATTERN = r"^[A-Za-z0-9._:@-]{1,128}$"


def _account_id(description: str) -> Any:
    return Field(default=None, pattern=ACCOUNT_ID_PATTERN, description=description)


_DECIDE_ACCOUNT_ID = (
    "An account the service keeps: its equity, peak, loss streak and open positions "
    "(from earlier entries and their outcomes) drive the drawdown limit, the cool-down and "
    "the exposure caps; an entry opens a position in it. Excludes 'account'."
)


class _Strict(BaseModel):
    # Unknown fields are refused: a misspelt field must not be silently ignored.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class PositionIn(_Strict):
    """The caller's open position in the symbol (omit, or side 'flat', when none)."""

    side: Literal["long", "short", "flat"] = Field(
        default="flat", description="'long', 'short' or 'flat'."
    )
    size: float = Field(default=0.0, ge=0.0, description="Position size, fraction of equity.")
    entry_price: float = Field(default=0.0, ge=0.0, description="Average entry price.")
    opened_at: AwareDatetime | None = Field(
        default=None, description="When the position was opened (ISO 8601 with a zone)."
    )


class AccountIn(_Strict):
    """Account-level risk state."""

    equity: float = Field(default=1.0, gt=0.0, description="Equity now (any unit).")
    peak_equity: float = Field(default=1.0, gt=0.0, description="Highest equity so far.")
    consecutive_losses: int = Field(default=0, ge=0, description="Losing trades in a row.")
    bars_since_last_loss: int | None = Field(
        default=None, ge=0, description="Bars since the last losing trade (for the cool-down)."
    )
    open_exposure: dict[str, float] = Field(
        default_factory=dict,
        description="Signed exposure per symbol as a fraction of equity (portfolio limits).",
    )


class _AccountOrId(_Strict):
    account: AccountIn | None = None
    account_id: str | None = _account_id(_DECIDE_ACCOUNT_ID)

    @model_validator(mode="after")
    def _one_account(self) -> _AccountOrId:
        # The service's state and the caller's cannot both be the account: refuse rather
        # than guess which one the caller meant.
        if self.account is not None and self.account_id is not None:
            raise ValueError(
                "send either account_id (the service keeps that account's state) or "
                "account (your own state), not both; drop 'account'"
            )
        return self


class DecideRequest(_AccountOrId):
    """Ask for a decision for one symbol now (or as of a time)."""

    symbol: str = Field(pattern=SYMBOL_PATTERN, description="Symbol in the feature store.")
    as_of: AwareDatetime | None = Field(
        default=None,
        description="Decision time for the staleness check (default: now). Features older "
        "than the configured limit relative to it give no_action/stale_features.",
    )
    price: float | None = Field(
        default=None, gt=0.0, description="Current price (enables price-based exits)."
    )
    routing_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="Key for the canary split (default: the symbol); a caller sending the "
        "same key always meets the same model version.",
    )
    position: PositionIn | None = None


class DecideBatchRequest(_AccountOrId):
    """Decisions for many symbols in one call (one account, per-symbol positions)."""

    symbols: list[str] = Field(min_length=1, description="Symbols, each as in /decide.")
    as_of: AwareDatetime | None = None
    routing_key: str | None = Field(default=None, min_length=1, max_length=256)
    positions: dict[str, PositionIn] = Field(
        default_factory=dict, description="Open positions by symbol."
    )
    prices: dict[str, float] = Field(default_factory=dict, description="Current prices by symbol.")


class OutcomeRequest(_Strict):
    """The realised result of an earlier decision."""

    # The characters of every id the service hands out (its own, a client's X-Request-ID,
    # a batch's "<id>-<n>"): anything else can match no prediction, and some (NUL) the
    # log's database refuses outright.
    request_id: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="From the /decide answer.",
    )
    realized_return: float = Field(description="Realised return of the decision (0.01 = 1%).")
    account_id: str | None = _account_id(
        "The account the decision was made for: its open position from that decision "
        "closes and its equity moves by size x realized_return (a loss extends the "
        "losing streak)."
    )


class ReasonOut(BaseModel):
    code: str = Field(description="Machine-readable reason code, e.g. stale_features.")
    text: str = Field(description="Short human-readable explanation.")


class DecisionOut(BaseModel):
    """The decision contract plus the time of the features it was made on."""

    symbol: str
    action: Literal["no_action", "risk_rejected", "exit_position", "enter_long", "enter_short"]
    size: float = Field(description="Fraction of equity to trade (0 when no trade).")
    direction: int = Field(description="+1 up, -1 down, 0 flat.")
    probability: float
    confidence: float
    agreement: float
    reasons: list[ReasonOut]
    model_version: str = Field(description="Model tag that scored the request.")
    request_id: str = Field(description="Echo of X-Request-ID; quote it in /outcome.")
    feature_timestamp: datetime | None = Field(description="Event time of the features used.")
    rule_set: str | None = Field(
        default=None,
        description="The decision-rule set (name@version) applied after the risk controls; "
        "null when the service applies none.",
    )


class SymbolError(BaseModel):
    symbol: str
    error: str
    detail: str


class DecideBatchResponse(BaseModel):
    decisions: list[DecisionOut]
    errors: list[SymbolError] = Field(
        default_factory=list, description="Symbols that could not be decided (e.g. unknown)."
    )
    request_id: str


class AccountOut(BaseModel):
    """An account the service keeps, as it stands."""

    account_id: str
    equity: float = Field(description="Equity now, 1.0 at the account's first decision.")
    peak_equity: float
    consecutive_losses: int
    open_exposure: dict[str, float] = Field(description="Signed open exposure per symbol.")


class OutcomeResponse(BaseModel):
    request_id: str
    recorded: bool
    position_closed: bool | None = Field(
        default=None,
        description="With account_id only: the outcome closed the account's position from this "
        "request (false: no open position under it, e.g. a no_action or a repeated outcome).",
    )
    account: AccountOut | None = Field(
        default=None, description="With account_id only: the account after the outcome."
    )


class VersionOut(BaseModel):
    name: str
    model_tag: str
    weight: float | None = None
    percent: float | None = None
    role: Literal["primary", "canary", "shadow"]
    loaded: bool
    decision_config: dict[str, Any] | None = Field(
        default=None,
        description="The decision thresholds the version decides with (augur.decision."
        "DecisionConfig: its own, else the service's, with the service's decision "
        "overrides applied); absent while it is not loaded.",
    )
    member_weights: dict[str, float] | None = Field(
        default=None,
        description="The ensemble's member weights the version scores with now (they sum "
        "to 1; outcomes move them, see augur.serving._weights); absent when not loaded.",
    )
    weights_frozen: bool | None = Field(
        default=None, description="Outcomes move the member weights no more (augur weights freeze)."
    )
    weight_updates: int | None = Field(
        default=None,
        description="Outcomes folded into the member weights (training's validation tail "
        "included).",
    )


class CacheStats(BaseModel):
    """Hits and misses of one of the answering worker's caches since it started."""

    enabled: bool
    hits: int = 0
    misses: int = 0


class ModelsResponse(BaseModel):
    routing_table: dict[str, Any] = Field(description="The routing table in force.")
    versions: list[VersionOut]
    rule_set: str | None = Field(
        default=None,
        description="The decision-rule set (name@version) every version's entries pass "
        "through (AUGUR_RULE_SET_FILE); null: none.",
    )
    source: str = Field(description="File the table was read from ('embedded' when none).")
    loaded_at: datetime
    worker: int | None = Field(
        default=None, description="The process id of the worker that answered."
    )
    caches: dict[str, CacheStats] = Field(
        default_factory=dict,
        description="The answering worker's caches: 'features' (online rows, kept until "
        "Redis announces a write), 'predictions' (ensemble outputs per version and "
        "exact feature vector) and 'decisions' (the answer to a request without a "
        "position, account or price, per version and symbol until the next bar).",
    )


class ErrorOut(BaseModel):
    """Every error the service returns: a code, a readable detail, the request id."""

    error: str = Field(description="Error code, e.g. validation_error, unknown_symbol.")
    detail: str = Field(description="What was wrong and what to do.")
    request_id: str = ""
    fields: list[dict[str, str]] | None = Field(
        default=None, description="For validation errors: the offending field and why."
    )


def describe_validation_error(exc: ValidationError) -> tuple[str, list[dict[str, str]]]:
    """A one-line summary naming the offending field(s), and one entry per error."""
    fields = []
    for err in exc.errors(include_url=False, include_context=False, include_input=False):
        loc = ".".join(str(p) for p in err.get("loc", ())) or "body"
        fields.append({"field": loc, "message": str(err.get("msg", "invalid"))})
    head = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:3])
    more = f" (+{len(fields) - 3} more)" if len(fields) > 3 else ""
    return f"invalid request body: {head}{more}", fields


__all__ = [
    "ACCOUNT_ID_PATTERN",
    "SYMBOL_PATTERN",
    "AccountIn",
    "AccountOut",
    "DecideBatchRequest",
    "DecideBatchResponse",
    "DecideRequest",
    "DecisionOut",
    "ErrorOut",
    "ModelsResponse",
    "OutcomeRequest",
    "OutcomeResponse",
    "PositionIn",
    "ReasonOut",
    "SymbolError",
    "VersionOut",
    "describe_validation_error",
]
