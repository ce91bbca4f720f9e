"""The walk-forward by market regime: how the product did in each regime of the
``regime`` feature (trending or ranging, calm or volatile: :data:`augur.features.REGIMES`).

A strategy that earns its keep in one regime and loses it in another shows here, where
the headline table averages the two away.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from augur.backtest.metrics import strategy_returns
from augur.features import REGIMES


def regime_table(
    preds: pd.DataFrame,
    positions: pd.DataFrame,
    entries: np.ndarray,
    commission_bps: float,
    slippage_bps: float,
) -> pd.DataFrame:
    """One row per regime the out-of-sample bars visited (in code order).

    ``preds``: the walk-forward's bars with ``regime``, ``direction``, ``label`` and
    ``next_return``; ``positions``: the strategies' positions per bar; ``entries``: the
    product's entry per bar (+1/-1 entered, 0 none). Columns: ``bars``, ``hit_rate`` (the
    ensemble's non-flat predictions whose direction was the realised label),
    ``trades`` (the product's entries), ``trade_hit_rate`` (entries in the realised
    label's direction), ``return_ensemble`` and ``return_buy_and_hold`` (the net returns
    of that regime's bars, compounded). Bars without a regime (none: the feature is
    defined wherever the model could score) are left out.
    """
    asset = preds["next_return"].to_numpy(dtype=float)
    net = {
        s: strategy_returns(
            positions[s].to_numpy(dtype=float), asset, commission_bps, slippage_bps
        )[0]
        for s in ("ensemble", "buy_and_hold")
    }
    regime = preds["regime"].to_numpy(dtype=float)
    direction = preds["direction"].to_numpy()
    label = preds["label"].to_numpy()
    rows: list[dict[str, Any]] = []
    for code, name in REGIMES.items():
        here = regime == code
        if not here.any():
            continue
        called = here & (direction != 0)
        entered = here & (entries != 0)
        rows.append(
            {
                "regime": name,
                "bars": int(here.sum()),
                "hit_rate": _share(direction[called] == label[called]),
                "trades": int(entered.sum()),
                "trade_hit_rate": _share(np.sign(entries[entered]) == label[entered]),
                "return_ensemble": float(np.prod(1.0 + net["ensemble"][here]) - 1.0),
                "return_buy_and_hold": float(np.prod(1.0 + net["buy_and_hold"][here]) - 1.0),
            }
        )
    return pd.DataFrame(rows)


def _share(hits: np.ndarray) -> float:
    return float(hits.mean()) if len(hits) else float("nan")


__all__ = ["regime_table"]
