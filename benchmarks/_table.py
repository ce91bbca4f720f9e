"""The one table every benchmark prints: ours, the peer's (same run), the ratio."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console
from rich.table import Table


@dataclass(frozen=True)
class Row:
    """One comparison. ``higher_is_better`` says which way the ratio should point."""

    benchmark: str
    metric: str
    ours: float
    peer_name: str
    peer: float | None
    unit: str
    higher_is_better: bool = True
    goal: str = ""

    @property
    def ratio(self) -> float | None:
        """ours/peer when higher is better, peer/ours when lower is better: >1 means we win."""
        if self.peer is None or self.peer == 0 or self.ours == 0:
            return None
        return self.ours / self.peer if self.higher_is_better else self.peer / self.ours


def _fmt(v: float | None) -> str:
    if v is None:
        return "—"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


def print_table(title: str, rows: list[Row], console: Console | None = None) -> None:
    """Print rows as a rich table; the ratio column reads 'x better than the peer'."""
    console = console or Console()
    table = Table(title=title, show_lines=False)
    for col in (
        "benchmark",
        "metric",
        "ours",
        "peer",
        "peer figure",
        "unit",
        "ratio (>1 = ours better)",
        "goal",
    ):
        table.add_column(col)
    for r in rows:
        ratio = r.ratio
        table.add_row(
            r.benchmark,
            r.metric,
            _fmt(r.ours),
            r.peer_name,
            _fmt(r.peer),
            r.unit,
            "—" if ratio is None else f"{ratio:.2f}x",
            r.goal,
        )
    console.print(table)
