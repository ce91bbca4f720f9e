"""Monte Carlo engine: agrees with decide() step by step, reproducible, chunking-invariant,
memory-bounded; outcome I/O."""

from __future__ import annotations

import tracemalloc

import numba
import numpy as np
import pandas as pd
import pytest

from augur.backtest import _kernels
from augur.backtest.metrics import max_drawdown, sharpe_ratio
from augur.backtest.simulation import (
    METRICS,
    OutOfSampleOutcomes,
    simulate,
    simulate_paths,
)
from augur.decision import (
    Action,
    DecisionConfig,
    MarketContext,
    PositionContext,
    RiskState,
    Signal,
    decide,
)


def make_outcomes(
    n: int = 500, seed: int = 0, drift: float = 0.0, vol: float = 0.02
) -> OutOfSampleOutcomes:
    rng = np.random.default_rng(seed)
    direction = rng.choice([-1, 0, 1], n, p=[0.45, 0.1, 0.45])
    return OutOfSampleOutcomes(
        probability=rng.uniform(0.4, 0.75, n),
        payoff_ratio=rng.uniform(0.0, 12.0, n),
        confidence=rng.uniform(0.0, 1.0, n),
        realised_return=rng.normal(drift * direction, vol, n),
        direction=direction,
    )


# Aggressive settings so that drawdown scaling, the cool-down and the stop all happen.
AGGRESSIVE = DecisionConfig(
    confidence_threshold=0.3,
    kelly_fraction=1.0,
    max_position_size=0.8,
    max_drawdown=0.3,
    drawdown_scale_start=0.25,
    cooldown_losses=2,
    cooldown_bars=3,
    max_symbol_exposure=0.6,
    max_portfolio_heat=1.0,
    max_correlated_exposure=1.0,
)
COST_BPS = 2.0  # per side (commission 1 + slippage 1)


def reference_path(outcomes, config, seed, path, n_steps, block, ruin_equity=0.5):
    """The rules in plain Python through decide(), on the kernel's draws."""
    idx = _kernels.path_indices(seed, path, len(outcomes), block, n_steps)
    cost = 2 * COST_BPS / 1e4
    eq = peak = 1.0
    streak, since_loss = 0, 10**9
    rets, trades, wins, alive = [], 0, 0, True
    for i in idx:
        r = 0.0
        if alive:
            d, b = int(outcomes.direction[i]), float(outcomes.payoff_ratio[i])
            q05, q95 = (-0.01, 0.01 * b) if d > 0 else (-0.01 * b, 0.01)
            p = float(outcomes.probability[i])
            sig = Signal(
                direction=d,
                probability=p,
                p_up=p,
                p_down=1 - p,
                confidence=float(outcomes.confidence[i]),
                agreement=1.0,
                q05=q05,
                q95=q95,
            )
            risk = RiskState(
                equity=eq,
                peak_equity=peak,
                consecutive_losses=streak,
                bars_since_last_loss=since_loss,
            )
            dec = decide(sig, PositionContext(), risk, MarketContext("X", 1.0), config)
            if dec.action in (Action.ENTER_LONG, Action.ENTER_SHORT):
                r = dec.size * (d * outcomes.realised_return[i] - cost)
                eq *= 1 + r
                trades += 1
                if r > 0:
                    wins, streak = wins + 1, 0
                elif r < 0:
                    streak, since_loss = streak + 1, -1
        since_loss += 1
        rets.append(r)
        peak = max(peak, eq)
        if 1 - eq / peak >= config.max_drawdown or eq <= ruin_equity:
            alive = False
    return {
        "terminal_return": eq - 1,
        "max_drawdown": max_drawdown(np.array(rets)),
        "sharpe": sharpe_ratio(np.array(rets), 252.0),
        "win_rate": wins / trades if trades else np.nan,
        "ruined": not alive,
    }


def test_kernel_agrees_with_decide_step_by_step():
    outcomes = make_outcomes(vol=0.06)
    n_paths, n_steps, block = 24, 252, 7
    metrics, ruined = simulate_paths(
        outcomes,
        n_paths,
        AGGRESSIVE,
        seed=11,
        n_steps=n_steps,
        block_length=block,
        commission_bps=1.0,
        slippage_bps=1.0,
    )
    assert ruined.any() and not ruined.all(), "the fixture must exercise the drawdown stop"
    for k in range(n_paths):
        ref = reference_path(outcomes, AGGRESSIVE, 11, k, n_steps, block)
        for m in METRICS:
            assert metrics[m][k] == pytest.approx(ref[m], rel=1e-9, abs=1e-12, nan_ok=True), (k, m)
        assert ruined[k] == ref["ruined"], k


