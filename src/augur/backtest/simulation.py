"""Monte Carlo simulation of the decision rules over bootstrapped out-of-sample outcomes.

One simulation is one path of ``n_steps`` (252) decision steps. Each step's outcome —
(probability, payoff ratio, confidence, realised forward return, direction) of one
out-of-sample prediction — is drawn by a circular *block* bootstrap from the realised
out-of-sample outcomes (blocks of ``block_length`` consecutive outcomes keep their
autocorrelation) and passed through the decision engine's own step
(:func:`augur.decision._step.step`, compiled — the function ``decide()`` calls): the
confidence gate, capped fractional Kelly, drawdown and volatility-regime scaling, the
exposure caps, the drawdown stop and the cool-down after consecutive losses. Each step is
one trade over the label horizon: ``r = size * (direction * realised_return -
round_trip_cost)``; equity compounds.

Member weights. When the outcomes carry the members' probabilities
(:class:`MemberOutcomes`, written by ``augur backtest``), each path re-walks the
ensemble's member weights with the rule of :class:`augur.models.DynamicWeights` (its
float-only core, compiled): it starts from the scores the walk of its first outcome's
model version started from; each step mixes the members with the current weights into
the ensemble's direction, probability and confidence (as ``predict_one``), the step
decides on them, and the step's outcome is folded into the scores before the next step
(a label known one step later, where serving learns it ``horizon`` bars later). With
``fixed_weights`` (or outcomes without member columns) each outcome keeps the ensemble
probability, direction and confidence the backtest's walk gave it.

Per path: terminal return, maximum drawdown, Sharpe (per-step mean/std(ddof=1) times
``sqrt(periods_per_year)``; steps without a trade count as 0) and win rate (share of
trades with a positive net return; paths without trades are left out of the win-rate
distribution and counted in ``paths_without_trades``).

Probability of ruin: the share of paths whose drawdown reached ``config.max_drawdown``
(the drawdown stop fired) or whose equity fell to ``ruin_equity`` (default 0.5 of the
start); a ruined path stops trading.

Memory is bounded for any ``n_paths``: paths run in chunks of ``chunk_size`` (one
``chunk_size x 4`` float array at a time) and each chunk is folded into fixed-bin
histograms (``HISTOGRAM_BINS`` bins per metric) plus running sums. The bin ranges come
from a pilot of the first ``PILOT_PATHS`` paths (the same paths, so the result does not
depend on the chunking), widened by half their span on each side; values outside land in
the edge bins. Quantiles are read from the histograms by linear interpolation within the
bin, so they are accurate to one bin width (reported as ``resolution``) and clamped to
the exact observed minimum and maximum.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from augur.decision import DecisionConfig

#: Metrics recorded per path, in kernel column order.
METRICS = ("terminal_return", "max_drawdown", "sharpe", "win_rate")
#: Quantile levels reported by default.
DEFAULT_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
#: Bins per metric histogram (4 x 65,536 int64 = 2 MiB).
HISTOGRAM_BINS = 1 << 16
#: Paths simulated first to fix the histogram ranges.
PILOT_PATHS = 1 << 16
#: Default per-side costs in basis points of notional (as augur.backtest.metrics).
DEFAULT_COMMISSION_BPS = 1.0
DEFAULT_SLIPPAGE_BPS = 1.0

ProgressCallback = Callable[[int, int], None]


def _column(frame: pd.DataFrame, name: str, dtype: type) -> np.ndarray:
    if name not in frame.columns:
        raise ValueError(
            f"out-of-sample outcomes: column {name!r} is missing (have {list(frame.columns)}); "
            f"expected columns {list(OutOfSampleOutcomes.COLUMNS)}"
        )
    return np.ascontiguousarray(frame[name].to_numpy(dtype=dtype))


#: The ensemble's members, in the order of ``augur.models.MEMBERS`` (tested equal; not
#: imported, so that reading outcomes loads no model code).
MEMBERS = ("rf", "xgb", "svm", "logreg")


@dataclass(frozen=True)
class MemberOutcomes:
    """What re-walking the member weights along a path needs, per outcome.

    ``per_model``: (n, members, 3) each member's down/flat/up probabilities; ``label``:
    the realised class (-1, 0, 1); ``payoff_long``/``payoff_short``: the payoff ratio
    of a long and of a short (from the quantiles); ``volatility_ratio`` (1 when unknown)
    and ``trend`` for the confidence; ``confidence_weights``: (n, 4) the margin,
    agreement and trend weights (the trend's 0 when the version had no trend feature)
    and the volatility penalty; ``start_scores``: (n, members) the score vector the
    walk of this outcome's model version started from; ``weight_rule``: (n, 4) the
    version's weight rule, ``decay``, ``floor``, ``max_step`` (0: unbounded) and
    ``frozen`` (1/0). The re-walk follows one rule: the properties :attr:`decay`, … read
    it and refuse outcomes whose rows differ.

    Columns in the parquet: ``p_down_<m>``, ``p_flat_<m>``, ``p_up_<m>``,
    ``weight_score_<m>`` per member, and :attr:`COLUMNS`.
    """

    per_model: np.ndarray
    label: np.ndarray
    payoff_long: np.ndarray
    payoff_short: np.ndarray
    volatility_ratio: np.ndarray
    trend: np.ndarray
    confidence_weights: np.ndarray
    start_scores: np.ndarray
    weight_rule: np.ndarray

    COLUMNS = (
        "label",
        "payoff_ratio_long",
        "payoff_ratio_short",
        "volatility_ratio",
        "trend",
        "confidence_margin_weight",
        "confidence_agreement_weight",
        "confidence_trend_weight",
        "volatility_penalty",
        "weight_decay",
        "weight_floor",
        "weight_max_step",
        "weights_frozen",
    )
    RULE_COLUMNS = ("weight_decay", "weight_floor", "weight_max_step", "weights_frozen")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Every column the member outcomes are read from."""
        per_member = tuple(
            f"{k}_{m}" for m in MEMBERS for k in ("p_down", "p_flat", "p_up", "weight_score")
        )
        return per_member + cls.COLUMNS

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> MemberOutcomes | None:
        """From the member columns of ``frame`` (payoff ratios given), None when it lacks
        any of them (outcomes written before they existed)."""
        if not set(cls.names()) <= set(frame.columns):
            return None
        return cls._build(
            frame,
            _column(frame, "payoff_ratio_long", np.float64),
            _column(frame, "payoff_ratio_short", np.float64),
        )

    @classmethod
    def _build(cls, frame: pd.DataFrame, long: np.ndarray, short: np.ndarray) -> MemberOutcomes:
        f64 = np.float64
        per_model = np.stack(
            [
                np.stack([_column(frame, f"{k}_{m}", f64) for k in ("p_down", "p_flat", "p_up")], 1)
                for m in MEMBERS
            ],
            axis=1,
        )
        return cls(
            per_model=np.ascontiguousarray(per_model),
            label=_column(frame, "label", np.int64),
            payoff_long=long,
            payoff_short=short,
            volatility_ratio=_column(frame, "volatility_ratio", f64),
            trend=_column(frame, "trend", f64),
            confidence_weights=np.ascontiguousarray(
                np.stack(
                    [
                        _column(frame, name, f64)
                        for name in (
                            "confidence_margin_weight",
                            "confidence_agreement_weight",
                            "confidence_trend_weight",
                            "volatility_penalty",
                        )
                    ],
                    axis=1,
                )
            ),
            start_scores=np.ascontiguousarray(
                np.stack([_column(frame, f"weight_score_{m}", f64) for m in MEMBERS], axis=1)
            ),
            weight_rule=np.ascontiguousarray(
                np.stack([_column(frame, name, f64) for name in cls.RULE_COLUMNS], axis=1)
            ),
        )

    def _rule(self, k: int) -> float:
        values = self.weight_rule[:, k]
        if len(values) and not np.all(values == values[0]):
            raise ValueError(
                f"out-of-sample outcomes: {self.RULE_COLUMNS[k]!r} differs between rows; the "
                "Monte Carlo re-walks one weight rule (simulate these outcomes with fixed "
                "weights: --fixed-weights)"
            )
        return float(values[0]) if len(values) else 0.0

    @property
    def decay(self) -> float:
        """The weights' decay (one for all outcomes)."""
        return self._rule(0)

    @property
    def floor(self) -> float:
        """The weights' floor (one for all outcomes)."""
        return self._rule(1)

    @property
    def max_step(self) -> float:
        """The bound on one outcome's step, 0 when unbounded (one for all outcomes)."""
        return self._rule(2)

    @property
    def frozen(self) -> bool:
        """Whether the weights are frozen (one for all outcomes)."""
        return self._rule(3) > 0.5

    def check(self, n: int) -> None:
        """Shapes and values (``n`` outcomes)."""
        m = len(MEMBERS)
        for name, shape in (
            ("per_model", (n, m, 3)),
            ("label", (n,)),
            ("payoff_long", (n,)),
            ("payoff_short", (n,)),
            ("volatility_ratio", (n,)),
            ("trend", (n,)),
            ("confidence_weights", (n, 4)),
            ("start_scores", (n, m)),
            ("weight_rule", (n, 4)),
        ):
            arr = getattr(self, name)
            if arr.shape != shape:
                raise ValueError(
                    f"member outcomes: {name!r} must have shape {shape}, got {arr.shape}"
                )
            if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                raise ValueError(f"member outcomes: {name!r} has a non-finite value")
        if not np.isin(self.label, (-1, 0, 1)).all():
            raise ValueError("member outcomes: 'label' must be -1, 0 or 1")
        decay, max_step = self.weight_rule[:, 0], self.weight_rule[:, 2]
        if not ((decay > 0) & (decay < 1)).all() or (max_step < 0).any():
            raise ValueError(
                "member outcomes: weight_decay must be in (0, 1) and weight_max_step >= 0"
            )

    def to_frame(self) -> pd.DataFrame:
        """The member columns (see the class docstring)."""
        cols: dict[str, Any] = {}
        for i, m in enumerate(MEMBERS):
            for c, k in enumerate(("p_down", "p_flat", "p_up")):
                cols[f"{k}_{m}"] = self.per_model[:, i, c]
            cols[f"weight_score_{m}"] = self.start_scores[:, i]
        cols.update(
            {
                "label": self.label,
                "payoff_ratio_long": self.payoff_long,
                "payoff_ratio_short": self.payoff_short,
                "volatility_ratio": self.volatility_ratio,
                "trend": self.trend,
                "confidence_margin_weight": self.confidence_weights[:, 0],
                "confidence_agreement_weight": self.confidence_weights[:, 1],
                "confidence_trend_weight": self.confidence_weights[:, 2],
                "volatility_penalty": self.confidence_weights[:, 3],
                **{name: self.weight_rule[:, k] for k, name in enumerate(self.RULE_COLUMNS)},
            }
        )
        return pd.DataFrame(cols)


@dataclass(frozen=True)
class OutOfSampleOutcomes:
    """Realised out-of-sample outcomes, one entry per prediction, in time order.

    ``probability``: calibrated probability that ``direction`` is right (0..1);
    ``payoff_ratio``: ``b`` from the quantiles (see :func:`augur.decision.payoff_ratio`);
    ``confidence``: the ensemble confidence (0..1); ``realised_return``: the realised
    forward return of the underlying over the label horizon (not signed by direction);
    ``direction``: +1, -1 or 0 (flat). Optional (:attr:`OPTIONAL_COLUMNS`, 0 when
    absent, which turns volatility scaling off as in ``decide()``): ``volatility``, the
    per-bar volatility when the prediction was made, and ``volatility_ref``, the model
    version's reference for it. ``members`` (:class:`MemberOutcomes`, optional): what
    re-walking the member weights along a path needs. The parquet written by
    ``augur backtest`` at ``<AUGUR_HOME>/reports/oos_outcomes.parquet`` has these columns
    and the member columns.
    """

    probability: np.ndarray
    payoff_ratio: np.ndarray
    confidence: np.ndarray
    realised_return: np.ndarray
    direction: np.ndarray
    volatility: np.ndarray | None = None
    volatility_ref: np.ndarray | None = None
    members: MemberOutcomes | None = None

    COLUMNS = ("probability", "payoff_ratio", "confidence", "realised_return", "direction")
    OPTIONAL_COLUMNS = ("volatility", "volatility_ref")
    FILE_NAME = "oos_outcomes.parquet"

    def __post_init__(self) -> None:
        n = len(self.probability)
        for name in self.OPTIONAL_COLUMNS:
            if getattr(self, name) is None:
                object.__setattr__(self, name, np.zeros(n))
        for name in self.COLUMNS + self.OPTIONAL_COLUMNS:
            arr = np.ascontiguousarray(
                getattr(self, name), dtype=np.int64 if name == "direction" else np.float64
            )
            if arr.ndim != 1 or len(arr) != n:
                raise ValueError(
                    f"out-of-sample outcomes: {name!r} must be 1-D with {n} entries "
                    f"(like 'probability'), got shape {arr.shape}"
                )
            bad = np.flatnonzero(~np.isfinite(arr)) if arr.dtype.kind == "f" else np.empty(0)
            if len(bad):
                raise ValueError(
                    f"out-of-sample outcomes: {name!r} has a non-finite value at row {bad[0]}; "
                    "drop or fill such rows before simulating"
                )
            object.__setattr__(self, name, arr)
        if n == 0:
            raise ValueError("out-of-sample outcomes are empty: run `augur backtest` first")
        if self.members is not None:
            self.members.check(n)
        if n >= 2**32:
            raise ValueError("out-of-sample outcomes: at most 2**32 - 1 rows are supported")
        for name, ok in (
            ("probability", (self.probability >= 0) & (self.probability <= 1)),
            ("direction", np.isin(self.direction, (-1, 0, 1))),
            ("payoff_ratio", self.payoff_ratio >= 0),
        ):
            bad = np.flatnonzero(~ok)
            if len(bad):
                raise ValueError(
                    f"out-of-sample outcomes: {name!r} at row {bad[0]} is "
                    f"{getattr(self, name)[bad[0]]!r}; probability must be in [0, 1], "
                    "direction in {-1, 0, 1}, payoff_ratio >= 0"
                )

    def __len__(self) -> int:
        return len(self.probability)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> OutOfSampleOutcomes:
        """From a DataFrame with the :attr:`COLUMNS` and any :attr:`OPTIONAL_COLUMNS`
        (extra columns are ignored)."""
        return cls(
            **{
                name: _column(frame, name, np.int64 if name == "direction" else np.float64)
                for name in cls.COLUMNS
            },
            **{
                name: _column(frame, name, np.float64)
                for name in cls.OPTIONAL_COLUMNS
                if name in frame.columns
            },
            members=MemberOutcomes.from_frame(frame),
        )

    @classmethod
    def from_predictions(
        cls, frame: pd.DataFrame, max_payoff_ratio: float = 10.0
    ) -> OutOfSampleOutcomes:
        """From per-bar predictions (``p_up``, ``p_down``, ``confidence``, ``q05``,
        ``q95``, ``forward_return``; optional ``direction``, ``volatility`` and
        ``volatility_ref``; with every member column of :class:`MemberOutcomes` but the
        payoff ratios, which come from the quantiles, the outcomes carry them).

        Without a ``direction`` column it is ``sign(p_up - p_down)``; ``probability`` is
        ``p_up`` for +1, ``p_down`` for -1 (and ``max(p_up, p_down)`` for flat).
        """
        from augur.decision import payoff_ratio

        p_up = _column(frame, "p_up", np.float64)
        p_down = _column(frame, "p_down", np.float64)
        q05 = _column(frame, "q05", np.float64)
        q95 = _column(frame, "q95", np.float64)
        if "direction" in frame.columns:
            direction = _column(frame, "direction", np.int64)
        else:
            direction = np.sign(p_up - p_down).astype(np.int64)
        probability = np.where(
            direction > 0, p_up, np.where(direction < 0, p_down, np.maximum(p_up, p_down))
        )
        payoff = np.array(
            [
                payoff_ratio(int(d), float(a), float(b), max_payoff_ratio)
                for d, a, b in zip(direction, q05, q95, strict=True)
            ],
            dtype=np.float64,
        )
        members = None
        if set(MemberOutcomes.names()) - {"payoff_ratio_long", "payoff_ratio_short"} <= set(
            frame.columns
        ):
            long, short = (
                np.array(
                    [
                        payoff_ratio(side, float(a), float(b), max_payoff_ratio)
                        for a, b in zip(q05, q95, strict=True)
                    ],
                    dtype=np.float64,
                )
                for side in (1, -1)
            )
            members = MemberOutcomes._build(frame, long, short)
        return cls(
            members=members,
            probability=probability,
            payoff_ratio=payoff,
            confidence=_column(frame, "confidence", np.float64),
            realised_return=_column(frame, "forward_return", np.float64),
            direction=direction,
            **{
                name: _column(frame, name, np.float64)
                for name in cls.OPTIONAL_COLUMNS
                if name in frame.columns
            },
        )

    def to_frame(self) -> pd.DataFrame:
        """DataFrame with the :attr:`COLUMNS`, :attr:`OPTIONAL_COLUMNS` and the member
        columns when there are members."""
        frame = pd.DataFrame(
            {name: getattr(self, name) for name in self.COLUMNS + self.OPTIONAL_COLUMNS}
        )
        if self.members is not None:
            frame = pd.concat([frame, self.members.to_frame()], axis=1)
        return frame

    def save(self, path: Path) -> Path:
        """Write parquet atomically (temp file + ``os.replace``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        self.to_frame().to_parquet(tmp, index=False)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: Path) -> OutOfSampleOutcomes:
        """Read the parquet written by :meth:`save` (or by ``augur backtest``)."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(
                f"no out-of-sample outcomes at {path}: run `augur backtest` first "
                "(it writes them), or pass --outcomes PATH"
            )
        return cls.from_frame(pd.read_parquet(path))


