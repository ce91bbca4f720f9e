"""Numba kernels of the Monte Carlo simulation and the parameter sweep.

Compiled once per machine (``cache=True`` writes the machine code next to this file's
``__pycache__``); parallel over paths (simulation) or combinations (sweep) with
``prange``. The sizing rules are the decision engine's own functions
(:mod:`augur.decision._sizing`) compiled here, so the service, the simulation and the
sweep cannot drift apart.

Random numbers: every path owns a SplitMix64 stream whose start is a hash of
``(seed, path index)``; a path's draws therefore depend on nothing else (not the chunk
it falls in, not the thread that runs it), which makes results reproducible from the
seed under any chunking and thread count. SplitMix64 passes BigCrush and needs one
multiply-xorshift round per draw — cheap enough to keep the inner loop tight.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from augur.decision import _sizing

# fastmath without "nnan"/"ninf": the kernels test for NaN/zero explicitly.
_FAST = {"contract", "arcp", "nsz", "afn"}

kelly_size = njit(cache=True, inline="always")(_sizing.kelly_size)
drawdown_scale = njit(cache=True, inline="always")(_sizing.drawdown_scale)
payoff_ratio = njit(cache=True, inline="always")(_sizing.payoff_ratio)

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S32 = np.uint64(32)


@njit(cache=True, inline="always")
def _mix64(z: np.uint64) -> np.uint64:
    """SplitMix64's output function (a bijective 64-bit hash)."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(cache=True, inline="always")
def path_state(seed: int, path: int) -> np.uint64:
    """Starting RNG state of one path: a hash of (seed, path index)."""
    return _mix64(_mix64(np.uint64(seed) + _GAMMA) + np.uint64(path) * _GAMMA)


@njit(cache=True, inline="always")
def _draw_index(state: np.uint64, n: np.uint64) -> tuple[np.uint64, np.int64]:
    """Advance the stream; a uniform index in [0, n) (Lemire's multiply-shift, n < 2**32)."""
    state = state + _GAMMA
    z = _mix64(state)
    return state, np.int64(((z >> _S32) * n) >> _S32)


@njit(cache=True)
def path_indices(seed: int, path: int, n: int, block: int, n_steps: int) -> np.ndarray:
    """The outcome indices one path draws (circular block bootstrap). For tests/diagnostics."""
    out = np.empty(n_steps, dtype=np.int64)
    state = path_state(seed, path)
    nn = np.uint64(n)
    j = block
    idx = np.int64(0)
    for t in range(n_steps):
        if j == block:
            state, idx = _draw_index(state, nn)
            j = 0
        else:
            idx += 1
            if idx == n:
                idx = np.int64(0)
        j += 1
        out[t] = idx
    return out


@njit(cache=True)
def base_sizes(
    probability: np.ndarray,
    payoff: np.ndarray,
    confidence: np.ndarray,
    direction: np.ndarray,
    confidence_threshold: float,
    kelly_fraction: float,
    max_payoff_ratio: float,
    size_cap: float,
) -> np.ndarray:
    """Per-outcome size before drawdown scaling: confidence gate + capped fractional Kelly."""
    n = probability.shape[0]
    out = np.zeros(n)
    for i in range(n):
        if direction[i] == 0 or not confidence[i] >= confidence_threshold:
            continue
        b = payoff[i]
        if b > max_payoff_ratio:
            b = max_payoff_ratio
        out[i] = kelly_size(probability[i], b, kelly_fraction, size_cap)
    return out


#: Paths advanced together by one thread. Their block boundaries coincide (every path
#: draws at the same steps), so the per-step lane loop is branch-free: the CPU overlaps
#: the lanes' dependency chains and LLVM may vectorise them.
LANES = 16


