"""The vectorised feature engine: bars in, one feature row per bar out.

Bars are validated and put in (symbol, time) order once; the numba kernel
(``_kernels.compute_kernel``) then fills a features x bars float64 matrix for every
symbol in one call, and the result becomes a DataFrame without a copy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from augur.features.spec import FLAT_VOLATILITY, TRENDING_EFFICIENCY, FeatureSpec

# Columns the engine reads; the rest of the Bars contract (open, volume) is not needed.
ENGINE_COLUMNS: tuple[str, ...] = ("timestamp", "symbol", "high", "low", "close")

_PER_WINDOW = (
    "ret_mean",
    "ret_std",
    "realized_vol",
    "zscore",
    "atr",
    "momentum",
    "rate_of_change",
    "rsi",
    "skew",
    "kurt",
    "eff_ratio",
    "vol_cluster",
)  # same order as the row offsets in _kernels


@dataclass(frozen=True)
class SortedBars:
    """Bars in (symbol, time) order as plain arrays, with each symbol's first row."""

    symbol: np.ndarray
    ts_ns: np.ndarray  # int64 ns since epoch, UTC
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    starts: np.ndarray  # first row of every symbol, then n

    @property
    def timestamp(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.ts_ns.view("M8[ns]")).tz_localize("UTC")

    def tails(self, length: int) -> SortedBars:
        """The last ``length`` bars of every symbol (all of them when it has fewer)."""
        ends = self.starts[1:]
        first = np.maximum(self.starts[:-1], ends - length)
        rows = np.concatenate([np.arange(a, b) for a, b in zip(first, ends, strict=True)])
        return SortedBars(
            symbol=self.symbol[rows],
            ts_ns=self.ts_ns[rows],
            high=self.high[rows],
            low=self.low[rows],
            close=self.close[rows],
            starts=np.concatenate(([0], np.cumsum(ends - first))).astype(np.int64),
        )


def _group_starts(codes: np.ndarray) -> np.ndarray:
    n = codes.shape[0]
    if n == 0:
        return np.zeros(1, dtype=np.int64)
    change = np.flatnonzero(codes[1:] != codes[:-1]) + 1
    return np.concatenate(([0], change, [n])).astype(np.int64)


def sort_bars(bars: pd.DataFrame, columns: tuple[str, ...] = ENGINE_COLUMNS) -> SortedBars:
    """Validate bars and return them in (symbol, time) order as arrays.

    Rows may come in any order and any mix of symbols. Raises ``ValueError`` naming the
    column (and the first offending symbol/time) for: a missing column, a timestamp that
    is not timezone-aware datetime, a non-numeric or NaN/non-positive price, a duplicate
    (symbol, timestamp).
    """
    if not isinstance(bars, pd.DataFrame):
        raise ValueError(f"bars must be a pandas DataFrame, got {type(bars).__name__}")
    missing = [c for c in columns if c not in bars.columns]
    if missing:
        raise ValueError(
            f"bars is missing column(s) {', '.join(repr(c) for c in missing)}: the Bars "
            "contract is timestamp (UTC), symbol, open, high, low, close, volume"
        )
    ts = bars["timestamp"]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        raise ValueError(
            f"column 'timestamp' must be timezone-aware datetimes (got dtype {ts.dtype}); "
            "parse it with pd.to_datetime(..., utc=True)"
        )
    ts_ns = pd.DatetimeIndex(ts).as_unit("ns").asi8  # UTC instants, any tz
    if bars["symbol"].isna().any():
        raise ValueError("column 'symbol' has missing values: every bar needs a symbol")
    codes, _ = pd.factorize(bars["symbol"], sort=True)
    prices = {}
    for col in ("high", "low", "close"):
        if col not in columns:
            continue
        try:
            values = np.asarray(bars[col], dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"column {col!r} must be numeric (got dtype {bars[col].dtype})"
            ) from None
        bad = ~(values > 0)  # catches NaN too
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"column {col!r} must be a positive number; row {i} (symbol "
                f"{bars['symbol'].iloc[i]!r}, timestamp {ts.iloc[i]}) has {values[i]!r}"
            )
        prices[col] = values

    # Already in order (the usual case) -> no permutation at all.
    in_order = codes.shape[0] < 2 or bool(
        np.all((codes[1:] > codes[:-1]) | ((codes[1:] == codes[:-1]) & (ts_ns[1:] > ts_ns[:-1])))
    )
    if in_order:
        order = None
    else:
        order = np.lexsort((ts_ns, codes))
        codes = codes[order]
        ts_ns = ts_ns[order]
        dup = np.flatnonzero((codes[1:] == codes[:-1]) & (ts_ns[1:] == ts_ns[:-1]))
        if dup.size:
            i = int(order[dup[0]])
            raise ValueError(
                f"column 'timestamp' has a duplicate for symbol {bars['symbol'].iloc[i]!r} at "
                f"{ts.iloc[i]}: keep one bar per (symbol, timestamp)"
            )
    symbol = bars["symbol"].to_numpy()

    def pick(a: np.ndarray) -> np.ndarray:
        return a if order is None or a.shape[0] == 0 else a[order]

    return SortedBars(
        symbol=pick(symbol),
        ts_ns=ts_ns,
        high=pick(prices.get("high", np.empty(0))),
        low=pick(prices.get("low", np.empty(0))),
        close=pick(prices.get("close", np.empty(0))),
        starts=_group_starts(codes),
    )


