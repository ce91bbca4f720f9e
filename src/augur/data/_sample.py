"""Real market bars shipped inside permissively licensed PyPI packages.

``SOURCES`` is the table the README cites. Each loader returns the data as supplied by
its package, mapped onto the Bars contract; the only changes are the documented ones in
``Source.notes`` (timestamp convention, split adjustment), and every set is checked by
:func:`~augur.data.validate_bars` — a set that breaks a rule is an error, never silently
repaired.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from augur.data._validate import BAR_COLUMNS, validate_bars

# Daily bars are stamped at the US market close (16:00 New York, made UTC): that is when
# the bar is known, so a feature at that timestamp cannot see a later price.
_US_CLOSE = pd.Timedelta(hours=16)


@dataclass(frozen=True)
class Source:
    """Where a sample symbol comes from, under which licence, and what we did to it."""

    symbol: str
    frequency: str
    package: str
    loader: str
    licence: str
    notes: str


SOURCES: tuple[Source, ...] = (
    Source(
        "EURUSD",
        "1h",
        "gym-anytrading 2.0",
        "gym_anytrading.datasets.FOREX_EURUSD_1H_ASK",
        "MIT",
        "Ask prices, 2017. Source 'Time' (day-first) marks the bar's open; stamped at its "
        "close (+1 h), taken as UTC.",
    ),
    Source(
        "SP500",
        "1d",
        "arch 8.0",
        "arch.data.sp500.load()",
        "NCSA",
        "S&P 500 index 1999-2018; OHLC + Close (not Adj Close); stamped 16:00 New York.",
    ),
    Source(
        "NASDAQ",
        "1d",
        "arch 8.0",
        "arch.data.nasdaq.load()",
        "NCSA",
        "NASDAQ Composite 1999-2018; OHLC + Close (not Adj Close); stamped 16:00 New York. "
        "2 days have volume 0 (kept: allowed).",
    ),
    *(
        Source(
            sym,
            "1d",
            "bokeh-sampledata 2026.1",
            f"bokeh_sampledata.stocks.{sym}",
            "BSD-3-Clause package; data public domain (Quandl WIKI)",
            "Unadjusted OHLCV to 2013-03-01; stock splits (found from the source's own "
            "adj_close) are undone by scaling earlier OHLC down and volume up, so a split "
            "is not a fake -50% return; dividends are not adjusted; stamped 16:00 New York.",
        )
        for sym in ("AAPL", "GOOG", "IBM", "MSFT")
    ),
)


@dataclass(frozen=True)
class Split:
    """A stock split found in a sample set (``ratio`` new shares per old share)."""

    symbol: str
    date: pd.Timestamp
    ratio: float


def _us_close(dates: pd.Series | pd.Index) -> pd.Series:
    days = pd.DatetimeIndex(pd.to_datetime(dates)).normalize()
    stamped = (days + _US_CLOSE).tz_localize("America/New_York").tz_convert("UTC")
    return pd.Series(stamped, dtype="datetime64[ns, UTC]")


def _package_file(package: str, *parts: str) -> Path:
    """A data file inside an installed package, found without importing the package.

    ``gym_anytrading`` and ``arch`` pull in gymnasium / statsmodels-sized imports at
    import time; their data loaders only read these files, so we read them directly.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"package '{package}' is not installed (it ships sample data)")
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    if not path.is_file():
        raise FileNotFoundError(f"sample data file missing from '{package}': {path}")
    return path


def _eurusd() -> pd.DataFrame:
    # Same file and parsing as gym_anytrading.datasets.FOREX_EURUSD_1H_ASK (index 'Time').
    raw = pd.read_csv(
        _package_file("gym_anytrading", "datasets", "data", "FOREX_EURUSD_1H_ASK.csv")
    )
    ts = pd.to_datetime(raw.pop("Time"), format="%d.%m.%Y %H:%M:%S.%f", utc=True)
    out = raw[["Open", "High", "Low", "Close", "Volume"]].rename(columns=str.lower)
    out.insert(0, "timestamp", (ts + pd.Timedelta(hours=1)).astype("datetime64[ns, UTC]"))
    return out


