"""The walk-forward's breakdown by market regime."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from augur.backtest.regimes import regime_table


def test_each_regime_gets_its_own_hit_rate_trades_and_returns() -> None:
    preds = pd.DataFrame(
        {
            "regime": [0.0, 0.0, 2.0, 2.0, 2.0, 3.0],
            "direction": [1, 0, 1, -1, 1, 0],
            "label": [1, 0, -1, -1, 1, 1],
            "next_return": [0.01, -0.02, 0.02, -0.01, 0.03, 0.05],
        }
    )
    positions = pd.DataFrame(
        {"ensemble": [1.0, 0.0, 0.0, -1.0, 1.0, 0.0], "buy_and_hold": np.ones(6)}
    )
    entries = np.array([1, 0, 0, -1, 1, 0])
    table = regime_table(preds, positions, entries, 0.0, 0.0).set_index("regime")
    assert list(table.index) == ["ranging, calm", "trending, calm", "trending, volatile"]
    calm = table.loc["ranging, calm"]
    assert calm["bars"] == 2 and calm["trades"] == 1
    assert calm["hit_rate"] == 1.0 and calm["trade_hit_rate"] == 1.0  # one call, right
    assert calm["return_ensemble"] == pytest.approx(0.01)
    assert calm["return_buy_and_hold"] == pytest.approx(1.01 * 0.98 - 1)
    trend = table.loc["trending, calm"]
    assert trend["hit_rate"] == pytest.approx(2 / 3) and trend["trades"] == 2
    assert trend["return_ensemble"] == pytest.approx(1.01 * 1.03 - 1)  # short a fall, long a rise
    volatile = table.loc["trending, volatile"]
    assert np.isnan(volatile["hit_rate"]) and np.isnan(volatile["trade_hit_rate"])  # no call
