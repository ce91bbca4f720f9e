"""``python -m tests.chaos [--short] [--rate N] [--soak-seconds S] [--markdown FILE]
[SCENARIO ...]``: start the stack once, run the scenarios in order (all by default),
print the table; exit 1 when a scenario failed."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import tempfile
import time
import traceback
from pathlib import Path

from tests.chaos._measure import Result
from tests.chaos._report import markdown, print_results
from tests.chaos._scenarios import FULL, SCENARIOS, SHORT
from tests.chaos._stack import running_stack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                        help=f"any of {', '.join(SCENARIOS)} (default: all, in that order)")  # fmt: skip
    parser.add_argument("--short", action="store_true", help="the make-test lengths")
    parser.add_argument("--rate", type=float, help="requests/s of every load")
    parser.add_argument("--soak-seconds", type=float, help="the soak's length")
    parser.add_argument("--markdown", type=Path, help="also write the table here (Markdown)")
    args = parser.parse_args(argv)
    scale = SHORT if args.short else FULL
    if args.rate:
        scale = dataclasses.replace(scale, rate=args.rate)
    if args.soak_seconds:
        scale = dataclasses.replace(scale, soak_seconds=args.soak_seconds)
    names = args.scenarios or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {unknown[0]!r}: choose from {', '.join(SCENARIOS)}")
    logging.basicConfig(level=logging.WARNING)
    results: list[Result] = []
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="augur-chaos-") as tmp:
        work = Path(tmp)
        print("starting Redis, PostgreSQL and augur serve (two workers) ...", flush=True)
        with running_stack(work) as stack:
            print(f"ready in {time.monotonic() - t0:.0f} s at {stack.url}", flush=True)
            for name in names:
                started = time.monotonic()
                print(f"scenario {name} ...", flush=True)
                try:
                    result = SCENARIOS[name](stack, scale, work)
                except Exception as exc:
                    traceback.print_exc()
                    result = Result(name, failed=[f"{type(exc).__name__}: {exc}"])
                results.append(result)
                verdict = "pass" if result.passed else "FAIL"
                if result.skipped:
                    verdict = f"skipped ({result.skipped})"
                print(f"  {verdict} in {time.monotonic() - started:.0f} s", flush=True)
                for note in result.notes + result.failed:
                    print(f"  - {note}", flush=True)
    title = f"make chaos{' (short)' if args.short else ''}: {time.monotonic() - t0:.0f} s"
    print_results(results, title)
    if args.markdown:
        args.markdown.write_text(markdown(results))
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
