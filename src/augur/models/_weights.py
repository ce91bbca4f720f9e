"""Dynamic member weights: exponentially forgetting Bayesian model averaging.

Each member keeps ``perf_m``, the exponentially weighted average of its per-outcome
log-score ``log p_m(realised class)``::

    perf_m <- decay * perf_m + (1 - decay) * log p_m(y)

and its weight is ``exp(perf_m / (1 - decay))``, normalised, i.e. the product of the
probabilities it gave to recent outcomes with outcome ``k`` steps ago counted with
exponent ``decay**k`` (Bayesian model averaging with forgetting factor ``decay``).
A floor mixes in ``floor / M`` of the uniform weights so no member is ever silenced
for good. All members start equal (``perf = 0``); fitting replays the validation tail
through :meth:`DynamicWeights.update`, so the saved weights are out-of-sample.

Bounded change. With ``max_step`` = ``L`` one outcome moves each member's log-score
average by at most ``(1 - decay) * L``: the step ``score - perf_m`` is clipped to
``[-L, L]`` before it is folded in. Since the unnormalised weight is
``exp(perf_m / (1 - decay))``, one outcome multiplies it by at most ``e**L`` (or divides
it by at most that): a member that gave the realised class next to no probability loses
ground fast, but no single outcome silences it. ``None`` leaves the step unbounded.

Frozen. A frozen set of weights ignores outcomes: :meth:`DynamicWeights.update` leaves it
as it is (a platform team freezes a version's weights while it investigates, or to serve
the weights the backtest measured).

Training, the walk-forward backtest and the service all fold outcomes in through
:meth:`DynamicWeights.update`, so they share this one rule. Its arithmetic is three
float-only functions (:func:`log_score`, :func:`fold_scores`, :func:`weights_from_scores`):
the class calls them, and the Monte Carlo (:mod:`augur.backtest._kernels`) compiles the
very same functions with numba to re-walk the weights along its resampled paths.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

#: Class order of every probability vector in augur.models: down, flat, up.
CLASSES: tuple[int, int, int] = (-1, 0, 1)
_EPS = 1e-6


def log_score(probability: float) -> float:
    """A member's log-score of an outcome: ``log p`` of the realised class, with ``p``
    clipped to ``[1e-6, 1]``."""
    return math.log(min(max(probability, _EPS), 1.0))


def fold_scores(
    perf: NDArray[np.float64], scores: NDArray[np.float64], decay: float, max_step: float
) -> None:
    """Fold one outcome's per-member :func:`log_score` into ``perf`` (in place):
    ``perf += (1 - decay) * clip(score - perf, -max_step, max_step)``; ``max_step``
    ``inf`` leaves the step unbounded."""
    keep = 1.0 - decay
    for m in range(perf.shape[0]):
        step = scores[m] - perf[m]
        step = min(max(step, -max_step), max_step)
        perf[m] = perf[m] + keep * step


def weights_from_scores(
    perf: NDArray[np.float64], decay: float, floor: float, out: NDArray[np.float64]
) -> None:
    """Normalised weights of the scores ``perf`` into ``out``: ``softmax(perf / (1 - decay))``
    mixed with ``floor`` of the uniform weights."""
    n = perf.shape[0]
    scale = 1.0 - decay
    top = perf[0] / scale
    for m in range(1, n):
        z = perf[m] / scale
        top = z if z > top else top
    total = 0.0
    for m in range(n):
        e = math.exp(perf[m] / scale - top)
        out[m] = e
        total += e
    for m in range(n):
        out[m] = (1.0 - floor) * (out[m] / total) + floor / n


class DynamicWeights:
    """Normalised member weights that follow recent out-of-sample log-scores."""

    def __init__(
        self,
        names: Sequence[str],
        decay: float = 0.95,
        floor: float = 0.02,
        max_step: float | None = None,
        *,
        frozen: bool = False,
    ) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"weight decay must be in (0, 1), got {decay}")
        if max_step is not None and not (np.isfinite(max_step) and max_step > 0):
            raise ValueError(f"weight max_step must be a number > 0 or None, got {max_step!r}")
        self.names = tuple(names)
        self.decay = float(decay)
        self.floor = float(floor)
        self.max_step = None if max_step is None else float(max_step)
        self.frozen = bool(frozen)
        self.perf = np.zeros(len(self.names))
        self.n_updates = 0
        self._refresh()

    def _refresh(self) -> None:
        # Computed once per outcome, not per prediction (the single-row path reads it).
        w = np.empty(len(self.perf))
        weights_from_scores(self.perf, self.decay, self.floor, w)
        self._weights = w

    @property
    def weights(self) -> NDArray[np.float64]:
        """Current weights (sum to 1), in member order."""
        return self._weights

    def as_dict(self) -> dict[str, float]:
        """``{member: weight}``."""
        return dict(zip(self.names, self.weights.tolist(), strict=True))

    def update(
        self, per_model_probs: NDArray[np.float64], realised_label: int
    ) -> NDArray[np.float64]:
        """Fold one realised outcome into the weights; returns the new weights.

        ``per_model_probs``: (members, 3) probabilities each member gave *before* the
        outcome (columns down, flat, up); ``realised_label``: -1, 0 or 1. Frozen weights
        are left as they are (the arguments are still checked).
        """
        probs = np.asarray(per_model_probs, dtype=np.float64)
        if probs.shape != (len(self.names), 3):
            raise ValueError(
                f"per_model_probs must have shape ({len(self.names)}, 3) (members × down/flat/up), "
                f"got {probs.shape}"
            )
        if realised_label not in CLASSES:
            raise ValueError(f"realised_label must be -1, 0 or 1, got {realised_label!r}")
        if self.frozen:
            return self.weights
        column = probs[:, CLASSES.index(int(realised_label))].tolist()
        scores = np.array([log_score(p) for p in column])
        # decay * perf + (1 - decay) * score, with the step bounded (module docstring)
        perf = np.array(self.perf, dtype=np.float64)  # a new array, as before
        fold_scores(perf, scores, self.decay, math.inf if self.max_step is None else self.max_step)
        self.perf = perf
        self.n_updates += 1
        self._refresh()
        return self.weights

    def state(self) -> dict[str, object]:
        """JSON-safe state (saved with the model)."""
        return {
            "names": list(self.names),
            "decay": self.decay,
            "floor": self.floor,
            "perf": self.perf.tolist(),
            "n_updates": self.n_updates,
            "max_step": self.max_step,
            "frozen": self.frozen,
        }

    @classmethod
    def from_state(cls, state: dict[str, object]) -> DynamicWeights:
        """Inverse of :meth:`state`."""
        names = state["names"]
        assert isinstance(names, list)
        max_step = state.get("max_step")  # absent in states saved before it existed
        dw = cls(
            names,
            float(state["decay"]),  # type: ignore[arg-type]
            float(state["floor"]),  # type: ignore[arg-type]
            None if max_step is None else float(max_step),  # type: ignore[arg-type]
            frozen=bool(state.get("frozen", False)),
        )
        dw.perf = np.asarray(state["perf"], dtype=np.float64)
        dw.n_updates = int(state["n_updates"])  # type: ignore[call-overload]
        dw._refresh()
        return dw
