"""``augur data …``: real sample bars and the import of a user's bars (validated)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from augur.cli._common import Column, print_table

if TYPE_CHECKING:
    from augur.data import ValidationReport

app = typer.Typer(
    help="Market bars: write the real sample data, or import your own CSV/Parquet (validated): "
    "one file, or a directory of one file per symbol.",
    no_args_is_help=True,
)


def _out() -> Console:
    # Made per call (not at import) so COLUMNS and the terminal are read when the command runs.
    return Console()


def _err() -> Console:
    return Console(stderr=True)


def _span(td: object) -> str:
    """A compact duration: '1d', '1h', '2d2h'."""
    import pandas as pd

    if td is None:
        return "-"
    c = pd.Timedelta(td).components
    parts = [
        f"{c.days}d" if c.days else "",
        f"{c.hours}h" if c.hours else "",
        f"{c.minutes}m" if c.minutes else "",
    ]
    return "".join(parts) or "0"


def _print_reports(
    title: str, reports: dict[str, ValidationReport], licences: dict[str, str] | None = None
) -> None:
    """One row per symbol written: size, span, bar interval, gaps (and licence, if known)."""
    print_table(
        _out(),
        title,
        [
            "symbol",
            Column("rows", number=True),
            "first",
            "last",
            "interval",
            Column("gaps (largest)", number=True),
            *(["licence"] if licences else []),
        ],
        [
            [
                sym,
                f"{rep.rows:,}",
                f"{rep.start:%Y-%m-%d %H:%M}",
                f"{rep.end:%Y-%m-%d %H:%M}",
                _span(rep.bar_interval),
                f"{rep.gaps} ({_span(rep.largest_gap)})" if rep.gaps else "0",
                *([licences[sym]] if licences else []),
            ]
            for sym, rep in reports.items()
        ],
    )


@app.command("sample")
def sample(
    symbols: Annotated[
        list[str] | None,
        typer.Option("--symbol", "-s", help="Only these sample symbols (repeatable); default all."),
    ] = None,
) -> None:
    """Write real OHLCV bars (EURUSD 1h; SP500, NASDAQ, AAPL, GOOG, IBM, MSFT daily) to the
    bars dataset under AUGUR_HOME. Sources and licences: `augur data sources`."""
    import pandas as pd

    from augur.config import get_settings
    from augur.data import SOURCES, load_sample, sample_splits, write_bars, write_sources

    try:
        with _out().status("loading sample bars from the installed packages…"):
            frames = load_sample(symbols)
            reports = write_bars(pd.concat(frames.values(), ignore_index=True))
            write_sources(get_settings().bars_dir, list(reports))
    except KeyError as exc:
        _err().print(f"[red]error:[/red] {exc.args[0]}")
        raise typer.Exit(2) from None
    licences = {s.symbol: s.licence.split(";")[0] for s in SOURCES}
    _print_reports(f"sample bars → {get_settings().bars_dir}", reports, licences)
    splits = [s for s in sample_splits() if s.symbol in reports]
    if splits:
        undone = ", ".join(f"{s.symbol} {s.date.date()} {s.ratio:g}:1" for s in splits)
        _out().print(f"stock splits undone (scaled, documented in `augur data sources`): {undone}")


@app.command("sources")
def sources() -> None:
    """Show where each sample symbol comes from, its licence and what was done to it."""
    from augur.data import SOURCES

    print_table(
        _out(),
        "sample data sources",
        ["symbol", "freq", "package", "loader", "licence", "notes"],
        [[s.symbol, s.frequency, s.package, s.loader, s.licence, s.notes] for s in SOURCES],
    )


@app.command("import")
def import_bars(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV or Parquet with timestamp (or time/date), open, high, low, close, volume."
        ),
    ],
    symbol: Annotated[str, typer.Option("--symbol", "-s", help="Symbol the bars belong to.")],
) -> None:
    """Validate a file of bars and add it to the bars dataset (replacing that symbol's bars).

    Nothing is written unless every rule passes. Naive timestamps are taken as UTC.
    Gaps (weekends, holidays) are allowed and reported.
    """
    from augur.config import get_settings
    from augur.data import BarsValidationError, read_bars_file, validate_bars, write_bars

    try:
        raw = read_bars_file(file)
        report = validate_bars(raw, symbol)
        write_bars(report.bars)
    except BarsValidationError as exc:
        _err().print(f"[red]invalid bars in {file}:[/red] {exc}")
        _err().print("nothing was written.")
        raise typer.Exit(1) from None
    except (FileNotFoundError, ValueError) as exc:
        _err().print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    _out().print(f"imported {report.summary()} → {get_settings().bars_dir}")


def _with_newer_bars(bars: Any) -> Any:
    """A symbol's file bars followed by the dataset's bars after the file's last one."""
    import pandas as pd

    from augur.data import list_symbols, read_bars

    symbol = str(bars["symbol"].iloc[0])
    if symbol not in list_symbols():
        return bars
    kept = read_bars([symbol])
    newer = kept[kept["timestamp"] > bars["timestamp"].max()]
    return pd.concat([bars, newer[bars.columns]], ignore_index=True) if len(newer) else bars


# What `import-dir` reads: the suffixes read_bars_file knows.
_BAR_SUFFIXES = (".csv", ".txt", ".parquet", ".pq")


@app.command("import-dir")
def import_dir(
    directory: Annotated[
        Path,
        typer.Argument(
            help="Directory with one file per symbol, named after it: EURUSD.csv, AAPL.parquet…"
        ),
    ],
    keep_newer: Annotated[
        bool,
        typer.Option(
            "--keep-newer",
            help="Keep the bars the dataset already has after each file's last bar (those "
            "a stream consumer appended since the files were written).",
        ),
    ] = False,
) -> None:
    """Validate every bar file in a directory and add them to the bars dataset.

    Each file's name without its suffix is the symbol (`EURUSD.csv` → EURUSD); its bars
    replace that symbol's (with --keep-newer, all but those after the file's last bar).
    Nothing is written unless every file passes every rule, so a scheduled job fed by a
    drop directory either imports all of it or changes nothing.
    """
    import pandas as pd

    from augur.config import get_settings
    from augur.data import BarsValidationError, read_bars_file, validate_bars, write_bars

    if not directory.is_dir():
        _err().print(f"[red]error:[/red] {directory} is not a directory")
        raise typer.Exit(2)
    files = sorted(
        p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in _BAR_SUFFIXES
    )
    by_symbol: dict[str, list[Path]] = {}
    for path in files:
        by_symbol.setdefault(path.stem, []).append(path)
    clashes = {sym: paths for sym, paths in by_symbol.items() if len(paths) > 1}
    if not files or clashes:
        problem = (
            f"no bar files ({', '.join(_BAR_SUFFIXES)}) in {directory}"
            if not files
            else "more than one file for "
            + "; ".join(f"{s}: {', '.join(p.name for p in ps)}" for s, ps in clashes.items())
        )
        _err().print(f"[red]error:[/red] {problem}")
        _err().print("nothing was written.")
        raise typer.Exit(2)
    reports: dict[str, ValidationReport] = {}
    for symbol, (path,) in by_symbol.items():
        try:
            reports[symbol] = validate_bars(read_bars_file(path), symbol)
        except BarsValidationError as exc:
            _err().print(f"[red]invalid bars in {path}:[/red] {exc}")
            _err().print("nothing was written.")
            raise typer.Exit(1) from None
        except ValueError as exc:
            _err().print(f"[red]error:[/red] {path}: {exc}")
            _err().print("nothing was written.")
            raise typer.Exit(2) from None
    frames = [r.bars for r in reports.values()]
    if keep_newer:
        frames = [_with_newer_bars(bars) for bars in frames]
    reports = write_bars(pd.concat(frames, ignore_index=True))
    _print_reports(f"{directory} → {get_settings().bars_dir}", reports)