@dataclass(frozen=True)
class SimulationResult:
    """Distribution of the per-path metrics over ``n_paths`` simulated paths.

    ``quantiles[metric][level]``; ``mean[metric]``; ``resolution[metric]`` is the
    histogram bin width (the quantiles' accuracy); ``probability_of_ruin`` as defined in
    the module docstring; ``paths_without_trades`` are excluded from win-rate figures.
    """

    n_paths: int
    n_steps: int
    block_length: int
    seed: int
    quantiles: dict[str, dict[float, float]]
    mean: dict[str, float]
    minimum: dict[str, float]
    maximum: dict[str, float]
    resolution: dict[str, float]
    probability_of_ruin: float
    paths_without_trades: int
    elapsed_seconds: float
    max_chunk_paths: int = field(default=0)
    rewalked_weights: bool = field(default=False)

    @property
    def paths_per_second(self) -> float:
        """Throughput of the run (paths per wall-clock second)."""
        return self.n_paths / self.elapsed_seconds if self.elapsed_seconds > 0 else float("inf")

    def to_frame(self) -> pd.DataFrame:
        """One row per metric: mean, quantiles, min, max."""
        rows = []
        for m in METRICS:
            row: dict[str, Any] = {"metric": m, "mean": self.mean[m]}
            row.update({f"q{round(q * 100):02d}": v for q, v in self.quantiles[m].items()})
            row.update({"min": self.minimum[m], "max": self.maximum[m]})
            rows.append(row)
        return pd.DataFrame(rows).set_index("metric")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "n_paths": self.n_paths,
            "n_steps": self.n_steps,
            "block_length": self.block_length,
            "seed": self.seed,
            "probability_of_ruin": self.probability_of_ruin,
            "paths_without_trades": self.paths_without_trades,
            "rewalked_weights": self.rewalked_weights,
            "elapsed_seconds": self.elapsed_seconds,
            "quantiles": {
                m: {str(q): v for q, v in qs.items()} for m, qs in self.quantiles.items()
            },
            "mean": self.mean,
            "resolution": self.resolution,
        }


