"""Numba kernels of the Monte Carlo simulation, and the compiled decision step they share
with the parameter sweep (:mod:`augur.backtest._sweep_kernel`).

Compiled once per machine (``cache=True`` writes the machine code next to this file's
``__pycache__``); parallel over paths with ``prange``. The account rules are the decision engine's own step
(:func:`augur.decision._step.step`: gate, drawdown limit, cool-down, exits, sizing)
compiled here and inlined, so the service, the backtest, the simulation and the sweep
cannot drift apart.

Random numbers: every path owns a SplitMix64 stream whose start is a hash of
``(seed, path index)``; a path's draws therefore depend on nothing else (not the chunk
it falls in, not the thread that runs it), which makes results reproducible from the
seed under any chunking and thread count. SplitMix64 passes BigCrush and needs one
multiply-xorshift round per draw — cheap enough to keep the inner loop tight.
"""

from __future__ import annotations

import operator
import types
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit, prange

from augur.backtest._kernel_cache import drop_stale
from augur.decision import _sizing, _step
from augur.models import _confidence, _weights

# the cached machine code below inlines these rules: compile afresh when they change
drop_stale(
    Path(__file__).parent / "__pycache__",
    Path(__file__).stem,
    [
        Path(_step.__file__),
        Path(_sizing.__file__),
        Path(_weights.__file__),
        Path(_confidence.__file__),
    ],
)

# fastmath without "nnan"/"ninf": the kernels test for NaN/zero explicitly.
_FAST = {"contract", "arcp", "nsz", "afn"}

kelly_size = njit(cache=True, inline="always")(_sizing.kelly_size)
drawdown_scale = njit(cache=True, inline="always")(_sizing.drawdown_scale)
payoff_ratio = njit(cache=True, inline="always")(_sizing.payoff_ratio)
volatility_scale = njit(cache=True, inline="always")(_sizing.volatility_scale)


def _compiled(fn: Any, **callees: Any) -> Any:
    """``fn`` compiled and inlined, its calls to ``callees`` going to their compiled forms.

    The decision modules import no numba (``decide()`` runs as plain Python), so the
    functions they call by name are plain functions too: ``fn`` is rebuilt over a copy of
    its module's globals in which those names are the compiled versions.
    """
    rebuilt = types.FunctionType(
        fn.__code__, {**fn.__globals__, **callees}, fn.__name__, fn.__defaults__
    )
    rebuilt.__doc__ = fn.__doc__
    return njit(inline="always")(rebuilt)


_SIZING = {
    "kelly_size": kelly_size,
    "drawdown_scale": drawdown_scale,
    "payoff_ratio": payoff_ratio,
    "volatility_scale": volatility_scale,
}
drawdown_of = _compiled(_step.drawdown_of)
signal_gate = _compiled(_step.signal_gate)
cooling_down = _compiled(_step.cooling_down)
risk_blocks = _compiled(_step.risk_blocks, cooling_down=cooling_down)
_STAGES = {"signal_gate": signal_gate, "cooling_down": cooling_down, "risk_blocks": risk_blocks}
signal_terms = _compiled(_step.signal_terms, **_SIZING, **_STAGES)
entry = _compiled(_step.entry, **_SIZING, **_STAGES)
step = _compiled(_step.step, **_SIZING, **_STAGES, signal_terms=signal_terms, entry=entry)
_EXIT_POSITION = _step.EXIT_POSITION
_ENTER_LONG = _step.ENTER_LONG
_ENTER_SHORT = _step.ENTER_SHORT

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


#: The DecisionConfig fields a kernel reads, in the column order of :func:`rule_rows`
#: (a last column: 1 when ``exit_units`` is "volatility").
RULE_FIELDS = (
    "confidence_threshold",
    "kelly_fraction",
    "max_position_size",
    "max_payoff_ratio",
    "max_drawdown",
    "drawdown_scale_start",
    "cooldown_losses",
    "cooldown_bars",
    "stop_loss",
    "take_profit",
    "max_holding_bars",
    "exit_on_reversal",
    "volatility_scaling",
    "volatility_scale_cap",
    "max_symbol_exposure",
    "max_portfolio_heat",
    "max_correlated_exposure",
)


