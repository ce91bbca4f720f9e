"""The bar consumer: a Redis Stream consumer group in, the Feast online store out.

One round: read up to ``max_in_flight`` bars (this consumer's unacknowledged ones first),
keep back the bars whose symbol has an earlier bar another consumer still holds (a
symbol's bars are applied in stream order, whoever reads them), check the rest
(:func:`~augur.stream._admit.admit`), compute each symbol's new feature rows with the one
feature engine from its shared recent bars, advance the feed clock, push the newest row
of each symbol online — and only then, in one Redis transaction, store the symbols' new
recent bars, journal the applied bars for the offline dataset, write the dead letters
and acknowledge every bar of the round. A consumer killed before that transaction leaves
its bars pending: they are read again (by it when it restarts, or claimed by another
after ``claim_idle``) and applied once; one killed after it has nothing left to redo.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from augur.config import Settings
from augur.features import FeatureSpec
from augur.features.correlations import RETURN_FEATURE
from augur.stream._admit import Admitted, DeadLetter, admit
from augur.stream._history import Histories
from augur.stream._keys import StreamKeys, redis_client
from augur.stream._message import Message, decode, id_key
from augur.stream._metrics import StreamMetrics
from augur.stream._offline import FlushProcess, OfflineAppender, journal_entry

log = logging.getLogger(__name__)

# The feed clock only moves forward, whichever consumer saw the newest bar.
_CLOCK_MAX = """
local now = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > now then redis.call('SET', KEYS[1], ARGV[1]) return 1 end
return 0
"""
_DEAD_LETTER_MAXLEN = 100_000


@dataclass
class RoundResult:
    """What one round did with the bars it read."""

    applied: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    deferred: int = 0

    @property
    def handled(self) -> int:
        return self.applied + self.duplicates + self.dead_letters


class BarConsumer:
    """One consumer of the group (``name`` must stay the same across restarts, so it
    finds its own unacknowledged bars again)."""

    def __init__(
        self,
        client: Any,
        keys: StreamKeys,
        online: Any,
        spec: FeatureSpec,
        histories: Histories,
        offline: OfflineAppender | None,
        name: str,
        *,
        max_in_flight: int = 500,
        block_ms: int = 1000,
        claim_idle_seconds: float = 30.0,
        flush_seconds: float = 5.0,
        metrics: StreamMetrics | None = None,
    ) -> None:
        self.client = client
        self.keys = keys
        self.online = online
        self.spec = spec
        self.histories = histories
        self.offline = offline
        self.name = name
        self.max_in_flight = max_in_flight
        self.block_ms = block_ms
        self.claim_idle_ms = int(claim_idle_seconds * 1000)
        self.flush_seconds = flush_seconds
        self.metrics = metrics or StreamMetrics()
        self._clock_max = client.register_script(_CLOCK_MAX)
        self._backlog = True  # at start: this consumer's bars left unacknowledged before
        self._symbol_of: dict[str, str] = {}  # stream id → symbol, of others' pending bars
        self._group_ready = False
        self._settings: Settings | None = None  # set by from_settings: flush in a process
        self._flusher: FlushProcess | None = None
        # the online rows join the acknowledging transaction when they live in this Redis
        self._online_in_commit = _same_redis(client, getattr(online, "redis", None))

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        name: str,
        *,
        online_store: Any = None,
        redis_url: str | None = None,
        metrics: StreamMetrics | None = None,
    ) -> BarConsumer:
        """A consumer wired from settings: the stream's Redis, the Feast online store,
        the bars dataset under ``AUGUR_HOME``."""
        from augur.features.stream_online import OnlineWriter

        client = redis_client(settings.stream_redis_url)
        keys = StreamKeys.from_settings(settings)
        spec = FeatureSpec.from_settings(settings)
        online = OnlineWriter(settings, online_store, redis_url)
        consumer = cls(
            client,
            keys,
            online,
            spec,
            Histories(client, keys, spec.max_lookback, settings.bars_dir),
            OfflineAppender(client, keys, settings.bars_dir, online.add_returns, RETURN_FEATURE),
            name,
            max_in_flight=settings.stream_batch,
            block_ms=settings.stream_block_ms,
            claim_idle_seconds=settings.stream_claim_idle_seconds,
            flush_seconds=settings.stream_flush_seconds,
            metrics=metrics,
        )
        consumer._settings = settings
        return consumer

    # --- the loop ---------------------------------------------------------------------
    def ensure_group(self) -> None:
        """Create the stream and the group (from the stream's first entry) if missing."""
        import redis

        try:
            self.client.xgroup_create(self.keys.stream, self.keys.group, id="0", mkstream=True)
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    def run(self, stop: threading.Event, retry_seconds: float = 1.0) -> None:
        """Rounds until ``stop`` is set; then the round in flight finishes (its bars
        acknowledged), the journal is flushed to the bars dataset, and it returns."""
        self.ensure_group()
        # The parquet appends run beside the rounds, not in them: a round never waits
        # for a file to be rewritten.
        rounds_over = threading.Event()
        flusher = threading.Thread(
            target=self._flush_every, args=(rounds_over,), name="bar-flush", daemon=True
        )
        if self._settings is not None:
            self.start_flusher()
        else:
            flusher.start()
        now = time.monotonic()
        next_observe = now
        next_claim = now + self.claim_idle_ms / 2000
        while not stop.is_set():
            try:
                self.step()
                now = time.monotonic()
                if now >= next_claim:
                    self.claim()
                    next_claim = now + self.claim_idle_ms / 2000
                if now >= next_observe:
                    self.metrics.observe_group(self.client, self.keys.stream, self.keys.group)
                    next_observe = now + 1.0
            except Exception:
                # The store or Redis failed: nothing of the round was acknowledged, so
                # its bars are read again once they are back.
                log.exception("bar consumer %s: round failed; retrying", self.name)
                self.histories.forget()
                self._backlog = True
                stop.wait(retry_seconds)
        # the last round is acknowledged: the last flush takes it too
        if self._flusher is not None:
            self._flusher.stop()
            self._flusher = None
        else:
            rounds_over.set()
            flusher.join()

    def start_flusher(self) -> None:
        """Start the process that appends the journal to the parquet bars dataset
        (consumers made from settings; :meth:`run` starts it if it is not yet)."""
        if self._flusher is None and self._settings is not None:
            self._flusher = FlushProcess(self._settings, self.flush_seconds).start()

    def _flush_every(self, rounds_over: threading.Event) -> None:
        """Flush every ``flush_seconds``, and once more when the rounds are over."""
        while True:
            stopping = rounds_over.wait(self.flush_seconds)
            try:
                self.flush()
            except Exception:
                log.exception("bar consumer %s: flush failed (the journal keeps it)", self.name)
            if stopping:
                return

    def step(self) -> RoundResult:
        """One round: read, apply, acknowledge."""
        if not self._group_ready:
            self.ensure_group()
        messages = self._read()
        if not messages:
            return RoundResult()
        result = self.apply(messages)
        if result.deferred:
            self._backlog = True
            if not result.handled:
                time.sleep(0.005)  # only bars waiting for another consumer: do not spin
        return result

    def claim(self) -> int:
        """Take over bars another consumer has held for ``claim_idle`` (it died)."""
        reply = self.client.xautoclaim(
            self.keys.stream,
            self.keys.group,
            self.name,
            min_idle_time=self.claim_idle_ms,
            start_id="0-0",
            count=self.max_in_flight,
        )
        claimed = len(reply[1]) if len(reply) > 1 else 0
        if claimed:
            log.info("bar consumer %s claimed %d bars of a silent consumer", self.name, claimed)
            self._backlog = True
        return claimed

    def flush(self) -> int:
        """Append the applied bars to the parquet bars dataset (see :mod:`._offline`)."""
        return self.offline.flush() if self.offline is not None else 0

    def _read(self) -> list[Message]:
        stream, group = self.keys.stream, self.keys.group
        messages: list[Message] = []
        if self._backlog:
            reply = self.client.xreadgroup(
                group, self.name, {stream: "0"}, count=self.max_in_flight
            )
            messages = self._messages(reply)
            if not messages:
                self._backlog = False
        room = self.max_in_flight - len(messages)
        if room > 0:
            reply = self.client.xreadgroup(
                group,
                self.name,
                {stream: ">"},
                count=room,
                block=None if messages else self.block_ms,
            )
            messages += self._messages(reply)
        return sorted(messages, key=lambda m: id_key(m.id))

    def _messages(self, reply: Any) -> list[Message]:
        out, gone = [], []
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                if fields is None:  # deleted from the stream while pending
                    gone.append(entry_id)
                else:
                    out.append(decode(entry_id, fields))
        if gone:
            self.client.xack(self.keys.stream, self.keys.group, *gone)
        return out

    # --- one round --------------------------------------------------------------------
    def apply(self, messages: Sequence[Message]) -> RoundResult:
        """Apply a round's bars (in stream order); see the module docstring."""
        ready, deferred = self._in_turn(messages)
        by_symbol: dict[str, list[Message]] = {}
        for msg in ready:
            by_symbol.setdefault(msg.symbol, []).append(msg)
        tails = self.histories.load(by_symbol)
        verdicts = admit(by_symbol, tails)
        applying = [v for v in verdicts if v.bars.size]
        grown = {v.symbol: np.concatenate([tails[v.symbol], v.bars]) for v in applying}
        new_rows = self._new_rows(applying, grown)
        ends = np.cumsum([len(v.bars) for v in applying])
        online = new_rows.iloc[ends - 1] if applying else None  # each symbol's newest row
        if applying:
            newest = max(int(v.bars["ts"][-1]) for v in applying)
            # the clock first: a feature row is never newer than the feed clock
            self._clock_max(keys=[self.keys.clock], args=[newest // 1_000_000])
            if not self._online_in_commit:
                self.online.write(online)
        dead = [d for v in verdicts for d in v.dead]
        self._commit(
            applying,
            grown,
            new_rows,
            dead,
            [m.id for m in ready],
            online if self._online_in_commit else None,
        )
        written = time.time()
        return self._count(applying, verdicts, dead, len(deferred), written)

    def _in_turn(self, messages: Sequence[Message]) -> tuple[list[Message], list[Message]]:
        """The bars that may be applied now, and those that wait: a symbol's bars wait
        behind an earlier bar of it that is pending outside this round."""
        mine = {m.id for m in messages}
        upto = max(messages, key=lambda m: id_key(m.id)).id
        entries = self.client.xpending_range(
            self.keys.stream, self.keys.group, min="-", max=upto, count=100_000
        )
        earlier = [_text(e["message_id"]) for e in entries]
        earlier = [i for i in earlier if i not in mine]
        if not earlier:
            return list(messages), []
        unknown = [i for i in earlier if i not in self._symbol_of]
        if unknown:
            if len(self._symbol_of) > 200_000:
                self._symbol_of.clear()
            with self.client.pipeline(transaction=False) as pipe:
                for i in unknown:
                    pipe.xrange(self.keys.stream, min=i, max=i, count=1)
                for i, found in zip(unknown, pipe.execute(), strict=True):
                    self._symbol_of[i] = decode(*found[0]).symbol if found else ""
        blocked: dict[str, tuple[int, int]] = {}
        for i in earlier:
            symbol, key = self._symbol_of[i], id_key(i)
            if symbol not in blocked or key < blocked[symbol]:
                blocked[symbol] = key
        ready: list[Message] = []
        waiting: list[Message] = []
        for msg in messages:
            first = blocked.get(msg.symbol)
            (waiting if first is not None and id_key(msg.id) > first else ready).append(msg)
        return ready, waiting

    def _new_rows(self, applying: list[Admitted], grown: dict[str, np.ndarray]) -> pd.DataFrame:
        """The feature rows of the round's new bars (``symbol``, ``timestamp``, features;
        per symbol of ``applying``, in time order), each from the symbol's recent bars
        and the round's earlier ones."""
        from augur.features.stream_online import new_feature_rows

        if not applying:
            return pd.DataFrame()
        return new_feature_rows(
            [v.symbol for v in applying],
            [grown[v.symbol] for v in applying],
            [len(v.bars) for v in applying],
            self.spec,
        )

    def _commit(
        self,
        applying: list[Admitted],
        grown: dict[str, np.ndarray],
        new_rows: pd.DataFrame,
        dead: list[DeadLetter],
        done: list[str],
        online: pd.DataFrame | None = None,
    ) -> None:
        """One transaction: the online rows (when the online store is this Redis), the new
        recent bars, the journal, the dead letters, the acks."""
        if not done:
            return
        returns = (
            np.split(
                new_rows[RETURN_FEATURE].to_numpy(), np.cumsum([len(v.bars) for v in applying])[:-1]
            )
            if applying
            else []
        )
        with self.client.pipeline(transaction=True) as pipe:
            if online is not None:
                self.online.write(online, pipe=pipe)
            kept = self.histories.stage(pipe, grown)
            if applying:
                pipe.xadd(
                    self.keys.journal,
                    journal_entry(
                        {v.symbol: (v.bars, r) for v, r in zip(applying, returns, strict=True)}
                    ),
                )
            for d in dead:
                pipe.xadd(
                    self.keys.dead_letters,
                    {
                        **d.message.fields,
                        "rule": d.rule,
                        "column": d.column or "",
                        "reason": d.reason,
                        "stream_id": d.message.id,
                        "consumer": self.name,
                    },
                    maxlen=_DEAD_LETTER_MAXLEN,
                    approximate=True,
                )
            pipe.xack(self.keys.stream, self.keys.group, *done)
            pipe.execute()
        self.histories.keep(kept)

    def _count(
        self,
        applying: list[Admitted],
        verdicts: list[Admitted],
        dead: list[DeadLetter],
        deferred: int,
        written: float,
    ) -> RoundResult:
        result = RoundResult(
            applied=sum(len(v.messages) for v in applying),
            duplicates=sum(len(v.duplicates) for v in verdicts),
            dead_letters=len(dead),
            deferred=deferred,
        )
        m = self.metrics
        m.count("applied", result.applied)
        m.count("duplicate", result.duplicates)
        m.count("dead_letter", result.dead_letters)
        for d in dead:
            m.dead_letters.labels(d.rule).inc()
        for v in applying:
            for msg, bar in zip(v.messages, v.bars, strict=True):
                m.publish_to_online.observe(max(0.0, written - msg.entry_ms / 1000.0))
                m.bar_to_online.observe(max(0.0, written - int(bar["ts"]) / 1e9))
        return result


def _same_redis(a: Any, b: Any) -> bool:
    """Whether two redis-py clients talk to the same server and database."""
    if a is None or b is None:
        return False

    def where(client: Any) -> tuple[Any, ...]:
        kw = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {})
        return kw.get("host"), kw.get("port"), kw.get("db", 0), kw.get("path")

    return where(a) == where(b) and where(a) != (None, None, 0, None)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


__all__ = ["BarConsumer", "RoundResult"]