def _arch(module: str) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        # Same file as arch.data.<module>.load() (which also just reads it).
        raw = pd.read_csv(_package_file("arch", "data", module, f"{module}.csv.gz"))
        out = raw[["Open", "High", "Low", "Close", "Volume"]].rename(columns=str.lower)
        out.insert(0, "timestamp", _us_close(raw["Date"]))
        return out

    return load


def find_splits(
    symbol: str, close: np.ndarray, adj_close: np.ndarray, dates: pd.Series
) -> list[Split]:
    """Splits as jumps of at least 1.4x in close/adj_close between consecutive days.

    Dividends move that factor by a few percent at most, so a jump of 1.4x or more is a
    split; the ratio is rounded to the nearest half (2:1, 3:2, 3:1 ...).
    """
    factor = close / adj_close
    jump = factor[:-1] / factor[1:]
    return [
        Split(symbol, pd.Timestamp(dates.iloc[i + 1]), float(np.round(jump[i] * 2) / 2))
        for i in np.flatnonzero(jump >= 1.4)
    ]


def _bokeh(symbol: str) -> pd.DataFrame:
    from bokeh_sampledata import stocks

    raw = pd.DataFrame(getattr(stocks, symbol))
    splits = find_splits(
        symbol, raw["close"].to_numpy(float), raw["adj_close"].to_numpy(float), raw["date"]
    )
    out = raw[["open", "high", "low", "close", "volume"]].astype("float64")
    dates = pd.to_datetime(raw["date"])
    for split in splits:
        before = (dates < split.date).to_numpy()
        out.loc[before, ["open", "high", "low", "close"]] /= split.ratio
        out.loc[before, "volume"] *= split.ratio
    out.insert(0, "timestamp", _us_close(raw["date"]))
    return out


def sample_splits() -> list[Split]:
    """The splits :func:`load_sample` undoes in the bokeh stock sets."""
    from bokeh_sampledata import stocks

    found: list[Split] = []
    for sym in ("AAPL", "GOOG", "IBM", "MSFT"):
        raw = pd.DataFrame(getattr(stocks, sym))
        found += find_splits(
            sym, raw["close"].to_numpy(float), raw["adj_close"].to_numpy(float), raw["date"]
        )
    return found


def _bokeh_loader(symbol: str) -> Callable[[], pd.DataFrame]:
    return lambda: _bokeh(symbol)


_LOADERS: dict[str, Callable[[], pd.DataFrame]] = {
    "EURUSD": _eurusd,
    "SP500": _arch("sp500"),
    "NASDAQ": _arch("nasdaq"),
    **{sym: _bokeh_loader(sym) for sym in ("AAPL", "GOOG", "IBM", "MSFT")},
}


def load_sample(symbols: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """Real bars per symbol (the Bars contract), each validated; see :data:`SOURCES`.

    Raises :class:`~augur.data.BarsValidationError` if a packaged set breaks a rule
    (nothing is dropped or clipped silently).
    """
    wanted = list(_LOADERS) if symbols is None else symbols
    unknown = [s for s in wanted if s not in _LOADERS]
    if unknown:
        raise KeyError(f"no sample data for {unknown}; available: {list(_LOADERS)}")
    out: dict[str, pd.DataFrame] = {}
    for sym in wanted:
        bars = _LOADERS[sym]()
        bars["symbol"] = sym
        out[sym] = validate_bars(bars[list(BAR_COLUMNS)], sym).bars
    return out


def write_sources(root: str | Path, symbols: list[str] | None = None) -> Path:
    """Record source and licence of the sample symbols in ``<root>/SOURCES.json`` (atomic).

    Entries for symbols not written now are kept, so the file describes the whole dataset.
    """
    import json
    import os
    import tempfile
    from dataclasses import asdict

    path = Path(root) / "SOURCES.json"
    entries: dict[str, dict[str, str]] = {}
    if path.is_file():
        entries = json.loads(path.read_text())
    for source in SOURCES:
        if symbols is None or source.symbol in symbols:
            entries[source.symbol] = asdict(source)
    fd, tmp = tempfile.mkstemp(prefix=".SOURCES.", dir=path.parent)
    with os.fdopen(fd, "w") as fh:
        json.dump(entries, fh, indent=2, sort_keys=True)
    os.replace(tmp, path)
    return path
