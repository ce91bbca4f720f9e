"""Validation of OHLCV bars against the Bars contract.

Every rule names itself, the column it concerns and the first offending rows, so a user
can fix their file. Row numbers are 1-based data rows in the user's file (row 1 is the
first row after a CSV header), because that is what a user sees in an editor or viewer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

PRICE_COLUMNS = ("open", "high", "low", "close")
VALUE_COLUMNS = (*PRICE_COLUMNS, "volume")
REQUIRED_COLUMNS = ("timestamp", *VALUE_COLUMNS)
BAR_COLUMNS = ("timestamp", "symbol", *VALUE_COLUMNS)

# Common spellings of the time column in exported bar files (case-insensitive).
_TIMESTAMP_ALIASES = ("timestamp", "time", "date", "datetime", "date_time", "gmt time")
_SYMBOL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._^=-]{0,31}$")
_MAX_ROWS_SHOWN = 5


class BarsValidationError(ValueError):
    """Bars break a rule. ``rule``, ``column`` and ``rows`` (1-based rows in the file) say where."""

    def __init__(self, rule: str, column: str | None, rows: list[int], message: str) -> None:
        self.rule = rule
        self.column = column
        self.rows = rows
        super().__init__(message)


@dataclass(frozen=True)
class ValidationReport:
    """What a valid set of bars looks like: size, span and the gaps in it."""

    symbol: str
    rows: int
    start: pd.Timestamp
    end: pd.Timestamp
    bar_interval: pd.Timedelta
    gaps: int
    largest_gap: pd.Timedelta | None
    bars: pd.DataFrame = field(repr=False)

    def summary(self) -> str:
        """One line for a person."""
        gap = f"{self.gaps} gaps (largest {self.largest_gap})" if self.gaps else "no gaps"
        return (
            f"{self.symbol}: {self.rows} bars, {self.start} → {self.end}, "
            f"bar interval {self.bar_interval}, {gap}"
        )


def _fail(rule: str, column: str | None, mask: np.ndarray, what: str, fix: str) -> None:
    positions = np.flatnonzero(mask)
    if positions.size == 0:
        return
    rows = [int(p) + 1 for p in positions[:_MAX_ROWS_SHOWN]]
    more = f" (and {positions.size - len(rows)} more)" if positions.size > len(rows) else ""
    where = f"column '{column}'" if column else "the file"
    raise BarsValidationError(
        rule,
        column,
        rows,
        f"rule '{rule}' broken in {where}: {what} at row(s) {rows}{more} "
        f"(row 1 = first data row). {fix}",
    )


def normalise_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Map column names case-insensitively onto the Bars contract (``Time`` → ``timestamp``)."""
    lower = {str(c).strip().lower(): c for c in df.columns}
    mapping: dict[object, str] = {}
    for alias in _TIMESTAMP_ALIASES:
        if alias in lower:
            mapping[lower[alias]] = "timestamp"
            break
    for col in (*VALUE_COLUMNS, "symbol"):
        if col in lower and lower[col] not in mapping:
            mapping[lower[col]] = col
    missing = [c for c in REQUIRED_COLUMNS if c not in mapping.values()]
    if missing:
        raise BarsValidationError(
            "required_columns",
            missing[0],
            [],
            f"rule 'required_columns' broken: missing column(s) {missing}; found "
            f"{[str(c) for c in df.columns]}. Bars need timestamp (or time/date), open, high, "
            "low, close, volume (any letter case).",
        )
    return df.rename(columns=mapping)[[c for c in BAR_COLUMNS if c in mapping.values()]]


