"""What a scenario measures and how it reports: a load run with faults at set times, the
numbers read off its records (errors by status, p99 in a window, time to recover), the
prediction log checked against the answers, worker RSS and open fds sampled meanwhile,
and the checks that fail a scenario."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from tests.chaos import _load
from tests.chaos._load import CONNECTION_ERROR, DECIDE, OUTCOME, TIMED_OUT, Plan

KIND, INDEX, SENT, LATENCY, STATUS, RETRY_AFTER = range(6)


@dataclass
class Run:
    """A finished load: its plan, its records and the wall times of what the runner did."""

    plan: Plan
    records: np.ndarray
    events: dict[str, float]
    samples: list[dict[str, float]] = field(default_factory=list)

    @property
    def decides(self) -> np.ndarray:
        return self.records[self.records[:, KIND] == DECIDE]

    @property
    def outcomes(self) -> np.ndarray:
        return self.records[self.records[:, KIND] == OUTCOME]

    def at(self, seconds: float) -> float:
        """The wall time ``seconds`` after the load's start."""
        return self.plan.start + seconds

    def window(self, start: float, end: float) -> np.ndarray:
        """Decide requests sent in [start, end) (wall times)."""
        d = self.decides
        return d[(d[:, SENT] >= start) & (d[:, SENT] < end)]

    def ids(self, rows: np.ndarray) -> set[str]:
        return {_load.request_id(self.plan.run, int(i)) for i in rows[:, INDEX]}

    def sent_at(self) -> dict[str, float]:
        """Each decide request's id → when it was sent."""
        d = self.decides
        run = self.plan.run
        return {
            _load.request_id(run, int(i)): t for i, t in zip(d[:, INDEX], d[:, SENT], strict=True)
        }

    def answered(self, kind: int = DECIDE) -> set[str]:
        """Request ids of ``kind`` answered 200."""
        rows = self.decides if kind == DECIDE else self.outcomes
        return self.ids(rows[rows[:, STATUS] == 200])


def drive(
    stack: Any,
    *,
    name: str,
    rate: float,
    seconds: float,
    work: Path,
    faults: list[tuple[float, str, Callable[[], object]]] = (),  # type: ignore[assignment]
    sample: Callable[[], dict[str, float]] | None = None,
    sample_every: float = 2.0,
    timeout: float = 5.0,
    outcome_every: int = 10,
    authorizations: list[str] | None = None,
    bodies: list[bytes] | None = None,
) -> Run:
    """Load ``stack`` at ``rate`` for ``seconds``; at each ``(t, event, act)`` of
    ``faults`` (seconds from the start, in order) call ``act`` and note the event's wall
    time; call ``sample`` every ``sample_every`` seconds meanwhile."""
    from benchmarks._serving_requests import realistic_mix

    run = f"{name}-{uuid.uuid4().hex[:6]}"
    out = work / f"{run}.json"
    plan = Plan(
        port=stack.port,
        bodies=[b.decode() for b in (bodies or realistic_mix(stack.quotes))],
        rate=rate,
        seconds=seconds,
        start=time.time() + 1.5,  # the load process's start-up
        out=str(out),
        run=run,
        token=_token(),
        timeout=timeout,
        outcome_every=outcome_every,
        authorizations=authorizations,
    )
    proc = _load.start(plan)
    events: dict[str, float] = {}
    samples: list[dict[str, float]] = []
    pending = list(faults)
    next_sample = plan.start
    try:
        while proc.poll() is None:
            now = time.time()
            if pending and now >= plan.start + pending[0][0]:
                _, event, act = pending.pop(0)
                events[event] = time.time()
                act()
                events[event + "_done"] = time.time()
                continue
            if sample is not None and now >= next_sample and now < plan.start + seconds:
                samples.append({"t": now, **sample()})
                next_sample += sample_every
            time.sleep(0.02)
        for _, event, act in pending:  # a fault planned after the load: still done
            events[event] = time.time()
            act()
            events[event + "_done"] = time.time()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=seconds + timeout + 120)
    if proc.returncode != 0:
        raise RuntimeError(f"the load generator failed (exit {proc.returncode})")
    records = _load.read(out)
    out.unlink()
    return Run(plan, records, events, samples)


def _token() -> str:
    from tests.chaos._stack import TOKEN

    return TOKEN


# --- numbers -----------------------------------------------------------------------------
def p99_ms(rows: np.ndarray) -> float:
    """p99 latency (ms) of ``rows`` (NaN when empty)."""
    if len(rows) == 0:
        return float("nan")
    return float(np.percentile(rows[:, LATENCY], 99) * 1000)


def by_status(rows: np.ndarray) -> Counter[int]:
    return Counter(int(s) for s in rows[:, STATUS])


def errors_text(run: Run) -> str:
    """Non-200 answers by status over every request (decides and outcomes): ``none``, or
    e.g. ``503×1,234 conn×2 timeout×0``."""
    counts = by_status(run.records)
    counts.pop(200, None)
    if not counts:
        return "none"
    label = {CONNECTION_ERROR: "conn", TIMED_OUT: "timeout"}
    return " ".join(f"{label.get(s, s)}×{n:,}" for s, n in sorted(counts.items(), reverse=True))


