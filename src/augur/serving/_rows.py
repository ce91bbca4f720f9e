"""What every request on one feature row shares: whether the row is complete, and its
digest (the prediction log's fingerprint of the row and the prediction memo's key)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from augur.monitoring import features_digest


@dataclass(frozen=True, slots=True)
class RowFacts:
    """A feature row, whether every value in it is finite, and its digest."""

    x: np.ndarray
    complete: bool
    digest: str


class RowFactsMemo:
    """:class:`RowFacts` per symbol, worked out once per row.

    An online row is one read-only array until its symbol's next bar replaces it (the
    feature cache hands every request the same array), so the array's identity says
    whether the facts still hold; a row read afresh is checked afresh. With ``size`` 0
    they are worked out for every request.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._rows: dict[str, RowFacts] = {}

    def of(self, symbol: str, x: np.ndarray) -> RowFacts:
        known = self._rows.get(symbol)
        if known is not None and known.x is x:
            return known
        facts = RowFacts(x, bool(np.isfinite(x).all()), features_digest(x))
        if self.size:
            if len(self._rows) >= self.size:
                self._rows.clear()  # more symbols than the memo holds: start over
            self._rows[symbol] = facts
        return facts


__all__ = ["RowFacts", "RowFactsMemo"]
