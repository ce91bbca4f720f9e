"""The study file: what to search, how long, against which data, and where to keep it.

A study file is YAML (or JSON) validated by pydantic *before Ray starts*. Every problem is
reported as ``<key>: <what is wrong>`` so the user knows which line to fix: unknown
parameters, empty ranges, bad distributions, unknown objectives, missing data.

Parameter names are dotted: ``features.windows`` / ``features.lags`` (the FeatureSpec),
``model.<field>`` (a field of :class:`augur.models.EnsembleParams`) and
``decision.<field>`` (a field of :class:`augur.decision.DecisionConfig`). The known
fields are read from those classes, so a renamed field cannot silently become a no-op.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = [
    "CategoricalDist",
    "DataConfig",
    "Distribution",
    "FloatDist",
    "IntDist",
    "StudyConfig",
    "StudyError",
    "load_study",
    "parse_study",
]

OBJECTIVES = ("composite", "return_vs_drawdown")
FEATURE_PARAMS = ("windows", "lags")


class StudyError(ValueError):
    """An invalid study file; the message names the key and the problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FloatDist(_Strict):
    """A real-valued dimension, uniform or log-uniform on ``[low, high]``."""

    type: Literal["float"]
    low: float
    high: float
    log: bool = False

    @model_validator(mode="after")
    def _range(self) -> FloatDist:
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError("low and high must be finite numbers")
        if not self.low < self.high:
            raise ValueError(f"empty range: low={self.low} must be < high={self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"log=true needs low > 0, got low={self.low}")
        return self

    def bounds(self) -> list[Any]:
        return [self.low, self.high]


class IntDist(_Strict):
    """An integer dimension on ``[low, high]`` (inclusive), optionally log-spaced."""

    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = 1

    @model_validator(mode="after")
    def _range(self) -> IntDist:
        if not self.low < self.high:
            raise ValueError(f"empty range: low={self.low} must be < high={self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"log=true needs low >= 1, got low={self.low}")
        if self.step < 1 or (self.log and self.step != 1):
            raise ValueError("step must be >= 1 (and 1 when log=true)")
        return self

    def bounds(self) -> list[Any]:
        return [self.low, self.high]


class CategoricalDist(_Strict):
    """A choice among listed values (numbers, strings, booleans or lists of integers)."""

    type: Literal["categorical"]
    choices: list[Any]

    @field_validator("choices")
    @classmethod
    def _choices(cls, v: list[Any]) -> list[Any]:
        if len(v) < 2:
            raise ValueError("a categorical needs at least 2 choices")
        keys = [json.dumps(c, sort_keys=True) for c in v]
        if len(set(keys)) != len(keys):
            raise ValueError("choices must be distinct")
        return v

    def bounds(self) -> list[Any]:
        return list(self.choices)


Distribution = Annotated[FloatDist | IntDist | CategoricalDist, Field(discriminator="type")]


class DataConfig(_Strict):
    """Which bars, which label, which walk-forward folds."""

    symbols: list[str] = Field(min_length=1, description="Symbols to train and score on.")
    root: Path | None = Field(
        default=None, description="Bars dataset (default: the Augur home's data/bars)."
    )
    start: str | None = Field(default=None, description="First timestamp (inclusive, UTC).")
    end: str | None = Field(default=None, description="Last timestamp (inclusive, UTC).")
    last_bars: int | None = Field(
        default=None, ge=200, description="Keep only each symbol's last N bars (small demos)."
    )
    horizon: int = Field(default=5, ge=1, description="Label horizon in bars.")
    dead_zone: float = Field(default=0.25, ge=0.0, description="Label flat band (sigmas).")
    n_folds: int = Field(default=4, ge=1, description="Walk-forward folds (one report each).")
    min_train_fraction: float = Field(default=0.4, gt=0.0, lt=1.0)
    commission_bps: float = Field(default=1.0, ge=0.0, description="Per-side commission, bps.")


class PruningConfig(_Strict):
    """ASHA: stop weak trials at fold boundaries."""

    enabled: bool = True
    grace_folds: int = Field(default=1, ge=1, description="Folds every trial always runs.")
    reduction_factor: float = Field(default=2.0, gt=1.0)


class StudyConfig(_Strict):
    """One tuning study, as read from a study file."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="Study name (a folder name).")
    trials: int = Field(ge=1, description="Total number of trials.")
    concurrency: int = Field(default=2, ge=1, description="Trials running at once.")
    seed: int = 7
    objective: str = Field(
        default="composite",
        description="'composite' (maximise the composite score) or 'return_vs_drawdown' "
        "(maximise total return, minimise max drawdown; a Pareto front).",
    )
    data: DataConfig
    search_space: dict[str, Distribution] = Field(min_length=1)
    fixed: dict[str, Any] = Field(
        default_factory=dict, description="Parameters held at a value (not searched)."
    )
    sweep: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="decision.* thresholds evaluated as a grid inside every trial "
        "(one vectorised pass); the trial reports the best combination.",
    )
    pruning: PruningConfig = PruningConfig()
    early_stop_patience: int | None = Field(
        default=None,
        ge=1,
        description="Stop the study when the best value has not "
        "improved for this many finished trials.",
    )
    early_stop_min_delta: float = Field(
        default=0.0,
        ge=0.0,
        description="What counts as an improvement for early_stop_patience: beating the "
        "best value by more than this (in objective units; 0 = any gain).",
    )
    storage: str = Field(
        default="",
        description="Where the study lives (path or URI such as s3://…); default "
        "<AUGUR_HOME>/tuning. Run the same study again to resume it.",
    )
    check_base: dict[str, Any] = Field(
        default_factory=dict,
        description="Base point of the no-placebo check (default: the centre of every "
        "range): a value where the thresholds bind, e.g. a low cool-down count.",
    )
    max_failures: int = Field(default=1, ge=0, description="Retries of a trial whose worker dies.")
    cpus_per_trial: float = Field(default=1.0, gt=0)

    @field_validator("objective")
    @classmethod
    def _objective(cls, v: str) -> str:
        if v not in OBJECTIVES:
            raise ValueError(f"unknown objective {v!r}; choose one of {list(OBJECTIVES)}")
        return v

    @model_validator(mode="after")
    def _names(self) -> StudyConfig:
        overlap = set(self.search_space) & (set(self.fixed) | set(self.sweep))
        if overlap:
            raise ValueError(
                f"{sorted(overlap)} appear in search_space and in fixed/sweep: pick one"
            )
        stray = set(self.check_base) - set(self.search_space)
        if stray:
            raise ValueError(f"check_base names {sorted(stray)}, which are not in search_space")
        both = set(self.fixed) & set(self.sweep)
        if both:
            raise ValueError(f"{sorted(both)} appear in both fixed and sweep: pick one")
        return self

    @property
    def multi_objective(self) -> bool:
        return self.objective == "return_vs_drawdown"

    def resolved_storage(self) -> str:
        """The storage location as an absolute path or a URI."""
        if "://" in self.storage:
            return self.storage.rstrip("/")
        if self.storage:
            return str(Path(self.storage).expanduser().resolve())
        from augur.config import get_settings

        return str((get_settings().home / "tuning").resolve())


# --- parameter registry ----------------------------------------------------------------


def _dataclass_fields(cls: type) -> dict[str, Any]:
    return {f.name: f for f in dataclasses.fields(cls)}


def known_parameters() -> dict[str, str]:
    """Every tunable name → its kind ('int', 'float', 'bool', 'str', 'list').

    Read from the FeatureSpec, EnsembleParams and DecisionConfig classes themselves.
    """
    from augur.decision import DecisionConfig
    from augur.models._params import EnsembleParams

    out = {f"features.{n}": "list" for n in FEATURE_PARAMS}
    for prefix, cls in (("model", EnsembleParams), ("decision", DecisionConfig)):
        defaults = cls()
        for name in _dataclass_fields(cls):
            value = getattr(defaults, name)
            kind = type(value).__name__ if value is not None else "int"
            out[f"{prefix}.{name}"] = kind
    # execution knobs and the seed are not search dimensions: changing them is not a
    # different model, only a different run
    for name in ("model.n_jobs", "model.seed", "model.top_k", "model.refit"):
        out.pop(name, None)
    return out


def _check_param(key: str, value: Any, known: dict[str, str]) -> str | None:
    """Problem with one parameter name/value, or None."""
    if key not in known:
        close = [k for k in known if k.split(".")[-1] == key.split(".")[-1]]
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown parameter{hint}; known: features.*, model.*, decision.* — see `augur tune --help`"
    return None


def _check_values(cfg: StudyConfig) -> list[str]:
    """Type and range checks of every parameter against the real config classes."""
    from augur.decision import DecisionConfig
    from augur.features import FeatureSpec
    from augur.models._params import EnsembleParams

    known = known_parameters()
    errors: list[str] = []
    sections = (("search_space", cfg.search_space), ("fixed", cfg.fixed), ("sweep", cfg.sweep))
    for section, params in sections:
        for key in params:
            problem = _check_param(key, params[key], known)
            if problem:
                errors.append(f"{section}.{key}: {problem}")
    if errors:
        return errors

    for key in cfg.sweep:
        if not key.startswith("decision."):
            errors.append(f"sweep.{key}: only decision.* thresholds can be swept inside a trial")
        elif not cfg.sweep[key]:
            errors.append(f"sweep.{key}: empty list of values")

    def candidates(key: str, dist: Any) -> list[Any]:
        return dist.bounds() if hasattr(dist, "bounds") else [dist]

    all_values: list[tuple[str, str, list[Any]]] = [
        ("search_space", k, candidates(k, d)) for k, d in cfg.search_space.items()
    ]
    all_values += [("fixed", k, [v]) for k, v in cfg.fixed.items()]
    all_values += [("sweep", k, list(v)) for k, v in cfg.sweep.items()]
    for section, key, values in all_values:
        kind = known[key]
        dist = cfg.search_space.get(key)
        where = f"{section}.{key}"
        if kind == "list":
            if dist is not None and not isinstance(dist, CategoricalDist):
                errors.append(f"{where}: a list parameter needs type: categorical with lists")
                continue
            for v in values:
                try:
                    FeatureSpec(**{key.split(".")[1]: tuple(v)})
                except Exception as exc:
                    errors.append(f"{where}: value {v!r} is invalid: {exc}")
            continue
        if kind == "int" and isinstance(dist, FloatDist):
            errors.append(f"{where}: {key} is an integer parameter; use type: int")
            continue
        cls = EnsembleParams if key.startswith("model.") else DecisionConfig
        field = key.split(".", 1)[1]
        for v in values:
            try:
                base = _consistent_base(cls, field, v)
                cls(**{**base, field: v})
            except Exception as exc:
                errors.append(f"{where}: value {v!r} is invalid: {exc}")
                break
    return errors


def _consistent_base(cls: type, field: str, value: Any) -> dict[str, Any]:
    """Defaults adjusted so a value is judged on its own (e.g. a small max_drawdown must
    not fail only because the default drawdown_scale_start is above it)."""
    if field == "max_drawdown" and isinstance(value, int | float):
        return {"drawdown_scale_start": 0.5 * float(value)}
    return {}


def _format_pydantic(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if not str(p).endswith("Dist"))
        # discriminated-union locations carry the tag ('float', 'int', …); drop it
        parts = [p for p in loc.split(".") if p not in ("float", "int", "categorical")]
        msg = err["msg"].removeprefix("Value error, ")
        out.append(f"{'.'.join(parts) or '<study>'}: {msg}")
    return out


def parse_study(raw: dict[str, Any], *, check_data: bool = True) -> StudyConfig:
    """Validate a study mapping; raise :class:`StudyError` listing every problem by key."""
    if not isinstance(raw, dict):
        raise StudyError("<study>: the study file must be a mapping (key: value)")
    # search-space keys contain dots: keep YAML's mapping as is
    try:
        cfg = StudyConfig.model_validate(raw)
    except ValidationError as exc:
        raise StudyError("invalid study:\n  " + "\n  ".join(_format_pydantic(exc))) from None
    errors = _check_values(cfg)
    if not errors and check_data:
        errors = _check_data(cfg)
    if errors:
        raise StudyError("invalid study:\n  " + "\n  ".join(errors))
    return cfg


def _check_data(cfg: StudyConfig) -> list[str]:
    from augur.data import list_symbols

    root = cfg.data.root
    have = list_symbols(root)
    missing = [s for s in cfg.data.symbols if s not in have]
    if missing:
        where = str(root) if root else "the Augur home (AUGUR_HOME)"
        return [
            f"data.symbols: no bars for {missing} in {where} (have {have}); "
            "run `augur data sample` or `augur data import`"
        ]
    return []


def load_study(path: str | Path, *, check_data: bool = True) -> StudyConfig:
    """Read and validate a study file (YAML or JSON)."""
    p = Path(path)
    if not p.is_file():
        raise StudyError(f"--config: no study file at {p}")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise StudyError(f"{p}: not valid YAML: {exc}") from None
    return parse_study(raw, check_data=check_data)
