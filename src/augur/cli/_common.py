"""What every command module shares: the user-error exit, ``--param KEY=VALUE`` parsing and
the tables, which never cut a number."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

# Options more than one command takes, declared once.
HoldoutOption = Annotated[
    float,
    typer.Option(
        "--holdout",
        min=0.0,
        max=0.8,
        help="Share of the latest timestamps held out for the out-of-sample check.",
    ),
]

LogUrlOption = Annotated[
    str,
    typer.Option(
        "--log-url",
        help="SQLAlchemy URL of the prediction log (default: AUGUR_PREDICTION_LOG_URL, else "
        "SQLite at <AUGUR_HOME>/serving/predictions.db).",
    ),
]


def fail(message: str, code: int = 1) -> NoReturn:
    """Print a user error (no traceback) on stderr and exit non-zero."""
    Console(stderr=True).print(f"[red]error:[/red] {message}")
    raise typer.Exit(code=code)


def parse_params(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; values parsed as JSON when they can be (numbers, null, true)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            fail(
                f"--param {item!r}: use KEY=VALUE (a field of augur.models.EnsembleParams), "
                "e.g. --param rf_n_estimators=100"
            )
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


@dataclass(frozen=True)
class Column:
    """A table column: its header, and whether its cells are numbers."""

    header: str
    number: bool = False


#: The narrowest a text column gets (or its longest word, if shorter): narrower, names and
#: dates fold into fragments, and :func:`print_table` lists the rows field by field instead.
_TEXT_MIN_WIDTH = 10

#: A width no table reaches: a table's natural width is measured against it.
_UNBOUNDED = 10_000


def print_table(
    console: Console,
    title: str | None,
    columns: Sequence[str | Column],
    rows: Iterable[Sequence[str]],
    *,
    caption: str | None = None,
) -> None:
    """Print a table whose cells are never cut (rows of strings, rich markup allowed).

    On a terminal, text cells wrap to its width, folding a word longer than its column;
    number columns (``Column(..., number=True)``) are right-justified and never narrower
    than their widest cell, so a number never wraps (their headers wrap instead). A table
    too wide for the terminal even so is printed as one block of ``header: value`` lines
    per row. Anywhere else (a pipe, a file) the table gets the full width it needs, one line
    per row, whatever ``COLUMNS`` says: ``grep`` sees whole rows.
    """
    cols = [c if isinstance(c, Column) else Column(c) for c in columns]
    body = [list(row) for row in rows]
    if not console.is_terminal:
        table = _table(title, cols, body, caption, narrow_headers=False)
        needed = console.measure(table, options=console.options.update_width(_UNBOUNDED))
        if needed.maximum > console.width:
            console = Console(file=console.file, width=needed.maximum)
        console.print(table)
        return
    for narrow_headers in (False, True):
        table = _table(title, cols, body, caption, narrow_headers=narrow_headers)
        if _fits(console, table):
            console.print(table)
            return
    _print_long(console, title, cols, body, caption)


def _table(
    title: str | None,
    cols: list[Column],
    body: list[list[str]],
    caption: str | None,
    *,
    narrow_headers: bool,
) -> Table:
    """The rich table; with ``narrow_headers`` a number column is no wider than its widest
    cell or header word, so its header wraps and the text columns keep the room."""
    table = Table(title=title, caption=caption, title_justify="left", caption_justify="left")
    for i, col in enumerate(cols):
        cells = [Text.from_markup(row[i]) for row in body]
        header_word = _longest_word([col.header])
        if col.number:
            widest = max((cell.cell_len for cell in cells), default=1)
            table.add_column(
                col.header,
                justify="right",
                overflow="fold",
                min_width=widest,
                max_width=max(widest, header_word) if narrow_headers else None,
            )
        else:
            longest = max(header_word, _longest_word([cell.plain for cell in cells]))
            table.add_column(col.header, overflow="fold", min_width=min(longest, _TEXT_MIN_WIDTH))
    for row in body:
        table.add_row(*row)
    return table


def _longest_word(texts: Iterable[str]) -> int:
    return max((len(word) for text in texts for word in text.split()), default=1)


def _fits(console: Console, table: Table) -> bool:
    """Whether ``table`` renders within the console's width (rich would crop it otherwise)."""
    lines = Segment.split_lines(console.render(table, console.options))
    return all(Segment.get_line_length(line) <= console.width for line in lines)


def _print_long(
    console: Console,
    title: str | None,
    cols: list[Column],
    body: list[list[str]],
    caption: str | None,
) -> None:
    """One block per row: its first cell, then a ``header: value`` line per other cell."""
    if title:
        console.print(title)
    for first, *rest in body:
        console.print()
        console.print(Text.from_markup(first, style="bold"))
        for col, cell in zip(cols[1:], rest, strict=True):
            console.print(Text.assemble(f"  {col.header}: ", Text.from_markup(cell)))
    if caption:
        console.print(caption)


def train_with_progress(
    console: Console, bars: Any, params: Any, settings: Any, holdout: float
) -> Any:
    """``train_on_bars`` with a spinner saying which stage it is in (train and retrain)."""
    from augur.models._train import train_on_bars

    with console.status("training…") as status:
        return train_on_bars(
            bars,
            params=params,
            settings=settings,
            holdout_fraction=holdout,
            progress=lambda msg: status.update(f"training: {msg}…"),
        )
