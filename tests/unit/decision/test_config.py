"""DecisionConfig validation names the field and the rule."""

from __future__ import annotations

import pytest

from augur.decision import DecisionConfig


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("confidence_threshold", 1.5, "in [0, 1]"),
        ("correlation_threshold", -0.1, "in [0, 1]"),
        ("kelly_fraction", 0.0, "in (0, 1]"),
        ("kelly_fraction", 1.5, "in (0, 1]"),
        ("max_position_size", 0.0, "> 0"),
        ("volatility_scale_cap", -1.0, "> 0"),
        ("max_drawdown", 0.0, "in (0, 1]"),
        ("max_drawdown", 1.5, "in (0, 1]"),
        ("drawdown_scale_start", 0.3, "in [0, max_drawdown=0.2)"),  # not below max_drawdown
        ("drawdown_scale_start", 0.2, "in [0, max_drawdown=0.2)"),  # equal is not below
        ("cooldown_losses", -1, "an integer >= 0"),
        ("cooldown_bars", 2.5, "an integer >= 0"),
        ("max_holding_bars", -3, "an integer >= 0"),
        ("stop_loss", -1.0, ">= 0 (0 disables it)"),
        ("take_profit", -0.5, ">= 0 (0 disables it)"),
        ("exit_units", "pips", "'volatility' or 'return'"),
    ],
)
def test_invalid_values_name_the_field_and_the_rule(field, value, rule):
    with pytest.raises(ValueError) as raised:
        DecisionConfig(**{field: value})
    assert str(raised.value) == f"DecisionConfig.{field}={value!r} is invalid: it must be {rule}"


def test_limits_themselves_are_valid():
    DecisionConfig(confidence_threshold=1.0, kelly_fraction=1.0, max_drawdown=1.0)
    DecisionConfig(confidence_threshold=0.0, drawdown_scale_start=0.0, cooldown_losses=0)


def test_round_trip_and_unknown_keys():
    cfg = DecisionConfig(confidence_threshold=0.6, cooldown_losses=2)
    assert DecisionConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown DecisionConfig field"):
        DecisionConfig.from_dict({"confidence": 0.6})
