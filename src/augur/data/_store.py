"""The bars dataset: parquet, partitioned by symbol (``<root>/symbol=<S>/bars.parquet``).

Each symbol's file is replaced atomically (written next to its final name, then
``os.replace``), so a reader never sees half a file and a failed write leaves the
previous data untouched.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from augur.data._validate import (
    BAR_COLUMNS,
    VALUE_COLUMNS,
    BarsValidationError,
    ValidationReport,
    validate_bars,
)

_FILE = "bars.parquet"
_SCHEMA = pa.schema(
    [("timestamp", pa.timestamp("ns", tz="UTC"))] + [(c, pa.float64()) for c in VALUE_COLUMNS]
)


def _root(root: str | Path | None) -> Path:
    if root is not None:
        return Path(root)
    from augur.config import get_settings

    return get_settings().bars_dir


def _partition(root: Path, symbol: str) -> Path:
    return root / f"symbol={symbol}"


def write_bars(df: pd.DataFrame, root: str | Path | None = None) -> dict[str, ValidationReport]:
    """Validate bars (one or more symbols) and write each symbol's partition atomically.

    Every symbol is validated before anything is written, so a bad symbol leaves the
    dataset as it was. Existing symbols not in ``df`` are kept. Returns a report per symbol.
    """
    if "symbol" not in df.columns:
        raise ValueError("write_bars needs a 'symbol' column (one row per symbol and timestamp)")
    reports = {
        str(sym): validate_bars(part, str(sym)) for sym, part in df.groupby("symbol", sort=True)
    }
    target = _root(root)
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target))
    try:
        staged: dict[str, Path] = {}
        for sym, report in reports.items():
            table = pa.Table.from_pandas(
                report.bars.drop(columns="symbol"), schema=_SCHEMA, preserve_index=False
            )
            path = staging / f"{sym}.parquet"
            pq.write_table(table, path)
            staged[sym] = path
        # All files are complete: move each into place (an atomic rename per symbol).
        for sym, path in staged.items():
            part = _partition(target, sym)
            part.mkdir(exist_ok=True)
            os.replace(path, part / _FILE)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return reports


def list_symbols(root: str | Path | None = None) -> list[str]:
    """Symbols present in the bars dataset, sorted."""
    base = _root(root)
    if not base.is_dir():
        return []
    return sorted(
        p.name.split("=", 1)[1]
        for p in base.iterdir()
        if p.is_dir() and p.name.startswith("symbol=") and (p / _FILE).is_file()
    )


def read_bars(symbols: Iterable[str] | None = None, root: str | Path | None = None) -> pd.DataFrame:
    """Bars (the Bars contract) for ``symbols`` (all when None), sorted by symbol and time.

    Raises ``KeyError`` naming the symbol when one is not in the dataset.
    """
    base = _root(root)
    available = list_symbols(base)
    wanted = available if symbols is None else list(symbols)
    unknown = [s for s in wanted if s not in available]
    if unknown:
        raise KeyError(
            f"no bars for {unknown} under {base}; known symbols: {available}. "
            "Run `augur data sample` or `augur data import FILE --symbol S`."
        )
    frames = []
    for sym in wanted:
        frame = pq.read_table(_partition(base, sym) / _FILE).to_pandas()
        frame.insert(1, "symbol", sym)
        frames.append(frame)
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in BAR_COLUMNS}).astype(
            {"timestamp": "datetime64[ns, UTC]", "symbol": "object"}
        )
    return pd.concat(frames, ignore_index=True)[list(BAR_COLUMNS)]


def append_bar(symbol: str, bar: Mapping[str, Any], root: str | Path | None = None) -> pd.DataFrame:
    """Append one new bar to ``symbol``'s history (validated, atomic); return the new history.

    The bar needs ``timestamp``, ``open``, ``high``, ``low``, ``close``, ``volume`` and must
    be later than the symbol's last bar.
    """
    history = read_bars([symbol], root)
    new = pd.DataFrame([dict(bar)])
    new_report = validate_bars(new, symbol)  # the bar on its own: names the rule clearly
    last = history["timestamp"].iloc[-1]
    if new_report.start <= last:
        raise BarsValidationError(
            "increasing_time",
            "timestamp",
            [1],
            f"rule 'increasing_time' broken: the new bar's timestamp {new_report.start} is not "
            f"after {symbol}'s last bar {last}. Push bars in time order.",
        )
    combined = pd.concat([history, new_report.bars], ignore_index=True)
    write_bars(combined, root)
    return combined