def test_block_bootstrap_draws_consecutive_blocks():
    idx = _kernels.path_indices(3, 5, 100, 10, 252)
    assert idx.min() >= 0 and idx.max() < 100
    steps = np.diff(idx)
    within = np.arange(1, 252) % 10 != 0  # inside a block: next outcome (circular)
    assert np.all((steps[within] == 1) | (steps[within] == -99))
    # different paths and seeds draw differently
    assert not np.array_equal(idx, _kernels.path_indices(3, 6, 100, 10, 252))
    assert not np.array_equal(idx, _kernels.path_indices(4, 5, 100, 10, 252))


def test_reproducible_from_seed_and_invariant_to_chunks_and_threads():
    outcomes = make_outcomes(drift=0.002)
    a = simulate(outcomes, 20_000, seed=5, chunk_size=20_000)
    b = simulate(outcomes, 20_000, seed=5, chunk_size=3_001)
    assert a.quantiles == b.quantiles
    assert a.probability_of_ruin == b.probability_of_ruin
    for m in METRICS:
        assert a.mean[m] == pytest.approx(b.mean[m], rel=1e-12)
    c = simulate(outcomes, 20_000, seed=6, chunk_size=20_000)
    assert c.quantiles != a.quantiles
    negative, _ = simulate_paths(outcomes, 10, seed=-5)  # any Python int is a seed
    assert negative["max_drawdown"].notna().all()

    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one, _ = simulate_paths(outcomes, 500, seed=5, path_start=1000)
    finally:
        numba.set_num_threads(before)
    many, _ = simulate_paths(outcomes, 500, seed=5, path_start=1000)
    pd.testing.assert_frame_equal(one, many)
    # a path's result does not depend on where its chunk starts
    whole, _ = simulate_paths(outcomes, 1500, seed=5)
    np.testing.assert_array_equal(whole.iloc[1000:].to_numpy(), many.to_numpy())


def test_quantiles_match_exact_within_resolution():
    outcomes = make_outcomes(drift=0.001)
    result = simulate(outcomes, 30_000, AGGRESSIVE, seed=2, chunk_size=7_000)
    exact, ruined = simulate_paths(outcomes, 30_000, AGGRESSIVE, seed=2)
    assert result.probability_of_ruin == pytest.approx(ruined.mean())
    assert result.paths_without_trades == int(exact["win_rate"].isna().sum())
    for m in METRICS:
        col = exact[m].dropna().to_numpy()
        assert result.mean[m] == pytest.approx(col.mean(), rel=1e-9, abs=1e-12)
        for q, v in result.quantiles[m].items():
            # histogram quantile: within a bin (plus the sample's own step between ranks)
            lo, hi = np.quantile(col, [max(q - 1e-3, 0), min(q + 1e-3, 1)])
            assert lo - 2 * result.resolution[m] <= v <= hi + 2 * result.resolution[m], (m, q)
    frame = result.to_frame()
    assert list(frame.index) == list(METRICS) and "q50" in frame.columns
    assert result.to_dict()["n_paths"] == 30_000


def test_memory_is_bounded_by_chunk_size():
    outcomes = make_outcomes()
    calls = []
    simulate(outcomes, 10, seed=1)  # warm-up (compiled kernels, caches)
    tracemalloc.start()
    result = simulate(
        outcomes,
        200_000,
        seed=1,
        chunk_size=10_000,
        progress_callback=lambda done, total: calls.append((done, total)),
    )
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert result.max_chunk_paths == 10_000
    assert [d for d, _ in calls] == list(range(10_000, 200_001, 10_000))
    # 200k paths x 4 metrics x 8 B = 6.4 MB if held at once; chunks + pilot + histograms
    # (4 x 65,536 x 8 B = 2 MiB) stay far below that.
    assert peak < 5_500_000, peak


