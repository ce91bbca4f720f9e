"""Which bars of a batch may be applied: the import rules, then the symbol's history.

A symbol's messages of one batch are checked together by
:func:`~augur.data.validate_bars` — the rules of ``augur data import``, in their order.
When a rule names rows, those messages become dead letters with the rule and the rest is
checked again; a rule that names no row (a bad symbol) refuses them all. Then each bar must
come after the symbol's last applied bar, as ``augur features push`` demands: a bar the
recent history already holds, value for value, is a duplicate (a second publish: skipped
and counted); one at a held time with other values breaks ``no_duplicate_timestamps``;
any other earlier bar breaks ``increasing_time``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from augur.data._validate import VALUE_COLUMNS, BarsValidationError, validate_bars
from augur.stream._history import TAIL_DTYPE, tail_of
from augur.stream._message import FIELDS, Message

# The rules validate_bars applies to each bar on its own, before those comparing bars.
_BAR_RULES = frozenset(
    {
        "no_missing_values",
        "numeric",
        "parseable_timestamp",
        "positive_price",
        "non_negative_volume",
        "high_ge_open_close",
        "low_le_open_close",
    }
)
_ROUND = "round"  # the symbol a round's bars are checked under (their own is checked first)
# validate_bars names rows of the file it was given; a dead letter is one message.
_PLAIN_VALUES = {"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 0.0}
_ROWS = re.compile(r" at row\(s\) \[[^\]]*\](?: \(and \d+ more\))? \(row 1 = first data row\)")


@dataclass(frozen=True)
class DeadLetter:
    """A message a rule refused: which rule, on which column, and why (for a person)."""

    message: Message
    rule: str
    column: str | None
    reason: str


@dataclass
class Admitted:
    """One symbol's verdict on a batch: the bars to apply (packed, time order, with their
    messages), the duplicates, the dead letters."""

    symbol: str
    bars: np.ndarray
    messages: list[Message] = field(default_factory=list)
    duplicates: list[Message] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)


def _reason(exc: BarsValidationError) -> str:
    return _ROWS.sub("", str(exc))


def _own_format(
    symbol: str, todo: list[Message], flagged: set[int]
) -> tuple[list[Message], set[int]]:
    """When the flagged times parse on their own, every time of ``todo`` is rewritten in
    one ISO form (pandas reads a column in the format of its first value, so a time
    written another way — another publisher — would be refused in company); the
    flagged ones that do not parse alone stay flagged, the rest is left as it was."""
    bad = {i for i in flagged if _alone(symbol, todo[i]) is None}
    if bad:
        return todo, bad
    out = []
    for msg in todo:
        parsed = _alone(symbol, msg)
        assert parsed is not None  # it parsed with the round, or alone just above
        iso = parsed.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        out.append(Message(msg.id, {**msg.fields, "timestamp": iso}))
    return out, set()


def _alone(symbol: str, msg: Message) -> pd.Timestamp | None:
    """The message's time as validate_bars reads it on its own (None: it cannot)."""
    # the time alone, with values no rule refuses: only the time is judged
    alone = pd.DataFrame([{"timestamp": msg.fields.get("timestamp") or None, **_PLAIN_VALUES}])
    try:
        return pd.Timestamp(validate_bars(alone, symbol).bars["timestamp"].iloc[0])
    except BarsValidationError:
        return None


def _admit_one(symbol: str, messages: Sequence[Message], tail: np.ndarray, out: Admitted) -> None:
    """One symbol's messages through every rule with their own validate_bars call (the
    exact rule and rows, for the rare symbols the round check cannot settle)."""
    todo = list(messages)
    report = None
    while todo:
        frame = pd.DataFrame.from_records(
            [{f: m.fields.get(f) or None for f in FIELDS} for m in todo], columns=list(FIELDS)
        )
        try:
            report = validate_bars(frame, symbol)
            break
        except BarsValidationError as exc:
            bad = {r - 1 for r in exc.rows} if exc.rows else set(range(len(todo)))
            if exc.rule == "parseable_timestamp" and len(todo) > 1:
                todo, bad = _own_format(symbol, todo, bad)
                if not bad:
                    continue
            reason = _reason(exc)
            out.dead += [DeadLetter(todo[i], exc.rule, exc.column, reason) for i in sorted(bad)]
            todo = [m for i, m in enumerate(todo) if i not in bad]
    if report is not None:
        _after_history(out, todo, tail_of(report.bars), tail)


