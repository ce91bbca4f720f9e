"""DecisionConfig validation names the field and the rule."""

from __future__ import annotations

import pytest

from augur.decision import DecisionConfig


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("confidence_threshold", 1.5),
        ("kelly_fraction", 0.0),
        ("max_position_size", 0.0),
        ("max_drawdown", 0.0),
        ("drawdown_scale_start", 0.3),  # not below max_drawdown=0.2
        ("cooldown_losses", -1),
        ("cooldown_bars", 2.5),
        ("stop_loss", -1.0),
        ("exit_units", "pips"),
    ],
)
def test_invalid_values_name_the_field(field, value):
    with pytest.raises(ValueError, match=rf"DecisionConfig\.{field}="):
        DecisionConfig(**{field: value})


def test_round_trip_and_unknown_keys():
    cfg = DecisionConfig(confidence_threshold=0.6, cooldown_losses=2)
    assert DecisionConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown DecisionConfig field"):
        DecisionConfig.from_dict({"confidence": 0.6})