def rule_rows(configs: Any) -> np.ndarray:
    """One float row per ``DecisionConfig``: :data:`RULE_FIELDS` then the exit-units flag."""
    fields = operator.attrgetter(*RULE_FIELDS)
    return np.array(
        [(*fields(cfg), 1.0 if cfg.exit_units == "volatility" else 0.0) for cfg in configs],
        dtype=np.float64,
    ).reshape(len(configs), len(RULE_FIELDS) + 1)


@njit(cache=True, inline="always")
def _rules(row: np.ndarray) -> tuple:  # type: ignore[type-arg]
    """A :func:`rule_rows` row as the step's ``rules`` tuple (see ``_step.rules_of``)."""
    return (
        row[0],
        row[1],
        row[3],
        row[2],
        row[4],
        row[5],
        int(row[6]),
        int(row[7]),
        row[12] > 0.5,
        row[13],
        row[17] > 0.5,
        row[8],
        row[9],
        int(row[10]),
        row[11] > 0.5,
    )


# Columns of the simulation's outcome rows (one 64-byte row per outcome, so that a
# random draw reads one cache line): see ``outcome_rows``.
OUTCOME_GATE = 0
OUTCOME_KELLY = 1
OUTCOME_VOLATILITY_SCALE = 2
OUTCOME_DIRECTION = 3
OUTCOME_SIGNED_RETURN = 4


@njit(cache=True)
def outcome_rows(
    probability: np.ndarray,
    payoff: np.ndarray,
    confidence: np.ndarray,
    direction: np.ndarray,
    volatility: np.ndarray,
    volatility_ref: np.ndarray,
    realised_return: np.ndarray,
    rules: np.ndarray,
) -> np.ndarray:
    """Per outcome, what the step's :func:`signal_terms` makes of it (gate, Kelly size,
    volatility scale), its direction and its signed return; one padded row each.

    The outcomes store the payoff ratio ``b`` rather than the quantiles; the quantiles
    ``(-1, b)`` (long) or ``(-b, 1)`` (short) give exactly that ``b`` back."""
    thresholds = _rules(rules)
    n = probability.shape[0]
    rows = np.zeros((n, 8))
    for i in range(n):
        d = direction[i]
        b = payoff[i]
        q05, q95 = (-1.0, b) if d > 0 else (-b, 1.0)
        gate, kelly, scale = signal_terms(
            d, probability[i], confidence[i], q05, q95, volatility[i], volatility_ref[i], thresholds
        )
        rows[i, OUTCOME_GATE] = gate
        rows[i, OUTCOME_KELLY] = kelly
        rows[i, OUTCOME_VOLATILITY_SCALE] = scale
        rows[i, OUTCOME_DIRECTION] = d
        rows[i, OUTCOME_SIGNED_RETURN] = d * realised_return[i]
    return rows


# The member weights' rule (augur.models._weights) and the ensemble's direction and
# confidence (augur.models._confidence), compiled: the Monte Carlo re-walks the weights
# with the functions DynamicWeights and predict_one run.
log_score = njit(cache=True, inline="always")(_weights.log_score)
fold_scores = njit(cache=True, inline="always")(_weights.fold_scores)
weights_from_scores = njit(cache=True, inline="always")(_weights.weights_from_scores)
direction_scalar = njit(cache=True, inline="always")(_confidence.direction_scalar)
confidence_scalar = njit(cache=True, inline="always")(_confidence.confidence_scalar)

