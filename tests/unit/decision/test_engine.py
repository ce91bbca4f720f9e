"""decide(): the four stages, reason codes, and the risk invariants (hypothesis)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from augur.decision import (
    Action,
    DecisionConfig,
    MarketContext,
    PositionContext,
    RiskState,
    Signal,
    decide,
)

CONFIG = DecisionConfig()
MARKET = MarketContext(symbol="EURUSD", price=1.10, volatility=0.001, volatility_ref=0.001)


def signal(direction: int = 1, probability: float = 0.62, confidence: float = 0.8, **kw) -> Signal:
    values = dict(
        direction=direction,
        probability=probability,
        p_up=probability if direction > 0 else 0.2,
        p_down=probability if direction < 0 else 0.2,
        confidence=confidence,
        agreement=0.75,
        q05=-0.01,
        q95=0.015,
        model_version="v1",
    )
    values.update(kw)
    return Signal(**values)


def codes(decision) -> list[str]:
    return [r.code for r in decision.reasons]


def test_confident_edge_enters_with_fractional_kelly_size():
    d = decide(signal(), PositionContext(), RiskState(), MARKET, CONFIG, request_id="r1")
    assert d.action is Action.ENTER_LONG
    # b = 0.015 / 0.01 = 1.5; f* = 0.62 - 0.38 / 1.5; quarter Kelly
    assert d.size == pytest.approx(0.25 * (0.62 - 0.38 / 1.5))
    assert codes(d) == ["entered"]
    assert d.request_id == "r1" and d.model_version == "v1"
    assert d.to_dict()["reasons"][0]["code"] == "entered"


def test_short_uses_downside_over_upside_payoff():
    d = decide(
        signal(direction=-1, q05=-0.02, q95=0.01), PositionContext(), RiskState(), MARKET, CONFIG
    )
    assert d.action is Action.ENTER_SHORT
    assert d.size == pytest.approx(0.25 * (0.62 - 0.38 / 2.0))


@pytest.mark.parametrize(
    ("sig", "code"),
    [
        (signal(confidence=0.2), "confidence_below_threshold"),
        (signal(confidence=float("nan")), "confidence_below_threshold"),
        (signal(direction=0), "flat_signal"),
        (signal(probability=0.3), "kelly_non_positive"),
        (signal(q95=-0.001), "kelly_non_positive"),  # no upside for a long
    ],
)
def test_no_entry_reasons(sig, code):
    d = decide(sig, PositionContext(), RiskState(), MARKET, CONFIG)
    assert d.action is Action.NO_ACTION and d.size == 0.0
    assert codes(d) == [code]


def test_drawdown_limit_and_cooldown_reject():
    at_limit = RiskState(equity=0.8, peak_equity=1.0)
    d = decide(signal(), PositionContext(), at_limit, MARKET, CONFIG)
    assert d.action is Action.RISK_REJECTED and codes(d) == ["drawdown_limit"]
    cooling = RiskState(consecutive_losses=3, bars_since_last_loss=0)
    d = decide(signal(), PositionContext(), cooling, MARKET, CONFIG)
    assert d.action is Action.RISK_REJECTED and codes(d) == ["cooldown"]
    cooled = RiskState(consecutive_losses=3, bars_since_last_loss=CONFIG.cooldown_bars)
    assert decide(signal(), PositionContext(), cooled, MARKET, CONFIG).action is Action.ENTER_LONG


def test_drawdown_scales_size_linearly():
    full = decide(signal(), PositionContext(), RiskState(), MARKET, CONFIG).size
    half_way = RiskState(equity=0.85, peak_equity=1.0)  # 15%: halfway between 10% and 20%
    d = decide(signal(), PositionContext(), half_way, MARKET, CONFIG)
    assert d.size == pytest.approx(full * 0.5)
    assert "drawdown_scaling" in codes(d)


def test_volatility_regime_scaling_is_capped():
    loud = dataclasses.replace(MARKET, volatility=0.002)
    quiet = dataclasses.replace(MARKET, volatility=0.0001)
    base = decide(signal(), PositionContext(), RiskState(), MARKET, CONFIG).size
    assert decide(signal(), PositionContext(), RiskState(), loud, CONFIG).size == pytest.approx(
        base / 2
    )
    assert decide(signal(), PositionContext(), RiskState(), quiet, CONFIG).size == pytest.approx(
        base * CONFIG.volatility_scale_cap
    )
    off = dataclasses.replace(CONFIG, volatility_scaling=False)
    assert decide(signal(), PositionContext(), RiskState(), loud, off).size == pytest.approx(base)


def test_exposure_caps_limit_or_reject():
    big = signal(probability=0.9, q95=0.05)
    heat = RiskState(open_exposure={"A": 0.3, "B": -0.25})
    d = decide(big, PositionContext(), heat, MARKET, CONFIG)
    assert d.action is Action.ENTER_LONG and d.size == pytest.approx(0.05)
    assert "portfolio_heat" in codes(d)
    full = RiskState(open_exposure={"A": 0.3, "B": 0.3})
    d = decide(big, PositionContext(), full, MARKET, CONFIG)
    assert d.action is Action.RISK_REJECTED and codes(d)[-1] == "portfolio_heat"
    own = RiskState(open_exposure={"EURUSD": 0.2})
    assert codes(decide(big, PositionContext(), own, MARKET, CONFIG))[-1] == "exposure_cap"


def test_correlated_positions_count_together():
    big = signal(probability=0.9, q95=0.05)
    risk = RiskState(
        open_exposure={"GBPUSD": 0.2, "USDJPY": 0.2},
        correlations={("GBPUSD", "EURUSD"): 0.85, ("EURUSD", "USDJPY"): 0.1},
    )
    d = decide(big, PositionContext(), risk, MARKET, CONFIG)
    assert d.size == pytest.approx(0.1)  # 0.3 cap - 0.2 correlated (USDJPY is not)
    assert "correlated_exposure" in codes(d)
    risk = dataclasses.replace(risk, open_exposure={"GBPUSD": -0.3})
    d = decide(big, PositionContext(), risk, MARKET, CONFIG)
    assert d.action is Action.RISK_REJECTED and codes(d)[-1] == "correlated_exposure"


def long_at(entry: float, bars: int = 1) -> PositionContext:
    return PositionContext(side="long", size=0.1, entry_price=entry, bars_held=bars)


@pytest.mark.parametrize(
    ("position", "price", "code"),
    [
        (long_at(1.10), 1.10 * (1 - 0.0021), "stop_loss"),  # 2 vol units of 0.001
        (long_at(1.10), 1.10 * (1 + 0.0031), "take_profit"),
        (long_at(1.10, bars=24), 1.10, "time_limit"),
    ],
)
def test_exit_rules(position, price, code):
    market = dataclasses.replace(MARKET, price=price)
    d = decide(signal(confidence=0.0), position, RiskState(), market, CONFIG)
    assert d.action is Action.EXIT_POSITION and d.size == 0.1
    assert codes(d) == [code]


def test_return_unit_exits_and_reversal_and_holding():
    cfg = dataclasses.replace(CONFIG, exit_units="return", stop_loss=0.01, take_profit=0.0)
    short = PositionContext(side="short", size=0.1, entry_price=100.0, bars_held=2)
    up = dataclasses.replace(MARKET, price=101.5)
    assert codes(decide(signal(confidence=0.0), short, RiskState(), up, cfg)) == ["stop_loss"]
    flat_mkt = dataclasses.replace(MARKET, price=100.0)
    d = decide(signal(direction=1), short, RiskState(), flat_mkt, cfg)
    assert codes(d) == ["signal_reversal"]
    d = decide(signal(direction=-1), short, RiskState(), flat_mkt, cfg)
    assert d.action is Action.NO_ACTION and codes(d) == ["holding"]


def test_bad_side_is_a_clear_error():
    with pytest.raises(ValueError, match=r"PositionContext\.side"):
        decide(signal(), PositionContext(side="sideways"), RiskState(), MARKET, CONFIG)


# --- properties --------------------------------------------------------------------

unit = st.floats(0.0, 1.0, allow_nan=False)
configs = st.builds(
    lambda thr, kf, cap, dd, start_frac, cdl, cdb, heat, sym, corr: DecisionConfig(
        confidence_threshold=thr,
        kelly_fraction=kf,
        max_position_size=cap,
        max_drawdown=dd,
        drawdown_scale_start=dd * start_frac,
        cooldown_losses=cdl,
        cooldown_bars=cdb,
        max_portfolio_heat=heat,
        max_symbol_exposure=sym,
        max_correlated_exposure=corr,
    ),
    unit,
    st.floats(0.01, 1.0),
    st.floats(0.01, 1.0),
    st.floats(0.01, 1.0),
    st.floats(0.0, 0.99),
    st.integers(0, 5),
    st.integers(0, 30),
    st.floats(0.01, 2.0),
    st.floats(0.01, 1.0),
    st.floats(0.01, 1.0),
)
signals = st.builds(
    lambda d, p, c, q05, q95: Signal(
        direction=d,
        probability=p,
        p_up=p,
        p_down=1 - p,
        confidence=c,
        agreement=1.0,
        q05=q05,
        q95=q95,
    ),
    st.sampled_from([-1, 0, 1]),
    unit,
    unit,
    st.floats(-0.1, 0.1),
    st.floats(-0.1, 0.1),
)
risks = st.builds(
    lambda eq, losses, since, a, b, corr: RiskState(
        equity=eq,
        peak_equity=1.0,
        consecutive_losses=losses,
        bars_since_last_loss=since,
        open_exposure={"A": a, "B": b},
        correlations={("A", "EURUSD"): corr},
    ),
    st.floats(0.01, 1.0),
    st.integers(0, 10),
    st.integers(0, 50),
    st.floats(-0.5, 0.5),
    st.floats(-0.5, 0.5),
    st.floats(-1.0, 1.0),
)
markets = st.builds(
    lambda vol, ref: MarketContext(symbol="EURUSD", price=1.1, volatility=vol, volatility_ref=ref),
    st.floats(0.0, 0.01),
    st.floats(0.0, 0.01),
)
positions = st.builds(
    lambda side, price, bars: PositionContext(
        side=side, size=0.1 if side != "flat" else 0.0, entry_price=price, bars_held=bars
    ),
    st.sampled_from(["flat", "long", "short"]),
    st.floats(0.5, 2.0),
    st.integers(0, 50),
)


@settings(max_examples=200, deadline=None)
@given(signals, positions, risks, markets, configs)
def test_properties_hold(sig, pos, risk, market, cfg):
    d = decide(sig, pos, risk, market, cfg)
    assert d.size >= 0.0
    assert d.reasons, "every decision carries a reason"
    if d.action in (Action.ENTER_LONG, Action.ENTER_SHORT):
        # size never exceeds the caps, including what the open exposures leave
        heat_left = cfg.max_portfolio_heat - sum(abs(e) for e in risk.open_exposure.values())
        assert d.size <= cfg.max_position_size + 1e-12
        assert d.size <= cfg.max_symbol_exposure + 1e-12
        assert d.size <= heat_left + 1e-12
        assert d.size <= cfg.max_correlated_exposure + 1e-12
        # no entry below the threshold, nor at/beyond the drawdown limit, nor while cooling
        assert sig.confidence >= cfg.confidence_threshold
        assert risk.drawdown < cfg.max_drawdown
        assert pos.side == "flat"
        assert d.action is (Action.ENTER_LONG if sig.direction > 0 else Action.ENTER_SHORT)
    # deterministic
    assert decide(sig, pos, risk, market, cfg) == d


@settings(max_examples=100, deadline=None)
@given(positions, risks, configs, st.floats(0.5, 2.0))
def test_exits_always_allowed(pos, risk, cfg, price):
    """An exit rule that fires is honoured whatever the gate and risk state say."""
    if pos.side == "flat":
        return
    pos = dataclasses.replace(pos, bars_held=max(1, pos.bars_held))
    cfg = dataclasses.replace(cfg, max_holding_bars=pos.bars_held)
    deep = dataclasses.replace(risk, equity=0.01, consecutive_losses=99, bars_since_last_loss=0)
    market = MarketContext(symbol="EURUSD", price=price)
    d = decide(signal(confidence=0.0), pos, deep, market, cfg)
    assert d.action is Action.EXIT_POSITION
    assert "time_limit" in codes(d)
    assert d.size == pos.size
