"""What a bar consumer shows on ``/metrics`` (Prometheus, a registry of its own).

- ``augur_stream_bars_total{outcome}``: bars applied, skipped as duplicates, dead-lettered
  (bars per second: its rate; ``augur_stream_bars_per_second`` is the last interval's).
- ``augur_stream_length``, ``augur_stream_group_lag`` (entries not yet delivered to the
  group), ``augur_stream_pending`` and ``augur_stream_oldest_pending_age_seconds``.
- ``augur_stream_dead_letters_total`` by rule.
- ``augur_stream_publish_to_online_seconds``: from the entry's arrival in the stream to the
  online write; ``augur_stream_bar_to_online_seconds``: from the bar's own timestamp (live
  feeds: the bar's end-to-end latency; a replay's bars are old, so it is large there).
"""

from __future__ import annotations

import time
from typing import Any

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class StreamMetrics:
    """The consumer's Prometheus metrics; :meth:`serve` starts the HTTP endpoint."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        r = self.registry
        self.bars = Counter(
            "augur_stream_bars", "Bars handled, by outcome.", ["outcome"], registry=r
        )
        self.dead_letters = Counter(
            "augur_stream_dead_letters",
            "Bars sent to the dead-letter stream, by rule.",
            ["rule"],
            registry=r,
        )
        self.rate = Gauge(
            "augur_stream_bars_per_second", "Bars applied per second, last interval.", registry=r
        )
        self.length = Gauge("augur_stream_length", "Entries in the bar stream.", registry=r)
        self.lag = Gauge(
            "augur_stream_group_lag", "Entries not yet delivered to the group.", registry=r
        )
        self.pending = Gauge(
            "augur_stream_pending", "Entries delivered, not yet acknowledged.", registry=r
        )
        self.oldest_pending = Gauge(
            "augur_stream_oldest_pending_age_seconds",
            "Age of the oldest unacknowledged entry (since it entered the stream).",
            registry=r,
        )
        self.publish_to_online = Histogram(
            "augur_stream_publish_to_online_seconds",
            "From a bar's entry in the stream to its online write.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.bar_to_online = Histogram(
            "augur_stream_bar_to_online_seconds",
            "From a bar's timestamp to its online write.",
            buckets=(*_LATENCY_BUCKETS, 60, 300, 3600),
            registry=r,
        )
        self.applied = 0
        self._last_count = 0
        self._last_time = time.monotonic()

    def count(self, outcome: str, n: int) -> None:
        """``n`` bars with ``outcome``: applied, duplicate or dead_letter."""
        if n:
            self.bars.labels(outcome).inc(n)
            if outcome == "applied":
                self.applied += n

    def serve(self, port: int, addr: str = "0.0.0.0") -> Any:  # every interface: a pod
        from prometheus_client import start_http_server

        return start_http_server(port, addr=addr, registry=self.registry)

    def observe_group(self, client: Any, stream: str, group: str) -> None:
        """Refresh the lag gauges from Redis (a few reads; call about once a second)."""
        self.length.set(client.xlen(stream))
        for info in client.xinfo_groups(stream):
            name = info.get("name")
            if (name.decode() if isinstance(name, bytes) else name) == group:
                self.lag.set(info.get("lag") or 0)
                self.pending.set(info.get("pending") or 0)
        summary = client.xpending(stream, group)
        oldest = summary.get("min")
        if oldest:
            text = oldest.decode() if isinstance(oldest, bytes) else str(oldest)
            ms = int(text.split("-", 1)[0])
            self.oldest_pending.set(max(0.0, time.time() - ms / 1000.0))
        else:
            self.oldest_pending.set(0.0)
        applied = self.applied
        now = time.monotonic()
        if now > self._last_time:
            self.rate.set((applied - self._last_count) / (now - self._last_time))
        self._last_count, self._last_time = applied, now


__all__ = ["StreamMetrics"]