#: Members whose weights the re-walk follows (augur.models.MEMBERS).
N_MEMBERS = 4
# Columns of the re-walk's outcome rows (see ``member_rows``).
MEMBER_PROBS = 0  # 3 per member: down, flat, up
MEMBER_SCORES = 12  # per member: log-score of the realised class
MEMBER_DIRECTIONS = 16  # per member: its own argmax direction
MEMBER_PAYOFF_LONG = 20
MEMBER_PAYOFF_SHORT = 21
MEMBER_VOLATILITY = 22
MEMBER_VOLATILITY_REF = 23
MEMBER_VOLATILITY_RATIO = 24
MEMBER_TREND = 25
MEMBER_CONFIDENCE = 26  # margin, agreement, trend weights; volatility penalty
MEMBER_RETURN = 30  # realised return (not signed)
MEMBER_START = 31  # per member: the score the outcome's walk started from
MEMBER_ROW = 40


@njit(cache=True)
def member_rows(
    per_model: np.ndarray,
    label: np.ndarray,
    payoff_long: np.ndarray,
    payoff_short: np.ndarray,
    volatility: np.ndarray,
    volatility_ref: np.ndarray,
    volatility_ratio: np.ndarray,
    trend: np.ndarray,
    confidence_weights: np.ndarray,
    realised_return: np.ndarray,
    start_scores: np.ndarray,
) -> np.ndarray:
    """Per outcome, what re-walking the weights reads: the members' probabilities, their
    log-scores of the realised class (:func:`log_score`) and own directions, the payoff
    ratios of a long and a short, the confidence's inputs, the realised return and the
    walk's starting scores; one padded row each (:data:`MEMBER_ROW` columns)."""
    n = per_model.shape[0]
    rows = np.zeros((n, MEMBER_ROW))
    for i in range(n):
        for m in range(N_MEMBERS):
            down = per_model[i, m, 0]
            flat = per_model[i, m, 1]
            up = per_model[i, m, 2]
            rows[i, MEMBER_PROBS + 3 * m] = down
            rows[i, MEMBER_PROBS + 3 * m + 1] = flat
            rows[i, MEMBER_PROBS + 3 * m + 2] = up
            rows[i, MEMBER_SCORES + m] = log_score(per_model[i, m, label[i] + 1])
            rows[i, MEMBER_DIRECTIONS + m] = direction_scalar((down, flat, up))
            rows[i, MEMBER_START + m] = start_scores[i, m]
        rows[i, MEMBER_PAYOFF_LONG] = payoff_long[i]
        rows[i, MEMBER_PAYOFF_SHORT] = payoff_short[i]
        rows[i, MEMBER_VOLATILITY] = volatility[i]
        rows[i, MEMBER_VOLATILITY_REF] = volatility_ref[i]
        rows[i, MEMBER_VOLATILITY_RATIO] = volatility_ratio[i]
        rows[i, MEMBER_TREND] = trend[i]
        for c in range(4):
            rows[i, MEMBER_CONFIDENCE + c] = confidence_weights[i, c]
        rows[i, MEMBER_RETURN] = realised_return[i]
    return rows


@njit(inline="always")
def ensemble_signal(rows: np.ndarray, i: int, w: np.ndarray) -> tuple[int, float, float]:
    """The ensemble's (direction, probability, confidence) for outcome ``i`` under the
    member weights ``w``: as ``Ensemble.predict_one`` (ties go to flat; margin over the
    runner-up; agreement = share of members whose own direction is the ensemble's)."""
    down = 0.0
    flat = 0.0
    up = 0.0
    for m in range(N_MEMBERS):
        down += w[m] * rows[i, MEMBER_PROBS + 3 * m]
        flat += w[m] * rows[i, MEMBER_PROBS + 3 * m + 1]
        up += w[m] * rows[i, MEMBER_PROBS + 3 * m + 2]
    d = direction_scalar((down, flat, up))
    if d > 0:
        chosen = up
        runner_up = down if down > flat else flat
    elif d < 0:
        chosen = down
        runner_up = up if up > flat else flat
    else:
        chosen = flat
        runner_up = up if up > down else down
    agree = 0
    for m in range(N_MEMBERS):
        agree += rows[i, MEMBER_DIRECTIONS + m] == d
    confidence = confidence_scalar(
        chosen - runner_up,
        agree / N_MEMBERS,
        rows[i, MEMBER_VOLATILITY_RATIO],
        rows[i, MEMBER_TREND],
        rows[i, MEMBER_CONFIDENCE],
        rows[i, MEMBER_CONFIDENCE + 1],
        rows[i, MEMBER_CONFIDENCE + 2],
        rows[i, MEMBER_CONFIDENCE + 3],
    )
    return d, chosen, confidence


