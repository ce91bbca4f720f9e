"""A replay publishes bars in time order on a simulated clock."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from augur.stream import StreamKeys, replay


class _Pipeline:
    def __init__(self, sink: list[dict[str, str]]) -> None:
        self.sink = sink
        self.queued: list[dict[str, str]] = []

    def __enter__(self) -> _Pipeline:
        return self

    def __exit__(self, *_: Any) -> None:
        pass

    def xadd(self, _key: str, fields: dict[str, str], **_: Any) -> None:
        self.queued.append(fields)

    def execute(self) -> list[bytes]:
        self.sink += self.queued
        return [f"{len(self.sink)}-0".encode() for _ in self.queued]


class _Client:
    def __init__(self) -> None:
        self.entries: list[dict[str, str]] = []

    def pipeline(self, transaction: bool = False) -> _Pipeline:
        return _Pipeline(self.entries)


def _bars() -> pd.DataFrame:
    ts = pd.date_range("2024-01-01", periods=3, freq="h", tz="UTC")
    rows = [
        {"timestamp": t, "symbol": s, "open": 1, "high": 2, "low": 1, "close": 2, "volume": 1}
        for s in ("MSFT", "AAPL")
        for t in ts
    ]
    return pd.DataFrame(rows)


def test_replay_publishes_in_time_order_one_timestamp_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, waits, steps = _Client(), [], []
    now = [0.0]
    monkeypatch.setattr("augur.stream._publish.time.monotonic", lambda: now[0])

    def sleep(s: float) -> None:
        waits.append(round(s, 6))
        now[0] += s

    sent = replay(
        client, StreamKeys(), _bars(), speed=3600, on_step=lambda t, n: steps.append(n), sleep=sleep
    )
    assert sent == 6
    assert [(e["timestamp"][11:16], e["symbol"]) for e in client.entries] == [
        ("00:00", "AAPL"), ("00:00", "MSFT"),
        ("01:00", "AAPL"), ("01:00", "MSFT"),
        ("02:00", "AAPL"), ("02:00", "MSFT"),
    ]  # fmt: skip
    assert waits == [1.0, 1.0]  # an hour of market time a second
    assert steps == [2, 4, 6]


def test_replay_refuses_a_speed_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match="speed"):
        replay(_Client(), StreamKeys(), _bars(), speed=0)
