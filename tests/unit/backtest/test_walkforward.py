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


# --- exact folds on a small grid (each rule written out by hand) ------------------------

HOURS = pd.date_range("2021-01-01", periods=20, freq="h", tz="UTC")
TWO_AHEAD = HOURS + pd.Timedelta(hours=2)  # every label closes 2 bars later


def _folds(wf: WalkForward) -> list[tuple[list[int], list[int], str, str]]:
    return [
        (f.train.tolist(), f.test.tolist(), f"{f.test_start:%H}", f"{f.test_end:%H}")
        for f in wf.split(HOURS, TWO_AHEAD)
    ]


def test_expanding_folds_exactly():
    # 40% of 20 bars trains only; 12 test bars in 3 blocks of 4; a 2-bar label reaching
    # the test block purges the 2 training bars before it
    assert _folds(WalkForward(n_folds=3, min_train_fraction=0.4)) == [
        (list(range(6)), [8, 9, 10, 11], "08", "11"),
        (list(range(10)), [12, 13, 14, 15], "12", "15"),
        (list(range(14)), [16, 17, 18, 19], "16", "19"),
    ]


def test_rolling_folds_exactly():
    # the last 4 bars before a 1-bar gap, then purged: [a-5, a-2) minus labels reaching a
    wf = WalkForward(
        n_folds=2, window="rolling", train_bars=4, embargo_bars=1, min_train_fraction=0.5
    )
    assert _folds(wf) == [
        ([5, 6, 7], [10, 11, 12, 13, 14], "10", "14"),
        ([10, 11, 12], [15, 16, 17, 18, 19], "15", "19"),
    ]


def test_train_after_test_folds_exactly():
    # after the test block: from the bar after its last label closes (16h -> bar 17),
    # plus the 1-bar embargo -> bars 18, 19
    wf = WalkForward(n_folds=2, min_train_fraction=0.5, train_after_test=True, embargo_bars=1)
    assert _folds(wf) == [
        ([0, 1, 2, 3, 4, 5, 6, 7, 18, 19], [10, 11, 12, 13, 14], "10", "14"),
        (list(range(13)), [15, 16, 17, 18, 19], "15", "19"),
    ]


def test_fold_times_are_utc_and_naive_input_is_utc():
    folds = WalkForward(n_folds=2).split(HOURS, TWO_AHEAD)
    naive = WalkForward(n_folds=2).split(HOURS.tz_localize(None), TWO_AHEAD.tz_localize(None))
    other_zone = WalkForward(n_folds=2).split(
        HOURS.tz_convert("Asia/Tokyo"), TWO_AHEAD.tz_convert("Asia/Tokyo")
    )
    for a, b, c in zip(folds, naive, other_zone, strict=True):
        assert a.train.tolist() == b.train.tolist() == c.train.tolist()
        assert a.test.tolist() == b.test.tolist() == c.test.tolist()
        assert a.test_start == b.test_start == c.test_start
        assert a.test_end == b.test_end == c.test_end
        assert str(a.test_start.tz) == str(a.test_end.tz) == "UTC"
    assert folds[1].describe() == {
        "fold": 1,
        "train_rows": len(folds[1].train),
        "test_rows": len(folds[1].test),
        "test_start": folds[1].test_start,
        "test_end": folds[1].test_end,
    }


def test_boundaries_that_are_allowed():
    # a label may close at its own timestamp (horizon 0)
    assert len(WalkForward(n_folds=2).split(HOURS, HOURS)) == 2
    # exactly as many test timestamps as folds, and a single training timestamp
    ten = HOURS[:10]
    folds = WalkForward(n_folds=9, min_train_fraction=0.1).split(ten, ten)
    assert [f.test.tolist() for f in folds] == [[i] for i in range(1, 10)]
    assert folds[0].train.tolist() == [0]
    # a rolling window of one timestamp
    rolling = WalkForward(n_folds=2, window="rolling", train_bars=1).split(HOURS, HOURS)
    assert [f.train.tolist() for f in rolling] == [[7], [13]]


def test_setting_and_input_messages():
    cases = (
        ({"min_train_fraction": 0.0}, "min_train_fraction must be in (0, 1), got 0.0"),
        (
            {"window": "rolling", "train_bars": 0},
            "a rolling window needs train_bars >= 1 (distinct timestamps)",
        ),
    )
    for kwargs, message in cases:
        with pytest.raises(ValueError) as raised:
            WalkForward(**kwargs)
        assert str(raised.value) == message
    with pytest.raises(ValueError) as raised:
        WalkForward(n_folds=10).split(HOURS[:12], HOURS[:12])
    assert str(raised.value) == (
        "12 distinct timestamps are too few for 10 folds after a 40% initial training "
        "period: use fewer folds or more data"
    )
    with pytest.raises(ValueError, match=r"^timestamp has missing values: drop those rows first$"):
        WalkForward(n_folds=2).split(pd.Series(HOURS).where(HOURS.hour != 3), TWO_AHEAD)
    with pytest.raises(ValueError, match=r"^label_time has missing values: drop those rows first$"):
        WalkForward(n_folds=2).split(HOURS, pd.Series(TWO_AHEAD).where(HOURS.hour != 3))
