"""Live bars against a real Redis: the consumer applies published bars to the online
features and the offline dataset, survives a SIGKILL, dead-letters bad bars, and shares a
group with a second consumer — every bar applied exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from augur.config import Settings
from tests.conftest import RedisServer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SYMBOLS = ("EURUSD", "AAPL", "MSFT")
HISTORY = 200  # bars per symbol before the stream starts
HELD_BACK = 40  # bars per symbol published to the stream
REDIS_DB = 21  # a database of its own on the session's Redis
DEAD = "augur:bars:dead"


@dataclass
class StreamHome:
    settings: Settings
    history: pd.DataFrame  # what the bars dataset holds before the stream
    live: pd.DataFrame  # the bars to publish, in time order
    client: Any


@pytest.fixture
def home(redis_server: RedisServer, tmp_path: Path) -> Iterator[StreamHome]:
    """A home with each symbol's history materialized into Redis, the next bars held back."""
    from augur.data import load_sample, write_bars
    from augur.features import store as fs
    from augur.stream import in_time_order, redis_client

    url = f"{redis_server.url},db={REDIS_DB}"
    client = redis_client(url)
    client.flushdb()
    settings = Settings(
        home=tmp_path / "home",
        feature_repo=ROOT / "feature_repo",
        online_store="redis",
        redis_url=url,
        stream_batch=50,
        stream_block_ms=100,
        stream_flush_seconds=3600.0,
        stream_metrics_port=0,
    )
    sample = load_sample(list(SYMBOLS))
    recent = [df.tail(HISTORY + HELD_BACK).reset_index(drop=True) for df in sample.values()]
    history = pd.concat([df.iloc[:HISTORY] for df in recent], ignore_index=True)
    live = in_time_order(pd.concat([df.iloc[HISTORY:] for df in recent], ignore_index=True))
    write_bars(history, settings.bars_dir)
    fs.build_offline_features(settings)
    fs.apply(settings)
    fs.materialize(settings)
    yield StreamHome(settings, history, live, client)
    client.flushdb()


def _publish(home: StreamHome, bars: pd.DataFrame) -> list[str]:
    from augur.stream import StreamKeys, frame_entries, publish

    return publish(home.client, StreamKeys.from_settings(home.settings), frame_entries(bars))


def _entries(home: StreamHome, entries: list[dict[str, str]]) -> list[str]:
    from augur.stream import StreamKeys, publish

    return publish(home.client, StreamKeys.from_settings(home.settings), entries)


def _settled(home: StreamHome) -> bool:
    """Every published bar delivered to the group and acknowledged."""
    key = home.settings.stream_key
    last = home.client.xinfo_stream(key)["last-generated-id"]
    groups = home.client.xinfo_groups(key)
    return bool(groups) and all(
        g["last-delivered-id"] == last and g["pending"] == 0 for g in groups
    )


def _group_exists(home: StreamHome) -> bool:
    key = home.settings.stream_key
    return bool(home.client.exists(key)) and bool(home.client.xinfo_groups(key))


def _until(done: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.1)


def _run_in_thread(consumer: object, stop: threading.Event) -> threading.Thread:
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)  # type: ignore[attr-defined]
    thread.start()
    return thread


def _assert_consistent(home: StreamHome, expected: pd.DataFrame) -> None:
    """The bars dataset is ``expected`` exactly, and each symbol's online row is the
    feature engine's latest row of that whole history."""
    from augur.data import read_bars
    from augur.features import FeatureSpec, latest_features
    from augur.features.store import OnlineFeatures

    bars = read_bars(root=home.settings.bars_dir)
    want = expected.sort_values(["symbol", "timestamp"], ignore_index=True)
    pd.testing.assert_frame_equal(
        bars.reset_index(drop=True), want[list(bars.columns)], check_dtype=False
    )
    spec = FeatureSpec.from_settings(home.settings)
    latest = latest_features(bars, spec).set_index("symbol")
    online = OnlineFeatures(home.settings).get(list(SYMBOLS))
    for symbol in SYMBOLS:
        vec, ts = online[symbol]
        assert pd.Timestamp(ts) == latest.loc[symbol, "timestamp"], symbol
        np.testing.assert_allclose(
            vec, latest.loc[symbol, spec.names].to_numpy(dtype=float), rtol=1e-9, equal_nan=True
        )


def _everything(home: StreamHome) -> pd.DataFrame:
    return pd.concat([home.history, home.live], ignore_index=True)


