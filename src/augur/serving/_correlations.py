"""Return correlations between symbols, so that correlated symbols share one exposure cap
(``DecisionConfig.correlation_threshold`` and ``max_correlated_exposure``).

The matrix is the Pearson correlation of the symbols' 1-bar log returns (``ret_1``) over
the last ``AUGUR_CORRELATION_WINDOW`` bar times of the offline feature table, the feature
pipeline's output (``augur features build``). A pair with fewer than
``AUGUR_CORRELATION_MIN_BARS`` common bars in that window has no entry, and the engine
counts it as uncorrelated. The service reads the table once, when a worker starts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

RETURN_FEATURE = "ret_1"


class CorrelationMatrix:
    """Correlations by symbol pair (either order), as ``RiskState.correlations`` reads them."""

    def __init__(self, pairs: Mapping[tuple[str, str], float] | None = None) -> None:
        self._pairs: dict[tuple[str, str], float] = {}
        for (a, b), corr in (pairs or {}).items():
            self._pairs[(a, b)] = self._pairs[(b, a)] = float(corr)

    def __len__(self) -> int:
        """Pairs of distinct symbols with a correlation."""
        return sum(1 for a, b in self._pairs if a < b)

    @classmethod
    def from_returns(cls, frame: pd.DataFrame, window: int, min_bars: int) -> CorrelationMatrix:
        """From rows of ``timestamp``, ``symbol`` and ``ret_1``: the last ``window`` bar
        times of the table, pairs with at least ``min_bars`` common bars."""
        import numpy as np

        returns = frame.pivot_table(
            index="timestamp", columns="symbol", values=RETURN_FEATURE, aggfunc="last"
        ).sort_index()
        corr = returns.tail(window).corr(min_periods=min_bars)
        symbols = list(corr.columns)
        values = corr.to_numpy()
        return cls(
            {
                (symbols[i], symbols[j]): values[i, j]
                for i in range(len(symbols))
                for j in range(i + 1, len(symbols))
                if np.isfinite(values[i, j])
            }
        )

    @classmethod
    def load(cls, path: Path, window: int, min_bars: int) -> CorrelationMatrix:
        """From the offline feature table at ``path``; empty (every pair uncorrelated) when
        there is none, as in a cluster pod that has no offline features."""
        if not path.exists():
            log.info("no offline features at %s: symbols count as uncorrelated", path)
            return cls()
        import pandas as pd

        frame = pd.read_parquet(path, columns=["timestamp", "symbol", RETURN_FEATURE])
        matrix = cls.from_returns(frame, window, min_bars)
        log.info("return correlations of %d symbol pairs from %s", len(matrix), path)
        return matrix

    def among(self, symbol: str, others: Iterable[str]) -> dict[tuple[str, str], float]:
        """The correlations of ``symbol`` with each of ``others`` that has one."""
        return {
            (symbol, o): self._pairs[(symbol, o)]
            for o in others
            if o != symbol and (symbol, o) in self._pairs
        }


__all__ = ["RETURN_FEATURE", "CorrelationMatrix"]