@dataclass(frozen=True)
class _Prepared:
    rows: np.ndarray
    rules: np.ndarray
    scalars: tuple[Any, ...]
    # the weight rule (decay, floor, max_step, frozen) when re-walking, else None
    weight_rule: tuple[float, float, float, bool] | None = None


def rewalks(outcomes: OutOfSampleOutcomes, fixed_weights: bool = False) -> bool:
    """Whether the Monte Carlo re-walks the member weights: when the outcomes carry the
    member columns and ``fixed_weights`` does not ask for each outcome's own
    (the walk's) ensemble probability instead."""
    return outcomes.members is not None and not fixed_weights


def _prepare(
    outcomes: OutOfSampleOutcomes,
    config: DecisionConfig,
    n_steps: int,
    block_length: int,
    seed: int,
    cost: float,
    ruin_equity: float,
    periods_per_year: float,
    fixed_weights: bool = False,
) -> _Prepared:
    from augur.backtest import _kernels

    # both are arrays after __post_init__ (zeros when the outcomes had none)
    assert outcomes.volatility is not None and outcomes.volatility_ref is not None
    rules = _kernels.rule_rows([config])[0]
    scalars = (
        float(cost),
        int(n_steps),
        int(block_length),
        int(seed) & (2**63 - 1),  # the kernels take a non-negative int64
        float(ruin_equity),
        float(np.sqrt(periods_per_year)),
    )
    members = outcomes.members
    if members is not None and not fixed_weights:
        return _Prepared(
            rows=_kernels.member_rows(
                members.per_model,
                members.label,
                members.payoff_long,
                members.payoff_short,
                outcomes.volatility,
                outcomes.volatility_ref,
                members.volatility_ratio,
                members.trend,
                members.confidence_weights,
                outcomes.realised_return,
                members.start_scores,
            ),
            rules=rules,
            scalars=scalars,
            weight_rule=(
                members.decay,
                members.floor,
                members.max_step if members.max_step > 0 else np.inf,  # 0: unbounded
                members.frozen,
            ),
        )
    return _Prepared(
        rows=_kernels.outcome_rows(
            outcomes.probability,
            outcomes.payoff_ratio,
            outcomes.confidence,
            outcomes.direction,
            outcomes.volatility,
            outcomes.volatility_ref,
            outcomes.realised_return,
            rules,
        ),
        rules=rules,
        scalars=scalars,
    )