#: Paths advanced together by one thread. Their block boundaries coincide (every path
#: draws at the same steps), so the per-step lane loop is branch-free: the CPU overlaps
#: the lanes' dependency chains and LLVM may vectorise them.
LANES = 16


def _simulate_chunk(
    outcomes: np.ndarray,
    cost: float,
    n_steps: int,
    block: int,
    seed: int,
    path_start: int,
    rules: np.ndarray,
    ruin_equity: float,
    annualisation: float,
    metrics: np.ndarray,
    ruined: np.ndarray,
    sizes: np.ndarray,
) -> None:
    """Simulate ``metrics.shape[0]`` paths starting at global index ``path_start``.

    ``outcomes``: :func:`outcome_rows`. Per step: draw (block bootstrap), then the
    decision engine's step for a flat position — its :func:`entry` stage (gate, drawdown
    limit, cool-down, Kelly size scaled by drawdown and volatility, capped), on the
    outcome's precomputed :func:`signal_terms` — with the config row ``rules`` (see
    :func:`rule_rows`); an entry earns ``size * (direction * r - cost)`` over the step. A path stops trading once its
    drawdown reaches the limit (the step refuses) or its equity falls to ``ruin_equity``
    (remaining steps earn 0). Writes terminal return, maximum drawdown, Sharpe (of the
    per-step returns, times ``annualisation``) and win rate (NaN without trades) into
    ``metrics[k, 0..3]`` and the ruin flag into ``ruined[k]``. :func:`simulate_chunk_traced`
    also writes each step's traded size into ``sizes[k, step]`` (``sizes`` has a row per
    path); :func:`simulate_chunk` ignores ``sizes``.
    """
    n = outcomes.shape[0]
    nn = np.uint64(n)
    n_paths = metrics.shape[0]
    n_groups = (n_paths + LANES - 1) // LANES
    thresholds = _rules(rules)
    dd_limit = rules[4]
    symbol_room = rules[14]
    heat_room = rules[15]
    correlated_room = rules[16]
    for g in prange(n_groups):
        state = np.empty(LANES, dtype=np.uint64)
        idx = np.empty(LANES, dtype=np.int64)
        eq = np.ones(LANES)
        peak = np.ones(LANES)
        dd = np.zeros(LANES)
        max_dd = np.zeros(LANES)
        s = np.zeros(LANES)
        ss = np.zeros(LANES)
        trades = np.zeros(LANES, dtype=np.int64)
        wins = np.zeros(LANES, dtype=np.int64)
        streak = np.zeros(LANES, dtype=np.int64)
        since_loss = np.full(LANES, 1 << 40, dtype=np.int64)
        alive = np.ones(LANES, dtype=np.bool_)
        first = g * LANES
        for lane in range(LANES):
            state[lane] = path_state(seed, path_start + first + lane)
        j = block
        for t in range(n_steps):
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
                # One trade per step: the position is always flat when the step decides,
                # so only its entry stage applies (what it needs from the signal and the
                # market is computed once per outcome, in outcome_rows).
                _, size, _ = entry(
                    dd[lane],
                    streak[lane],
                    since_loss[lane],
                    int(outcomes[i, OUTCOME_DIRECTION]),
                    int(outcomes[i, OUTCOME_GATE]),
                    # a stopped path has no size to take (off the chain through the rules)
                    outcomes[i, OUTCOME_KELLY] if alive[lane] else 0.0,
                    outcomes[i, OUTCOME_VOLATILITY_SCALE],
                    symbol_room,
                    heat_room,
                    correlated_room,
                    thresholds,
                )
                r = size * (outcomes[i, OUTCOME_SIGNED_RETURN] - cost)
                e = eq[lane] * (1.0 + r)
                eq[lane] = e
                s[lane] += r
                ss[lane] += r * r
                trades[lane] += size > 0.0
                win = r > 0.0
                wins[lane] += win
                streak[lane] = (streak[lane] + (r < 0.0)) * (not win)  # a win resets it
                # a loss restarts the count; as a product, not a jump (losses come at random)
                since_loss[lane] = (since_loss[lane] + 1) * (r >= 0.0)
                pk = peak[lane] if peak[lane] > e else e
                peak[lane] = pk
                d = 1.0 - e / pk
                dd[lane] = d
                max_dd[lane] = max_dd[lane] if max_dd[lane] > d else d
                alive[lane] = alive[lane] and d < dd_limit and e > ruin_equity
                if _TRACE and first + lane < n_paths:
                    sizes[first + lane, t] = size
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


