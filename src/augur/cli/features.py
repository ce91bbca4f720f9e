"""``augur features …``: offline features, Feast apply / materialize / push, training sets."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console

from augur.cli._common import Column, print_table

app = typer.Typer(
    help="Features: build the offline parquet, register it in Feast, load the online store "
    "(SQLite or Redis), push live bars, and build point-in-time training sets.",
    no_args_is_help=True,
)

OnlineStoreOpt = Annotated[
    str | None,
    typer.Option(
        "--online-store",
        help="Online store: 'sqlite' (embedded) or 'redis'. Default: AUGUR_ONLINE_STORE.",
    ),
]
RedisUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--redis-url",
        help="Redis connection string host:port[,db=N] (with --online-store redis). "
        "Default: AUGUR_REDIS_URL.",
    ),
]


def _out() -> Console:
    # Made per call (not at import) so COLUMNS and the terminal are read when the command runs.
    return Console()


def _store_kind(online_store: str | None) -> Literal["sqlite", "redis"] | None:
    if online_store not in (None, "sqlite", "redis"):
        raise typer.BadParameter(
            f"{online_store!r}: use 'sqlite' or 'redis'", param_hint="--online-store"
        )
    return online_store  # type: ignore[return-value]


@contextmanager
def _user_errors() -> Iterator[None]:
    """Known failures become one red line and a non-zero exit, not a traceback."""
    from augur.data import BarsValidationError
    from augur.features.store import FeatureStoreError, OnlineStoreUnavailable

    err = Console(stderr=True)
    try:
        yield
    except BarsValidationError as exc:
        err.print(f"[red]invalid bar:[/red] {exc}\nnothing was written.")
        raise typer.Exit(1) from None
    except OnlineStoreUnavailable as exc:
        err.print(f"[red]online store unavailable:[/red] {exc}")
        raise typer.Exit(3) from None
    except (FeatureStoreError, KeyError, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc.args[0] if isinstance(exc, KeyError) else exc}")
        raise typer.Exit(2) from None


def _spinner(text: str, work: Callable[[], Any]) -> Any:
    with _out().status(text):
        return work()


@app.command("build")
def build() -> None:
    """Compute every feature for every bar (all symbols) and write the offline parquet."""
    from augur.config import get_settings
    from augur.features.store import build_offline_features, offline_features_path

    settings = get_settings()
    with _user_errors():
        frame = _spinner("computing features…", lambda: build_offline_features(settings))
    n_features = frame.shape[1] - 2
    _out().print(
        f"{len(frame):,} rows x {n_features} features for {frame['symbol'].nunique()} symbols "
        f"→ {offline_features_path(settings)}"
    )


@app.command("apply")
def apply(online_store: OnlineStoreOpt = None, redis_url: RedisUrlOpt = None) -> None:
    """Register the Feast repository (entity, sources, feature view, decision_v1)."""
    from augur.config import get_settings
    from augur.features import store as fs

    settings = get_settings()
    kind = _store_kind(online_store)
    with _user_errors():
        store = _spinner(
            "applying the Feast repository…", lambda: fs.apply(settings, kind, redis_url)
        )
    fv = store.get_feature_view(fs.FEATURE_VIEW)
    _out().print(
        f"applied project '{fs.PROJECT}': feature view '{fv.name}' ({len(fv.features)} "
        f"features, ttl {fv.ttl}), service '{fs.FEATURE_SERVICE}', online store "
        f"{kind or settings.online_store}"
    )


@app.command("materialize")
def materialize(
    incremental: Annotated[
        bool, typer.Option("--incremental", help="Only rows since the last materialisation.")
    ] = False,
    online_store: OnlineStoreOpt = None,
    redis_url: RedisUrlOpt = None,
) -> None:
    """Load each symbol's latest offline feature row into the online store, with the
    symbols' return correlations."""
    from augur.config import get_settings
    from augur.features import store as fs

    settings = get_settings()
    kind = _store_kind(online_store)
    with _user_errors():
        result = _spinner(
            "materialising…",
            lambda: fs.materialize(settings, kind, redis_url, incremental=incremental),
        )
    mode = "incremental" if result.incremental else "full"
    correlations = (
        ""
        if result.correlation_pairs is None
        else f"; return correlations of {result.correlation_pairs} symbol pairs"
    )
    _out().print(
        f"{mode} materialisation {result.start:%Y-%m-%d %H:%M} → {result.end:%Y-%m-%d %H:%M}: "
        f"{result.offline_rows:,} offline rows, {result.symbols} symbols online "
        f"({kind or settings.online_store}){correlations}"
    )


