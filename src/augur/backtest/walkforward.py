"""Walk-forward folds with purge and embargo (López de Prado, *AFML* ch. 7).

Every row is one observation with a label window ``[timestamp, label_time]`` (the label
is the forward return over that window). A fold is a contiguous block of *test*
timestamps; its training rows come from before it (``expanding``: everything since the
start; ``rolling``: the last ``train_bars`` distinct timestamps).

* **Purge** — a training row whose label window reaches into the test window
  (``label_time >= test_start``) is dropped: its label was formed from prices the test
  period also sees. The label window is taken per row from ``label_time``, so it is exact
  even across weekends and gaps.
* **Embargo** — ``embargo_bars`` distinct timestamps right *after* the test window (after
  its last label closes) are never used for training. In a pure walk-forward no training
  row comes after the test, so the embargo matters only with ``train_after_test=True``
  (purged k-fold style, used for inner validation); it is also applied as a *gap* before
  the test window (the ``gap`` of scikit-learn's ``TimeSeriesSplit``) so features built on
  long rolling windows do not straddle the boundary.

Rows may belong to several symbols (a pooled frame): folds are cut on the shared,
sorted set of distinct timestamps, so one test block is the same calendar period for all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

__all__ = ["Fold", "WalkForward"]


@dataclass(frozen=True)
class Fold:
    """One walk-forward split: positional row indices (into the frame given to ``split``)."""

    index: int
    train: np.ndarray
    test: np.ndarray
    test_start: pd.Timestamp
    test_end: pd.Timestamp

    def describe(self) -> dict[str, object]:
        """A one-line summary for reports."""
        return {
            "fold": self.index,
            "train_rows": len(self.train),
            "test_rows": len(self.test),
            "test_start": self.test_start,
            "test_end": self.test_end,
        }


@dataclass(frozen=True)
class WalkForward:
    """Walk-forward splitter with purge and embargo.

    ``n_folds`` test blocks of equal length (in distinct timestamps) cover the data after
    an initial ``min_train_fraction`` used only for training. ``window`` is ``expanding``
    or ``rolling`` (``train_bars`` distinct timestamps before the test, after purge/gap).
    """

    n_folds: int = 5
    window: Literal["expanding", "rolling"] = "expanding"
    min_train_fraction: float = 0.4
    train_bars: int | None = None
    embargo_bars: int = 0
    train_after_test: bool = False

    def __post_init__(self) -> None:
        if self.n_folds < 1:
            raise ValueError(f"n_folds must be >= 1, got {self.n_folds}")
        if not 0.0 < self.min_train_fraction < 1.0:
            raise ValueError(f"min_train_fraction must be in (0, 1), got {self.min_train_fraction}")
        if self.window not in ("expanding", "rolling"):
            raise ValueError(f"window must be 'expanding' or 'rolling', got {self.window!r}")
        if self.window == "rolling" and (self.train_bars is None or self.train_bars < 1):
            raise ValueError("a rolling window needs train_bars >= 1 (distinct timestamps)")
        if self.embargo_bars < 0:
            raise ValueError(f"embargo_bars must be >= 0, got {self.embargo_bars}")

    def split(
        self, timestamps: pd.Series | np.ndarray, label_times: pd.Series | np.ndarray
    ) -> list[Fold]:
        """Folds for rows with these timestamps and label end times (same length, any order).

        Raises ``ValueError`` naming the problem when a label ends before its timestamp,
        or when there are too few distinct timestamps for ``n_folds``.
        """
        ts = _as_ns(timestamps, "timestamp")
        lt = _as_ns(label_times, "label_time")
        if len(ts) != len(lt):
            raise ValueError(f"timestamp and label_time lengths differ ({len(ts)} vs {len(lt)})")
        bad = np.flatnonzero(lt < ts)
        if len(bad):
            raise ValueError(
                f"row {int(bad[0])}: label_time is before timestamp — labels must look forward"
            )
        grid = np.unique(ts)
        n_test_total = len(grid) - int(np.ceil(len(grid) * self.min_train_fraction))
        if n_test_total < self.n_folds or len(grid) - n_test_total < 1:
            raise ValueError(
                f"{len(grid)} distinct timestamps are too few for {self.n_folds} folds "
                f"after a {self.min_train_fraction:.0%} initial training period: "
                "use fewer folds or more data"
            )
        first_test = len(grid) - n_test_total
        edges = first_test + np.linspace(0, n_test_total, self.n_folds + 1).round().astype(int)
        pos = np.searchsorted(grid, ts)  # each row's position on the timestamp grid
        folds: list[Fold] = []
        for k in range(self.n_folds):
            a, b = int(edges[k]), int(edges[k + 1])  # test block = grid[a:b]
            test_mask = (pos >= a) & (pos < b)
            test_start, test_end = grid[a], grid[b - 1]
            # The test window's information ends when its last label closes.
            info_end = lt[test_mask].max()
            before = pos < a - self.embargo_bars  # gap before the test window
            if self.window == "rolling":
                assert self.train_bars is not None
                before &= pos >= a - self.embargo_bars - self.train_bars
            before &= lt < test_start  # purge: label window must end before the test starts
            train_mask = before
            if self.train_after_test:
                info_end_pos = int(np.searchsorted(grid, info_end, side="right"))
                after = pos >= info_end_pos + self.embargo_bars
                train_mask = train_mask | after
            folds.append(
                Fold(
                    index=k,
                    train=np.flatnonzero(train_mask),
                    test=np.flatnonzero(test_mask),
                    test_start=pd.Timestamp(test_start, tz="UTC"),
                    test_end=pd.Timestamp(test_end, tz="UTC"),
                )
            )
        return folds

    def split_frame(self, frame: pd.DataFrame) -> list[Fold]:
        """Folds for a training frame with ``timestamp`` and ``label_time`` columns."""
        for col in ("timestamp", "label_time"):
            if col not in frame.columns:
                raise ValueError(f"training frame has no {col!r} column (see augur.features)")
        return self.split(frame["timestamp"], frame["label_time"])


def _as_ns(values: pd.Series | np.ndarray, name: str) -> np.ndarray:
    """Timestamps as int64 nanoseconds since the epoch (UTC), refusing missing values."""
    idx = pd.DatetimeIndex(values)
    if idx.hasnans:
        raise ValueError(f"{name} has missing values: drop those rows first")
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    return idx.asi8