def test_published_bars_reach_the_online_rows_and_the_offline_dataset(home: StreamHome) -> None:
    from augur.stream import BarConsumer

    _publish(home, home.live)
    consumer = BarConsumer.from_settings(home.settings, "only")
    stop = threading.Event()
    thread = _run_in_thread(consumer, stop)
    _until(lambda: _settled(home), 120, "the consumer acknowledged every bar")
    stop.set()
    thread.join(60)
    assert not thread.is_alive()
    assert consumer.metrics.applied == len(home.live)
    _assert_consistent(home, _everything(home))
    # the feed clock is the newest bar applied
    from augur.stream import StreamKeys, read_feed_clock

    clock = read_feed_clock(home.client, StreamKeys.from_settings(home.settings))
    assert pd.Timestamp(clock) == home.live["timestamp"].max()


def test_a_redelivered_or_republished_bar_is_skipped_and_counted(home: StreamHome) -> None:
    from augur.stream import BarConsumer

    first = home.live.iloc[:30]
    _publish(home, first)
    consumer = BarConsumer.from_settings(home.settings, "only")
    while not _settled(home):
        consumer.step()
    _publish(home, pd.concat([first.iloc[-6:], home.live.iloc[30:]], ignore_index=True))
    while not _settled(home):
        consumer.step()
    consumer.flush()
    assert consumer.metrics.applied == len(home.live)
    assert consumer.metrics.bars.labels("duplicate")._value.get() == 6
    _assert_consistent(home, _everything(home))


