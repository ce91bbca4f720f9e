"""Market bars: real sample data, import + validation, and the parquet bars dataset.

Public names: :func:`load_sample` and :data:`SOURCES` (real OHLCV bars from permissively
licensed packages), :func:`validate_bars` / :class:`ValidationReport` /
:class:`BarsValidationError` (the Bars contract's rules), :func:`read_bars_file` (a user's
CSV/Parquet), :func:`write_bars` / :func:`read_bars` / :func:`append_bar` /
:func:`list_symbols` (the dataset under ``settings.bars_dir``).
"""

from augur.data._sample import SOURCES, Source, Split, load_sample, sample_splits, write_sources
from augur.data._store import append_bar, list_symbols, read_bars, write_bars
from augur.data._validate import (
    BAR_COLUMNS,
    BarsValidationError,
    ValidationReport,
    read_bars_file,
    validate_bars,
)

__all__ = [
    "BAR_COLUMNS",
    "SOURCES",
    "BarsValidationError",
    "Source",
    "Split",
    "ValidationReport",
    "append_bar",
    "list_symbols",
    "load_sample",
    "read_bars",
    "read_bars_file",
    "sample_splits",
    "validate_bars",
    "write_bars",
    "write_sources",
]
