"""The serving bench's request bodies: the realistic mix, and the plain request.

A real client trades several symbols from a few accounts: it sends its account's risk
state, its open position in the symbol and the current price, and routes by its own key
(the account id). The sample bars are history, so each request says when it is decided
(``as_of``: an hour after its symbol's last bar) and positions were opened hours before
that, as a live client's would be. The mix is a fixed, seeded pool of such bodies
(``DecideRequest`` in ``augur.serving._schemas``) the load generator cycles through; the
plain request (one symbol, nothing else) is the cheapest one the service answers.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

POOL_SIZE = 256
ACCOUNTS = 12
# Shares of the mix (drawn per body, independently).
WITH_ACCOUNT = 0.8
WITH_POSITION = 0.5
WITH_PRICE = 0.9


@dataclass(frozen=True)
class Quote:
    """A symbol's last bar in the bench's feature store: where prices are drawn around."""

    symbol: str
    close: float
    timestamp: datetime


def plain(symbol: str) -> bytes:
    """The cheapest request: a symbol, nothing else."""
    return json.dumps({"symbol": symbol}).encode()


def realistic_mix(quotes: list[Quote], seed: int = 7) -> list[bytes]:
    """``POOL_SIZE`` request bodies over every symbol of ``quotes``, from ``ACCOUNTS``
    accounts; most carry an account and/or a position, and a price."""
    rng = random.Random(seed)
    symbols = [q.symbol for q in quotes]
    accounts = [_account(rng, symbols) for _ in range(ACCOUNTS)]
    bodies: list[bytes] = []
    for i in range(POOL_SIZE):
        quote = quotes[i % len(quotes)]
        account_id, account = accounts[rng.randrange(ACCOUNTS)]
        body: dict[str, object] = {
            "symbol": quote.symbol,
            "as_of": _iso(quote.timestamp + timedelta(hours=1)),
            "routing_key": account_id,
        }
        if rng.random() < WITH_ACCOUNT:
            body["account"] = account
        if rng.random() < WITH_POSITION:
            body["position"] = _position(rng, quote)
        if rng.random() < WITH_PRICE:
            body["price"] = round(quote.close * (1 + rng.gauss(0, 0.002)), 6)
        bodies.append(json.dumps(body).encode())
    rng.shuffle(bodies)
    return bodies


def _account(rng: random.Random, symbols: list[str]) -> tuple[str, dict[str, object]]:
    equity = round(rng.uniform(5_000, 250_000), 2)
    held = rng.sample(symbols, k=min(len(symbols), rng.randint(1, 4)))
    return f"acct-{rng.randrange(16**6):06x}", {
        "equity": equity,
        "peak_equity": round(equity * rng.uniform(1.0, 1.12), 2),
        "consecutive_losses": rng.choice([0, 0, 0, 1, 1, 2, 3]),
        "open_exposure": {s: round(rng.uniform(-0.15, 0.15), 4) for s in held},
    }


def _position(rng: random.Random, quote: Quote) -> dict[str, object]:
    # Up to a little past the default holding limit (24 bars): some are exits on time.
    opened = quote.timestamp - timedelta(hours=rng.randint(0, 30))
    return {
        "side": rng.choice(["long", "short"]),
        "size": round(rng.uniform(0.01, 0.1), 4),
        "entry_price": round(quote.close * (1 + rng.gauss(0, 0.01)), 6),
        "opened_at": _iso(opened),
    }


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")