def test_winning_edge_beats_losing_edge_and_ruin_is_counted():
    good = simulate(make_outcomes(drift=0.02, vol=0.06), 5_000, AGGRESSIVE, seed=3)
    bad = simulate(make_outcomes(drift=-0.02, vol=0.06), 5_000, AGGRESSIVE, seed=3)
    assert good.quantiles["terminal_return"][0.5] > 0 > bad.quantiles["terminal_return"][0.5]
    assert bad.probability_of_ruin > good.probability_of_ruin
    assert good.paths_per_second > 0


def test_bad_arguments_are_clear_errors():
    outcomes = make_outcomes()
    with pytest.raises(ValueError, match="n_paths"):
        simulate(outcomes, 0)
    with pytest.raises(ValueError, match="chunk_size"):
        simulate(outcomes, 10, chunk_size=0)
    with pytest.raises(ValueError, match="quantiles"):
        simulate(outcomes, 10, quantiles=(1.5,))
    with pytest.raises(TypeError, match="OutOfSampleOutcomes"):
        simulate(outcomes.to_frame(), 10)  # type: ignore[arg-type]


# --- outcomes ----------------------------------------------------------------------


def test_outcomes_frame_round_trip_and_parquet(tmp_path):
    outcomes = make_outcomes(50)
    frame = outcomes.to_frame()
    assert list(frame.columns) == [*OutOfSampleOutcomes.COLUMNS, "volatility", "volatility_ref"]
    back = OutOfSampleOutcomes.from_frame(frame.assign(extra=1, volatility=0.01))
    np.testing.assert_array_equal(back.realised_return, outcomes.realised_return)
    assert (back.volatility == 0.01).all() and (back.volatility_ref == 0.0).all()
    # files written before the volatility columns existed still load (no scaling)
    old = OutOfSampleOutcomes.from_frame(frame[list(OutOfSampleOutcomes.COLUMNS)])
    assert (old.volatility == 0.0).all()
    path = outcomes.save(tmp_path / "reports" / OutOfSampleOutcomes.FILE_NAME)
    assert len(OutOfSampleOutcomes.load(path)) == 50
    with pytest.raises(FileNotFoundError, match="augur backtest"):
        OutOfSampleOutcomes.load(tmp_path / "missing.parquet")


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("probability", 1.5, "probability"),
        ("direction", 2, "direction"),
        ("realised_return", np.nan, "non-finite"),
        ("payoff_ratio", -1.0, "payoff_ratio"),
    ],
)
def test_outcomes_validation_names_column_and_row(column, value, message):
    frame = make_outcomes(10).to_frame()
    frame.loc[7, column] = value
    with pytest.raises(ValueError, match=message) as err:
        OutOfSampleOutcomes.from_frame(frame)
    assert "row 7" in str(err.value)


def test_outcomes_errors_for_missing_column_and_empty():
    with pytest.raises(ValueError, match="'confidence' is missing"):
        OutOfSampleOutcomes.from_frame(make_outcomes(5).to_frame().drop(columns="confidence"))
    with pytest.raises(ValueError, match="empty"):
        OutOfSampleOutcomes.from_frame(make_outcomes(5).to_frame().iloc[:0])
    with pytest.raises(ValueError, match="1-D"):
        OutOfSampleOutcomes(np.zeros(3), np.zeros(2), np.zeros(3), np.zeros(3), np.zeros(3))


def test_outcomes_from_predictions():
    preds = pd.DataFrame(
        {
            "p_up": [0.6, 0.2, 0.3],
            "p_down": [0.2, 0.7, 0.3],
            "confidence": [0.8, 0.9, 0.1],
            "q05": [-0.01, -0.03, -0.01],
            "q95": [0.02, 0.01, 0.01],
            "forward_return": [0.001, -0.002, 0.0],
        }
    )
    o = OutOfSampleOutcomes.from_predictions(preds)
    np.testing.assert_array_equal(o.direction, [1, -1, 0])
    np.testing.assert_allclose(o.probability, [0.6, 0.7, 0.3])
    np.testing.assert_allclose(o.payoff_ratio, [2.0, 3.0, 0.0])
    o2 = OutOfSampleOutcomes.from_predictions(preds.assign(direction=[1, 1, 1]))
    np.testing.assert_array_equal(o2.direction, [1, 1, 1])