@njit(cache=True, parallel=True, fastmath=_FAST)
def simulate_chunk(
    base: np.ndarray,
    signed_return: np.ndarray,
    cost: float,
    n_steps: int,
    block: int,
    seed: int,
    path_start: int,
    exposure_cap: float,
    dd_start: float,
    dd_limit: float,
    cooldown_losses: int,
    cooldown_bars: int,
    ruin_equity: float,
    annualisation: float,
    metrics: np.ndarray,
    ruined: np.ndarray,
) -> None:
    """Simulate ``metrics.shape[0]`` paths starting at global index ``path_start``.

    Per step: draw (block bootstrap), cool-down check, confidence-gated Kelly size
    (``base``) scaled by the drawdown and capped by ``exposure_cap``, net return
    ``size * (direction * r - cost)``. A path stops trading once its drawdown reaches
    ``dd_limit`` or its equity falls to ``ruin_equity`` (remaining steps earn 0). Writes
    terminal return, maximum drawdown, Sharpe (of the per-step returns, times
    ``annualisation``) and win rate (NaN without trades) into ``metrics[k, 0..3]`` and
    the ruin flag into ``ruined[k]``.
    """
    n = base.shape[0]
    nn = np.uint64(n)
    n_paths = metrics.shape[0]
    n_groups = (n_paths + LANES - 1) // LANES
    inv_span = 1.0 / (dd_limit - dd_start)
    cd_on = cooldown_losses > 0
    for g in prange(n_groups):
        state = np.empty(LANES, dtype=np.uint64)
        idx = np.empty(LANES, dtype=np.int64)
        eq = np.ones(LANES)
        peak = np.ones(LANES)
        max_dd = np.zeros(LANES)
        scale = np.ones(LANES)
        s = np.zeros(LANES)
        ss = np.zeros(LANES)
        trades = np.zeros(LANES, dtype=np.int64)
        wins = np.zeros(LANES, dtype=np.int64)
        streak = np.zeros(LANES, dtype=np.int64)
        cooldown = np.zeros(LANES, dtype=np.int64)
        alive = np.ones(LANES, dtype=np.bool_)
        first = g * LANES
        for lane in range(LANES):
            state[lane] = path_state(seed, path_start + first + lane)
        j = block
        for _t in range(n_steps):
            if j == block:
                for lane in range(LANES):
                    state[lane], idx[lane] = _draw_index(state[lane], nn)
                j = 0
            else:
                for lane in range(LANES):
                    nxt = idx[lane] + 1
                    idx[lane] = nxt if nxt < n else 0
            j += 1
            for lane in range(LANES):
                i = idx[lane]
                cd = cooldown[lane]
                size = base[i] * scale[lane]
                size = size if size < exposure_cap else exposure_cap
                size = size if (cd == 0 and alive[lane]) else 0.0
                r = size * (signed_return[i] - cost)
                e = eq[lane] * (1.0 + r)
                eq[lane] = e
                s[lane] += r
                ss[lane] += r * r
                trades[lane] += size > 0.0
                win = r > 0.0
                wins[lane] += win
                st = 0 if win else streak[lane] + (r < 0.0)
                streak[lane] = st
                cd = cd - 1 if cd > 0 else 0
                cooldown[lane] = (
                    cooldown_bars if (cd_on and r < 0.0 and st >= cooldown_losses) else cd
                )
                pk = peak[lane] if peak[lane] > e else e
                peak[lane] = pk
                dd = 1.0 - e / pk
                max_dd[lane] = max_dd[lane] if max_dd[lane] > dd else dd
                sc = (dd_limit - dd) * inv_span
                scale[lane] = 1.0 if sc > 1.0 else sc
                alive[lane] = alive[lane] and dd < dd_limit and e > ruin_equity
        for lane in range(LANES):
            k = first + lane
            if k >= n_paths:
                break
            mean = s[lane] / n_steps
            # sample variance (ddof=1), as augur.backtest.metrics.sharpe_ratio
            var = (ss[lane] - n_steps * mean * mean) / (n_steps - 1) if n_steps > 1 else 0.0
            metrics[k, 0] = eq[lane] - 1.0
            metrics[k, 1] = max_dd[lane]
            metrics[k, 2] = mean / np.sqrt(var) * annualisation if var > 1e-18 else 0.0
            metrics[k, 3] = wins[lane] / trades[lane] if trades[lane] > 0 else np.nan
            ruined[k] = not alive[lane]


