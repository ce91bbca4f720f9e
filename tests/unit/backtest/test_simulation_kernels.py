"""The compiled kernels compute exactly what their Python source says (run both)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from augur.backtest import _kernels, _sweep_kernel
from augur.backtest.sweep import _params, _prediction_arrays
from augur.decision import DecisionConfig


@pytest.fixture(autouse=True)
def _quiet_uint64_wraparound():
    # The RNG relies on uint64 wrap-around, which numpy scalars report as overflow.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def test_rng_and_draws_match_python_source():
    assert _kernels.path_state(7, 3) == _kernels.path_state.py_func(7, 3)
    for state in (np.uint64(5), np.uint64(2**63 + 12345)):
        nn = np.uint64(1000)
        assert _kernels._draw_index(state, nn) == _kernels._draw_index.py_func(state, nn)
        assert _kernels._mix64(state) == _kernels._mix64.py_func(state)


def test_simulation_kernels_match_python_source():
    rng = np.random.default_rng(0)
    n = 50
    direction = rng.choice([-1, 0, 1], n)
    confidence = rng.uniform(0, 1, n)
    volatility = rng.uniform(0.005, 0.02, n)  # volatility scaling on, around its reference
    rules = _kernels.rule_rows(
        [
            DecisionConfig(
                confidence_threshold=0.3,
                max_position_size=0.8,
                max_drawdown=0.3,
                drawdown_scale_start=0.2,
                cooldown_losses=2,
                cooldown_bars=3,
                max_symbol_exposure=0.6,
                max_portfolio_heat=1.0,
                max_correlated_exposure=1.0,
            )
        ]
    )[0]
    args = (
        rng.uniform(0.4, 0.8, n),
        rng.uniform(0, 3, n),
        confidence,
        direction,
        volatility,
        np.full(n, 0.01),
        rng.normal(0, 0.08, n),
        rules,
    )
    rows = _kernels.outcome_rows(*args)
    np.testing.assert_array_equal(rows, _kernels.outcome_rows.py_func(*args))
    outs = []
    for kernel in (_kernels.simulate_chunk_traced, _kernels.simulate_chunk_traced.py_func):
        metrics = np.empty((20, 4))
        ruined = np.empty(20, dtype=np.bool_)
        sizes = np.empty((20, 60))
        kernel(
            rows,
            4e-4,
            60,
            5,
            11,
            0,
            rules,
            0.97,  # ruin equity: some paths must be ruined
            np.sqrt(252.0),
            metrics,
            ruined,
            sizes,
        )
        outs.append((metrics, ruined, sizes))
    np.testing.assert_allclose(outs[0][0], outs[1][0], rtol=1e-12, equal_nan=True)
    np.testing.assert_array_equal(outs[0][1], outs[1][1])
    np.testing.assert_allclose(outs[0][2], outs[1][2], rtol=1e-12)
    assert outs[0][1].any()

    counts = [np.zeros((4, 16), dtype=np.int64) for _ in range(2)]
    moments = [np.tile([0.0, 0.0, 0.0, np.inf, -np.inf], (4, 1)) for _ in range(2)]
    lows, highs = np.full(4, -0.5), np.full(4, 0.5)
    _kernels.accumulate_histograms(outs[0][0], lows, highs, counts[0], moments[0])
    _kernels.accumulate_histograms.py_func(outs[0][0], lows, highs, counts[1], moments[1])
    np.testing.assert_array_equal(counts[0], counts[1])
    np.testing.assert_allclose(moments[0], moments[1])


def test_sweep_kernel_matches_python_source():
    import pandas as pd

    rng = np.random.default_rng(1)
    n = 120
    pred = pd.DataFrame(
        {
            "p_up": rng.uniform(0, 0.6, n),
            "p_down": rng.uniform(0, 0.6, n),
            "confidence": rng.uniform(0, 1, n),
            "q05": -rng.uniform(0.001, 0.01, n),
            "q95": rng.uniform(0.001, 0.01, n),
            "price": 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n))),
            "volatility": rng.uniform(0.005, 0.02, n),
            "volatility_ref": np.full(n, 0.01),
        }
    )
    a = _prediction_arrays(pred)
    configs = [
        DecisionConfig(
            confidence_threshold=0.2,
            cooldown_losses=2,
            cooldown_bars=3,
            max_holding_bars=5,
            max_drawdown=0.02,
            drawdown_scale_start=0.01,
        ),
        DecisionConfig(
            exit_units="return",
            stop_loss=0.01,
            take_profit=0.02,
            exit_on_reversal=False,
            kelly_fraction=1.0,
            max_position_size=0.9,
        ),
    ]
    params = _params(configs)
    outs = []
    traced = _sweep_kernel.sweep_kernel_traced
    for kernel in (traced, traced.py_func):
        out = np.empty((2, 6))
        positions = np.empty((2, n))
        kernel(
            a["price"],
            a["direction"],
            a["probability"],
            a["confidence"],
            a["q05"],
            a["q95"],
            a["volatility"],
            a["volatility_ref"],
            params,
            2e-4,
            np.sqrt(252.0),
            out,
            positions,
            *_sweep_kernel.NO_RULES,
        )
        outs.append((out, positions))
    np.testing.assert_allclose(outs[0][0], outs[1][0], rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(outs[0][1], outs[1][1], rtol=1e-12)
    assert (outs[0][0][:, 4] > 0).all()
