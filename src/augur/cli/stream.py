"""``augur stream …``: bars into the Redis Stream (publish, replay) and the consumer that
applies them to the online features (consume)."""

from __future__ import annotations

import logging
import signal
import socket
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from augur.cli._common import fail

app = typer.Typer(
    help="Live bars: publish bars to the Redis Stream, replay the sample data on a simulated "
    "clock, and consume the stream into the online features (see docs/streaming.md).",
    no_args_is_help=True,
)

SymbolsOpt = Annotated[
    list[str] | None,
    typer.Option("--symbol", "-s", help="Symbol (repeatable). Default: every sample symbol."),
]
LastOpt = Annotated[
    int,
    typer.Option("--last", min=0, help="Only each symbol's last N bars (0: all of them)."),
]


def _keys_and_client() -> tuple[Any, Any, Any]:
    from augur.config import get_settings
    from augur.stream import StreamKeys, redis_client

    settings = get_settings()
    return settings, StreamKeys.from_settings(settings), redis_client(settings.stream_redis_url)


def _sample(symbols: list[str] | None, last: int) -> Any:
    import pandas as pd

    from augur.data import load_sample

    try:
        sample = load_sample(symbols)
    except (KeyError, ValueError) as exc:
        fail(str(exc.args[0] if isinstance(exc, KeyError) else exc))
    return pd.concat(
        [frame.tail(last) if last else frame for frame in sample.values()], ignore_index=True
    )


def _unreachable(exc: Exception) -> None:
    fail(
        f"the stream's Redis is unreachable ({exc}); check AUGUR_STREAM_URL / AUGUR_REDIS_URL "
        "and that redis-server is running",
        3,
    )


@app.command("publish")
def publish(
    file: Annotated[
        Path | None, typer.Argument(help="CSV or Parquet bars (columns as `augur data import`).")
    ] = None,
    sample: Annotated[bool, typer.Option("--sample", help="Publish the sample bars.")] = False,
    symbols: SymbolsOpt = None,
    last: LastOpt = 0,
) -> None:
    """Write bars to the stream, one entry per bar, in the file's order (the sample: in
    time order). The consumer validates them."""
    import redis

    from augur.data import BarsValidationError, read_bars_file
    from augur.data._validate import normalise_columns
    from augur.stream import frame_entries, in_time_order
    from augur.stream import publish as publish_entries

    if (file is None) == (not sample):
        fail("give a FILE or --sample (not both)")
    if file is not None:
        if symbols is not None and len(symbols) > 1:
            fail("a file holds one symbol: give at most one --symbol")
        try:
            bars = read_bars_file(file)
        except (FileNotFoundError, ValueError) as exc:
            fail(str(exc))
        symbol = symbols[0] if symbols else None
        try:  # column names as `augur data import` reads them (Time → timestamp, …)
            bars = normalise_columns(bars)
        except BarsValidationError as exc:
            fail(f"{file}: {exc}")
        if symbol is None and "symbol" not in bars.columns:
            fail(f"{file} has no symbol column: name the symbol with --symbol")
        if last:
            bars = bars.tail(last)
        entries = frame_entries(bars, symbol)
    else:
        bars = in_time_order(_sample(symbols, last))
        entries = frame_entries(bars)
    settings, keys, client = _keys_and_client()
    try:
        ids = publish_entries(client, keys, entries, settings.stream_maxlen)
    except redis.exceptions.ConnectionError as exc:
        _unreachable(exc)
    Console().print(f"published {len(ids):,} bars to {keys.stream}")


@app.command("replay")
def replay(
    speed: Annotated[
        float,
        typer.Option(
            "--speed", min=0.001, help="Market seconds per wall-clock second (3600: 1 h/s)."
        ),
    ] = 3600.0,
    symbols: SymbolsOpt = None,
    last: LastOpt = 0,
    quiet: Annotated[bool, typer.Option("--quiet", help="No line per timestamp.")] = False,
) -> None:
    """Publish the sample bars in time order on a simulated clock. A service with
    AUGUR_CLOCK=feed then decides on them as if they were live."""
    import redis

    from augur.stream import replay as replay_bars

    bars = _sample(symbols, last)
    settings, keys, client = _keys_and_client()
    out = Console()

    def step(ts: Any, sent: int) -> None:
        if not quiet:
            out.print(f"{ts:%Y-%m-%d %H:%M} UTC  {sent:,} bars published")

    try:
        sent = replay_bars(client, keys, bars, speed, settings.stream_maxlen, on_step=step)
    except redis.exceptions.ConnectionError as exc:
        _unreachable(exc)
    out.print(f"replayed {sent:,} bars to {keys.stream} at {speed:g}x")


@app.command("consume")
def consume(
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            help="This consumer's name in the group; keep it across restarts (default: the "
            "host name, a pod's name).",
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port", help="Port of /metrics (0: none). Default: AUGUR_STREAM_METRICS_PORT."
        ),
    ] = None,
) -> None:
    """Apply the stream's bars to the online features until SIGTERM or Ctrl-C (the round
    in flight finishes and is acknowledged, the offline bars are flushed, then it exits)."""
    import redis

    from augur.config import get_settings
    from augur.features.store import FeatureStoreError
    from augur.stream import BarConsumer, StreamMetrics

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = get_settings()
    metrics = StreamMetrics()
    try:
        consumer = BarConsumer.from_settings(
            settings, name or socket.gethostname(), metrics=metrics
        )
        consumer.ensure_group()
    except FeatureStoreError as exc:
        fail(str(exc), 2)
    except redis.exceptions.ConnectionError as exc:
        _unreachable(exc)
    port = settings.stream_metrics_port if metrics_port is None else metrics_port
    if port:
        metrics.serve(port)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    Console().print(
        f"consumer '{consumer.name}' of group '{consumer.keys.group}' on {consumer.keys.stream}"
        + (f"; metrics on :{port}/metrics" if port else "")
    )
    consumer.run(stop)
    Console().print(f"consumer '{consumer.name}' stopped: {metrics.applied:,} bars applied")
