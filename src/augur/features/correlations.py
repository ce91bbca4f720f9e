"""Return correlations between symbols, computed by the feature pipeline and kept in the
online store next to the features, so that correlated symbols share one exposure cap
(``DecisionConfig.correlation_threshold`` and ``max_correlated_exposure``).

The matrix is the Pearson correlation of the symbols' 1-bar log returns (``ret_1``) over
the last ``AUGUR_CORRELATION_WINDOW`` bar times; a pair with fewer than
``AUGUR_CORRELATION_MIN_BARS`` common bars there has no entry, and the engine counts it
as uncorrelated.

- ``augur features materialize`` (full or incremental) computes it from the offline
  feature table and keeps, with it, each symbol's last ``window`` returns;
- ``augur features push`` adds the pushed bar's return to its symbol's and recomputes
  the matrix from the kept returns alone: no bars are read again, and the matrix is
  exactly what the offline table would give.

Two pushes at once write their own symbols' returns; the matrix of the later one may
miss the other's newest bar until the next push. Storage: :mod:`._correlation_store`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from augur.features._correlation_store import RedisCorrelationStore, SqliteCorrelationStore

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

RETURN_FEATURE = "ret_1"


class CorrelationStore(Protocol):
    """Where the matrix and the recent returns are kept, as text."""

    def read_matrix(self) -> str | None: ...

    def read_returns(self) -> dict[str, str]: ...

    def write(self, matrix: str, returns: Mapping[str, str], replace: bool = False) -> None: ...


class CorrelationMatrix:
    """Correlations by symbol pair (either order), as ``RiskState.correlations`` reads
    them; ``as_of`` is the last bar time of the returns it was computed from."""

    def __init__(
        self,
        pairs: Mapping[tuple[str, str], float] | None = None,
        *,
        as_of: datetime | None = None,
        window: int = 0,
        min_bars: int = 0,
    ) -> None:
        self._pairs: dict[tuple[str, str], float] = {}
        for (a, b), corr in (pairs or {}).items():
            self._pairs[(a, b)] = self._pairs[(b, a)] = float(corr)
        self.as_of = as_of
        self.window = window
        self.min_bars = min_bars

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
        recent = returns.tail(window)
        corr = recent.corr(min_periods=min_bars)
        symbols = list(corr.columns)
        values = corr.to_numpy()
        return cls(
            {
                (symbols[i], symbols[j]): values[i, j]
                for i in range(len(symbols))
                for j in range(i + 1, len(symbols))
                if np.isfinite(values[i, j])
            },
            as_of=recent.index[-1].to_pydatetime() if len(recent) else None,
            window=window,
            min_bars=min_bars,
        )

    @classmethod
    def load(cls, path: Path, window: int, min_bars: int) -> CorrelationMatrix:
        """From the offline feature table at ``path``; empty (every pair uncorrelated) when
        there is none."""
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

    def to_json(self) -> str:
        """``{"as_of", "window", "min_bars", "pairs": [[a, b, correlation], …]}``."""
        return json.dumps(
            {
                "as_of": self.as_of.isoformat() if self.as_of is not None else None,
                "window": self.window,
                "min_bars": self.min_bars,
                "pairs": [[a, b, c] for (a, b), c in sorted(self._pairs.items()) if a < b],
            }
        )

    @classmethod
    def from_json(cls, text: str) -> CorrelationMatrix:
        doc = json.loads(text)
        return cls(
            {(a, b): c for a, b, c in doc["pairs"]},
            as_of=datetime.fromisoformat(doc["as_of"]) if doc.get("as_of") else None,
            window=int(doc.get("window", 0)),
            min_bars=int(doc.get("min_bars", 0)),
        )


def _encode(part: pd.DataFrame) -> str:
    return json.dumps(
        {
            "timestamps": [t.isoformat() for t in part["timestamp"]],
            "returns": part[RETURN_FEATURE].astype(float).tolist(),
        }
    )


def _decode(symbol: str, text: str) -> pd.DataFrame:
    import pandas as pd

    doc = json.loads(text)
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime(doc["timestamps"], utc=True),
            "symbol": symbol,
            RETURN_FEATURE: pd.Series(doc["returns"], dtype="float64"),
        }
    )


def _recent(frame: pd.DataFrame, window: int) -> dict[str, str]:
    """Each symbol's last ``window`` known returns, encoded: together they hold the last
    ``window`` bar times of the whole table."""
    known = frame.dropna(subset=[RETURN_FEATURE]).sort_values("timestamp", kind="stable")
    known = known.drop_duplicates(["symbol", "timestamp"], keep="last")
    return {
        str(symbol): _encode(part.tail(window))
        for symbol, part in known.groupby("symbol", sort=True)
    }


def keep_correlations(
    store: CorrelationStore, frame: pd.DataFrame, window: int, min_bars: int
) -> CorrelationMatrix:
    """Compute the matrix from feature rows (``timestamp``, ``symbol``, ``ret_1``) and
    replace what ``store`` holds with it and the symbols' recent returns."""
    matrix = CorrelationMatrix.from_returns(frame, window, min_bars)
    store.write(matrix.to_json(), _recent(frame, window), replace=True)
    return matrix


def add_returns(
    store: CorrelationStore, rows: pd.DataFrame, window: int, min_bars: int
) -> CorrelationMatrix:
    """Add new feature rows' returns (a pushed bar) to their symbols' kept returns (a
    row at a time already kept replaces it) and recompute the matrix from them."""
    import pandas as pd

    kept = {s: _decode(s, text) for s, text in store.read_returns().items()}
    new = rows[["timestamp", "symbol", RETURN_FEATURE]]
    changed: dict[str, str] = {}
    for symbol, part in new.groupby("symbol", sort=True):
        old = kept.get(str(symbol))
        merged = part if old is None else pd.concat([old, part], ignore_index=True)
        for name, text in _recent(merged, window).items():  # none: its first bar
            changed[name] = text
            kept[name] = _decode(name, text)
    frame = pd.concat(kept.values(), ignore_index=True) if kept else new
    matrix = CorrelationMatrix.from_returns(frame, window, min_bars)
    store.write(matrix.to_json(), changed)
    return matrix


def read_correlations(store: CorrelationStore) -> CorrelationMatrix | None:
    """The matrix ``store`` holds; None when there is none yet."""
    text = store.read_matrix()
    return None if text is None else CorrelationMatrix.from_json(text)


__all__ = [
    "RETURN_FEATURE",
    "CorrelationMatrix",
    "CorrelationStore",
    "RedisCorrelationStore",
    "SqliteCorrelationStore",
    "add_returns",
    "keep_correlations",
    "read_correlations",
]
