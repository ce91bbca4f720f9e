"""Run every benchmark module (``benchmarks/bench_*.py``): ``python -m benchmarks [name ...]``.

Each module exposes ``run() -> list[Row]`` with a ``TITLE``; all figures in a table come
from the same run on the same machine, so ratios are comparable even when the machine is noisy.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time

from rich.console import Console

import benchmarks
from benchmarks._table import print_table


def main(argv: list[str]) -> int:
    console = Console()
    names = sorted(
        m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_")
    )
    wanted = [n for n in names if not argv or any(a in n for a in argv)]
    if not wanted:
        console.print(f"no benchmark matches {argv}; have: {', '.join(names)}")
        return 2
    for name in wanted:
        module = importlib.import_module(f"benchmarks.{name}")
        start = time.perf_counter()
        rows = module.run()
        print_table(f"{module.TITLE}  ({time.perf_counter() - start:.0f} s)", rows, console)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
