"""Live bars: a Redis Stream of bars applied to the online features, one bar at a time.

- :class:`BarConsumer`: a member of the stream's consumer group; validates each bar with
  the import rules, recomputes its symbol's feature row with the one feature engine,
  pushes it to the Feast online store, and acknowledges it after the write (dead letters
  for the bars a rule refuses; the offline bars dataset follows in batches).
- :func:`publish` / :func:`replay`: bars into the stream, at once or on a simulated clock.
- :class:`StreamKeys`: where the stream, the group's shared state and the feed clock live;
  :func:`read_feed_clock`: the newest bar the consumers have applied.

Redis, Feast and Prometheus are imported when a consumer or a publisher is made.
"""

from augur.stream._clock import read_feed_clock
from augur.stream._consumer import BarConsumer, RoundResult
from augur.stream._keys import StreamKeys, redis_client
from augur.stream._message import FIELDS, Message, bar_fields, frame_entries
from augur.stream._metrics import StreamMetrics
from augur.stream._publish import in_time_order, publish, replay

__all__ = [
    "FIELDS",
    "BarConsumer",
    "Message",
    "RoundResult",
    "StreamKeys",
    "StreamMetrics",
    "bar_fields",
    "frame_entries",
    "in_time_order",
    "publish",
    "read_feed_clock",
    "redis_client",
    "replay",
]