def _layout(spec: FeatureSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Where each feature of ``spec`` goes in the output matrix, for the kernel."""
    index = {f.name: i for i, f in enumerate(spec.features)}
    windows = np.asarray(spec.windows, dtype=np.int64)
    wdest = np.full((len(windows), len(_PER_WINDOW)), -1, dtype=np.int64)
    by_function = {(f.function, f.window): index[f.name] for f in spec.features}
    for j, w in enumerate(spec.windows):
        for k, fn in enumerate(_PER_WINDOW):
            wdest[j, k] = by_function.get((fn, w), -1)
    lags = np.asarray(spec.lags, dtype=np.int64)
    ldest = np.asarray([by_function[("ret_lag", k)] for k in spec.lags], dtype=np.int64)
    return windows, wdest, lags, ldest, by_function[("log_return", None)]


def _compute_matrix(sb: SortedBars, spec: FeatureSpec) -> np.ndarray:
    """The features x bars matrix (rows in ``spec.names`` order)."""
    from augur.features import _kernels  # numba: imported on first use only

    out = np.empty((len(spec.features), sb.close.shape[0]), dtype=np.float64)
    windows, wdest, lags, ldest, ret_dest = _layout(spec)
    _kernels.compute_kernel(
        sb.close, sb.high, sb.low, sb.starts, windows, wdest, lags, ldest, ret_dest, out
    )
    _calendar(sb.ts_ns, spec, out)
    _regime(spec, out)
    return out


def _frame(
    symbol: np.ndarray, ts_ns: np.ndarray, matrix: np.ndarray, spec: FeatureSpec
) -> pd.DataFrame:
    frame = pd.DataFrame(matrix.T, columns=spec.names, copy=False)
    frame.insert(0, "timestamp", pd.DatetimeIndex(ts_ns.view("M8[ns]")).tz_localize("UTC"))
    frame.insert(0, "symbol", symbol)
    return frame


def _compute_sorted(sb: SortedBars, spec: FeatureSpec) -> pd.DataFrame:
    return _frame(sb.symbol, sb.ts_ns, _compute_matrix(sb, spec), spec)


def _calendar(ts_ns: np.ndarray, spec: FeatureSpec, out: np.ndarray) -> None:
    """Cyclical UTC time-of-day and day-of-week (Monday = 0) into ``out``."""
    names = spec.names
    seconds = ts_ns // 1_000_000_000
    day_seconds = seconds % 86_400
    days = seconds // 86_400
    tod = (2.0 * np.pi / 86_400.0) * day_seconds
    dow = (2.0 * np.pi / 7.0) * ((days + 3) % 7)  # 1970-01-01 was a Thursday (3)
    for name, angle, fn in (
        ("tod_sin", tod, np.sin),
        ("tod_cos", tod, np.cos),
        ("dow_sin", dow, np.sin),
        ("dow_cos", dow, np.cos),
    ):
        fn(angle, out=out[names.index(name)])


def _regime(spec: FeatureSpec, out: np.ndarray) -> None:
    """The ``regime`` row from the efficiency-ratio and volatility rows (NaN while any of
    them is)."""
    names = spec.names
    w, longest = spec.regime_windows
    trend = out[names.index(f"eff_ratio_{w}")]
    vol, vol_long = out[names.index(f"vol_{w}")], out[names.index(f"vol_{longest}")]
    regime = out[names.index("regime")]
    volatile = vol > np.maximum(vol_long, FLAT_VOLATILITY)
    np.add(2.0 * (trend >= TRENDING_EFFICIENCY), volatile, out=regime)
    regime[np.isnan(trend) | np.isnan(vol) | np.isnan(vol_long)] = np.nan


def compute_features(bars: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """Every feature of ``spec`` for every bar.

    ``bars`` follows the Bars contract (any symbols, rows in any order; ``open`` and
    ``volume`` are not used). Returns columns ``symbol``, ``timestamp``, then
    ``spec.names`` (float64), sorted by (symbol, timestamp), one row per input bar,
    with a fresh RangeIndex. Warm-up rows (too little history) hold NaN. A feature at bar
    ``t`` uses only bars ``<= t`` of its symbol.
    """
    return _compute_sorted(sort_bars(bars), spec)


def latest_features(history: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """The feature row of each symbol's last bar (one row per symbol, sorted by symbol).

    Only the last ``spec.max_lookback`` bars of each symbol are used; when a symbol has
    at least that many, its row is identical to the last row of
    ``compute_features(history, spec)`` (every window is computed from its own bars
    only). With fewer bars the not-yet-defined features are NaN.
    """
    sb = sort_bars(history)
    if sb.close.shape[0] == 0:
        return _compute_sorted(sb, spec)
    tail = sb.tails(spec.max_lookback)
    last = tail.starts[1:] - 1
    matrix = _compute_matrix(tail, spec)
    return _frame(tail.symbol[last], tail.ts_ns[last], matrix[:, last], spec)
