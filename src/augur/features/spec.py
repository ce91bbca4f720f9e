"""The feature spec: the single source of truth for the feature list.

The offline engine (:func:`augur.features.compute_features`), the Feast schema
(``feature_repo/``) and the decision service all derive their columns from one
:class:`FeatureSpec`. Its :attr:`FeatureSpec.hash` is stored with every model, so a model
never meets features it was not trained on.

Conventions shared by every feature (``r_t = log(close_t / close_{t-1})``):

- A feature at bar ``t`` uses only bars ``<= t`` of the same symbol (no look-ahead).
- Rolling windows cover the last ``w`` bars *including* bar ``t``.
- Warm-up rows (not enough history yet) hold NaN.
- Degenerate windows (zero variance or no price movement) give the neutral value stated
  in the feature's description instead of a division by zero.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from augur.config import Settings

# Bump when the numbers an unchanged spec produces change (a formula, a convention), so
# models trained on the old numbers are refused by the hash check.
ENGINE_VERSION = "2"  # 2: the regime feature

# A variance this small (absolutely, or relative to the squared mean) counts as zero: the
# feature takes its neutral value instead of dividing rounding noise by itself. 1e-14 is
# pandas' own cut-off for rolling skew/kurt.
VAR_EPS = 1e-14

DEFAULT_WINDOWS: tuple[int, ...] = (5, 10, 20, 50)
DEFAULT_LAGS: tuple[int, ...] = (1, 2, 3, 5)

# --- the market regime of a bar (the ``regime`` feature) -------------------------------
#: The window whose efficiency ratio and volatility describe the regime: the first of
#: these the spec has (else its shortest window) — the window the ensemble's confidence
#: reads too.
REGIME_WINDOWS: tuple[int, ...] = (20, 10, 50, 5)
#: At or above this efficiency ratio a bar is *trending*, below it *ranging* (Kaufman's
#: ratio: ~1 when the close moves one way, ~0 when it goes back and forth).
TRENDING_EFFICIENCY = 0.3
#: ``regime`` codes: 2 x trending + volatile. A bar is *volatile* when the regime
#: window's volatility exceeds the longest window's (the recent market moves more than
#: its longer-run norm) and :data:`FLAT_VOLATILITY`, else *calm*; when the regime window
#: is the longest (e.g. windows 5 and 20) every bar is calm.
#: Features that describe the market for decision rules and reports but are no model
#: input: ``regime`` is a function of ``eff_ratio``/``vol`` columns the ensemble has.
DESCRIPTIVE: frozenset[str] = frozenset({"regime"})
#: A per-bar volatility at or below this is no movement (``sqrt(VAR_EPS)``): never volatile.
FLAT_VOLATILITY = VAR_EPS**0.5
REGIMES: dict[int, str] = {
    0: "ranging, calm",
    1: "ranging, volatile",
    2: "trending, calm",
    3: "trending, volatile",
}

# function -> rows of history (including the current bar) the feature needs, given its
# window (or lag). The engine writes NaN before that many rows are available.
_LOOKBACK: dict[str, Callable[[int], int]] = {
    "log_return": lambda _: 2,
    "ret_lag": lambda k: k + 2,
    "ret_mean": lambda w: w + 1,
    "ret_std": lambda w: w + 1,
    "realized_vol": lambda w: w + 1,
    "zscore": lambda w: w,
    "atr": lambda w: w + 1,
    "momentum": lambda w: w + 1,
    "rate_of_change": lambda w: w + 1,
    "rsi": lambda w: w + 1,
    "skew": lambda w: w + 1,
    "kurt": lambda w: w + 1,
    "eff_ratio": lambda w: w + 1,
    "vol_cluster": lambda w: w + 2,
    "tod_sin": lambda _: 1,
    "tod_cos": lambda _: 1,
    "dow_sin": lambda _: 1,
    "dow_cos": lambda _: 1,
    "regime": lambda w: w + 1,  # window: the longest (its volatility needs w + 1 closes)
}

FUNCTIONS: tuple[str, ...] = tuple(_LOOKBACK)


@dataclass(frozen=True)
class FeatureDef:
    """One feature column.

    ``window`` is the rolling window in bars, the lag in bars for ``ret_lag`` features,
    and ``None`` for features without one (1-bar return, calendar features).
    """

    name: str
    function: str
    window: int | None
    description: str

    @property
    def lookback(self) -> int:
        """Rows of history (including the current bar) this feature needs to be defined."""
        return _LOOKBACK[self.function](self.window or 0)


def _window_defs(w: int) -> list[FeatureDef]:
    defs = [
        FeatureDef(
            f"ret_mean_{w}", "ret_mean", w, f"Mean of the 1-bar log returns over the last {w} bars."
        ),
        FeatureDef(
            f"vol_{w}",
            "ret_std",
            w,
            f"Sample standard deviation (ddof=1) of the 1-bar log returns over the last {w} bars.",
        ),
        FeatureDef(
            f"rvol_{w}",
            "realized_vol",
            w,
            f"Realised volatility over the last {w} bars: sqrt of the sum of squared 1-bar "
            "log returns (not annualised).",
        ),
        FeatureDef(
            f"zscore_{w}",
            "zscore",
            w,
            f"Z-score of the close against the mean and sample std of the last {w} closes "
            "(0 when those closes are all equal).",
        ),
        FeatureDef(
            f"atr_{w}",
            "atr",
            w,
            f"Average true range over the last {w} bars (simple mean of max(high-low, "
            "|high-prev close|, |low-prev close|)) divided by the close.",
        ),
        FeatureDef(
            f"mom_{w}", "momentum", w, f"Momentum: close / close {w} bars ago - 1 (simple return)."
        ),
        FeatureDef(
            f"roc_{w}", "rate_of_change", w, f"Rate of change: log(close / close {w} bars ago)."
        ),
        FeatureDef(
            f"rsi_{w}",
            "rsi",
            w,
            f"RSI with simple averages over the last {w} close changes, scaled to [0, 1]: "
            "sum of gains / (sum of gains + sum of losses); 0.5 when the close did not move.",
        ),
    ]
    # Unbiased sample skewness needs 3 points and excess kurtosis 4 (as in pandas).
    if w >= 3:
        defs.append(
            FeatureDef(
                f"skew_{w}",
                "skew",
                w,
                f"Sample skewness (bias-corrected, as pandas) of the 1-bar log returns over the "
                f"last {w} bars; 0 when their variance is ~0.",
            )
        )
    if w >= 4:
        defs.append(
            FeatureDef(
                f"kurt_{w}",
                "kurt",
                w,
                f"Sample excess kurtosis (bias-corrected, as pandas) of the 1-bar log returns "
                f"over the last {w} bars; 0 when their variance is ~0.",
            )
        )
    defs += [
        FeatureDef(
            f"eff_ratio_{w}",
            "eff_ratio",
            w,
            f"Kaufman efficiency ratio (regime: ~1 trending, ~0 ranging): |close - close {w} "
            f"bars ago| / sum of |close changes| over those {w} bars; 0 when the close did "
            "not move.",
        ),
        FeatureDef(
            f"vol_cluster_{w}",
            "vol_cluster",
            w,
            f"Volatility clustering: Pearson correlation of |r_t| with |r_(t-1)| over the "
            f"last {w} pairs of 1-bar log returns; 0 when either side is constant.",
        ),
    ]
    return defs


@dataclass(frozen=True)
class FeatureSpec:
    """The feature list: rolling ``windows`` (bars) and return ``lags`` (bars).

    Column order of :attr:`names` is the model's feature order. Windows and lags are
    normalised to sorted unique tuples, so ``FeatureSpec((20, 5))`` equals
    ``FeatureSpec((5, 20))`` and has the same hash.
    """

    windows: tuple[int, ...] = DEFAULT_WINDOWS
    lags: tuple[int, ...] = DEFAULT_LAGS

    def __post_init__(self) -> None:
        windows = _normalise("windows", self.windows, minimum=2)
        lags = _normalise("lags", self.lags, minimum=1, allow_empty=True)
        object.__setattr__(self, "windows", windows)
        object.__setattr__(self, "lags", lags)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> FeatureSpec:
        """The spec configured by ``AUGUR_WINDOWS`` (``augur.config.Settings.windows``)."""
        if settings is None:
            from augur.config import get_settings

            settings = get_settings()
        return cls(windows=tuple(settings.windows))

    @cached_property
    def features(self) -> tuple[FeatureDef, ...]:
        """Every feature, in column order."""
        defs = [
            FeatureDef(
                "ret_1", "log_return", None, "1-bar log return: log(close / previous close)."
            )
        ]
        defs += [
            FeatureDef(f"ret_lag_{k}", "ret_lag", k, f"The 1-bar log return of {k} bar(s) before.")
            for k in self.lags
        ]
        for w in self.windows:
            defs += _window_defs(w)
        defs += [
            FeatureDef("tod_sin", "tod_sin", None, "sin(2*pi * UTC time of day / 24h) of the bar."),
            FeatureDef("tod_cos", "tod_cos", None, "cos(2*pi * UTC time of day / 24h) of the bar."),
            FeatureDef("dow_sin", "dow_sin", None, "sin(2*pi * UTC day of week / 7), Monday = 0."),
            FeatureDef("dow_cos", "dow_cos", None, "cos(2*pi * UTC day of week / 7), Monday = 0."),
        ]
        w, longest = self.regime_windows
        defs.append(
            FeatureDef(
                "regime",
                "regime",
                longest,
                f"Market regime code 2 x trending + volatile: trending when eff_ratio_{w} >= "
                f"{TRENDING_EFFICIENCY}, volatile when vol_{w} > vol_{longest} and > "
                f"{FLAT_VOLATILITY:g} (0 ranging calm, "
                "1 ranging volatile, 2 trending calm, 3 trending volatile).",
            )
        )
        return tuple(defs)

    @property
    def regime_windows(self) -> tuple[int, int]:
        """(the regime window, the longest window): see :data:`REGIME_WINDOWS`."""
        w = next((w for w in REGIME_WINDOWS if w in self.windows), self.windows[0])
        return w, self.windows[-1]

    @property
    def names(self) -> list[str]:
        """Feature column names in the model's feature order."""
        return [f.name for f in self.features]

    @property
    def model_names(self) -> list[str]:
        """The features the ensemble is fitted on: every feature but the descriptive ones
        (:data:`DESCRIPTIVE`), which restate features it already has."""
        return [n for n in self.names if n not in DESCRIPTIVE]

    @property
    def descriptions(self) -> dict[str, str]:
        """Feature name -> description (Feast field descriptions come from here)."""
        return {f.name: f.description for f in self.features}

    @cached_property
    def hash(self) -> str:
        """Stable identity of the numbers this spec produces.

        sha256 of canonical JSON of ``(name, function, window)`` of every feature plus
        :data:`ENGINE_VERSION`; first 16 hex characters. Descriptions are left out: editing
        the wording does not change a single number.
        """
        payload = {
            "engine_version": ENGINE_VERSION,
            "features": [[f.name, f.function, f.window] for f in self.features],
        }
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]

    @property
    def max_lookback(self) -> int:
        """Rows of history per symbol needed so the latest row equals the full computation."""
        return max(f.lookback for f in self.features)


def default_spec() -> FeatureSpec:
    """The default spec: windows (5, 10, 20, 50), return lags (1, 2, 3, 5)."""
    return FeatureSpec()


def _normalise(
    what: str, values: Any, *, minimum: int, allow_empty: bool = False
) -> tuple[int, ...]:
    try:
        items = [int(v) for v in values]
        if any(int(v) != v for v in values):
            raise TypeError
    except (TypeError, ValueError):
        raise ValueError(f"FeatureSpec.{what} must be integers, got {values!r}") from None
    if not items and not allow_empty:
        raise ValueError(f"FeatureSpec.{what} must not be empty")
    bad = [v for v in items if v < minimum]
    if bad:
        raise ValueError(f"FeatureSpec.{what} must all be >= {minimum}, got {bad}")
    return tuple(sorted(set(items)))
