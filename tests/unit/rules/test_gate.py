"""The gate: a candidate replaces the incumbent only with a margin, an interval above zero
and no deeper drawdown; of several that pass, the best; never on too few trades."""

from __future__ import annotations

import numpy as np
import pytest

from augur.backtest.metrics import trading_metrics
from augur.rules import Costs, GateConfig, judge
from augur.rules._trial import SymbolTrial, Trial

COSTS = Costs(0.0, 0.0)
N, SPLIT = 600, 420
RNG = np.random.default_rng(11)
ASSET = RNG.normal(0.0, 0.002, N)
GATE = GateConfig(margin=0.05, max_drawdown_worsening=1.0, bootstrap_reps=400, min_block=5)


def trial(positions: np.ndarray, label: str = "t") -> Trial:
    one = SymbolTrial(positions, (positions != 0).astype(np.int64), ASSET, SPLIT, 252.0)

    def m(part: slice):
        return trading_metrics(positions[part], ASSET[part], 252.0)

    return Trial(label, {"X": one}, {"X": m(slice(None, SPLIT))}, {"X": m(slice(SPLIT, None))})


def trades_every(k: int, size: float, keep: np.ndarray | None = None) -> np.ndarray:
    """A long position of ``size`` held for ``k - 1`` bars out of every ``k``."""
    pos = np.where(np.arange(N) % k == k - 1, 0.0, size)
    return pos if keep is None else pos * keep


WINNING_BARS = (ASSET > 0).astype(float)
INCUMBENT = trial(trades_every(4, 0.5))


def test_the_same_rules_do_not_pass() -> None:
    (v,) = judge(INCUMBENT, [trial(trades_every(4, 0.5))], COSTS, GATE)
    assert not v.passed and v.difference == 0.0 and "below the margin" in v.reason


def test_a_clear_improvement_passes_with_its_interval_above_zero() -> None:
    # the candidate is long only in the bars that rise: far better, and sure of it
    (v,) = judge(INCUMBENT, [trial(trades_every(4, 0.5, WINNING_BARS))], COSTS, GATE)
    assert v.passed and v.reason.startswith("accepted")
    assert v.interval.low > 0 and v.difference >= GATE.margin
    assert v.interval.level == pytest.approx(0.90)


def test_a_noisy_gain_whose_interval_holds_zero_is_refused() -> None:
    # a little better on the search part, by luck of a few bars
    lucky = trades_every(4, 0.5).copy()
    best_bars = np.argsort(ASSET[:SPLIT])[-3:]
    lucky[best_bars] = 0.6
    gate = GateConfig(margin=0.0, bootstrap_reps=400, min_block=5)
    (v,) = judge(INCUMBENT, [trial(lucky)], COSTS, gate)
    assert not v.passed and "does not exclude zero" in v.reason
    assert v.interval.low <= 0 < v.difference


def test_a_deeper_drawdown_is_refused_even_with_a_better_score() -> None:
    # in the rising bars only, the incumbent never loses; the candidate takes four times
    # the size (a higher composite) and one falling bar besides: a drawdown where none was
    careful = trial(trades_every(4, 0.5, WINNING_BARS))
    keep = WINNING_BARS.copy()
    small_loss = np.where((ASSET < -0.0005) & (np.arange(N) < SPLIT), ASSET, -np.inf).argmax()
    keep[small_loss] = 1.0
    bold = trial(trades_every(4, 2.0, keep))
    gate = GateConfig(max_drawdown_worsening=0.01, bootstrap_reps=400)
    (v,) = judge(careful, [bold], COSTS, gate)
    assert v.difference > 0.05 and v.interval.low > 0
    assert not v.passed and "max drawdown" in v.reason and v.drawdown_worsening > 0.01


def test_of_several_that_pass_the_best_wins_and_the_interval_widens_with_their_number():
    good = trial(trades_every(4, 0.5, WINNING_BARS))
    better = trial(trades_every(4, 1.0, WINNING_BARS))
    verdicts = judge(INCUMBENT, [good, None, better], COSTS, GATE)
    assert verdicts[1] is None
    assert verdicts[2].passed and not verdicts[0].passed
    assert "candidate 3 did better" in verdicts[0].reason
    assert verdicts[0].interval.level == pytest.approx(1 - 0.10 / 2)  # two were judged


def test_too_few_trades_are_not_judged() -> None:
    one_trade = np.zeros(N)
    one_trade[10:20] = 0.5
    (v,) = judge(INCUMBENT, [trial(one_trade)], COSTS, GATE)
    assert not v.passed and "fewer than 10 to judge by" in v.reason
