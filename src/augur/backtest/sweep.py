"""Parameter sweep: many decision-threshold combinations over the same predictions.

Tuning needs to score thousands of :class:`~augur.decision.DecisionConfig` variants
(``confidence_threshold`` x ``kelly_fraction`` x ``max_drawdown`` x ``cooldown_losses`` …)
on one set of out-of-sample predictions. :func:`sweep` runs one compiled chronological
backtest per combination, in parallel over combinations (numba ``prange``).

The backtest per combination follows :func:`augur.decision.decide` bar by bar, at each
bar's close: mark the open position to the close; if a position is open, close it on
stop loss / take profit / time limit / confident reversal; else, if the signal passes the
confidence gate and neither the drawdown limit nor the cool-down forbids it, enter in
the signal's direction with the capped fractional-Kelly size scaled by the drawdown and
the volatility regime. Every bar is decided by the decision engine's own step
(:func:`augur.decision._step.step`, compiled), the function ``decide()`` calls. One
action per bar (an exit and a new entry never share a bar). Costs: ``commission_bps +
slippage_bps`` per side, per unit of notional traded. One symbol, one account: the
exposure caps leave their full room, as for the only open position. With ``rules`` (an
``augur.rules`` program) an entry the step allows then goes through the rule set as in
``decide()``: skipped, or resized within the caps.

Metrics (per combination; conventions of :mod:`augur.backtest.metrics`): ``total_return``
(fraction), ``sharpe`` (per-bar returns, ddof=1, times ``sqrt(periods_per_year)``),
``max_drawdown_pct`` (percent, positive), ``win_rate`` (share of trades with a positive
net return; NaN without trades), ``n_trades``, ``avg_profit`` (mean per-trade net return
in **percent** of the equity before the trade) and
``score = avg_profit + 0.1 * sharpe + 10 * (win_rate - 0.5) - 0.05 * max_drawdown_pct``
(the win-rate term is left out without trades).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from augur.decision import DecisionConfig
from augur.decision._program import RuleProgram

#: Columns :func:`sweep` needs in ``predictions`` (``direction``, ``volatility`` and
#: ``volatility_ref`` optional).
PREDICTION_COLUMNS = ("p_up", "p_down", "confidence", "q05", "q95", "price")
#: Result columns besides the grid's own.
RESULT_COLUMNS = (
    "total_return",
    "sharpe",
    "max_drawdown_pct",
    "win_rate",
    "n_trades",
    "avg_profit",
    "score",
)


def _grid_frame(grid: Mapping[str, Sequence[Any]] | pd.DataFrame) -> pd.DataFrame:
    if isinstance(grid, pd.DataFrame):
        return grid.reset_index(drop=True)
    if not isinstance(grid, Mapping) or not grid:
        raise ValueError(
            "grid must be a non-empty mapping {DecisionConfig field: [values, ...]} "
            "or a DataFrame with one row per combination"
        )
    keys = list(grid)
    values = [list(v) if not isinstance(v, str) else [v] for v in grid.values()]
    for k, v in zip(keys, values, strict=True):
        if not v:
            raise ValueError(f"grid[{k!r}] is empty: give at least one value")
    return pd.DataFrame(list(itertools.product(*values)), columns=keys)


def _configs(grid: pd.DataFrame, base: DecisionConfig) -> list[DecisionConfig]:
    base_values = base.to_dict()
    # Keep the drawdown-scaling start at the same fraction of the limit as in the base
    # config when the grid moves the limit but not the start (else most limits clash).
    start_ratio = base.drawdown_scale_start / base.max_drawdown
    moves_start = "drawdown_scale_start" in grid.columns
    rows = grid.to_dict(orient="records")
    unknown = sorted(set(grid.columns) - set(base_values))
    if unknown and rows:
        raise ValueError(
            f"grid row 0 ({rows[0]}): unknown DecisionConfig field(s) {unknown}; "
            f"known fields: {sorted(base_values)}"
        )
    configs = []
    for i, row in enumerate(rows):
        values = {**base_values, **row}
        if "max_drawdown" in row and not moves_start:
            values["drawdown_scale_start"] = start_ratio * float(row["max_drawdown"])
        for name in ("cooldown_losses", "cooldown_bars", "max_holding_bars"):
            if float(values[name]).is_integer():
                values[name] = int(values[name])
        try:
            # the field names are checked once above (DecisionConfig.from_dict checks
            # them for every row: about a tenth of a 1,000-combination sweep's time)
            configs.append(DecisionConfig(**values))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"grid row {i} ({row}): {exc}") from exc
    return configs


def _params(configs: list[DecisionConfig]) -> np.ndarray:
    from augur.backtest._kernels import rule_rows

    return rule_rows(configs)


def _prediction_arrays(predictions: pd.DataFrame) -> dict[str, np.ndarray]:
    missing = [c for c in PREDICTION_COLUMNS if c not in predictions.columns]
    if missing:
        raise ValueError(
            f"predictions: column(s) {missing} missing (have {list(predictions.columns)}); "
            f"needed: {list(PREDICTION_COLUMNS)}"
        )
    if len(predictions) < 2:
        raise ValueError("predictions: need at least 2 bars")
    arrays = {
        c: np.ascontiguousarray(predictions[c].to_numpy(dtype=np.float64))
        for c in PREDICTION_COLUMNS
    }
    for c, a in arrays.items():
        bad = np.flatnonzero(~np.isfinite(a))
        if len(bad):
            raise ValueError(f"predictions: {c!r} is not finite at row {bad[0]}")
    if (arrays["price"] <= 0).any():
        raise ValueError(
            f"predictions: 'price' must be > 0 (row {int(np.argmax(arrays['price'] <= 0))})"
        )
    p_up, p_down = arrays["p_up"], arrays["p_down"]
    if "direction" in predictions.columns:
        direction = predictions["direction"].to_numpy(dtype=np.int64)
    else:
        direction = np.sign(p_up - p_down).astype(np.int64)
    arrays["direction"] = np.ascontiguousarray(direction)
    arrays["probability"] = np.where(
        direction > 0, p_up, np.where(direction < 0, p_down, np.maximum(p_up, p_down))
    )
    # Without them, volatility-unit exits and volatility scaling are off, as in decide().
    for c in ("volatility", "volatility_ref"):
        if c in predictions.columns:
            arrays[c] = np.ascontiguousarray(predictions[c].to_numpy(dtype=np.float64))
        else:
            arrays[c] = np.zeros(len(predictions))
    return arrays


def rule_kpi_rows(
    *,
    confidence: np.ndarray,
    probability: np.ndarray,
    p_up: np.ndarray,
    p_down: np.ndarray,
    direction: np.ndarray,
    volatility: np.ndarray,
    volatility_ref: np.ndarray,
    agreement: np.ndarray | None = None,
    trend_strength: np.ndarray | None = None,
    regime: np.ndarray | None = None,
    timestamp: Any = None,
) -> np.ndarray:
    """Per bar, the rule KPIs that do not depend on the account, as
    :func:`augur.decision._program.entry_kpis` computes them (its order; the account's
    drawdown, loss streak, bars held and Kelly size are left 0 for the kernel to fill).
    Missing inputs as ``decide()`` has them without: agreement, regime and time unknown
    (NaN), trend strength 0."""
    from augur.decision._program import KPI_INDEX, KPIS

    n = len(confidence)
    rows = np.zeros((n, len(KPIS)))

    def put(name: str, values: Any) -> None:
        rows[:, KPI_INDEX[name]] = values

    put("confidence", confidence)
    put("probability", probability)
    put("margin", np.abs(np.asarray(p_up) - np.asarray(p_down)))
    put("agreement", np.nan if agreement is None else agreement)
    put("volatility", volatility)
    ref = np.asarray(volatility_ref, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        put("volatility_ratio", np.where(ref > 0, np.asarray(volatility) / ref, np.nan))
    put("trend_strength", 0.0 if trend_strength is None else trend_strength)
    if regime is not None:  # as run_decisions reads it: an integer code, -1 unknown
        code = np.nan_to_num(np.asarray(regime, dtype=np.float64), nan=-1).astype(np.int64)
        put("regime", np.where(code >= 0, code.astype(np.float64), np.nan))
    else:
        put("regime", np.nan)
    if timestamp is not None:
        times = pd.DatetimeIndex(timestamp)
        put("hour", np.asarray(times.hour, dtype=np.float64))
        put("day_of_week", np.asarray(times.dayofweek, dtype=np.float64))
    else:
        put("hour", np.nan)
        put("day_of_week", np.nan)
    put("direction", np.asarray(direction, dtype=np.float64))
    return rows


def _program_arrays(rules: RuleProgram | None) -> tuple[np.ndarray, np.ndarray, int]:
    if rules is None:
        return np.empty(0, dtype=np.int64), np.empty(0), 0
    ops, args = rules.arrays()
    return ops, args, int(rules.stack)


def _sweep_kpis(predictions: pd.DataFrame, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """The rule KPI rows of ``predictions`` (:func:`rule_kpi_rows`)."""

    def column(*names: str) -> np.ndarray | None:
        for name in names:
            if name in predictions.columns:
                return predictions[name].to_numpy(dtype=np.float64)
        return None

    return rule_kpi_rows(
        confidence=arrays["confidence"],
        probability=arrays["probability"],
        p_up=arrays["p_up"],
        p_down=arrays["p_down"],
        direction=arrays["direction"],
        volatility=arrays["volatility"],
        volatility_ref=arrays["volatility_ref"],
        agreement=column("agreement"),
        trend_strength=column("trend_strength", "trend"),
        regime=column("regime"),
        timestamp=predictions["timestamp"] if "timestamp" in predictions.columns else None,
    )


def replay_decisions(
    frame: pd.DataFrame,
    config: DecisionConfig,
    *,
    volatility_ref: float | np.ndarray = 0.0,
    rules: RuleProgram | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`augur.backtest.evaluation.run_decisions` on the compiled kernel: the same
    ``frame`` columns (and ``regime``, ``timestamp`` when there), the same account, the
    same positions held after each bar's decision and entry flags (+1/-1, 0 none)."""
    from augur.backtest._sweep_kernel import replay_kernel
    from augur.backtest.evaluation import DECISION_COLUMNS

    n = len(frame)
    cols = {c: np.ascontiguousarray(frame[c].to_numpy(dtype=np.float64)) for c in DECISION_COLUMNS}
    direction = cols["direction"].astype(np.int64)
    vol_ref = np.ascontiguousarray(
        np.broadcast_to(np.asarray(volatility_ref, dtype=np.float64), (n,))
    )
    kpis = rule_kpi_rows(
        confidence=cols["confidence"],
        probability=cols["probability"],
        p_up=cols["p_up"],
        p_down=cols["p_down"],
        direction=direction,
        volatility=cols["volatility"],
        volatility_ref=vol_ref,
        agreement=cols["agreement"],
        trend_strength=cols["trend"],
        regime=frame["regime"].to_numpy(dtype=np.float64) if "regime" in frame else None,
        timestamp=frame.get("timestamp"),
    )
    ops, args, depth = _program_arrays(rules)
    positions = np.zeros((1, n))
    entries = np.zeros((1, n), dtype=np.int64)
    replay_kernel(
        cols["close"],
        direction,
        cols["probability"],
        cols["confidence"],
        cols["q05"],
        cols["q95"],
        cols["volatility"],
        vol_ref,
        _params([config]),
        0.0,  # costs are the metrics' (as in run_decisions)
        1.0,
        np.empty((1, 6)),
        positions,
        kpis if rules is not None else kpis[:0],
        ops,
        args,
        depth,
        cols["next_return"],
        entries,
    )
    return positions[0], entries[0]