# Compiled twice: the traced copy (for tests) writes every size, which in the hot loop
# would cost as much as the rules themselves; numba prunes the branch on the constant.
_TRACE = False
simulate_chunk = njit(cache=True, parallel=True, fastmath=_FAST)(_simulate_chunk)
_traced = types.FunctionType(
    _simulate_chunk.__code__, {**globals(), "_TRACE": True}, "simulate_chunk_traced"
)
_traced.__doc__ = _simulate_chunk.__doc__
simulate_chunk_traced = njit(parallel=True, fastmath=_FAST)(_traced)


def _rewalk_chunk(
    outcomes: np.ndarray,
    cost: float,
    n_steps: int,
    block: int,
    seed: int,
    path_start: int,
    rules: np.ndarray,
    ruin_equity: float,
    annualisation: float,
    decay: float,
    floor: float,
    max_step: float,
    frozen: bool,
    metrics: np.ndarray,
    ruined: np.ndarray,
    sizes: np.ndarray,
    weights: np.ndarray,
) -> None:
    """:func:`_simulate_chunk` with the member weights re-walked along each path.

    ``outcomes``: :func:`member_rows`. Each path starts from the scores of the walk its
    first outcome came from; per step the weights (:func:`weights_from_scores`) give the
    ensemble's direction, probability and confidence (:func:`ensemble_signal`), the
    step's :func:`signal_terms` and :func:`entry` decide as in the fixed mode, and then
    the step's outcome is folded into the scores (:func:`fold_scores`, the rule of
    ``DynamicWeights.update``; not when ``frozen``) before the next step. The same
    draws as :func:`_simulate_chunk` for the same seed; the account bookkeeping is its
    own. :func:`rewalk_chunk_traced` also writes each step's traded size into
    ``sizes[k, step]`` and the weights it used into ``weights[k, step, member]``.
    """
    n = outcomes.shape[0]
    nn = np.uint64(n)
    n_paths = metrics.shape[0]
    n_groups = (n_paths + LANES - 1) // LANES
    thresholds = _rules(rules)
    dd_limit = rules[4]
    symbol_room = rules[14]
    heat_room = rules[15]
    correlated_room = rules[16]
    for g in prange(n_groups):
        state = np.empty(LANES, dtype=np.uint64)
        idx = np.empty(LANES, dtype=np.int64)
        eq = np.ones(LANES)
        peak = np.ones(LANES)
        dd = np.zeros(LANES)
        max_dd = np.zeros(LANES)
        s = np.zeros(LANES)
        ss = np.zeros(LANES)
        trades = np.zeros(LANES, dtype=np.int64)
        wins = np.zeros(LANES, dtype=np.int64)
        streak = np.zeros(LANES, dtype=np.int64)
        since_loss = np.full(LANES, 1 << 40, dtype=np.int64)
        alive = np.ones(LANES, dtype=np.bool_)
        perf = np.zeros((LANES, N_MEMBERS))
        w = np.empty((LANES, N_MEMBERS))
        first = g * LANES
        for lane in range(LANES):
            state[lane] = path_state(seed, path_start + first + lane)
        j = block
        for t in range(n_steps):
            if j == block:
                for lane in range(LANES):
                    state[lane], idx[lane] = _draw_index(state[lane], nn)
                j = 0
            else:
                for lane in range(LANES):
                    nxt = idx[lane] + 1
                    idx[lane] = nxt if nxt < n else 0
            j += 1
            if t == 0:
                for lane in range(LANES):
                    for m in range(N_MEMBERS):
                        perf[lane, m] = outcomes[idx[lane], MEMBER_START + m]
            for lane in range(LANES):
                i = idx[lane]
                pl = perf[lane]
                wl = w[lane]
                weights_from_scores(pl, decay, floor, wl)
                d, probability, confidence = ensemble_signal(outcomes, i, wl)
                b = outcomes[i, MEMBER_PAYOFF_LONG] if d > 0 else outcomes[i, MEMBER_PAYOFF_SHORT]
                q05 = -1.0 if d > 0 else -b
                q95 = b if d > 0 else 1.0
                gate, kelly, vol_scale = signal_terms(
                    d,
                    probability,
                    confidence,
                    q05,
                    q95,
                    outcomes[i, MEMBER_VOLATILITY],
                    outcomes[i, MEMBER_VOLATILITY_REF],
                    thresholds,
                )
                _, size, _ = entry(
                    dd[lane],
                    streak[lane],
                    since_loss[lane],
                    d,
                    gate,
                    kelly if alive[lane] else 0.0,
                    vol_scale,
                    symbol_room,
                    heat_room,
                    correlated_room,
                    thresholds,
                )
                r = size * (d * outcomes[i, MEMBER_RETURN] - cost)
                e = eq[lane] * (1.0 + r)
                eq[lane] = e
                s[lane] += r
                ss[lane] += r * r
                trades[lane] += size > 0.0
                win = r > 0.0
                wins[lane] += win
                streak[lane] = (streak[lane] + (r < 0.0)) * (not win)
                since_loss[lane] = (since_loss[lane] + 1) * (r >= 0.0)
                pk = peak[lane] if peak[lane] > e else e
                peak[lane] = pk
                dd_now = 1.0 - e / pk
                dd[lane] = dd_now
                max_dd[lane] = max_dd[lane] if max_dd[lane] > dd_now else dd_now
                alive[lane] = alive[lane] and dd_now < dd_limit and e > ruin_equity
                if _TRACE and first + lane < n_paths:
                    sizes[first + lane, t] = size
                    for m in range(N_MEMBERS):
                        weights[first + lane, t, m] = wl[m]
                # the step's outcome is known before the next step: fold it in
                if not frozen:
                    fold_scores(
                        pl, outcomes[i, MEMBER_SCORES : MEMBER_SCORES + N_MEMBERS], decay, max_step
                    )
        for lane in range(LANES):
            k = first + lane
            if k >= n_paths:
                break
            mean = s[lane] / n_steps
            var = (ss[lane] - n_steps * mean * mean) / (n_steps - 1) if n_steps > 1 else 0.0
            metrics[k, 0] = eq[lane] - 1.0
            metrics[k, 1] = max_dd[lane]
            metrics[k, 2] = mean / np.sqrt(var) * annualisation if var > 1e-18 else 0.0
            metrics[k, 3] = wins[lane] / trades[lane] if trades[lane] > 0 else np.nan
            ruined[k] = not alive[lane]


rewalk_chunk = njit(cache=True, parallel=True, fastmath=_FAST)(_rewalk_chunk)
_rewalk_traced = types.FunctionType(
    _rewalk_chunk.__code__, {**globals(), "_TRACE": True}, "rewalk_chunk_traced"
)
_rewalk_traced.__doc__ = _rewalk_chunk.__doc__
rewalk_chunk_traced = njit(parallel=True, fastmath=_FAST)(_rewalk_traced)


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
