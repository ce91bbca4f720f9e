"""The parameter sweep's kernel: a chronological backtest per decision config, parallel over
configs, with an optional ``augur.rules`` program on every entry.

Every bar is decided by the decision engine's own step (:func:`augur.decision._step.step`,
compiled in :mod:`augur.backtest._kernels`), and an entry the step allows then goes
through the rule set as :func:`augur.decision.decide` sends it: the KPI vector of
:func:`augur.decision._program.entry_kpis`, the program run by the very same
:func:`augur.decision._program.run` (compiled here, inlined), the size it answers capped
by the position size and the rooms; 0 skips the entry.

Compiled copies of one source, the flags pruned as constants: :func:`sweep_kernel`
(what :func:`augur.backtest.sweep.sweep` runs without rules: not a test more per bar than
before rules existed), :func:`sweep_kernel_rules` (with a rule program),
:func:`sweep_kernel_traced` (rules, and each bar's position written, for tests) and
:func:`replay_kernel` (one config at a time, the account of
:func:`augur.backtest.evaluation.run_decisions`: what the rules' gate backtests with).
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit, prange

from augur.backtest import _kernels
from augur.backtest._kernel_cache import drop_stale
from augur.backtest._kernels import _compiled, _rules, drawdown_of, step
from augur.decision import _program, _sizing, _step

# the cached machine code below inlines these rules: compile afresh when they change
drop_stale(
    Path(__file__).parent / "__pycache__",
    Path(__file__).stem,
    [Path(str(m.__file__)) for m in (_kernels, _step, _sizing, _program)],
)

_EXIT_POSITION = _step.EXIT_POSITION
_ENTER_LONG = _step.ENTER_LONG
_ENTER_SHORT = _step.ENTER_SHORT
_NO_ACTION = _step.NO_ACTION

#: Width of :func:`augur.backtest.sweep.rule_kpi_rows`' rows: the rule KPIs in order.
N_KPIS = len(_program.KPIS)
_DRAWDOWN = _program.KPI_INDEX["drawdown"]
_LOSSES = _program.KPI_INDEX["consecutive_losses"]
_BARS_HELD = _program.KPI_INDEX["bars_held"]
_KELLY = _program.KPI_INDEX["kelly"]

run_rules = _compiled(_program.run, _binary=njit(inline="always")(_program._binary))


@njit(inline="always")
def _ruled_size(
    ops: np.ndarray,
    args: np.ndarray,
    depth: int,
    kpis: np.ndarray,
    bar: np.ndarray,
    drawdown: float,
    losses: int,
    kelly: float,
    row: np.ndarray,
) -> float:
    """``decide()``'s rule stage for an entry the step sized at ``kelly``: the size the
    rule set answers, capped by the position size and the rooms (``row``: a
    :func:`~augur.backtest._kernels.rule_rows` row); 0 when it skips the entry."""
    for k in range(kpis.shape[0]):
        kpis[k] = bar[k]
    kpis[_DRAWDOWN] = drawdown
    kpis[_LOSSES] = float(losses)
    kpis[_BARS_HELD] = 0.0  # an entry is decided flat
    kpis[_KELLY] = kelly
    act, size = run_rules(ops, args, depth, kpis)
    for cap in (row[2], row[14], row[15], row[16]):  # max position size, the rooms
        if cap < size:
            size = cap
    return size if act and size > 0.0 else 0.0


_RULES = False  # run the rule program (when ``ops`` is not empty)
_TRACE = False  # write positions[c, t] (and, replaying, entries[c, t])
_REPLAY = False  # run_decisions' account: the risk state follows cost-free bar returns


def _sweep_kernel(
    price: np.ndarray,
    direction: np.ndarray,
    probability: np.ndarray,
    confidence: np.ndarray,
    q05: np.ndarray,
    q95: np.ndarray,
    volatility: np.ndarray,
    volatility_ref: np.ndarray,
    params: np.ndarray,
    cost: float,
    annualisation: float,
    out: np.ndarray,
    positions: np.ndarray,
    bar_kpis: np.ndarray,
    ops: np.ndarray,
    args: np.ndarray,
    depth: int,
    asset: np.ndarray,
    entries: np.ndarray,
) -> None:
    """Chronological backtest of every config row in ``params`` (parallel over rows).

    ``params[c]`` is one :func:`~augur.backtest._kernels.rule_rows` row. Per bar, after
    marking the open position to the close, the decision engine's :func:`step` decides:
    an open position is closed at the close (stop loss / take profit / time limit /
    confident reversal), a flat one may be entered at the close (gate, drawdown limit,
    cool-down, Kelly size scaled by drawdown and volatility, capped by the position size
    and the exposure caps). With a rule program (``ops``/``args``, stack ``depth``; empty
    ``ops``: none) an entry then goes through it, its KPIs from ``bar_kpis[t]``
    (:func:`augur.backtest.sweep.rule_kpi_rows`) and the account. ``cost`` is charged
    per unit of notional on entry and on exit. ``out[c]`` = (total_return, sharpe,
    max_drawdown, win_rate, n_trades, avg_trade_return).

    The traced copies write the signed position held after bar ``t``'s decision into
    ``positions[c, t]``; :func:`replay_kernel` also the entries (+1/-1) into
    ``entries[c, t]``, and decides on the account of ``run_decisions`` (equity compounded
    by ``position * asset[t]`` without costs, a loss a trade whose price move was
    negative) rather than on the marked, costed equity that ``out`` reports.
    """
    n = price.shape[0]
    has_rules = ops.shape[0] > 0
    for c in prange(params.shape[0]):
        thresholds = _rules(params[c])
        symbol_room = params[c, 14]
        heat_room = params[c, 15]
        correlated_room = params[c, 16]
        kpis = np.empty(bar_kpis.shape[1])

        eq = 1.0  # mark-to-market equity, net of costs paid
        prev_eq = 1.0
        peak = 1.0  # peak of the marked equity (the risk state decide() sees)
        peak_end = 1.0  # peak of the end-of-bar equity (for the reported drawdown)
        max_dd = 0.0
        s = 0.0
        ss = 0.0
        side = 0
        size = 0.0
        entry_price = 0.0
        start_eq = 0.0  # equity just before the entry (the trade's base)
        entry_eq = 0.0  # equity just after the entry cost
        held = 0
        trades = 0
        wins = 0
        trade_sum = 0.0
        streak = 0
        since_loss = 1 << 40
        eq_r = 1.0  # replaying: run_decisions' equity, peak and loss streak
        peak_r = 1.0
        streak_r = 0
        for t in range(n):
            p = price[t]
            if side != 0:
                eq = entry_eq * (1.0 + size * side * (p / entry_price - 1.0))
                held += 1
            if eq > peak:
                peak = eq
            action, f, _ = step(
                drawdown_of(eq_r, peak_r) if _REPLAY else drawdown_of(eq, peak),
                streak_r if _REPLAY else streak,
                since_loss,
                side,
                size,
                entry_price,
                held,
                direction[t],
                probability[t],
                confidence[t],
                q05[t],
                q95[t],
                p,
                volatility[t],
                volatility_ref[t],
                symbol_room,
                heat_room,
                correlated_room,
                thresholds,
            )
            if _RULES and has_rules and action in (_ENTER_LONG, _ENTER_SHORT):
                f = _ruled_size(
                    ops,
                    args,
                    depth,
                    kpis,
                    bar_kpis[t],
                    drawdown_of(eq_r, peak_r) if _REPLAY else drawdown_of(eq, peak),
                    streak_r if _REPLAY else streak,
                    f,
                    params[c],
                )
                if f == 0.0:
                    action = _NO_ACTION
            if action == _EXIT_POSITION:
                eq -= entry_eq * size * cost * (p / entry_price)
                trade_ret = eq / start_eq - 1.0
                trades += 1
                trade_sum += trade_ret
                if trade_ret > 0.0:
                    wins += 1
                    streak = 0
                elif trade_ret < 0.0:
                    streak += 1
                    if not _REPLAY:
                        since_loss = -1
                if _REPLAY:
                    if side * (p / entry_price - 1.0) < 0.0:
                        streak_r += 1
                        since_loss = -1
                    else:
                        streak_r = 0
                side = 0
            elif action in (_ENTER_LONG, _ENTER_SHORT):
                side = 1 if action == _ENTER_LONG else -1
                size = f
                entry_price = p
                start_eq = eq
                eq -= eq * size * cost
                entry_eq = eq
                held = 0
                if _REPLAY:
                    entries[c, t] = side
            since_loss += 1
            if _TRACE:
                positions[c, t] = side * size if side != 0 else 0.0
            if _REPLAY:
                eq_r *= 1.0 + positions[c, t] * asset[t]
                if eq_r > peak_r:
                    peak_r = eq_r
            r = eq / prev_eq - 1.0  # bar t's return, costs included (prev_eq starts at 1)
            s += r
            ss += r * r
            if eq > peak_end:
                peak_end = eq
            dd_end = 1.0 - eq / peak_end
            if dd_end > max_dd:
                max_dd = dd_end
            prev_eq = eq
        n_r = n  # bar returns
        mean = s / n_r if n_r > 0 else 0.0
        var = (ss - n_r * mean * mean) / (n_r - 1) if n_r > 1 else 0.0
        out[c, 0] = eq - 1.0
        out[c, 1] = mean / np.sqrt(var) * annualisation if var > 1e-18 else 0.0
        out[c, 2] = max_dd
        out[c, 3] = wins / trades if trades > 0 else np.nan
        out[c, 4] = trades
        out[c, 5] = trade_sum / trades if trades > 0 else 0.0


def _variant(name: str, **flags: bool) -> Any:
    """:func:`_sweep_kernel` with ``flags`` set (numba prunes the branches on them), under
    its own name: numba's cache files are named after it, so copies never share one."""
    fn = types.FunctionType(_sweep_kernel.__code__, {**globals(), **flags}, name)
    fn.__qualname__ = name
    fn.__doc__ = _sweep_kernel.__doc__
    return fn


sweep_kernel = njit(cache=True, parallel=True)(_sweep_kernel)
sweep_kernel_rules = njit(cache=True, parallel=True)(_variant("sweep_kernel_rules", _RULES=True))
# The traced copy writes every position, which in the hot loop would cost as much as the
# rules themselves; the replay runs one config (no threads) and is cached for the gate.
sweep_kernel_traced = njit(parallel=True)(_variant("sweep_kernel_traced", _RULES=True, _TRACE=True))
replay_kernel = njit(cache=True)(_variant("replay_kernel", _RULES=True, _TRACE=True, _REPLAY=True))

#: The last six arguments of the kernels for a sweep without a rule program.
NO_RULES: tuple[Any, ...] = (
    np.empty((0, N_KPIS)),
    np.empty(0, dtype=np.int64),
    np.empty(0),
    0,
    np.empty(0),
    np.empty((0, 0), dtype=np.int64),
)

__all__ = [
    "NO_RULES",
    "N_KPIS",
    "replay_kernel",
    "run_rules",
    "sweep_kernel",
    "sweep_kernel_rules",
    "sweep_kernel_traced",
]
