"""Walk-forward splitter: purge, embargo and fold order hold for any data (hypothesis)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from augur.backtest.walkforward import WalkForward


def _frame(n: int, horizon: int, n_symbols: int = 1, gaps: list[int] | None = None) -> pd.DataFrame:
    """Rows on an hourly grid with holes; label_time = the timestamp ``horizon`` bars ahead."""
    step = np.ones(n, dtype=int) if gaps is None else np.asarray(gaps[:n]) + 1
    grid = pd.Timestamp("2021-01-01", tz="UTC") + pd.to_timedelta(np.cumsum(step), unit="h")
    frames = []
    for s in range(n_symbols):
        keep = len(grid) - horizon
        frames.append(
            pd.DataFrame(
                {"symbol": f"S{s}", "timestamp": grid[:keep], "label_time": grid[horizon:]}
            )
        )
    return pd.concat(frames, ignore_index=True)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(60, 400),
    horizon=st.integers(1, 12),
    n_folds=st.integers(1, 6),
    embargo=st.integers(0, 10),
    n_symbols=st.integers(1, 3),
    rolling=st.booleans(),
    after=st.booleans(),
    gaps=st.lists(st.integers(0, 3), min_size=400, max_size=400),
)
def test_no_train_label_window_overlaps_test_and_embargo_holds(
    n, horizon, n_folds, embargo, n_symbols, rolling, after, gaps
):
    frame = _frame(n, horizon, n_symbols, gaps)
    wf = WalkForward(
        n_folds=n_folds,
        window="rolling" if rolling else "expanding",
        train_bars=50 if rolling else None,
        embargo_bars=embargo,
        train_after_test=after,
    )
    folds = wf.split_frame(frame)
    assert len(folds) == n_folds
    ts = frame["timestamp"].dt.tz_localize(None).to_numpy()
    lt = frame["label_time"].dt.tz_localize(None).to_numpy()
    grid = np.unique(ts)
    previous_end = None
    seen_test: set[int] = set()
    for fold in folds:
        test_ts, test_lt = ts[fold.test], lt[fold.test]
        lo, hi = test_ts.min(), test_lt.max()  # the test window's information span
        tr_ts, tr_lt = ts[fold.train], lt[fold.train]
        # purge: no train label window [timestamp, label_time] touches [lo, hi]
        assert not np.any((tr_ts <= hi) & (tr_lt >= lo))
        # embargo after the test window: the next `embargo` timestamps after hi are unused
        after_hi = grid[grid > hi][:embargo]
        assert not np.isin(tr_ts, after_hi).any()
        # and the same gap before the test window
        before_lo = grid[grid < lo][-embargo:] if embargo else grid[:0]
        assert not np.isin(tr_ts, before_lo).any()
        if not after:
            assert (tr_ts < lo).all()
        # test folds are disjoint, ordered, and every test row is in its time block
        assert seen_test.isdisjoint(fold.test.tolist())
        seen_test.update(fold.test.tolist())
        if previous_end is not None:
            assert lo > previous_end
        previous_end = test_ts.max()
        assert pd.Timestamp(lo, tz="UTC") == fold.test_start


def test_expanding_train_grows_and_rolling_train_is_capped():
    frame = _frame(300, 5)
    exp = WalkForward(n_folds=4).split_frame(frame)
    assert [len(f.train) for f in exp] == sorted(len(f.train) for f in exp)
    assert len(exp[-1].train) > len(exp[0].train)
    roll = WalkForward(n_folds=4, window="rolling", train_bars=60).split_frame(frame)
    assert all(len(f.train) <= 60 for f in roll)
    # purge removes exactly `horizon` rows at the boundary of an expanding window
    first = exp[0]
    assert len(first.train) == frame["timestamp"].lt(first.test_start).sum() - 5


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="n_folds"):
        WalkForward(n_folds=0)
    with pytest.raises(ValueError, match="train_bars"):
        WalkForward(window="rolling")
    with pytest.raises(ValueError, match="too few"):
        WalkForward(n_folds=10).split_frame(_frame(12, 1))
    bad = _frame(50, 2)
    bad.loc[3, "label_time"] = bad.loc[3, "timestamp"] - pd.Timedelta(hours=1)
    with pytest.raises(ValueError, match="row 3"):
        WalkForward(n_folds=2).split_frame(bad)
    with pytest.raises(ValueError, match="label_time"):
        WalkForward(n_folds=2).split_frame(bad.drop(columns="label_time"))


def test_more_bad_settings_and_fold_summary():
    for kwargs, match in (
        ({"min_train_fraction": 1.0}, "min_train_fraction"),
        ({"window": "sliding"}, "window"),
        ({"embargo_bars": -1}, "embargo_bars"),
    ):
        with pytest.raises(ValueError, match=match):
            WalkForward(**kwargs)
    frame = _frame(100, 2)
    with pytest.raises(ValueError, match="lengths differ"):
        WalkForward(n_folds=2).split(frame["timestamp"], frame["label_time"][:-1])
    with pytest.raises(ValueError, match="missing"):
        WalkForward(n_folds=2).split(
            frame["timestamp"].where(frame.index != 4), frame["label_time"]
        )
    fold = WalkForward(n_folds=2).split_frame(frame)[1]
    summary = fold.describe()
    assert summary["fold"] == 1 and summary["test_rows"] == len(fold.test)
    assert summary["test_start"] == fold.test_start
