"""A rule set inside ``decide()``: it skips or rescales entries within the caps, sees the
bar's regime among its KPIs, and never touches an exit or a refusal."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from augur.backtest.evaluation import run_decisions
from augur.decision import (
    DecisionConfig,
    MarketContext,
    PositionContext,
    RiskState,
    Signal,
    decide,
)
from augur.rules import compile_rules, parse
from augur.serving._contexts import MarketReader

SIGNAL = Signal(
    direction=1,
    probability=0.7,
    p_up=0.7,
    p_down=0.2,
    confidence=0.8,
    agreement=1.0,
    q05=-0.01,
    q50=0.005,
    q95=0.02,
)
FLAT = PositionContext(side="flat", size=0.0, entry_price=0.0, bars_held=0)
RISK = RiskState(equity=1.0, peak_equity=1.0)
CONFIG = DecisionConfig(confidence_threshold=0.5, max_position_size=0.5)


def market(regime: int = -1, price: float = 1.0) -> MarketContext:
    return MarketContext(
        symbol="EURUSD",
        price=price,
        volatility=0.01,
        regime=regime,
        timestamp=datetime(2024, 1, 1, 14, tzinfo=UTC),  # a Monday, 14:00 UTC
    )


def rules(text: str, name: str = "test", version: int = 1):
    return compile_rules(parse(text), name, version, text)


def test_without_rules_nothing_changes() -> None:
    plain = decide(SIGNAL, FLAT, RISK, market(), CONFIG)
    same = decide(SIGNAL, FLAT, RISK, market(), CONFIG, rules=rules("if hour > 99: act = false"))
    assert replace(same, rule_set="") == plain and plain.action.value == "enter_long"
    assert (plain.rule_set, same.rule_set) == ("", "test@1")


def test_the_regime_is_a_kpi_rules_decide_on() -> None:
    skip_volatile_trends = rules("if regime == trending_volatile: act = false")
    skipped = decide(SIGNAL, FLAT, RISK, market(regime=3), CONFIG, rules=skip_volatile_trends)
    assert skipped.action.value == "no_action" and skipped.size == 0.0
    assert skipped.reasons[-1].code == "rule_skipped"
    assert "test@1" in skipped.reasons[-1].text
    kept = decide(SIGNAL, FLAT, RISK, market(regime=2), CONFIG, rules=skip_volatile_trends)
    assert kept.action.value == "enter_long" and kept.size > 0


def test_a_rule_rescales_within_the_caps() -> None:
    base = decide(SIGNAL, FLAT, RISK, market(), CONFIG)
    half = decide(
        SIGNAL, FLAT, RISK, market(), CONFIG, rules=rules("if hour >= 14: size = kelly / 2")
    )
    assert half.size == pytest.approx(base.size / 2)
    assert half.reasons[-1].code == "rule_sized"
    capped_config = DecisionConfig(confidence_threshold=0.5, max_position_size=base.size * 1.2)
    capped = decide(
        SIGNAL,
        FLAT,
        RISK,
        market(),
        capped_config,
        rules=rules("if day_of_week == 0: size = kelly * 5"),
    )
    assert capped.size == pytest.approx(base.size * 1.2)  # the position cap, not 2 x kelly


def test_exits_and_refusals_are_not_the_rules_to_change() -> None:
    always_skip = rules("if confidence >= 0: act = false")
    long_at_loss = PositionContext(side="long", size=0.1, entry_price=1.0, bars_held=3)
    exit_ = decide(SIGNAL, long_at_loss, RISK, market(price=0.5), CONFIG, rules=always_skip)
    assert exit_.action.value == "exit_position"
    low = Signal(direction=1, probability=0.7, p_up=0.7, p_down=0.2, confidence=0.1, agreement=1.0)
    refused = decide(low, FLAT, RISK, market(), CONFIG, rules=always_skip)
    assert [r.code for r in refused.reasons] == ["confidence_below_threshold"]


def test_the_backtest_applies_rules_bar_by_bar() -> None:
    n = 60
    frame = pd.DataFrame(
        {
            "direction": 1.0,
            "probability": 0.7,
            "p_up": 0.7,
            "p_down": 0.2,
            "confidence": 0.8,
            "agreement": 1.0,
            "q05": -0.01,
            "q50": 0.005,
            "q95": 0.02,
            "close": 1.0 + 0.001 * np.arange(n),
            "next_return": 0.001,
            "volatility": 0.01,
            "trend": 0.5,
            "regime": np.where(np.arange(n) < 30, 3, 2),
            "timestamp": pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC"),
        }
    )
    config = DecisionConfig(confidence_threshold=0.5, max_holding_bars=2)
    _, free = run_decisions(frame, config, symbol="X")
    _, ruled = run_decisions(
        frame, config, symbol="X", rules=rules("if regime == trending_volatile: act = false")
    )
    assert free[:30].any() and not ruled[:30].any()
    assert ruled[30:].any()


def test_serving_reads_the_regime_from_the_feature_row() -> None:
    names = ["close", "vol_20", "eff_ratio_20", "regime"]
    reader = MarketReader(names)
    ctx = reader("EURUSD", np.array([1.1, 0.01, 0.4, 3.0]), None, None)
    assert ctx.regime == 3
    assert reader("EURUSD", np.array([1.1, 0.01, 0.4, np.nan]), None, None).regime == -1
