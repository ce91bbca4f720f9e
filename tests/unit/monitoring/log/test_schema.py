"""What a logged prediction is: the record's checks (each names the field) and the
features digest."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from augur.monitoring.log import ROLES, PredictionRecord, features_digest
from augur.monitoring.log._schema import to_utc
from tests.unit.monitoring.log.conftest import record


def test_a_record_keeps_its_values_and_takes_no_new_fields() -> None:
    r = record("r1", role="shadow", routing_key="client-7")
    assert (r.request_id, r.role, r.routing_key, r.model_tag) == ("r1", "shadow", "client-7", "")
    assert r.ts.tzinfo is UTC  # now, when not given
    with pytest.raises(AttributeError):
        r.colour = "red"  # type: ignore[attr-defined]  # slots: a misspelt field fails
    assert ROLES == ("primary", "canary", "shadow")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"role": "boss"}, "PredictionRecord.role must be one of"),
        ({"request_id": ""}, r"request_id must be 1\.\.128 characters"),
        ({"request_id": "x" * 129}, r"request_id must be 1\.\.128 characters"),
        ({"request_id": 7}, "request_id must be"),
        ({"p_up": math.nan}, "p_up must be a finite number"),
        ({"latency_ms": math.inf}, "latency_ms must be a finite number"),
        ({"p_down": -math.inf}, "p_down must be a finite number"),
        ({"size": "0.1"}, "size must be a finite number"),
        ({"confidence": 10**400}, "confidence must be a finite number"),
        ({"direction": 1.0}, "direction must be an integer"),
        ({"symbol": 7}, "symbol must be a string"),
        ({"symbol": "S" * 65}, "symbol must be at most 64 characters, got 65"),
        ({"routing_key": "k" * 257}, "routing_key must be at most 256 characters"),
        ({"action": None}, "action must be a string"),
        ({"ts": "2024-01-01"}, "ts must be a datetime"),
        ({"feature_timestamp": "2024-01-01"}, "feature_timestamp must be a datetime or None"),
        ({"request_id": ""}, "request_id must be 1..128 characters"),
        ({"request_id": "r" * 129}, "request_id must be 1..128 characters"),
        ({"agreement": math.nan, "p_flat": 0.0}, "agreement must be a finite number"),
        ({"size": -math.inf, "latency_ms": math.inf}, "size must be a finite number"),
    ],
)
def test_a_bad_value_is_refused_naming_its_field(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        record(**{"request_id": "r", **changes})  # type: ignore[arg-type]


def test_values_a_producer_may_hand_over_are_accepted() -> None:
    assert record("r", p_up=np.float64(0.6)).p_up == 0.6  # a numpy float is a float
    assert record("r", size=0).size == 0  # an int is a number
    assert record("r", direction=np.int64(-1)).direction == -1  # any integer type
    assert record("r", direction=True).direction  # a bool is an integer
    assert record("r", feature_timestamp=None).feature_timestamp is None
    assert record("r" * 128, symbol="S" * 64).symbol == "S" * 64  # the longest allowed
    # the largest finite values are finite, also together
    assert record("r", p_up=1.7e308, p_down=1.7e308).p_down == 1.7e308


def test_features_digest_is_stable_and_sensitive() -> None:
    x = [0.1, 0.02, -3.5]
    a = features_digest(x)
    assert len(a) == 32 and int(a, 16) >= 0
    assert a == features_digest(tuple(x)) == features_digest(np.array(x))
    assert a == hashlib.blake2b(np.array(x).tobytes(), digest_size=16).hexdigest()
    assert a != features_digest([0.1, 0.0200001, -3.5])
    assert a != features_digest([0.02, 0.1, -3.5])  # order is part of it
    # the float64 values count, not the array's dtype or layout
    assert features_digest(np.array([1, 2], dtype=np.int32)) == features_digest([1.0, 2.0])
    grid = np.arange(6.0).reshape(2, 3)
    assert features_digest(grid[:, 1]) == features_digest([1.0, 4.0])  # strided view


def test_times_are_stored_as_utc() -> None:
    aware = datetime(2024, 3, 1, 0, 30, tzinfo=timezone(timedelta(hours=2)))
    assert to_utc(aware) == datetime(2024, 2, 29, 22, 30, tzinfo=UTC)
    assert to_utc(aware).tzinfo is UTC
    assert to_utc(datetime(2024, 3, 1, 12)) == datetime(2024, 3, 1, 12, tzinfo=UTC)  # naive
    assert to_utc(None) is None


def test_record_fields_match_the_predictions_table() -> None:
    from augur.monitoring.log._schema import predictions_table

    names = {f.name for f in dataclasses.fields(PredictionRecord)}
    assert names == set(predictions_table.c.keys())