def _parse_timestamps(raw: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        # Numbers are ambiguous (seconds? ms? ns?): refuse rather than guess.
        _fail(
            "parseable_timestamp",
            "timestamp",
            np.ones(len(raw), dtype=bool),
            "numeric values are not accepted as timestamps",
            "Write timestamps as ISO 8601 text, e.g. 2024-01-31T15:00:00Z.",
        )
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        return raw.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(raw):
        return raw.dt.tz_localize("UTC")  # naive times are taken as UTC
    text = raw.astype("string")
    try:
        parsed = pd.to_datetime(text, utc=True, errors="coerce")
    except (ValueError, TypeError):
        parsed = pd.to_datetime(text, utc=True, errors="coerce", format="mixed")
    _fail(
        "parseable_timestamp",
        "timestamp",
        (parsed.isna() & text.notna()).to_numpy(),
        "timestamps that cannot be parsed",
        "Use ISO 8601, e.g. 2024-01-31T15:00:00Z (no offset means UTC).",
    )
    return parsed


def validate_bars(df: pd.DataFrame, symbol: str) -> ValidationReport:
    """Check bars for one symbol against every rule; return a report with the clean bars.

    Rules, in order: ``symbol``, ``required_columns``, ``no_missing_values``,
    ``numeric``, ``parseable_timestamp``, ``positive_price``, ``non_negative_volume``,
    ``high_ge_open_close``, ``low_le_open_close``, ``no_duplicate_timestamps``,
    ``increasing_time``. Timestamps are made UTC (naive ones are taken as UTC). Gaps
    (intervals longer than 1.5x the typical one: weekends, holidays) are allowed and
    reported. Raises :class:`BarsValidationError` on the first broken rule.
    """
    if not isinstance(symbol, str) or not _SYMBOL_RE.match(symbol):
        raise BarsValidationError(
            "symbol",
            "symbol",
            [],
            f"rule 'symbol' broken: {symbol!r} is not a valid symbol; use 1-32 letters, "
            "digits or . _ - ^ = (starting with a letter or digit).",
        )
    bars = normalise_columns(df).reset_index(drop=True)
    if "symbol" in bars.columns:
        other = bars["symbol"].notna() & (bars["symbol"].astype(str) != symbol)
        _fail(
            "symbol",
            "symbol",
            other.to_numpy(),
            f"rows for a symbol other than '{symbol}'",
            "Import one symbol per file, or drop the symbol column.",
        )
    if bars.empty:
        raise BarsValidationError("not_empty", None, [], "rule 'not_empty' broken: no rows.")
    for col in REQUIRED_COLUMNS:
        _fail(
            "no_missing_values",
            col,
            bars[col].isna().to_numpy(),
            "missing values (NaN/empty)",
            "Fill or remove those rows.",
        )
    for col in VALUE_COLUMNS:
        values = pd.to_numeric(bars[col], errors="coerce")
        _fail(
            "numeric",
            col,
            values.isna().to_numpy(),
            "values that are not numbers",
            "Use plain decimal numbers.",
        )
        bars[col] = values.astype("float64")
    bars["timestamp"] = _parse_timestamps(bars["timestamp"])
    for col in PRICE_COLUMNS:
        _fail(
            "positive_price",
            col,
            ~np.isfinite(bars[col].to_numpy()) | (bars[col].to_numpy() <= 0),
            "prices that are not positive finite numbers",
            "Prices must be > 0.",
        )
    vol = bars["volume"].to_numpy()
    _fail(
        "non_negative_volume",
        "volume",
        ~np.isfinite(vol) | (vol < 0),
        "negative or infinite volume",
        "Volume must be >= 0 (use 0 when unknown).",
    )
    o, h, lo, c = (bars[k].to_numpy() for k in PRICE_COLUMNS)
    _fail(
        "high_ge_open_close",
        "high",
        h < np.maximum(o, c),
        "high below max(open, close)",
        "Check the column order (open, high, low, close) and the rows' values.",
    )
    _fail(
        "low_le_open_close",
        "low",
        lo > np.minimum(o, c),
        "low above min(open, close)",
        "Check the column order (open, high, low, close) and the rows' values.",
    )
    ts = bars["timestamp"]
    _fail(
        "no_duplicate_timestamps",
        "timestamp",
        ts.duplicated(keep="first").to_numpy(),
        "a timestamp that appears earlier in the file",
        "Keep one bar per timestamp.",
    )
    _fail(
        "increasing_time",
        "timestamp",
        (ts.diff() < pd.Timedelta(0)).to_numpy(),
        "a timestamp earlier than the row before it",
        "Sort the file by time, oldest first.",
    )
    bars["symbol"] = symbol
    bars = bars[list(BAR_COLUMNS)]
    deltas = ts.diff().dropna()
    interval = deltas.median() if len(deltas) else pd.Timedelta(0)
    gap_mask = deltas > 1.5 * interval if len(deltas) else deltas.astype(bool)
    return ValidationReport(
        symbol=symbol,
        rows=len(bars),
        start=ts.iloc[0],
        end=ts.iloc[-1],
        bar_interval=interval,
        gaps=int(gap_mask.sum()),
        largest_gap=deltas[gap_mask].max() if gap_mask.any() else None,
        bars=bars,
    )


def read_bars_file(path: str | Path) -> pd.DataFrame:
    """Read a user's CSV or Parquet file of bars as text-faithful as possible (no cleaning)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if suffix in (".csv", ".txt"):
        # Timestamps stay text here so validation, not the CSV reader, decides how to parse them.
        return pd.read_csv(path, dtype=str, keep_default_na=True, skipinitialspace=True)
    raise ValueError(f"{path}: unsupported file type '{suffix}'; use .csv or .parquet")
