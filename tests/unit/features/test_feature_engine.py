"""The numba engine against the plain pandas reference, its conventions and its errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from augur.features import FeatureSpec, compute_features, default_spec, latest_features
from augur.features._reference import reference_features
from tests.conftest import synthetic_bars

# Small windows (2, 3) exercise the edge formulas; 20 the usual case.
SPEC = FeatureSpec(windows=(2, 3, 5, 20), lags=(1, 4))


@pytest.fixture(scope="module")
def three_symbols() -> pd.DataFrame:
    return synthetic_bars(240, symbols=("AAA", "BBB", "CCC"), seed=3)


@pytest.fixture
def ours(three_symbols: pd.DataFrame) -> pd.DataFrame:
    # Function scope (1 ms): every test that reads it runs the engine itself, so mutation
    # testing (which runs only the tests that execute a function) judges it by all of them.
    return compute_features(three_symbols, SPEC)


@pytest.fixture(scope="module")
def reference(three_symbols: pd.DataFrame) -> pd.DataFrame:
    return reference_features(three_symbols, SPEC)


@pytest.mark.parametrize("name", SPEC.names)
def test_feature_matches_the_pandas_reference(
    name: str, ours: pd.DataFrame, reference: pd.DataFrame
) -> None:
    # The reference gets variances from running sums (pandas' sliding var for closes of
    # ~100 whose 2-bar spread is ~1; E[x^2] - E[x]^2 for |r|): cancellation costs it up to
    # ~5 digits on these two; the engine recomputes each window from its values.
    rtol = 1e-4 if name.startswith(("zscore_", "vol_cluster_")) else 1e-8
    np.testing.assert_allclose(
        ours[name].to_numpy(), reference[name].to_numpy(), rtol=rtol, atol=1e-12, equal_nan=True
    )


def test_output_shape_order_and_types(three_symbols: pd.DataFrame, ours: pd.DataFrame) -> None:
    assert list(ours.columns) == ["symbol", "timestamp", *SPEC.names]
    assert len(ours) == len(three_symbols)
    assert ours.index.equals(pd.RangeIndex(len(ours)))
    assert (ours[SPEC.names].dtypes == np.float64).all()
    assert str(ours["timestamp"].dt.tz) == "UTC"
    keys = list(zip(ours["symbol"], ours["timestamp"], strict=True))
    assert keys == sorted(keys)


def test_rows_in_any_order_give_the_same_result(
    three_symbols: pd.DataFrame, ours: pd.DataFrame
) -> None:
    shuffled = three_symbols.sample(frac=1.0, random_state=1)
    pd.testing.assert_frame_equal(compute_features(shuffled, SPEC), ours)


def test_warm_up_rows_are_nan_exactly_for_the_lookback(ours: pd.DataFrame) -> None:
    first = ours[ours["symbol"] == "BBB"].reset_index(drop=True)
    for feature in SPEC.features:
        column = first[feature.name]
        assert column.iloc[: feature.lookback - 1].isna().all(), feature.name
        assert column.iloc[feature.lookback - 1 :].notna().all(), feature.name


def test_bounded_features_stay_in_their_range(ours: pd.DataFrame) -> None:
    for w in SPEC.windows:
        rsi = ours[f"rsi_{w}"].dropna()
        eff = ours[f"eff_ratio_{w}"].dropna()
        clust = ours[f"vol_cluster_{w}"].dropna()
        assert rsi.between(0, 1).all() and eff.between(0, 1).all()
        assert clust.between(-1 - 1e-12, 1 + 1e-12).all()


def test_calendar_features_use_utc_time() -> None:
    bars = synthetic_bars(3, symbols=("X",))
    # Monday 2024-01-01 06:00 in UTC, given in New York time
    start = pd.Timestamp("2024-01-01 06:00", tz="UTC").tz_convert("America/New_York")
    bars["timestamp"] = pd.date_range(start, periods=3, freq="6h")
    out = compute_features(bars, SPEC)
    np.testing.assert_allclose(out["tod_sin"], [1.0, 0.0, -1.0], atol=1e-12)
    np.testing.assert_allclose(out["dow_sin"], [0.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(out["dow_cos"], [1.0, 1.0, 1.0], atol=1e-12)
    assert str(out["timestamp"].dt.tz) == "UTC"


def test_flat_prices_give_the_neutral_values() -> None:
    bars = synthetic_bars(30, symbols=("FLAT",))
    bars[["open", "high", "low", "close"]] = 1.2345
    last = compute_features(bars, SPEC).iloc[-1]
    for w in SPEC.windows:
        assert last[f"zscore_{w}"] == 0.0
        assert last[f"rsi_{w}"] == 0.5
        assert last[f"eff_ratio_{w}"] == 0.0
        assert last[f"vol_cluster_{w}"] == 0.0
        assert last[f"vol_{w}"] == 0.0
        assert last[f"atr_{w}"] == 0.0
    assert last["skew_5"] == 0.0 and last["kurt_5"] == 0.0
    ref = reference_features(bars, SPEC).iloc[-1]
    pd.testing.assert_series_equal(last, ref, check_names=False)


def test_latest_features_equal_the_last_full_row(three_symbols: pd.DataFrame) -> None:
    spec = default_spec()
    full = compute_features(three_symbols, spec).groupby("symbol").tail(1)
    latest = latest_features(three_symbols.sample(frac=1.0, random_state=2), spec)
    assert list(latest["symbol"]) == ["AAA", "BBB", "CCC"]
    # identical, not just close: every window is computed from its own bars only
    pd.testing.assert_frame_equal(latest, full.reset_index(drop=True), check_exact=True)
    assert not latest[spec.names].isna().any().any()


def test_latest_features_from_exactly_max_lookback_rows(three_symbols: pd.DataFrame) -> None:
    spec = default_spec()
    full = compute_features(three_symbols, spec).groupby("symbol").tail(1)
    short = three_symbols.groupby("symbol").tail(spec.max_lookback)
    pd.testing.assert_frame_equal(
        latest_features(short, spec), full.reset_index(drop=True), check_exact=True
    )
    too_short = three_symbols.groupby("symbol").tail(spec.max_lookback - 1)
    assert latest_features(too_short, spec)["vol_cluster_50"].isna().all()


def test_empty_bars_give_an_empty_frame() -> None:
    empty = synthetic_bars(1).iloc[:0]
    assert list(compute_features(empty, SPEC).columns) == ["symbol", "timestamp", *SPEC.names]
    assert latest_features(empty, SPEC).empty


@pytest.mark.parametrize("column", ["timestamp", "symbol", "high", "low", "close"])
def test_missing_column_is_named(column: str) -> None:
    with pytest.raises(ValueError, match=f"missing column.*'{column}'"):
        compute_features(synthetic_bars(10).drop(columns=column), SPEC)


def test_naive_timestamps_are_refused() -> None:
    bars = synthetic_bars(10)
    bars["timestamp"] = bars["timestamp"].dt.tz_localize(None)
    with pytest.raises(ValueError, match="column 'timestamp' must be timezone-aware"):
        compute_features(bars, SPEC)


def test_duplicate_bar_is_refused() -> None:
    bars = synthetic_bars(10)
    bars = pd.concat([bars, bars.iloc[[3]]], ignore_index=True)
    with pytest.raises(ValueError, match="'timestamp' has a duplicate for symbol 'AAA'"):
        compute_features(bars, SPEC)


@pytest.mark.parametrize(("column", "value"), [("close", np.nan), ("high", -1.0), ("low", 0.0)])
def test_bad_price_is_refused_naming_column_and_row(column: str, value: float) -> None:
    bars = synthetic_bars(10)
    bars.loc[4, column] = value
    with pytest.raises(ValueError, match=f"column '{column}' must be a positive number; row 4"):
        compute_features(bars, SPEC)


def test_non_numeric_price_and_missing_symbol_are_refused() -> None:
    bars = synthetic_bars(10)
    bars["close"] = "abc"
    with pytest.raises(ValueError, match="column 'close' must be numeric"):
        compute_features(bars, SPEC)
    bars = synthetic_bars(10)
    bars.loc[2, "symbol"] = None
    with pytest.raises(ValueError, match="column 'symbol' has missing values"):
        compute_features(bars, SPEC)
    with pytest.raises(ValueError, match="must be a pandas DataFrame"):
        compute_features([1, 2], SPEC)  # type: ignore[arg-type]


def test_the_compiled_kernel_equals_its_python_source(three_symbols: pd.DataFrame) -> None:
    """The numba kernel and the same code run as plain Python agree (and coverage sees it)."""
    from augur.features import _engine, _kernels

    spec = FeatureSpec(windows=(2, 3, 5), lags=(2,))
    flat = synthetic_bars(12, symbols=("FLAT",))
    flat[["open", "high", "low", "close"]] = 3.0
    sb = _engine.sort_bars(pd.concat([three_symbols.groupby("symbol").head(40), flat]))
    args = (sb.close, sb.high, sb.low, sb.starts, *_engine._layout(spec))
    compiled = np.empty((len(spec.names), len(sb.close)))
    python = np.empty_like(compiled)
    _kernels.compute_kernel(*args, compiled)
    _kernels.compute_kernel.py_func(*args, python)
    # the calendar and the regime are filled after the kernel
    rows = [i for i, n in enumerate(spec.names) if not n.startswith(("tod_", "dow_", "regime"))]
    np.testing.assert_allclose(compiled[rows], python[rows], rtol=1e-12, equal_nan=True)
    assert _kernels._degenerate.py_func(0.0, 100.0) and not _kernels._degenerate.py_func(1.0, 0)


def test_parquet_style_columns_give_the_same_features(
    three_symbols: pd.DataFrame, ours: pd.DataFrame
) -> None:
    """Millisecond timestamps and categorical symbols (as parquet round-trips give them)."""
    bars = three_symbols.copy()
    bars["timestamp"] = bars["timestamp"].dt.as_unit("ms")
    bars["symbol"] = bars["symbol"].astype("category")
    out = compute_features(bars, SPEC)
    np.testing.assert_array_equal(out[SPEC.names].to_numpy(), ours[SPEC.names].to_numpy())
    assert list(out["symbol"]) == list(ours["symbol"])
    assert (out["timestamp"] == ours["timestamp"]).all()


# --- input order, validation messages, edges ---------------------------------------------


def _same_as_sorted(bars: pd.DataFrame, order: list[int]) -> None:
    expected = compute_features(bars, SPEC)
    pd.testing.assert_frame_equal(compute_features(bars.iloc[order], SPEC), expected)


def test_any_row_order_gives_the_sorted_result() -> None:
    """Orders a shuffle rarely produces: each looks almost sorted but is not."""
    one = synthetic_bars(6, symbols=("AAA",))
    two = synthetic_bars(4, symbols=("AAA", "BBB"))  # rows 0-3 AAA, 4-7 BBB
    _same_as_sorted(one.iloc[:2], [1, 0])  # two rows, reversed
    _same_as_sorted(one, [5, 4, 3, 2, 1, 0])  # one symbol, time reversed
    _same_as_sorted(one, [0, 2, 1, 3, 4, 5])  # one late pair
    _same_as_sorted(two, [0, 1, 2, 3, 7, 6, 5, 4])  # second symbol reversed
    _same_as_sorted(two, [0, 4, 1, 5, 2, 6, 3, 7])  # interleaved by time (long format)


def test_duplicates_are_found_wherever_they_are() -> None:
    two = synthetic_bars(4, symbols=("AAA", "BBB"))
    adjacent = pd.concat([two.iloc[:2], two.iloc[[1]], two.iloc[2:]], ignore_index=True)
    with pytest.raises(ValueError, match="'timestamp' has a duplicate for symbol 'AAA'"):
        compute_features(adjacent, SPEC)
    second = pd.concat([two.iloc[::-1], two.iloc[[6]]], ignore_index=True)
    with pytest.raises(ValueError, match="'timestamp' has a duplicate for symbol 'BBB'"):
        compute_features(second, SPEC)


def test_validation_messages_in_full() -> None:
    bars = synthetic_bars(10)
    cases = [
        ([1, 2], "bars must be a pandas DataFrame, got list"),
        (
            bars.drop(columns=["low", "close"]),
            "bars is missing column(s) 'low', 'close': the Bars contract is timestamp (UTC), "
            "symbol, open, high, low, close, volume",
        ),
        (
            bars.assign(timestamp=bars["timestamp"].dt.tz_localize(None)),
            "column 'timestamp' must be timezone-aware datetimes (got dtype datetime64[ns]); "
            "parse it with pd.to_datetime(..., utc=True)",
        ),
        (
            bars.assign(symbol=bars["symbol"].where(bars.index != 2)),
            "column 'symbol' has missing values: every bar needs a symbol",
        ),
    ]
    for frame, message in cases:
        with pytest.raises(ValueError) as raised:
            compute_features(frame, SPEC)
        assert str(raised.value) == message


def test_prices_below_one_are_valid() -> None:
    bars = synthetic_bars(40)
    cheap = bars.assign(**{c: bars[c] / 1000 for c in ("open", "high", "low", "close")})
    out = compute_features(cheap, SPEC)
    ref = compute_features(bars, SPEC)
    # scale-free features do not notice the unit
    np.testing.assert_allclose(out["ret_1"], ref["ret_1"], rtol=1e-9, equal_nan=True)
    np.testing.assert_allclose(out["rsi_5"], ref["rsi_5"], rtol=1e-9, equal_nan=True)


def test_one_bar_is_all_warm_up() -> None:
    out = compute_features(synthetic_bars(1, symbols=("X",)), SPEC)
    assert len(out) == 1
    values = out[[n for n in SPEC.names if not n.startswith(("tod_", "dow_"))]]
    assert values.isna().all().all()
    assert out[["tod_sin", "tod_cos", "dow_sin", "dow_cos"]].notna().all().all()


def test_calendar_uses_whole_seconds() -> None:
    """A bar stamped 06:00:00.5 is a 06:00 bar (offline and online stamps may differ below 1 s)."""
    bars = synthetic_bars(2, symbols=("X",))
    bars["timestamp"] = pd.to_datetime(
        ["2024-01-01 06:00:00.5", "2024-01-01 12:00:00.999"], utc=True
    )
    out = compute_features(bars, SPEC)
    np.testing.assert_allclose(out["tod_cos"], [0.0, -1.0], atol=1e-12)
    np.testing.assert_allclose(out["tod_sin"], [1.0, 0.0], atol=1e-12)


def test_the_regime_names_trend_and_volatility() -> None:
    """A steady climb is trending and calm; a choppy patch after it is ranging and
    volatile (its recent volatility beats the longest window's)."""
    spec = FeatureSpec(windows=(10, 20, 50), lags=())
    assert spec.regime_windows == (20, 50)
    n = 120
    close = np.concatenate([100.0 * 1.001 ** np.arange(n), np.full(25, 112.0)])
    close[n:] += np.where(np.arange(25) % 2 == 0, 2.0, -2.0)  # back and forth, wide
    bars = synthetic_bars(len(close), symbols=("X",))
    bars["open"] = bars["close"] = close
    bars["high"], bars["low"] = close * 1.001, close * 0.999
    regime = compute_features(bars, spec)["regime"].to_numpy()
    lookback = next(f.lookback for f in spec.features if f.name == "regime")
    assert np.isnan(regime[: lookback - 1]).all() and not np.isnan(regime[lookback - 1 :]).any()
    assert regime[n - 1] == 2.0  # trending; a steady climb does not move around: calm
    assert regime[-1] == 1.0  # ranging, volatile