@app.command("push")
def push(
    symbol: Annotated[str, typer.Option("--symbol", "-s", help="Symbol the new bar belongs to.")],
    bar: Annotated[
        str,
        typer.Option(
            "--bar",
            help='The new bar as JSON: {"timestamp": "2024-01-02T15:00:00Z", "open": 1.1, '
            '"high": 1.2, "low": 1.0, "close": 1.15, "volume": 1000}',
        ),
    ],
    online_store: OnlineStoreOpt = None,
    redis_url: RedisUrlOpt = None,
) -> None:
    """Append one new bar, recompute the symbol's latest features and push them online
    (and the return correlations, with the bar's return)."""
    from augur.config import get_settings
    from augur.features import store as fs

    try:
        parsed = json.loads(bar)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not valid JSON: {exc}", param_hint="--bar") from None
    if not isinstance(parsed, dict):
        raise typer.BadParameter("must be a JSON object", param_hint="--bar")
    settings = get_settings()
    kind = _store_kind(online_store)
    with _user_errors():
        row = _spinner("pushing…", lambda: fs.push_bar(symbol, parsed, settings, kind, redis_url))
    first = row.iloc[0]
    _out().print(
        f"pushed {symbol} @ {first['timestamp']} ({row.shape[1] - 2} features) to the "
        f"{kind or settings.online_store} online store"
    )


@app.command("show")
def show(
    symbols: Annotated[
        list[str] | None,
        typer.Option("--symbol", "-s", help="Symbols to show (repeatable); default all."),
    ] = None,
    limit: Annotated[int, typer.Option(help="Features shown per symbol.")] = 6,
    online_store: OnlineStoreOpt = None,
    redis_url: RedisUrlOpt = None,
) -> None:
    """Print each symbol's latest online features (what the decision service reads)."""
    from augur.config import get_settings
    from augur.data import list_symbols
    from augur.features.store import OnlineFeatures, UnknownSymbolError

    settings = get_settings()
    kind = _store_kind(online_store)
    wanted = symbols or list_symbols(settings.bars_dir)
    with _user_errors():
        try:
            online = OnlineFeatures(settings, kind, redis_url)
            rows = online.get(wanted)
        except UnknownSymbolError as exc:
            raise ValueError(str(exc)) from None
    names = online.spec.names[:limit]
    print_table(
        _out(),
        f"latest online features ({kind or settings.online_store})",
        ["symbol", "feature time", *(Column(name, number=True) for name in names)],
        [
            [sym, f"{ts:%Y-%m-%d %H:%M}", *(f"{v:.4g}" for v in vec[:limit])]
            for sym, (vec, ts) in rows.items()
        ],
    )
    _out().print(f"{len(online.spec.names)} features per symbol; spec hash {online.spec.hash}")


@app.command("training-set")
def training_set(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Output parquet. Default: AUGUR_HOME/training_set.parquet"
        ),
    ] = None,
    horizon: Annotated[
        int | None, typer.Option(help="Label horizon in bars. Default: AUGUR_LABEL_HORIZON.")
    ] = None,
    dead_zone: Annotated[
        float | None,
        typer.Option(help="Flat band in forward-return sigmas. Default: AUGUR_LABEL_DEAD_ZONE."),
    ] = None,
    last: Annotated[
        int,
        typer.Option(
            help="Labels per symbol (the most recent). Feast's file offline store joins "
            "each label with all of its symbol's feature rows, so keep this modest; 0 = all."
        ),
    ] = 200,
    online_store: OnlineStoreOpt = None,
    redis_url: RedisUrlOpt = None,
) -> None:
    """Labels joined point-in-time with the features (Feast get_historical_features)."""
    from augur.config import get_settings
    from augur.features import store as fs

    settings = get_settings()
    target = out or settings.home / "training_set.parquet"
    with _user_errors():
        frame = _spinner(
            "point-in-time join…",
            lambda: fs.training_set(
                settings,
                horizon=horizon,
                dead_zone=dead_zone,
                last=last or None,
                online_store=_store_kind(online_store),
                redis_url=redis_url,
            ),
        )
        fs.write_training_set(frame, target)
    counts = frame["label"].value_counts().to_dict()
    _out().print(
        f"{len(frame):,} rows ({frame['symbol'].nunique()} symbols; labels up/flat/down "
        f"{counts.get(1, 0)}/{counts.get(0, 0)}/{counts.get(-1, 0)}) → {target}"
    )
