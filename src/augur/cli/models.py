"""``augur train`` and ``augur models list|push|pull``: fit + save a model version (the
ensemble and the decision thresholds it serves with); list versions; copy versions to and
from a shared model store (a path or an fsspec URI)."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from augur.cli._common import Column, HoldoutOption, print_table, train_with_progress
from augur.cli._common import fail as _fail
from augur.cli._common import parse_params as _parse_params

if TYPE_CHECKING:
    from augur.decision import DecisionConfig

models_app = typer.Typer(
    help="The ensemble versions in the BentoML model store.", no_args_is_help=True
)


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _decision_config(items: list[str]) -> DecisionConfig:
    """``--decision KEY=VALUE`` pairs → the version's DecisionConfig (defaults for the
    rest). A value is typed as its field is (strictly: ``true`` is no number, ``1`` no
    flag), so a bad key or value fails here, naming it, before anything is trained."""
    from typing import get_type_hints

    from pydantic import TypeAdapter, ValidationError

    from augur.decision import DecisionConfig

    hints = get_type_hints(DecisionConfig)
    values: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            _fail(
                f"--decision {item!r}: use KEY=VALUE (a field of augur.decision.DecisionConfig), "
                "e.g. --decision confidence_threshold=0.4",
                code=2,
            )
        if key not in hints:
            _fail(
                f"--decision {item!r}: {key!r} is not a DecisionConfig field; the fields are "
                f"{', '.join(sorted(hints))}",
                code=2,
            )
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw  # a word, such as exit_units=return
        try:
            values[key] = TypeAdapter(hints[key]).validate_python(value, strict=True)
        except ValidationError as exc:
            _fail(f"--decision {item!r}: {exc.errors()[0]['msg']}", code=2)
    try:
        return DecisionConfig.from_dict(values)
    except (TypeError, ValueError) as exc:
        _fail(f"--decision: {exc}", code=2)


def train(
    symbols: Annotated[
        list[str] | None,
        typer.Option(
            "--symbols",
            "-s",
            help="Symbols to train on (repeatable or comma-separated); default all in the bars dataset.",
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name", help="Model name in the store (default AUGUR_MODEL_NAME, 'augur-ensemble')."
        ),
    ] = None,
    holdout: HoldoutOption = 0.2,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            help="Hyper-parameter KEY=VALUE (a field of augur.models.EnsembleParams), repeatable.",
        ),
    ] = None,
    decision: Annotated[
        list[str] | None,
        typer.Option(
            "--decision",
            "-d",
            help="Decision threshold KEY=VALUE the version serves with (a field of "
            "augur.decision.DecisionConfig, e.g. confidence_threshold=0.4), repeatable; "
            "fields not named keep their defaults.",
        ),
    ] = None,
) -> None:
    """Train the ensemble on the bars dataset, check it on a held-out tail, save a version
    with the decision thresholds it serves with.

    Features and labels come from the FeatureSpec and AUGUR_LABEL_HORIZON /
    AUGUR_LABEL_DEAD_ZONE; the version goes to the BentoML model store
    ($BENTOML_HOME, default $AUGUR_HOME/bentoml).
    """
    from augur.config import get_settings
    from augur.data import read_bars
    from augur.models import EnsembleParams, save_version

    settings = get_settings()
    decision_config = _decision_config(decision or [])
    wanted = [s for item in symbols or [] for s in item.split(",") if s] or None
    try:
        params = EnsembleParams.from_dict({"seed": settings.seed, **_parse_params(param or [])})
    except (TypeError, ValueError) as exc:
        _fail(str(exc))
    console = Console()
    try:
        bars = read_bars(wanted)
    except KeyError as exc:
        _fail(str(exc.args[0]) if exc.args else str(exc))
    if bars.empty:
        _fail(
            "the bars dataset is empty: run `augur data sample` or `augur data import FILE --symbol S`"
        )
    try:
        result = train_with_progress(console, bars, params, settings, holdout)
        with console.status("saving to the model store…"):
            tag = save_version(
                result.ensemble, decision_config, name, reference=result.reference
            ).tag
    except ValueError as exc:
        _fail(str(exc))
    ens = result.ensemble
    val, ho = ens.metrics, result.holdout
    weights = ens.dynamic_weights.as_dict()
    rows = []
    for row in (*weights, "ensemble", "ensemble_equal_weights"):
        v, h = val.get(row, {}), ho.get(row, {})
        rows.append(
            [
                {"ensemble_equal_weights": "equal weights"}.get(row, row),
                _fmt(weights.get(row)),
                _fmt(v.get("accuracy")),
                _fmt(v.get("log_loss")),
                _fmt(h.get("accuracy")),
                _fmt(h.get("log_loss")),
                _fmt(h.get("brier")),
                _fmt(h.get("directional_hit_rate")),
            ]
        )
    baseline = ["majority class (baseline)", "", _fmt(val.get("majority_class_accuracy")), ""]
    rows.append([*baseline, _fmt(ho.get("majority_class_accuracy")), "", "", ""])
    headers = (
        "weight",
        "val acc",
        "val log loss",
        "ho acc",
        "ho log loss",
        "ho Brier",
        "ho hit rate",
    )
    print_table(
        console,
        f"{tag} — {result.n_train} training rows, {result.n_holdout} held out",
        ["model", *(Column(h, number=True) for h in headers)],
        rows,
        caption="val: the fit's validation rows; ho: the held-out tail",
    )
    if ho:
        console.print(
            f"forward-return 90% interval coverage on the held-out rows: "
            f"{_fmt(ho.get('quantile_coverage_90'))}; training took {ens.training_seconds:.1f}s"
        )
    default = type(decision_config)().to_dict()
    changed = [f"{k}={v}" for k, v in decision_config.to_dict().items() if v != default[k]]
    console.print(
        f"saved [bold]{tag}[/bold], deciding with {', '.join(changed) or 'the default thresholds'}"
    )


def list_models_cmd(
    name: Annotated[str | None, typer.Option("--name", help="Only this model name.")] = None,
) -> None:
    """List the ensemble versions (newest first) with their data and out-of-sample figures."""
    from augur.features import FeatureSpec
    from augur.models import list_models

    records = list_models(name)
    console = Console()
    if not records:
        console.print("no ensemble versions yet: run `augur train`")
        return
    current = FeatureSpec.from_settings().hash
    rows = []
    for r in records:
        meta = r.metadata
        ho = meta.get("metrics", {}).get("holdout") or meta.get("metrics", {})
        member_acc = {m: (ho.get(m) or {}).get("accuracy") for m in ("rf", "xgb", "svm", "logreg")}
        best = max((v for v in member_acc.values() if v is not None), default=None)
        spec = str(meta.get("feature_spec_hash", ""))
        rng = meta.get("data_range", {})
        rows.append(
            [
                r.tag,
                r.created.strftime("%Y-%m-%d %H:%M"),
                spec if spec == current else f"[yellow]{spec} (≠ code)[/yellow]",
                ",".join(meta.get("symbols", [])),
                f"{str(rng.get('start', ''))[:10]} → {str(rng.get('end', ''))[:10]}",
                _fmt(meta.get("n_train")),
                _fmt((ho.get("ensemble") or {}).get("accuracy")),
                _fmt(best),
                _fmt((ho.get("ensemble") or {}).get("log_loss")),
                _fmt(meta.get("training_seconds"), 1),
            ]
        )
    numbers = ("rows", "ens acc", "best member acc", "ens log loss", "train s")
    print_table(
        console,
        "ensemble versions (metrics: held-out tail)",
        ["tag", "created (UTC)", "spec", "symbols", "data range"]
        + [Column(h, number=True) for h in numbers],
        rows,
    )


def push_cmd(
    tags: Annotated[
        list[str],
        typer.Argument(
            metavar="TAG",
            help="Versions to push: name:version, or name:latest for the newest local one.",
        ),
    ],
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="The model store: a path (a mounted volume), file:///models, or an fsspec "
            "URI such as s3://bucket/augur/models.",
            metavar="URI",
        ),
    ],
) -> None:
    """Export versions from the local model store to a shared one, as
    <URI>/<name>/<version>.bentomodel, where serving pods can pull them."""
    from augur.models import ModelNotFoundError, ModelStoreError, push_versions

    try:
        pushed = push_versions(tags, to)
    except (ModelNotFoundError, ModelStoreError) as exc:
        _fail(str(exc), code=2)
    for tag in pushed:
        print(f"pushed {tag} to {to}")


def pull_cmd(
    tags: Annotated[
        list[str],
        typer.Argument(
            metavar="TAG", help="Exact versions to pull (name:version; latest is refused)."
        ),
    ],
    source: Annotated[
        str,
        typer.Option(
            "--from",
            help="The model store the versions were pushed to: a path, file:///models, or an "
            "fsspec URI such as s3://bucket/augur/models.",
            metavar="URI",
        ),
    ],
) -> None:
    """Import versions from a shared model store into the local one ($BENTOML_HOME);
    versions already there are skipped, so running it twice is harmless."""
    from augur.models import ModelStoreError, pull_versions

    try:
        pulled = set(pull_versions(tags, source))
    except ModelStoreError as exc:
        _fail(str(exc), code=2)
    for tag in dict.fromkeys(t.lower() for t in tags):  # BentoML tags are lowercase
        if tag in pulled:
            print(f"pulled {tag} from {source}")
        else:
            print(f"{tag} already in the local model store")


def register(app: typer.Typer) -> None:
    """Add ``train`` and the ``models`` group to the ``augur`` app."""
    app.command("train")(train)
    models_app.command("list")(list_models_cmd)
    models_app.command("push")(push_cmd)
    models_app.command("pull")(pull_cmd)
    app.add_typer(models_app, name="models")