def _bad_bar(rule: str, before: dict[str, str], last_applied: pd.Timestamp) -> dict[str, str]:
    """An EURUSD entry that breaks ``rule`` only, placed after the good entry ``before``
    (its time half an hour later, between two hourly bars)."""
    when = (pd.Timestamp(before["timestamp"]) + pd.Timedelta(minutes=30)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    ok = {"symbol": "EURUSD", "timestamp": when, "open": "1.0", "high": "1.2", "low": "0.9"}
    ok |= {"close": "1.1", "volume": "10"}
    earlier = (last_applied - pd.Timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        ok
        | {
            "symbol": {"symbol": "not a symbol!"},
            "no_missing_values": {"close": ""},
            "numeric": {"volume": "lots"},
            "parseable_timestamp": {"timestamp": "yesterday"},
            "positive_price": {"low": "-1", "open": "-0.5"},
            "non_negative_volume": {"volume": "-5"},
            "high_ge_open_close": {"high": "1.05"},
            "low_le_open_close": {"low": "1.05"},
            "no_duplicate_timestamps": {"timestamp": before["timestamp"]},
            "increasing_time": {"timestamp": earlier},
        }[rule]
    )


RULES = (
    "symbol",
    "no_missing_values",
    "numeric",
    "parseable_timestamp",
    "positive_price",
    "non_negative_volume",
    "high_ge_open_close",
    "low_le_open_close",
    "no_duplicate_timestamps",
    "increasing_time",
)


def test_bad_bars_go_to_the_dead_letters_with_their_rule_and_the_good_ones_apply(
    home: StreamHome,
) -> None:
    from augur.data import read_bars
    from augur.stream import BarConsumer, bar_fields

    eurusd = home.live[home.live["symbol"] == "EURUSD"].reset_index(drop=True)
    good = [bar_fields("EURUSD", row) for _, row in eurusd.iterrows()]
    last = home.history[home.history["symbol"] == "EURUSD"]["timestamp"].max()
    # a bad bar after every second good one, each breaking one import rule
    entries: list[dict[str, str]] = []
    bad_at: dict[int, str] = {}
    rules = iter(RULES)
    for i, fields in enumerate(good):
        entries.append(fields)
        rule = next(rules, None) if i % 2 == 1 else None
        if rule is not None:
            bad_at[len(entries)] = rule
            entries.append(_bad_bar(rule, fields, last))
    ids = _entries(home, entries)
    consumer = BarConsumer.from_settings(home.settings, "only")
    while not _settled(home):
        consumer.step()
    consumer.flush()

    dead = {f[b"stream_id"].decode(): f for _, f in home.client.xrange(DEAD)}
    assert len(dead) == len(RULES)
    for position, rule in bad_at.items():
        letter = dead[ids[position]]
        assert letter[b"rule"].decode() == rule
        reason = letter[b"reason"].decode()
        assert reason.startswith(f"rule '{rule}' broken"), reason
        assert "row(s)" not in reason  # rows of a batch mean nothing to the publisher
    assert consumer.metrics.applied == len(good)
    history = read_bars(["EURUSD"], home.settings.bars_dir)
    assert history["timestamp"].tolist() == sorted(
        [*home.history.loc[home.history["symbol"] == "EURUSD", "timestamp"], *eurusd["timestamp"]]
    )


def test_two_consumers_in_one_group_apply_each_bar_once(home: StreamHome) -> None:
    from augur.stream import BarConsumer

    settings = home.settings.model_copy(update={"stream_batch": 7})
    consumers = [BarConsumer.from_settings(settings, name) for name in ("left", "right")]
    stop = threading.Event()
    threads = [_run_in_thread(c, stop) for c in consumers]
    # both reading the stream before any bar comes: the bars are shared out as they come
    _until(
        lambda: (
            _group_exists(home)
            and len(home.client.xinfo_consumers(settings.stream_key, settings.stream_group)) == 2
        ),
        120,
        "both consumers reading",
    )
    for _, chunk in home.live.groupby(np.arange(len(home.live)) // 10):
        _publish(home, chunk)
    _until(lambda: _settled(home), 180, "the two consumers acknowledged every bar")
    stop.set()
    for t in threads:
        t.join(60)
    applied = [c.metrics.applied for c in consumers]
    assert sum(applied) == len(home.live), applied
    assert min(applied) > 0, applied  # both took part
    assert home.client.xlen(DEAD) == 0
    _assert_consistent(home, _everything(home))


def _consume_process(home: StreamHome, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "AUGUR_HOME": str(home.settings.home),
        "AUGUR_FEATURE_REPO": str(home.settings.feature_repo),
        "AUGUR_ONLINE_STORE": "redis",
        "AUGUR_REDIS_URL": home.settings.redis_url,
        "AUGUR_STREAM_BATCH": "5",
        "AUGUR_STREAM_BLOCK_MS": "100",
        "AUGUR_STREAM_FLUSH_SECONDS": "3600",
        "AUGUR_STREAM_METRICS_PORT": "0",
    }
    augur = str(Path(sys.executable).parent / "augur")
    with log.open("ab") as fh:
        return subprocess.Popen(
            [augur, "stream", "consume", "--name", "worker"],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )


def _acked(home: StreamHome) -> int:
    groups = home.client.xinfo_groups(home.settings.stream_key)
    if not groups:
        return 0
    g = groups[0]
    return int(g["entries-read"] or 0) - int(g["pending"])


def test_a_consumer_killed_mid_stream_loses_no_bar_and_applies_none_twice(
    home: StreamHome, tmp_path: Path
) -> None:
    log = tmp_path / "consume.log"
    _publish(home, home.live)
    proc = _consume_process(home, log)
    try:
        _until(lambda: _acked(home) >= 20, 120, f"bars applied before the kill\n{log}")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert _acked(home) < len(home.live), "the kill came after the stream was done"
        proc = _consume_process(home, log)
        _until(lambda: _settled(home), 120, "the restarted consumer finished the stream")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # graceful: flushes the offline bars, exits 0
        code = proc.wait(60)
    assert code == 0, log.read_text()[-3000:]
    assert home.client.xlen(DEAD) == 0
    _assert_consistent(home, _everything(home))


def test_augur_stream_publish_writes_a_files_bars_the_consumer_applies(
    home: StreamHome, tmp_path: Path
) -> None:
    from augur.stream import BarConsumer

    eurusd = home.live[home.live["symbol"] == "EURUSD"]
    file = tmp_path / "eurusd.csv"
    # a user's file: its own column names, no symbol column
    eurusd.drop(columns="symbol").rename(columns={"timestamp": "Time", "close": "Close"}).to_csv(
        file, index=False
    )
    env = {
        **os.environ,
        "AUGUR_HOME": str(home.settings.home),
        "AUGUR_REDIS_URL": home.settings.redis_url,
    }
    augur = str(Path(sys.executable).parent / "augur")
    done = subprocess.run(
        [augur, "stream", "publish", str(file), "--symbol", "EURUSD"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"published {len(eurusd)} bars" in done.stdout
    consumer = BarConsumer.from_settings(home.settings, "only")
    while not _settled(home):
        consumer.step()
    assert consumer.metrics.applied == len(eurusd)
    assert home.client.xlen(DEAD) == 0
