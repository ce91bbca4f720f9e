"""Mutation testing of the modules that decide money, each against its own unit tests.

``make mutation`` runs this (it is not part of ``make test``). For every module below it
lays out a scratch copy of ``src/`` and ``tests/`` under ``.augur/mutation/work/<module>``,
runs ``mutmut run`` there with only that module's files mutated and only that module's
unit tests selected, then reads mutmut's verdicts and prints one table::

    module | mutants | killed | timeout | survived | no tests | equivalent | score % | raw % | minutes

``score = (killed + timeout) / (mutants - equivalent)``; ``raw`` is the same without
leaving the equivalent mutants out. A mutant that makes its tests hang is caught (mutmut
stops it on a CPU-time limit), so is one whose test process dies of a signal (a numba
kernel aborting on a mutated index); a mutant no selected test executes ("no tests")
counts as not caught. mutmut runs, per mutant, only the tests that executed the mutated
function while it collected its statistics: a fixture computed once for a whole module
credits only the first test that used it, so the engines' fixtures are per test. Surviving mutants are listed with file:line and their
diff. A survivor that cannot change behaviour is listed in ``scripts/mutation_equivalent.txt``
as ``<mutant name> <diff fingerprint> <reason>``; the driver leaves it out of the score and
flags any entry whose mutant changed (another fingerprint), was killed, or no longer exists.

The table and the survivors go to ``.augur/mutation/report.md``; each module's verdicts
are kept in ``.augur/mutation/results/<module>.json``, so re-running one module
(``python scripts/mutation.py decision``) refreshes its row and keeps the others.

Hypothesis runs derandomised and without its example database, so a rerun gives the same
verdicts (a database would let one mutant's failing example kill the next).

What is not mutated: the numba kernels (``features/_kernels.py``, ``backtest/_kernels.py``)
— mutmut never mutates decorated functions, and every kernel is ``@njit``; the same
code's pure-Python path is what ``NUMBA_DISABLE_JIT=1`` would run, but that does not
make the decorator go away, so it would not help. The scalar rules the kernels compile
(``decision/_sizing.py``) are mutated as plain Python under the decision module.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = Path(os.environ.get("AUGUR_HOME", ROOT / ".augur")) / "mutation"
EQUIVALENT_FILE = ROOT / "scripts" / "mutation_equivalent.txt"
MUTMUT = Path(sys.executable).with_name("mutmut")


@dataclass(frozen=True)
class Module:
    """One mutation pass: the files mutated and the unit tests that judge them."""

    name: str
    files: tuple[str, ...]
    tests: tuple[str, ...]
    # mutmut name globs when only part of a file is in scope (default: all its mutants)
    only: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    note: str = ""


MODULES: tuple[Module, ...] = (
    Module(
        "decision",
        (
            "src/augur/decision/_engine.py",
            "src/augur/decision/_step.py",
            "src/augur/decision/_sizing.py",
            "src/augur/decision/_config.py",
        ),
        ("tests/unit/decision",),
    ),
    Module(
        "walkforward",
        ("src/augur/backtest/walkforward.py",),
        ("tests/unit/backtest/test_walkforward.py",),
    ),
    Module(
        "metrics",
        ("src/augur/backtest/metrics.py",),
        ("tests/unit/backtest/test_metrics.py",),
    ),
    Module(
        "features",
        ("src/augur/features/_engine.py", "src/augur/features/labels.py"),
        (
            "tests/unit/features/test_feature_engine.py",
            "tests/unit/features/test_feature_labels.py",
            "tests/unit/features/test_no_lookahead.py",
        ),
        note="the numba kernels (_kernels.py) are @njit: mutmut does not mutate decorated "
        "functions, so they are judged by the pandas reference tests, not here",
    ),
    Module(
        "weights",
        ("src/augur/models/_weights.py",),
        ("tests/unit/models/test_weights.py",),
    ),
    Module(
        "routing",
        ("src/augur/serving/_routing.py",),
        ("tests/unit/serving/test_routing.py",),
        only=("augur.serving._routing.x_bucket_of__mutmut_*", "augur.serving._routing.xǁRouterǁ*"),
        note="the routing split only: bucket_of and Router",
    ),
)

# Hypothesis for mutation runs: same examples every run, no example database.
_HYPOTHESIS_PLUGIN = """\
from hypothesis import settings