def _after_history(out: Admitted, todo: list[Message], bars: np.ndarray, tail: np.ndarray) -> None:
    """Keep the bars later than the symbol's last applied one; the others are duplicates
    or dead letters."""
    symbol = out.symbol
    last = int(tail["ts"][-1]) if tail.size else None
    keep = np.ones(len(bars), dtype=bool)
    if last is not None:
        early = np.flatnonzero(bars["ts"] <= last)
        known = {int(r["ts"]): r for r in tail} if early.size else {}
        for i in early:
            keep[i] = False
            when = pd.Timestamp(int(bars["ts"][i]), tz="UTC")
            held = known.get(int(bars["ts"][i]))
            if held is not None and held.tobytes() == bars[i].tobytes():
                out.duplicates.append(todo[i])
            elif held is not None:
                out.dead.append(
                    DeadLetter(
                        todo[i],
                        "no_duplicate_timestamps",
                        "timestamp",
                        f"rule 'no_duplicate_timestamps' broken: {symbol} already has a bar "
                        f"at {when} with other values. Keep one bar per timestamp.",
                    )
                )
            else:
                out.dead.append(
                    DeadLetter(
                        todo[i],
                        "increasing_time",
                        "timestamp",
                        f"rule 'increasing_time' broken: the bar's timestamp {when} is not "
                        f"after {symbol}'s last bar {pd.Timestamp(last, tz='UTC')}. "
                        "Publish bars in time order.",
                    )
                )
    out.bars = bars[keep]
    out.messages = [m for m, k in zip(todo, keep, strict=True) if k]


def admit(
    by_symbol: Mapping[str, Sequence[Message]], tails: Mapping[str, np.ndarray]
) -> list[Admitted]:
    """Sort a round's messages (per symbol, in stream order) into bars to apply,
    duplicates and dead letters, each symbol against its applied bars (``tails``).

    One :func:`~augur.data.validate_bars` call judges the rules that look at a bar alone
    for the whole round (they come before the rules that compare bars, so once only
    those fail, every bar has passed the rest). A symbol's own call is made only where
    the round's bars of it are not in strictly increasing time, or their times are not
    ISO 8601 text: it names the rule and the bar exactly.
    """
    verdicts = {s: Admitted(s, tails[s][:0]) for s in by_symbol}
    todo: list[Message] = []
    for symbol, messages in by_symbol.items():
        out = verdicts[symbol]
        # a symbol with applied bars passed this rule when they came
        if not tails[symbol].size and not _valid_symbol(symbol):
            err = _symbol_error(symbol)
            assert err is not None
            out.dead += [DeadLetter(m, err.rule, err.column, _reason(err)) for m in messages]
            continue
        seen: set[tuple[str, ...]] = set()
        for msg in messages:
            key = tuple(msg.fields.get(f, "") for f in FIELDS)
            if key in seen:  # the same bar twice in one round
                out.duplicates.append(msg)
            else:
                seen.add(key)
                todo.append(msg)
    todo = _bar_rules(todo, verdicts)
    if not todo:
        return list(verdicts.values())
    try:
        ts = (
            pd.to_datetime(
                pd.Series([m.fields["timestamp"] for m in todo]), utc=True, format="ISO8601"
            )
            .to_numpy(dtype="datetime64[ns]")
            .view(np.int64)
        )
    except (ValueError, TypeError):
        ts = None
    values = {
        c: pd.to_numeric(pd.Series([m.fields[c] for m in todo])).to_numpy(np.float64)
        for c in VALUE_COLUMNS
    }
    rows: dict[str, list[int]] = {}
    for i, msg in enumerate(todo):
        rows.setdefault(msg.symbol, []).append(i)
    for symbol, idx in rows.items():
        out, mine = verdicts[symbol], [todo[i] for i in idx]
        if ts is None or (len(idx) > 1 and (np.diff(ts[idx]) <= 0).any()):
            _admit_one(symbol, mine, tails[symbol], out)
            continue
        bars = np.zeros(len(idx), dtype=TAIL_DTYPE)
        bars["ts"] = ts[idx]
        for c in VALUE_COLUMNS:
            bars[c] = values[c][idx]
        _after_history(out, mine, bars, tails[symbol])
    return list(verdicts.values())


def _bar_rules(todo: list[Message], verdicts: dict[str, Admitted]) -> list[Message]:
    """The round's messages that pass every rule that looks at a bar alone; the others
    become their symbol's dead letters."""
    while todo:
        frame = pd.DataFrame.from_records(
            [{f: m.fields.get(f) or None for f in FIELDS[1:]} for m in todo],
            columns=list(FIELDS[1:]),
        )
        try:
            validate_bars(frame, _ROUND)
            return todo
        except BarsValidationError as exc:
            if exc.rule not in _BAR_RULES:
                return todo  # only the rules comparing bars are left: judged per symbol
            bad = {r - 1 for r in exc.rows}
            if exc.rule == "parseable_timestamp":
                todo, bad = _own_format(_ROUND, todo, bad)
                if not bad:
                    continue
            reason = _reason(exc)
            for i in sorted(bad):
                verdicts[todo[i].symbol].dead.append(
                    DeadLetter(todo[i], exc.rule, exc.column, reason)
                )
            todo = [m for i, m in enumerate(todo) if i not in bad]
    return todo


@functools.lru_cache(maxsize=100_000)
def _valid_symbol(symbol: str) -> bool:
    return _symbol_error(symbol) is None


def _symbol_error(symbol: str) -> BarsValidationError | None:
    try:
        validate_bars(
            pd.DataFrame([{"timestamp": "2000-01-01T00:00:00Z", **_PLAIN_VALUES}]), symbol
        )
    except BarsValidationError as exc:
        return exc
    return None


__all__ = ["Admitted", "DeadLetter", "admit"]
