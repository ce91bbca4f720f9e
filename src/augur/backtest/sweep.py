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
exposure caps leave their full room, as for the only open position.

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


def sweep(
    predictions: pd.DataFrame,
    grid: Mapping[str, Sequence[Any]] | pd.DataFrame,
    base_config: DecisionConfig | None = None,
    *,
    commission_bps: float = 1.0,
    slippage_bps: float = 1.0,
    periods_per_year: float = 252.0,
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
    """
    from augur.backtest import _kernels
    from augur.backtest.metrics import composite_score

    base_config = base_config or DecisionConfig()
    frame = _grid_frame(grid)
    configs = _configs(frame, base_config)
    arrays = _prediction_arrays(predictions)
    params = _params(configs)
    out = np.empty((len(configs), 6))
    _kernels.sweep_kernel(
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
