"""Run every benchmark module (``benchmarks/bench_*.py``): ``python -m benchmarks [name ...]``.

Each module exposes ``run() -> list[Row]`` with a ``TITLE``; all figures in a table come
from the same run on the same machine, so ratios are comparable even when the machine is noisy.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import pkgutil
import sys
import time
from pathlib import Path

from rich.console import Console

import benchmarks
from benchmarks._table import print_table


def main(argv: list[str]) -> int:
    # Piped into a log (make bench | tee), rich would wrap the table at 80 columns.
    console = Console() if sys.stdout.isatty() else Console(width=200)
    out_dir = Path(os.environ.get("AUGUR_HOME", ".augur")) / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
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
        # The same rows as JSON, for notes and comparisons between runs.
        (out_dir / f"{name}.json").write_text(
            json.dumps([{**dataclasses.asdict(r), "ratio": r.ratio} for r in rows], indent=1)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