settings.register_profile("augur-mutation", derandomize=True, database=None, deadline=None)
settings.load_profile("augur-mutation")
"""

_STATUS = {  # mutmut's exit codes -> our columns
    1: "killed",
    3: "killed",  # pytest internal error
    0: "survived",
    5: "no tests",
    33: "no tests",
    36: "timeout",
    -24: "timeout",  # SIGXCPU: mutmut's CPU-time limit
    24: "timeout",
    152: "timeout",
    255: "timeout",
}


def status_of(code: int | None) -> str:
    """Our verdict for a mutmut exit code; a test process killed by a signal (a crash,
    e.g. a numba kernel aborting on a mutated index) failed, so the mutant is killed."""
    if code in _STATUS:
        return _STATUS[code]
    if code is not None and code < 0:
        return "killed"
    return "other"


# --- running ----------------------------------------------------------------------------


def _ignore(_dir: str, names: list[str]) -> set[str]:
    return {n for n in names if n in ("__pycache__", ".hypothesis", ".pytest_cache")}


def _workspace(module: Module) -> Path:
    work = OUT / "work" / module.name
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    shutil.copytree(ROOT / "src", work / "src", ignore=_ignore)
    shutil.copytree(ROOT / "tests", work / "tests", ignore=_ignore)
    shutil.copy2(ROOT / "pyproject.toml", work / "pyproject.toml")  # pytest's settings
    # (not in `work` itself: mutmut drops the working directory from sys.path)
    (work / "plugins").mkdir()
    (work / "plugins" / "augur_mutation_hypothesis.py").write_text(_HYPOTHESIS_PLUGIN)
    lines = ["[mutmut]", "source_paths = src/augur", "only_mutate ="]
    lines += [f"    {f}" for f in module.files]
    lines += ["pytest_add_cli_args_test_selection ="]
    lines += [f"    {t}" for t in module.tests]
    lines += [
        "pytest_add_cli_args =",
        "    -p",
        "    no:cacheprovider",
        "    -p",
        "    augur_mutation_hypothesis",
        "use_git_change_detection = false",
        "",
    ]
    (work / "setup.cfg").write_text("\n".join(lines))
    return work


def run_module(module: Module, max_children: int) -> dict:
    """Run mutmut for one module; returns its verdicts (also saved as JSON)."""
    work = _workspace(module)
    log = OUT / "logs" / f"{module.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **module.env}
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(work / "plugins"), env.get("PYTHONPATH", "")])
    )
    cmd = [str(MUTMUT), "run", "--max-children", str(max_children), *module.only]
    print(f"[{module.name}] mutmut run over {', '.join(module.files)}", flush=True)
    print(f"[{module.name}]   tests: {' '.join(module.tests)}; log: {log}", flush=True)
    start = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            code = proc.wait()
        except BaseException:
            os.killpg(proc.pid, signal.SIGTERM)  # mutmut and its workers: nothing left behind
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
            raise
    minutes = (time.monotonic() - start) / 60
    if code != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"[{module.name}] mutmut exited with {code}; end of {log}:\n{tail}")
    result = collect(module, work)
    result["minutes"] = minutes
    result["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    path = OUT / "results" / f"{module.name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print(f"[{module.name}] done in {minutes:.1f} min", flush=True)
    return result


# --- reading mutmut's verdicts -----------------------------------------------------------


def _selected(name: str, only: tuple[str, ...]) -> bool:
    from fnmatch import fnmatchcase

    return not only or any(fnmatchcase(name, pattern) for pattern in only)


def fingerprint(diff: str) -> str:
    """Short hash of a mutant's change (its -/+ lines), to key equivalence entries."""
    body = [
        line.strip()
        for line in diff.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    return hashlib.sha1("\n".join(body).encode()).hexdigest()[:10]


def _file_line(diff: str, source: list[str], function: str) -> int | None:
    """Line in the source file of the first line the mutant changes (or removes)."""
    import ast

    defs = [
        n
        for n in ast.walk(ast.parse("".join(source)))
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == function
    ]
    if not defs:
        return None
    counter, changed = 0, None  # counter: line number within the diffed function text
    for line in diff.splitlines():
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("@@"):
            counter = int(line.split()[1].split(",")[0].lstrip("-"))
        elif line.startswith(("-", "+")):
            changed = line[1:] if line.startswith("-") else None
            break
        else:
            counter += 1
    best = None
    for node in defs:  # the function text starts at its first decorator, else its def
        start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        guess = start + counter - 1
        if changed is None or source[guess - 1].strip() == changed.strip():
            return guess
        span = range(start, (node.end_lineno or start) + 1)
        hits = [i for i in span if source[i - 1].strip() == changed.strip()]
        if hits:
            best = min(hits, key=lambda i: abs(i - guess))
    return best


def collect(module: Module, work: Path) -> dict:
    """Every selected mutant's verdict; survivors (and untested ones) with line and diff."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.utils.format_utils import orig_function_and_class_names_from_key

    counts = {"mutants": 0, "killed": 0, "timeout": 0, "survived": 0, "no tests": 0, "other": 0}
    survivors = []
    here = Path.cwd()
    os.chdir(work)
    try:
        for rel in module.files:
            meta = json.loads((work / "mutants" / f"{rel}.meta").read_text())
            source = (work / rel).read_text().splitlines(keepends=True)
            for name, code in meta["exit_code_by_key"].items():
                if not _selected(name, module.only):
                    continue
                status = status_of(code)
                counts["mutants"] += 1
                counts[status] += 1
                if status in ("killed", "timeout"):
                    continue
                diff = get_diff_for_mutant(name, path=rel)
                function, _cls = orig_function_and_class_names_from_key(name)
                line = _file_line(diff, source, function.rpartition(".")[2])
                survivors.append(
                    {
                        "name": name,
                        "status": status if status != "other" else f"exit code {code}",
                        "file": rel,
                        "line": line,
                        "fingerprint": fingerprint(diff),
                        "diff": diff,
                    }
                )
    finally:
        os.chdir(here)
    return {
        "module": module.name,
        "files": list(module.files),
        "tests": list(module.tests),
        "counts": counts,
        "survivors": survivors,
        "note": module.note,
    }


# --- equivalents, table, report ---------------------------------------------------------


def load_equivalents() -> dict[str, tuple[str, str]]:
    """``{mutant name: (fingerprint, reason)}`` from scripts/mutation_equivalent.txt."""
    entries: dict[str, tuple[str, str]] = {}
    if not EQUIVALENT_FILE.exists():
        return entries
    for number, raw in enumerate(EQUIVALENT_FILE.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 2)
        if len(parts) < 3:
            raise SystemExit(
                f"{EQUIVALENT_FILE}:{number}: expected '<mutant> <fingerprint> <reason>'"
            )
        entries[parts[0]] = (parts[1], parts[2])
    return entries


def score(result: dict, equivalents: dict[str, tuple[str, str]]) -> dict:
    """Counts with the equivalent survivors set apart, the score, and what is flagged."""
    c = result["counts"]
    equivalent, survived, flagged = [], [], []
    for s in result["survivors"]:
        entry = equivalents.get(s["name"])
        if entry and entry[0] == s["fingerprint"] and s["status"] == "survived":
            equivalent.append({**s, "reason": entry[1]})
        else:
            if entry:
                flagged.append(
                    f"{s['name']}: listed as equivalent with fingerprint {entry[0]}, "
                    f"but the mutant now has {s['fingerprint']} ({s['status']}): re-check it"
                )
            survived.append(s)
    names = {s["name"] for s in result["survivors"]}
    module_prefixes = tuple(
        f.removeprefix("src/").removesuffix(".py").replace("/", ".") + "." for f in result["files"]
    )
    for name, (fp, _reason) in equivalents.items():
        if name.startswith(module_prefixes) and name not in names:
            flagged.append(f"{name} ({fp}): listed as equivalent but killed or gone: remove it")
    tested = c["mutants"] - len(equivalent)
    caught = c["killed"] + c["timeout"]
    return {
        "mutants": c["mutants"],
        "killed": c["killed"],
        "timeout": c["timeout"],
        "survived": sum(1 for s in survived if s["status"] == "survived"),
        "no tests": c["no tests"],
        "other": c["other"],
        "equivalent": len(equivalent),
        "score": 100.0 * caught / tested if tested else 100.0,
        "survivors": survived,
        "equivalents": equivalent,
        "flagged": flagged,
    }


COLUMNS = (
    "module",
    "mutants",
    "killed",
    "timeout",
    "survived",
    "no tests",
    "equivalent",
    "score %",
    "raw %",
    "minutes",
)


def table(rows: list[list[str]]) -> str:
    """A markdown table whose columns are as wide as their widest cell (never cut)."""
    widths = [max(len(r[i]) for r in [list(COLUMNS), *rows]) for i in range(len(COLUMNS))]

    def fmt(cells: list[str]) -> str:
        return (
            "| "
            + " | ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            )
            + " |"
        )

    rule = (
        "|"
        + "|".join("-" * (w + 2) if i == 0 else "-" * (w + 1) + ":" for i, w in enumerate(widths))
        + "|"
    )
    return "\n".join([fmt(list(COLUMNS)), rule, *(fmt(r) for r in rows)])


def report(results: list[dict], fail_under: float | None) -> tuple[str, bool]:
    equivalents = load_equivalents()
    rows, sections, ok = [], [], True
    total = {"mutants": 0, "killed": 0, "timeout": 0, "survived": 0, "no tests": 0, "equivalent": 0}
    minutes = 0.0
    for result in results:
        s = score(result, equivalents)
        minutes += result["minutes"]
        for k in total:
            total[k] += s[k]
        if fail_under is not None and s["score"] < fail_under:
            ok = False
        rows.append(
            [
                result["module"],
                *(
                    str(s[k])
                    for k in ("mutants", "killed", "timeout", "survived", "no tests", "equivalent")
                ),
                f"{s['score']:.1f}",
                f"{100.0 * (s['killed'] + s['timeout']) / s['mutants'] if s['mutants'] else 100.0:.1f}",
                f"{result['minutes']:.1f}",
            ]
        )
        lines = [f"### {result['module']}", ""]
        lines.append(f"Mutated: {', '.join(result['files'])}; tests: {' '.join(result['tests'])}.")
        if result.get("note"):
            lines.append(f"Note: {result['note']}.")
        lines.append(f"Run finished {result['finished']}.")
        lines.append("")
        for flag in s["flagged"]:
            lines.append(f"- FLAGGED {flag}")
        if s["survivors"]:
            lines += ["Not caught:", ""]
            for m in s["survivors"]:
                lines += [
                    f"- `{m['name']}` ({m['status']}) {m['file']}:{m['line']} fingerprint {m['fingerprint']}",
                    "",
                    "```diff",
                    m["diff"],
                    "```",
                    "",
                ]
        if s["equivalents"]:
            lines += ["Equivalent (left out of the score):", ""]
            for m in s["equivalents"]:
                lines.append(f"- `{m['name']}` {m['file']}:{m['line']}: {m['reason']}")
            lines.append("")
        sections.append("\n".join(lines))
    tested = total["mutants"] - total["equivalent"]
    rows.append(
        [
            "total",
            *(
                str(total[k])
                for k in ("mutants", "killed", "timeout", "survived", "no tests", "equivalent")
            ),
            f"{100.0 * (total['killed'] + total['timeout']) / tested if tested else 100.0:.1f}",
            f"{100.0 * (total['killed'] + total['timeout']) / total['mutants'] if total['mutants'] else 100.0:.1f}",
            f"{minutes:.1f}",
        ]
    )
    head = (
        "score = (killed + timeout) / (mutants - equivalent); raw = (killed + timeout) / "
        "mutants; 'no tests' = no selected test runs that code (counted as not caught); a "
        "test process killed by a signal counts as killed"
    )
    text = "\n".join(
        [
            "# Mutation testing (mutmut)",
            "",
            table(rows),
            "",
            head,
            "",
            *sections,
        ]
    )
    return text, ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    names = [m.name for m in MODULES]
    parser.add_argument(
        "modules", nargs="*", metavar="MODULE", help=f"default all: {', '.join(names)}"
    )
    parser.add_argument("--max-children", type=int, default=2, help="parallel mutants (default 2)")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="rebuild the report from the saved results without running mutmut",
    )
    parser.add_argument(
        "--fail-under",
        type=float,
        default=None,
        help="exit 1 when a module's score is below this percentage",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch workspaces")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.modules) - set(names))
    if unknown:
        parser.error(f"unknown module(s) {unknown}; choose from {names}")
    chosen = [m for m in MODULES if not args.modules or m.name in args.modules]

    started = time.monotonic()
    if not args.report_only:
        if not MUTMUT.exists():
            raise SystemExit(f"{MUTMUT} not found: install the dev extras (make setup)")
        for module in chosen:
            run_module(module, args.max_children)
            if not args.keep:
                shutil.rmtree(OUT / "work" / module.name, ignore_errors=True)

    results = []
    for module in MODULES:  # every module with saved results, in the fixed order
        path = OUT / "results" / f"{module.name}.json"
        if path.exists():
            results.append(json.loads(path.read_text()))
    if not results:
        raise SystemExit("no results yet: run without --report-only")
    text, ok = report(results, args.fail_under)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head` ends the listing quietly
    (OUT / "report.md").write_text(text + "\n")
    print()
    print(text.split("\n### ")[0].rstrip())
    for result in results:  # the survivors on the terminal too
        s = score(result, load_equivalents())
        for m in s["survivors"]:
            print(f"  {result['module']}: {m['status']} {m['file']}:{m['line']} {m['name']}")
            print("\n".join(f"      {line}" for line in m["diff"].splitlines()[2:]))
        for flag in s["flagged"]:
            print(f"  {result['module']}: FLAGGED {flag}")
    print(f"\nreport: {OUT / 'report.md'}")
    if not args.report_only:
        print(f"total time: {(time.monotonic() - started) / 60:.1f} min")
    if not ok:
        print(f"a module scored below {args.fail_under}%", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
