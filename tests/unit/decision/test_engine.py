"""decide(): the four stages, reason codes, and the risk invariants (hypothesis)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import event, given, settings
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


def test_decision_carries_the_signal_and_defaults():
    sig = signal(direction=-1, probability=0.7, confidence=0.9, agreement=0.6, q05=-0.02)
    d = decide(sig, PositionContext(), RiskState(), MARKET, CONFIG)
    assert (d.direction, d.probability, d.confidence, d.agreement) == (-1, 0.7, 0.9, 0.6)
    assert d.request_id == "" and d.model_version == "v1"
    held = decide(signal(direction=1), long_at(1.10), RiskState(), MARKET, CONFIG)
    assert held.action is Action.NO_ACTION and held.size == 0.0 and held.direction == 1


def _texts(d) -> list[tuple[str, str]]:
    return [(r.code, r.text) for r in d.reasons]


def test_reason_texts_say_what_happened():
    """The reasons reach the API caller verbatim: code and text, with the numbers."""
    flat = PositionContext()
    cases = [
        (signal(direction=0), flat, RiskState(), MARKET, CONFIG),
        (signal(confidence=0.2), flat, RiskState(), MARKET, CONFIG),
        (signal(probability=0.3), flat, RiskState(), MARKET, CONFIG),
        (signal(), flat, RiskState(consecutive_losses=4, bars_since_last_loss=4), MARKET, CONFIG),
        (signal(), flat, RiskState(equity=0.85), MARKET, CONFIG),
        (signal(), flat, RiskState(), dataclasses.replace(MARKET, volatility=0.002), CONFIG),
        (signal(), flat, RiskState(), MARKET, CONFIG),
    ]
    expected = [
        [("flat_signal", "the ensemble predicts no move (flat)")],
        [("confidence_below_threshold", "confidence 0.200 < threshold 0.350")],
        [("kelly_non_positive", "no edge: p=0.300, payoff ratio b=1.500")],
        [("cooldown", "4 consecutive losses: cooling down for 20 more bar(s)")],
        [
            ("drawdown_scaling", "drawdown 15.0%: size x0.50"),
            ("entered", "enter_long size 0.0458 (kelly 0.0917, p=0.620, b=1.50)"),
        ],
        [
            ("volatility_scaling", "volatility regime: size x0.50"),
            ("entered", "enter_long size 0.0458 (kelly 0.0917, p=0.620, b=1.50)"),
        ],
        [("entered", "enter_long size 0.0917 (kelly 0.0917, p=0.620, b=1.50)")],
    ]
    assert [_texts(decide(*case)) for case in cases] == expected


def test_drawdown_limit_exactly_reached_blocks_before_sizing():
    # 1 - 0.5 / 1.0 is exactly 0.5: the risk stage refuses it (not the sizing stage)
    cfg = dataclasses.replace(CONFIG, max_drawdown=0.5, drawdown_scale_start=0.25)
    d = decide(signal(), PositionContext(), RiskState(equity=0.5), MARKET, cfg)
    assert d.action is Action.RISK_REJECTED and d.size == 0.0
    assert _texts(d) == [("drawdown_limit", "drawdown 50.0% is at or beyond the limit 50.0%")]
    # 1 - 0.8 rounds to just under 0.2: sizing finds no room left, and says so
    d = decide(signal(), PositionContext(), RiskState(equity=0.8), MARKET, CONFIG)
    assert d.action is Action.RISK_REJECTED and d.size == 0.0
    assert _texts(d) == [("drawdown_limit", "drawdown 20.0% leaves no room for new size")]


def test_cooldown_zero_disables_it():
    cfg = dataclasses.replace(CONFIG, cooldown_losses=0)
    risk = RiskState(consecutive_losses=5, bars_since_last_loss=0)
    assert decide(signal(), PositionContext(), risk, MARKET, cfg).action is Action.ENTER_LONG


def test_exposure_cap_texts_sizes_and_boundaries():
    big = signal(probability=0.9, q95=0.05)
    # the position cap (0.2) equals the symbol cap's room (0.2): not "limited" by it
    d = decide(big, PositionContext(), RiskState(), MARKET, CONFIG)
    assert d.size == pytest.approx(0.2) and codes(d) == ["entered"]
    heat = RiskState(open_exposure={"A": 0.3, "B": -0.25})
    d = decide(big, PositionContext(), heat, MARKET, CONFIG)
    assert _texts(d)[0] == ("portfolio_heat", "size limited by the portfolio heat cap to 0.0500")
    used = decide(big, PositionContext(), RiskState(open_exposure={"EURUSD": 0.2}), MARKET, CONFIG)
    assert used.action is Action.RISK_REJECTED and used.size == 0.0
    assert _texts(used) == [("exposure_cap", "symbol exposure cap is used up")]
    own = decide(big, PositionContext(), RiskState(open_exposure={"EURUSD": 0.15}), MARKET, CONFIG)
    assert _texts(own)[0] == ("exposure_cap", "size limited by the symbol exposure cap to 0.0500")
    # the correlated cap counts this symbol's own exposure too: 0.3 - 0.1 - 0.15
    risk = RiskState(
        open_exposure={"EURUSD": 0.1, "GBPUSD": -0.15}, correlations={("EURUSD", "GBPUSD"): 0.9}
    )
    d = decide(big, PositionContext(), risk, MARKET, CONFIG)
    assert d.size == pytest.approx(0.05)
    assert _texts(d)[-2] == (
        "correlated_exposure",
        "size limited by the correlated exposure cap to 0.0500",
    )
    full = dataclasses.replace(risk, open_exposure={"EURUSD": 0.1, "GBPUSD": -0.2})
    d = decide(big, PositionContext(), full, MARKET, CONFIG)
    assert _texts(d)[-1] == ("correlated_exposure", "correlated exposure cap is used up")
    # a room of exactly the dust size is used up, not a 1e-9 position
    dust = dataclasses.replace(CONFIG, max_symbol_exposure=1e-9)
    d = decide(big, PositionContext(), RiskState(), MARKET, dust)
    assert d.action is Action.RISK_REJECTED and codes(d) == ["exposure_cap"]


def test_correlation_is_looked_up_in_either_order_and_the_threshold_counts():
    big = signal(probability=0.9, q95=0.05)
    for pair in (("EURUSD", "GBPUSD"), ("GBPUSD", "EURUSD")):
        risk = RiskState(open_exposure={"GBPUSD": 0.2}, correlations={pair: -0.8})
        assert decide(big, PositionContext(), risk, MARKET, CONFIG).size == pytest.approx(0.1)
    at_threshold = RiskState(
        open_exposure={"GBPUSD": 0.2}, correlations={("EURUSD", "GBPUSD"): 0.7}
    )
    assert decide(big, PositionContext(), at_threshold, MARKET, CONFIG).size == pytest.approx(0.1)
    below = RiskState(open_exposure={"GBPUSD": 0.2}, correlations={("EURUSD", "GBPUSD"): 0.69})
    assert decide(big, PositionContext(), below, MARKET, CONFIG).size == pytest.approx(0.2)


def test_dust_sizes_are_refused():
    """Sizes at or below 1e-9 are zero: each stage that can produce one says why."""
    even = signal(probability=0.75, q05=-0.01, q95=0.01)  # b = 1: full Kelly 0.5 exactly
    full_kelly = dataclasses.replace(CONFIG, kelly_fraction=1.0, max_position_size=1.0)
    # Kelly capped at exactly the dust size: no edge worth a trade
    d = decide(
        even,
        PositionContext(),
        RiskState(),
        MARKET,
        dataclasses.replace(full_kelly, max_position_size=1e-9),
    )
    assert codes(d) == ["kelly_non_positive"]
    # 2e-9 of Kelly halved by the drawdown (exactly 0.5): no room left
    cfg = dataclasses.replace(
        full_kelly, max_position_size=2e-9, max_drawdown=0.75, drawdown_scale_start=0.25
    )
    d = decide(even, PositionContext(), RiskState(equity=0.5), MARKET, cfg)
    assert d.action is Action.RISK_REJECTED and codes(d) == ["drawdown_limit"]
    # the volatility regime shrinks 0.5 to exactly 1e-9, or far below it
    for ref in (2e-9, 2e-12):
        quiet = MarketContext(symbol="EURUSD", price=1.1, volatility=1.0, volatility_ref=ref)
        d = decide(even, PositionContext(), RiskState(), quiet, full_kelly)
        assert d.action is Action.RISK_REJECTED and d.size == 0.0
        assert _texts(d)[-1] == ("size_zero", "risk scaling left no size")


def test_exit_rules_edges():
    """Exits need a known entry and price; disabled rules stay off; thresholds are inclusive."""
    ret_cfg = dataclasses.replace(CONFIG, exit_units="return", stop_loss=0.5, take_profit=0.5)
    no_signal = signal(confidence=0.0)

    def exit_codes(position, price, cfg, volatility=0.001):
        market = dataclasses.replace(MARKET, price=price, volatility=volatility)
        return codes(decide(no_signal, position, RiskState(), market, cfg))

    unknown_entry = PositionContext(side="long", size=0.1, entry_price=0.0, bars_held=1)
    assert exit_codes(unknown_entry, 0.5, ret_cfg) == ["holding"]
    assert exit_codes(long_at(1.0), 0.0, ret_cfg) == ["holding"]  # no price: no price exit
    # exactly at the stop / the target (1.0 -> 0.5 and 1.5 are exact) exits
    assert exit_codes(long_at(1.0), 0.5, ret_cfg) == ["stop_loss"]
    assert exit_codes(long_at(1.0), 1.5, ret_cfg) == ["take_profit"]
    # return units ignore the volatility: -0.5% is no 1% stop, whatever the volatility
    cfg = dataclasses.replace(ret_cfg, stop_loss=0.01, take_profit=0.02)
    assert exit_codes(long_at(1.0), 0.995, cfg) == ["holding"]
    # volatility units without a volatility place no price exit
    assert exit_codes(long_at(1.0), 0.5, CONFIG, volatility=0.0) == ["holding"]
    # a disabled stop, take profit and time limit never fire
    off = dataclasses.replace(CONFIG, stop_loss=0.0, take_profit=0.0, max_holding_bars=0)
    assert exit_codes(long_at(1.0, bars=500), 0.5, off) == ["holding"]
    assert exit_codes(long_at(1.0, bars=500), 1.5, off) == ["holding"]


def test_exit_reason_texts():
    market = dataclasses.replace(MARKET, price=1.10 * (1 - 0.0021))
    d = decide(signal(confidence=0.0), long_at(1.10, bars=30), RiskState(), market, CONFIG)
    assert _texts(d) == [
        ("stop_loss", "position return -0.2100% hit the stop loss"),
        ("time_limit", "held 30 bars, limit 24"),
    ]
    market = dataclasses.replace(MARKET, price=1.10 * (1 + 0.0031))
    d = decide(signal(direction=-1), long_at(1.10), RiskState(), market, CONFIG)
    assert _texts(d) == [
        ("take_profit", "position return 0.3100% hit the take profit"),
        ("signal_reversal", "a confident signal points the other way"),
    ]
    short = PositionContext(side="short", size=0.1, entry_price=1.10, bars_held=1)
    d = decide(signal(direction=-1), short, RiskState(), MARKET, CONFIG)
    assert _texts(d) == [("holding", "holding the short position; no exit rule triggered")]


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


def cooling(risk: RiskState, cfg: DecisionConfig) -> bool:
    """Inside the cool-down: enough consecutive losses and the last one recent enough."""
    return (
        cfg.cooldown_losses > 0
        and risk.consecutive_losses >= cfg.cooldown_losses
        and risk.bars_since_last_loss < cfg.cooldown_bars
    )


def passes_gate(sig: Signal, cfg: DecisionConfig) -> bool:
    return sig.direction != 0 and sig.confidence >= cfg.confidence_threshold


@st.composite
def cooling_cases(draw, configs=configs, risks=risks):
    """A config with an active cool-down and a risk state inside it."""
    cfg = draw(configs)
    cfg = dataclasses.replace(
        cfg,
        cooldown_losses=max(1, cfg.cooldown_losses),
        cooldown_bars=max(1, cfg.cooldown_bars),
    )
    risk = dataclasses.replace(
        draw(risks),
        consecutive_losses=draw(st.integers(cfg.cooldown_losses, cfg.cooldown_losses + 5)),
        bars_since_last_loss=draw(st.integers(0, cfg.cooldown_bars - 1)),
    )
    return risk, cfg


@settings(max_examples=300, deadline=None)
@given(signals, positions, risks, markets, configs, st.booleans(), cooling_cases())
def test_properties_hold(sig, pos, risk, market, cfg, cool, cooling_case):
    if cool:  # half the draws put the account inside a cool-down
        risk, cfg = cooling_case
    event("inside the cool-down" if cooling(risk, cfg) else "not cooling")
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
        assert not cooling(risk, cfg), "entered during the cool-down"
        assert pos.side == "flat"
        assert d.action is (Action.ENTER_LONG if sig.direction > 0 else Action.ENTER_SHORT)
    if cooling(risk, cfg) and pos.side == "flat" and passes_gate(sig, cfg):
        # the cool-down is what refuses it (it comes before sizing), and it says so
        event("cool-down refused a signal that passed the gate")
        assert d.action is Action.RISK_REJECTED and "cooldown" in codes(d)
    # deterministic
    assert decide(sig, pos, risk, market, cfg) == d


@settings(max_examples=150, deadline=None)
@given(cooling_cases(), st.floats(0.55, 0.95), st.sampled_from([-1, 1]))
def test_no_entry_while_cooling_and_entry_once_cooled(case, p, direction):
    """A clean account with a confident edge: refused inside the cool-down, entered after."""
    risk, cfg = case
    risk = dataclasses.replace(risk, equity=1.0, open_exposure={}, correlations={})
    sig = signal(direction=direction, probability=p, confidence=1.0, q05=-0.01, q95=0.01)
    d = decide(sig, PositionContext(), risk, MARKET, cfg)
    assert d.action is Action.RISK_REJECTED and codes(d) == ["cooldown"]
    assert d.size == 0.0
    cooled = dataclasses.replace(risk, bars_since_last_loss=cfg.cooldown_bars)
    after = decide(sig, PositionContext(), cooled, MARKET, cfg)
    assert "cooldown" not in codes(after)
    assert after.action is (Action.ENTER_LONG if direction > 0 else Action.ENTER_SHORT)
    calm = dataclasses.replace(risk, consecutive_losses=cfg.cooldown_losses - 1)
    assert decide(sig, PositionContext(), calm, MARKET, cfg).action is after.action


# --- exits are always allowed ------------------------------------------------------

EXIT_KINDS = ("stop_loss", "take_profit", "time_limit", "signal_reversal")


@st.composite
def blocked_risks(draw, max_drawdown: float, cooldown_losses: int, cooldown_bars: int):
    """A risk state at/over the drawdown limit, inside the cool-down, or both."""
    which = draw(st.sampled_from(["drawdown", "cooldown", "both"]))
    event(f"risk: {which}")
    risk = draw(risks)
    if which in ("drawdown", "both"):
        # drawdown in [limit, 0.99]: equity at most (1 - limit) of the peak
        dd = draw(st.floats(max_drawdown, 0.99)) if max_drawdown < 0.99 else max_drawdown
        # (a hair below 1 - dd, so rounding cannot leave the drawdown under the limit)
        risk = dataclasses.replace(risk, equity=(1.0 - dd) * (1 - 1e-9), peak_equity=1.0)
    if which in ("cooldown", "both"):
        risk = dataclasses.replace(
            risk,
            consecutive_losses=draw(st.integers(cooldown_losses, cooldown_losses + 5)),
            bars_since_last_loss=draw(st.integers(0, cooldown_bars - 1)),
        )
    return risk


@st.composite
def exit_cases(draw, kind: str):
    """(signal, position, risk, market, config) whose ``kind`` exit rule must fire."""
    cfg = draw(configs)
    cfg = dataclasses.replace(
        cfg,
        cooldown_losses=max(1, cfg.cooldown_losses),
        cooldown_bars=max(1, cfg.cooldown_bars),
        exit_units=draw(st.sampled_from(["volatility", "return"])),
        stop_loss=draw(st.sampled_from([0.0, 0.5, 2.0, 0.02])),
        take_profit=draw(st.sampled_from([0.0, 1.0, 3.0, 0.03])),
        max_holding_bars=draw(st.integers(0, 30)),
        exit_on_reversal=draw(st.booleans()),
    )
    side = draw(st.sampled_from(["long", "short"]))
    sign = 1 if side == "long" else -1
    entry = draw(st.floats(0.5, 2.0))
    volatility = draw(st.floats(0.0005, 0.01))
    unit = volatility if cfg.exit_units == "volatility" else 1.0
    bars = draw(st.integers(0, 50))
    price = entry * (1.0 + sign * draw(st.floats(-0.003, 0.003)))  # near the entry
    sig = draw(signals)
    if kind == "stop_loss":
        stop = draw(st.floats(0.1, 3.0))
        # a loss of at least `stop` units (1% beyond it, clear of rounding), below 100%
        loss = min(stop * unit * draw(st.floats(1.01, 3.0)), 0.9)
        cfg = dataclasses.replace(cfg, stop_loss=min(stop, loss / unit / 1.01))
        price = entry * (1.0 - sign * loss)
    elif kind == "take_profit":
        take = draw(st.floats(0.1, 3.0))
        gain = min(take * unit * draw(st.floats(1.01, 3.0)), 0.9)
        cfg = dataclasses.replace(cfg, take_profit=min(take, gain / unit / 1.01))
        price = entry * (1.0 + sign * gain)
    elif kind == "time_limit":
        limit = draw(st.integers(1, 30))
        cfg = dataclasses.replace(cfg, max_holding_bars=limit)
        bars = draw(st.integers(limit, limit + 30))
    else:  # a confident signal the other way
        cfg = dataclasses.replace(cfg, exit_on_reversal=True)
        sig = dataclasses.replace(
            sig,
            direction=-sign,
            confidence=draw(st.floats(cfg.confidence_threshold, 1.0)),
        )
    position = PositionContext(
        side=side, size=draw(st.floats(0.01, 0.5)), entry_price=entry, bars_held=bars
    )
    market = MarketContext(
        symbol="EURUSD", price=price, volatility=volatility, volatility_ref=0.001
    )
    risk = draw(blocked_risks(cfg.max_drawdown, cfg.cooldown_losses, cfg.cooldown_bars))
    return sig, position, risk, market, cfg


@pytest.mark.parametrize("kind", EXIT_KINDS)
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_exits_always_allowed(kind, data):
    """Each exit rule that fires is honoured however deep the drawdown or the cool-down."""
    sig, pos, risk, market, cfg = data.draw(exit_cases(kind))
    assert risk.drawdown >= cfg.max_drawdown or cooling(risk, cfg)
    d = decide(sig, pos, risk, market, cfg)
    event(f"reasons: {'+'.join(codes(d))}")
    assert d.action is Action.EXIT_POSITION, codes(d)
    assert kind in codes(d)
    assert d.size == pos.size
    # the same position on a clean account exits for the same reasons
    clean = decide(sig, pos, RiskState(), market, cfg)
    assert clean.action is Action.EXIT_POSITION and codes(clean) == codes(d)


def test_reason_bits_are_single_bits_in_ascending_order() -> None:
    """decide() reports reasons lowest bit first: the documented order only while
    REASON_BITS lists single bits in ascending order."""
    from augur.decision import _step

    bits = _step.REASON_BITS
    assert list(bits) == sorted(set(bits))
    assert all(b > 0 and b & (b - 1) == 0 for b in bits)