@njit(cache=True)
def accumulate_histograms(
    metrics: np.ndarray,
    lows: np.ndarray,
    highs: np.ndarray,
    counts: np.ndarray,
    moments: np.ndarray,
) -> None:
    """Add a chunk's metrics to fixed-bin histograms ``counts[m, bin]`` (values outside
    [low, high) land in the first/last bin) and to ``moments[m] = (n, sum, sumsq, min, max)``.
    NaN (win rate of a path without trades) is skipped."""
    n_bins = counts.shape[1]
    for m in range(metrics.shape[1]):
        lo = lows[m]
        width = (highs[m] - lo) / n_bins
        for k in range(metrics.shape[0]):
            v = metrics[k, m]
            if np.isnan(v):
                continue
            b = int((v - lo) / width)
            if b < 0:
                b = 0
            elif b >= n_bins:
                b = n_bins - 1
            counts[m, b] += 1
            moments[m, 0] += 1.0
            moments[m, 1] += v
            moments[m, 2] += v * v
            if v < moments[m, 3]:
                moments[m, 3] = v
            if v > moments[m, 4]:
                moments[m, 4] = v


@njit(cache=True, parallel=True)
def sweep_kernel(
    price: np.ndarray,
    direction: np.ndarray,
    probability: np.ndarray,
    confidence: np.ndarray,
    q05: np.ndarray,
    q95: np.ndarray,
    volatility: np.ndarray,
    params: np.ndarray,
    cost: float,
    annualisation: float,
    out: np.ndarray,
) -> None:
    """Chronological backtest of every parameter row in ``params`` (parallel over rows).

    ``params[c]`` = (confidence_threshold, kelly_fraction, max_position_size cap,
    max_payoff_ratio, max_drawdown, drawdown_scale_start, cooldown_losses, cooldown_bars,
    stop_loss, take_profit, max_holding_bars, exit_on_reversal, exit_in_volatility_units,
    exposure cap).
    Per bar, after marking the open position to the close: an open position is checked
    for stop loss / take profit / time limit / confident reversal and closed at the
    close; a flat one may be entered (gate, drawdown limit, cool-down, Kelly size scaled
    by drawdown, capped) at the close. ``cost`` is charged per unit of notional on entry
    and on exit. ``out[c]`` = (total_return, sharpe, max_drawdown, win_rate, n_trades,
    avg_trade_return).
    """
    n = price.shape[0]
    for c in prange(params.shape[0]):
        thr = params[c, 0]
        kf = params[c, 1]
        cap = params[c, 2]
        max_b = params[c, 3]
        dd_limit = params[c, 4]
        dd_start = params[c, 5]
        cd_losses = int(params[c, 6])
        cd_bars = int(params[c, 7])
        stop = params[c, 8]
        take = params[c, 9]
        max_hold = int(params[c, 10])
        reversal = params[c, 11] > 0.5
        vol_units = params[c, 12] > 0.5
        xcap = params[c, 13]

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
        for t in range(n):
            p = price[t]
            if side != 0:
                eq = entry_eq * (1.0 + size * side * (p / entry_price - 1.0))
                held += 1
            if eq > peak:
                peak = eq
            dd = 1.0 - eq / peak
            d = direction[t]
            conf = confidence[t]
            if side != 0:
                ret = side * (p / entry_price - 1.0)
                unit = volatility[t] if vol_units else 1.0
                # stop loss / take profit (need a unit), time limit, confident reversal
                leave = (
                    (unit > 0.0 and stop > 0.0 and ret <= -stop * unit)
                    or (unit > 0.0 and take > 0.0 and ret >= take * unit)
                    or (max_hold > 0 and held >= max_hold)
                    or (reversal and d == -side and conf >= thr)
                )
                if leave:
                    eq -= entry_eq * size * cost * (p / entry_price)
                    trade_ret = eq / start_eq - 1.0
                    trades += 1
                    trade_sum += trade_ret
                    if trade_ret > 0.0:
                        wins += 1
                        streak = 0
                    elif trade_ret < 0.0:
                        streak += 1
                        since_loss = -1
                    side = 0
            elif d != 0 and conf >= thr and dd < dd_limit:
                cooling = cd_losses > 0 and streak >= cd_losses and since_loss < cd_bars
                if not cooling:
                    b = payoff_ratio(d, q05[t], q95[t], max_b)
                    f = kelly_size(probability[t], b, kf, cap) * drawdown_scale(
                        dd, dd_start, dd_limit
                    )
                    if f > xcap:
                        f = xcap
                    if f > 1e-9:
                        side = d
                        size = f
                        entry_price = p
                        start_eq = eq
                        eq -= eq * size * cost
                        entry_eq = eq
                        held = 0
            since_loss += 1
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