def failures_text(run: Run, since: float, rows: np.ndarray | None = None) -> str:
    """When the failed requests were sent, relative to ``since``: per status, the first
    and the last (for a scenario's notes)."""
    rows = run.records if rows is None else rows
    failed = rows[rows[:, STATUS] != 200]
    parts = []
    for status in sorted({int(s) for s in failed[:, STATUS]}):
        t = failed[failed[:, STATUS] == status][:, SENT] - since
        parts.append(f"{status}×{len(t)} sent {t.min():+.2f}..{t.max():+.2f} s")
    return "; ".join(parts) or "no failures"


def recovery_seconds(run: Run, since: float, rows: np.ndarray | None = None) -> float:
    """Seconds from ``since`` (a wall time) until every request sent afterwards (of
    ``rows``; the decides by default) was answered 200: 0 when none failed after it; inf
    when the last one sent still failed."""
    rows = run.decides if rows is None else rows
    after = rows[rows[:, SENT] >= since]
    bad = after[after[:, STATUS] != 200]
    if len(bad) == 0:
        return 0.0
    if bad[-1, SENT] >= after[-1, SENT]:
        return float("inf")
    return float(bad[-1, SENT] - since)


def slope_per_minute(samples: list[dict[str, float]], key: str, skip: float = 0.25) -> float:
    """Least-squares slope of ``key`` per minute over the samples after the first
    ``skip`` share of the run (start-up allocations are not a leak)."""
    rows = [(s["t"], s[key]) for s in samples if key in s]
    rows = rows[int(len(rows) * skip) :]
    if len(rows) < 3:
        return 0.0
    t, v = np.array(rows).T
    return float(np.polyfit((t - t[0]) / 60.0, v, 1)[0])


# --- the prediction log ------------------------------------------------------------------
def logged(log_url: str, run: Run, timeout: float = 30.0, expect: int = 0) -> dict[str, Any]:
    """The run's rows in the prediction log, once the writers have caught up (``expect``
    serving rows, or no change for 3 s, or ``timeout``): the request ids with a serving
    prediction, with an outcome, and how many rows share a (request id, role)."""
    engine = sa.create_engine(log_url)
    prefix = run.plan.run + "-%"
    try:
        deadline = time.monotonic() + timeout
        seen, steady_since = -1, time.monotonic()
        while True:
            with engine.connect() as conn:
                predicted = {
                    r
                    for (r,) in conn.execute(
                        sa.text(
                            "SELECT request_id FROM predictions "
                            "WHERE request_id LIKE :p AND role <> 'shadow'"
                        ),
                        {"p": prefix},
                    )
                }
            now = time.monotonic()
            if len(predicted) != seen:
                seen, steady_since = len(predicted), now
            if len(predicted) >= expect > 0 or now - steady_since > 3 or now > deadline:
                break
            time.sleep(0.5)
        with engine.connect() as conn:
            outcomes = {
                r
                for (r,) in conn.execute(
                    sa.text("SELECT request_id FROM outcomes WHERE request_id LIKE :p"),
                    {"p": prefix},
                )
            }
            versions: dict[str, str] = dict(
                conn.execute(
                    sa.text(
                        "SELECT request_id, model_version FROM predictions "
                        "WHERE request_id LIKE :p AND role <> 'shadow'"
                    ),
                    {"p": prefix},
                ).all()
            )
    finally:
        engine.dispose()
    return {"predicted": predicted, "outcomes": outcomes, "versions": versions}


# --- checks and the table's row ------------------------------------------------------------
@dataclass
class Result:
    """One scenario's row of the table, and the checks it failed."""

    scenario: str
    load: str = ""
    errors: str = ""
    p99_during: float = float("nan")
    p99_after: float = float("nan")
    recovery: float = float("nan")
    predictions: str = ""
    outcomes: str = ""
    failed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: str = ""  # why the scenario could not run here (it then counts as passed)

    def expect(self, ok: bool, what: str) -> None:
        """Record ``what`` (a sentence saying what went wrong) unless ``ok``."""
        if not ok:
            self.failed.append(what)

    def describe_load(self, run: Run) -> None:
        d = run.decides
        span = max(float(d[-1, SENT] - d[0, SENT]), 1e-9) if len(d) > 1 else 1.0
        self.load = (
            f"{run.plan.rate:g}/s × {run.plan.seconds:g} s: {len(d):,} sent "
            f"({len(d) / span:.0f}/s held)"
        )
        self.errors = errors_text(run)

    def describe_log(self, run: Run, log: dict[str, Any]) -> tuple[set[str], set[str]]:
        """Fill the log columns; returns (answered without a row, outcomes not joined)."""
        answered = run.answered(DECIDE)
        outcome_ids = run.answered(OUTCOME)  # by the id of the request they answer
        lost = answered - log["predicted"]
        unjoined = outcome_ids - log["outcomes"]
        self.predictions = f"{len(answered & log['predicted']):,}/{len(answered):,}"
        self.outcomes = f"{len(outcome_ids & log['outcomes']):,}/{len(outcome_ids):,}"
        return lost, unjoined

    @property
    def passed(self) -> bool:
        return not self.failed


def ms(value: float) -> str:
    return "–" if value != value else f"{value:,.1f}"


def seconds_text(value: float) -> str:
    if value != value:
        return "–"
    return "never" if value == float("inf") else f"{value:.2f}"
