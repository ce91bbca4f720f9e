"""The CLI's tables never cut a number, on an 80-column terminal or piped."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from augur.cli._common import Column, print_table

NUMBERS = ["-0.012345", "1,234,567", "0.5234", "-10.45", "12.34%", "+3.2 bp", "inf", "987.654"]


#: Long text, long headers and eight number columns: far wider than 80 characters.
WIDE_COLUMNS = ["strategy", "notes"] + [
    Column(f"a rather long header number {i}", number=True) for i in range(len(NUMBERS))
]
WIDE_ROWS = [
    [f"ensemble+confidence-gate-variant-{r}", "a long note " * 6, *NUMBERS] for r in range(3)
]


def _render(*, terminal: bool, width: int = 80) -> str:
    out = io.StringIO()
    console = Console(width=width, file=out, force_terminal=terminal, color_system=None)
    print_table(console, "a wide table", WIDE_COLUMNS, WIDE_ROWS)
    return out.getvalue()


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "piped"])
def test_a_wide_table_at_80_columns_keeps_every_number_whole(terminal: bool) -> None:
    text = _render(terminal=terminal)
    assert "…" not in text
    for number in NUMBERS:
        assert text.count(number) == 3, (number, text)


def test_piped_rows_stay_on_one_line() -> None:
    lines = [line for line in _render(terminal=False).splitlines() if "variant-" in line]
    assert len(lines) == 3
    assert all(all(n in line for n in NUMBERS) for line in lines)


def test_a_terminal_folds_text_and_keeps_numbers_in_the_table() -> None:
    """A table whose numbers fit: the text columns wrap, the numbers stay in their cells."""
    out = io.StringIO()
    print_table(
        Console(width=40, file=out, force_terminal=True, color_system=None),
        "fits",
        ["model", Column("held-out accuracy", number=True), Column("log loss", number=True)],
        [["majority-class-baseline-with-a-long-name", "0.5234", "0.6931"]],
    )
    text = out.getvalue()
    assert "…" not in text and "0.5234" in text and "0.6931" in text
    assert all(len(line) <= 40 for line in text.splitlines())
    assert "┃" in text  # still a table, text folded over several lines


def test_a_terminal_too_narrow_for_the_numbers_gets_one_field_per_line() -> None:
    text = _render(terminal=True, width=50)
    assert "…" not in text
    assert all(len(line) <= 50 for line in text.splitlines())
    assert "  a rather long header number 0: -0.012345" in text
