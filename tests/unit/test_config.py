"""Settings read from the environment: the serving pods' AUGUR_ROUTING_KEY and
AUGUR_DECISION_OVERRIDES (rendered by the operator) parse, and a bad value fails at start
naming the variable."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from augur.config import Settings


def test_routing_key_and_decision_overrides_default_to_todays_behaviour(monkeypatch) -> None:
    monkeypatch.delenv("AUGUR_ROUTING_KEY", raising=False)
    monkeypatch.delenv("AUGUR_DECISION_OVERRIDES", raising=False)
    settings = Settings()
    assert settings.routing_key == "request"
    assert settings.decision_overrides == {}


def test_routing_key_and_decision_overrides_parse_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("AUGUR_ROUTING_KEY", "symbol")
    monkeypatch.setenv(
        "AUGUR_DECISION_OVERRIDES",
        '{"confidence_threshold": 0.4, "max_drawdown": 0.5, "cooldown_losses": 2, '
        '"volatility_scaling": false, "exit_units": "return", "stop_loss": 1}',
    )
    settings = Settings()
    assert settings.routing_key == "symbol"
    assert settings.decision_overrides == {
        "confidence_threshold": 0.4,
        "max_drawdown": 0.5,
        "cooldown_losses": 2,
        "volatility_scaling": False,
        "exit_units": "return",
        "stop_loss": 1.0,
    }
    assert isinstance(settings.decision_overrides["stop_loss"], float)  # typed as the field


def test_an_unknown_routing_key_fails_naming_the_field(monkeypatch) -> None:
    monkeypatch.setenv("AUGUR_ROUTING_KEY", "client")
    with pytest.raises(ValidationError, match="routing_key"):
        Settings()


@pytest.mark.parametrize(
    ("value", "names"),
    [
        ('{"confidence_treshold": 0.4}', ["unknown DecisionConfig field", "confidence_treshold"]),
        ('{"confidence_threshold": 2}', ["confidence_threshold=2", "in [0, 1]"]),
        ('{"kelly_fraction": 0}', ["kelly_fraction", "in (0, 1]"]),
        # valid alone, not with the default drawdown_scale_start (0.1)
        ('{"max_drawdown": 0.05}', ["drawdown_scale_start", "max_drawdown=0.05"]),
        # a string where a flag belongs would pass as truthy: refused
        ('{"volatility_scaling": "false"}', ["volatility_scaling='false'", "boolean"]),
        ('{"confidence_threshold": "0.4"}', ["confidence_threshold='0.4'", "number"]),
        ('{"cooldown_losses": 2.5}', ["cooldown_losses=2.5", "integer"]),
        ('{"exit_units": "percent"}', ["exit_units='percent'"]),
    ],
)
def test_bad_decision_overrides_fail_naming_the_variable(monkeypatch, value, names) -> None:
    monkeypatch.setenv("AUGUR_DECISION_OVERRIDES", value)
    with pytest.raises(ValidationError) as info:
        Settings()
    message = str(info.value)
    assert "AUGUR_DECISION_OVERRIDES" in message
    for name in names:
        assert name in message


def test_decision_overrides_that_are_not_an_object_fail(monkeypatch) -> None:
    monkeypatch.setenv("AUGUR_DECISION_OVERRIDES", "[0.4]")
    with pytest.raises(ValidationError, match="decision_overrides"):
        Settings()