def _run_chunk(
    prep: _Prepared,
    path_start: int,
    n: int,
    sizes: np.ndarray | None = None,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    from augur.backtest import _kernels

    cost, n_steps, block, seed, ruin_eq, ann = prep.scalars
    metrics = np.empty((n, len(METRICS)), dtype=np.float64)
    ruined = np.empty(n, dtype=np.bool_)
    if prep.weight_rule is not None:
        traced = sizes is not None
        rewalk = _kernels.rewalk_chunk_traced if traced else _kernels.rewalk_chunk
        rewalk(
            prep.rows,
            cost,
            n_steps,
            block,
            seed,
            path_start,
            prep.rules,
            ruin_eq,
            ann,
            *prep.weight_rule,
            metrics,
            ruined,
            sizes if sizes is not None else np.empty((0, 0)),
            weights if weights is not None else np.empty((0, 0, 0)),
        )
        return metrics, ruined
    kernel = _kernels.simulate_chunk if sizes is None else _kernels.simulate_chunk_traced
    kernel(
        prep.rows,
        cost,
        n_steps,
        block,
        seed,
        path_start,
        prep.rules,
        ruin_eq,
        ann,
        metrics,
        ruined,
        np.empty((0, 0)) if sizes is None else sizes,
    )
    return metrics, ruined


def simulate_paths(
    outcomes: OutOfSampleOutcomes,
    n_paths: int,
    config: DecisionConfig | None = None,
    seed: int = 7,
    *,
    path_start: int = 0,
    n_steps: int = 252,
    block_length: int = 10,
    commission_bps: float = DEFAULT_COMMISSION_BPS,
    slippage_bps: float = DEFAULT_SLIPPAGE_BPS,
    ruin_equity: float = 0.5,
    periods_per_year: float = 252.0,
    fixed_weights: bool = False,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Per-path metrics of paths ``path_start .. path_start + n_paths - 1`` (small N only).

    Returns a DataFrame with the :data:`METRICS` columns and the ruin flags; the same
    paths as :func:`simulate` draws for the same seed (and the same mode:
    :func:`rewalks`).
    """
    config = config or DecisionConfig()
    _check(outcomes, n_paths, n_steps, block_length, 1)
    prep = _prepare(
        outcomes,
        config,
        n_steps,
        block_length,
        seed,
        2.0 * (commission_bps + slippage_bps) / 1e4,
        ruin_equity,
        periods_per_year,
        fixed_weights,
    )
    metrics, ruined = _run_chunk(prep, path_start, n_paths)
    return pd.DataFrame(metrics, columns=list(METRICS)), ruined


def trace_paths(
    outcomes: OutOfSampleOutcomes,
    n_paths: int,
    config: DecisionConfig | None = None,
    seed: int = 7,
    *,
    path_start: int = 0,
    n_steps: int = 252,
    block_length: int = 10,
    commission_bps: float = DEFAULT_COMMISSION_BPS,
    slippage_bps: float = DEFAULT_SLIPPAGE_BPS,
    ruin_equity: float = 0.5,
    periods_per_year: float = 252.0,
    fixed_weights: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The traded size of every step of the paths :func:`simulate_paths` runs,
    ``(n_paths, n_steps)``, and, when re-walking, the member weights each step used,
    ``(n_paths, n_steps, members)`` (None in the fixed mode). For tests and diagnostics."""
    config = config or DecisionConfig()
    _check(outcomes, n_paths, n_steps, block_length, 1)
    prep = _prepare(
        outcomes,
        config,
        n_steps,
        block_length,
        seed,
        2.0 * (commission_bps + slippage_bps) / 1e4,
        ruin_equity,
        periods_per_year,
        fixed_weights,
    )
    sizes = np.zeros((n_paths, n_steps))
    weights = np.zeros((n_paths, n_steps, len(MEMBERS))) if prep.weight_rule else None
    _run_chunk(prep, path_start, n_paths, sizes, weights)
    return sizes, weights


def _check(
    outcomes: OutOfSampleOutcomes, n_paths: int, n_steps: int, block_length: int, chunk: int
) -> None:
    if not isinstance(outcomes, OutOfSampleOutcomes):
        raise TypeError("outcomes must be an OutOfSampleOutcomes (see .from_frame / .load)")
    for name, value in (
        ("n_paths", n_paths),
        ("n_steps", n_steps),
        ("block_length", block_length),
        ("chunk_size", chunk),
    ):
        if int(value) != value or value < 1:
            raise ValueError(f"{name}={value!r} is invalid: it must be an integer >= 1")


def _quantile_from_histogram(
    counts: np.ndarray, lo: float, hi: float, level: float, vmin: float, vmax: float
) -> float:
    total = counts.sum()
    if total == 0:
        return float("nan")
    width = (hi - lo) / len(counts)
    cum = np.cumsum(counts)
    target = level * total
    b = int(np.searchsorted(cum, target, side="left"))
    b = min(b, len(counts) - 1)
    before = cum[b - 1] if b > 0 else 0
    inside = counts[b]
    frac = (target - before) / inside if inside > 0 else 0.0
    value = lo + (b + frac) * width
    return float(min(max(value, vmin), vmax))


def simulate(
    outcomes: OutOfSampleOutcomes,
    n_paths: int,
    config: DecisionConfig | None = None,
    seed: int = 7,
    chunk_size: int = 1_000_000,
    progress_callback: ProgressCallback | None = None,
    *,
    n_steps: int = 252,
    block_length: int = 10,
    commission_bps: float = DEFAULT_COMMISSION_BPS,
    slippage_bps: float = DEFAULT_SLIPPAGE_BPS,
    ruin_equity: float = 0.5,
    periods_per_year: float = 252.0,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    fixed_weights: bool = False,
) -> SimulationResult:
    """Run ``n_paths`` Monte Carlo paths of the decision rules; see the module docstring.

    ``commission_bps`` and ``slippage_bps`` are per side, in basis points of notional (a
    round trip costs twice their sum). ``progress_callback(done, total)`` is called after every
    chunk. Results depend only on (outcomes, config, seed, options) — never on
    ``chunk_size`` or the number of threads. The member weights are re-walked along each
    path when the outcomes carry the member columns, unless ``fixed_weights``
    (:func:`rewalks`; ``SimulationResult.rewalked_weights`` says which).
    """
    config = config or DecisionConfig()
    _check(outcomes, n_paths, n_steps, block_length, chunk_size)
    if not all(0.0 <= q <= 1.0 for q in quantiles):
        raise ValueError(f"quantiles={list(quantiles)!r}: every level must be in [0, 1]")
    from augur.backtest import _kernels

    started = time.perf_counter()
    prep = _prepare(
        outcomes,
        config,
        n_steps,
        block_length,
        seed,
        2.0 * (commission_bps + slippage_bps) / 1e4,
        ruin_equity,
        periods_per_year,
        fixed_weights,
    )

    # Pilot: fixes the histogram ranges from paths 0..P-1 (independent of chunk_size).
    pilot, _ = _run_chunk(prep, 0, min(n_paths, PILOT_PATHS))
    lows = np.empty(len(METRICS))
    highs = np.empty(len(METRICS))
    for m in range(len(METRICS)):
        col = pilot[:, m]
        col = col[~np.isnan(col)]
        vmin, vmax = (float(col.min()), float(col.max())) if len(col) else (0.0, 1.0)
        span = max(vmax - vmin, 1e-9 * max(1.0, abs(vmin), abs(vmax)))
        lows[m], highs[m] = vmin - span / 2, vmax + span / 2
    del pilot

    counts = np.zeros((len(METRICS), HISTOGRAM_BINS), dtype=np.int64)
    moments = np.zeros((len(METRICS), 5))
    moments[:, 3] = np.inf
    moments[:, 4] = -np.inf
    n_ruined = 0
    done = 0
    max_chunk = 0
    while done < n_paths:
        n = min(chunk_size, n_paths - done)
        max_chunk = max(max_chunk, n)
        metrics, ruined = _run_chunk(prep, done, n)
        _kernels.accumulate_histograms(metrics, lows, highs, counts, moments)
        n_ruined += int(ruined.sum())
        done += n
        del metrics, ruined
        if progress_callback is not None:
            progress_callback(done, n_paths)

    qs: dict[str, dict[float, float]] = {}
    for m, name in enumerate(METRICS):
        qs[name] = {
            float(q): _quantile_from_histogram(
                counts[m], lows[m], highs[m], q, moments[m, 3], moments[m, 4]
            )
            for q in quantiles
        }
    n_obs = moments[:, 0]
    return SimulationResult(
        n_paths=int(n_paths),
        n_steps=int(n_steps),
        block_length=int(block_length),
        seed=int(seed),
        quantiles=qs,
        mean={
            name: float(moments[m, 1] / n_obs[m]) if n_obs[m] else float("nan")
            for m, name in enumerate(METRICS)
        },
        minimum={name: float(moments[m, 3]) for m, name in enumerate(METRICS)},
        maximum={name: float(moments[m, 4]) for m, name in enumerate(METRICS)},
        resolution={
            name: float((highs[m] - lows[m]) / HISTOGRAM_BINS) for m, name in enumerate(METRICS)
        },
        probability_of_ruin=n_ruined / n_paths,
        paths_without_trades=int(n_paths - n_obs[METRICS.index("win_rate")]),
        elapsed_seconds=time.perf_counter() - started,
        max_chunk_paths=max_chunk,
        rewalked_weights=prep.weight_rule is not None,
    )
