"""The chaos table: one row per scenario, numbers never cut (``print_table``)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console

from augur.cli._common import Column, print_table
from tests.chaos._measure import Result, ms, seconds_text

COLUMNS = [
    Column("scenario"),
    Column("load held"),
    Column("errors by status"),
    Column("p99 during (ms)", number=True),
    Column("p99 after (ms)", number=True),
    Column("recovered (s)", number=True),
    Column("predictions logged", number=True),
    Column("outcomes joined", number=True),
    Column("result"),
]

CAPTION = (
    "p99 during/after: soak, its first and last window; a fault, from the fault to its end "
    "and after. recovered: seconds from the fault's end until every request succeeded "
    "(worker: until it was replaced; routing: until the valid table served). "
    "predictions/outcomes: rows in the prediction log (PostgreSQL; disk: SQLite) / "
    "requests answered 200. "
    "conn: connection dropped; timeout: the client gave up (5 s)."
)


def rows(results: Sequence[Result]) -> list[list[str]]:
    return [
        [
            r.scenario,
            r.load,
            r.errors,
            ms(r.p99_during),
            ms(r.p99_after),
            seconds_text(r.recovery),
            r.predictions or "–",
            r.outcomes or "–",
            ("skipped: " + r.skipped if r.skipped else "pass")
            if r.passed
            else "FAIL: " + "; ".join(r.failed),
        ]
        for r in results
    ]


def print_results(results: Sequence[Result], title: str, console: Console | None = None) -> None:
    print_table(console or Console(), title, COLUMNS, rows(results), caption=CAPTION)


def markdown(results: Sequence[Result]) -> str:
    """The table as Markdown (for docs/reliability.md)."""
    head = [c.header for c in COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in rows(results)]
    return "\n".join(lines) + "\n"