def sweep(
    predictions: pd.DataFrame,
    grid: Mapping[str, Sequence[Any]] | pd.DataFrame,
    base_config: DecisionConfig | None = None,
    *,
    commission_bps: float = 1.0,
    slippage_bps: float = 1.0,
    periods_per_year: float = 252.0,
    rules: RuleProgram | None = None,
) -> pd.DataFrame:
    """Backtest every combination of ``grid`` over ``predictions``; one row each.

    ``predictions``: one row per bar in time order with :data:`PREDICTION_COLUMNS`
    (``price`` is the bar's close; optional ``direction`` — else ``sign(p_up - p_down)`` —
    and ``volatility`` per bar for volatility-unit exits, and ``volatility_ref`` — the
    model version's reference volatility, as ``augur backtest`` writes it — for
    volatility scaling; without them those rules are off, as in
    :func:`~augur.decision.decide`). ``grid``: ``{DecisionConfig field: values}``
    (cartesian product) or a DataFrame with one combination per row; fields not in the
    grid come from ``base_config``. Returns the grid's columns plus
    :data:`RESULT_COLUMNS` (see the module docstring for units).

    ``rules``: a compiled ``augur.rules`` rule set applied to every entry, as
    ``decide(..., rules=...)`` applies it. Its KPIs read ``agreement``,
    ``trend_strength`` (or ``trend``), ``regime`` and ``timestamp`` (hour, day of week)
    from ``predictions`` when there; without them they are unknown (NaN; trend strength
    0), as for ``decide()`` without them.
    """
    from augur.backtest._sweep_kernel import NO_RULES, sweep_kernel, sweep_kernel_rules
    from augur.backtest.metrics import composite_score

    base_config = base_config or DecisionConfig()
    frame = _grid_frame(grid)
    configs = _configs(frame, base_config)
    arrays = _prediction_arrays(predictions)
    params = _params(configs)
    out = np.empty((len(configs), 6))
    kernel, program = sweep_kernel, NO_RULES
    if rules is not None:
        kernel = sweep_kernel_rules
        program = (_sweep_kpis(predictions, arrays), *_program_arrays(rules), *NO_RULES[4:])
    kernel(
        arrays["price"],
        arrays["direction"],
        arrays["probability"],
        arrays["confidence"],
        arrays["q05"],
        arrays["q95"],
        arrays["volatility"],
        arrays["volatility_ref"],
        params,
        (commission_bps + slippage_bps) / 1e4,
        float(np.sqrt(periods_per_year)),
        out,
        np.empty((0, 0)),
        *program,
    )
    result = frame.copy()
    result["total_return"] = out[:, 0]
    result["sharpe"] = out[:, 1]
    result["max_drawdown_pct"] = out[:, 2] * 100.0
    result["win_rate"] = out[:, 3]
    result["n_trades"] = out[:, 4].astype(np.int64)
    result["avg_profit"] = out[:, 5] * 100.0
    result["score"] = [
        composite_score(a, s, w, m)
        for a, s, w, m in zip(
            result["avg_profit"],
            result["sharpe"],
            result["win_rate"],
            result["max_drawdown_pct"],
            strict=True,
        )
    ]
    return result
