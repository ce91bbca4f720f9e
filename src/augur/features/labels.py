"""Labels: the direction of the forward return, with a volatility-scaled dead zone.

Definition, per symbol, for the bar at time ``t`` and horizon ``h`` (bars):

- ``forward_return = log(close[t+h] / close[t])``; ``label_time`` is the timestamp of
  bar ``t+h`` (the moment the label becomes known).
- ``sigma_t`` = sample standard deviation (ddof=1) of the 1-bar log returns of the
  ``vol_window`` bars ending at ``t`` (only data ``<= t``).
- ``threshold = dead_zone * sigma_t * sqrt(h)`` (the forward return's typical size if
  returns were independent with volatility ``sigma_t``).
- ``label = 1`` (up) when ``forward_return > threshold``, ``-1`` (down) when
  ``forward_return < -threshold``, else ``0`` (flat: ``|forward_return| <= threshold``).

Rows without a full horizon (the last ``h`` bars of a symbol) or without ``sigma_t``
(the first ``vol_window`` bars) are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from augur.features._engine import SortedBars, _compute_sorted, sort_bars
from augur.features.spec import FeatureSpec

LABEL_COLUMNS: tuple[str, ...] = ("label_time", "forward_return", "label")


@dataclass(frozen=True)
class _Labels:
    keep: np.ndarray  # bool per sorted bar: has a label
    label_ns: np.ndarray
    forward_return: np.ndarray
    label: np.ndarray


def _check_params(horizon: int, dead_zone: float, vol_window: int) -> None:
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
        raise ValueError(f"horizon must be an integer >= 1 (bars ahead), got {horizon!r}")
    if not np.isfinite(dead_zone) or dead_zone < 0:
        raise ValueError(f"dead_zone must be a finite number >= 0, got {dead_zone!r}")
    if isinstance(vol_window, bool) or not isinstance(vol_window, int | np.integer):
        raise ValueError(f"vol_window must be an integer >= 2, got {vol_window!r}")
    if vol_window < 2:
        raise ValueError(f"vol_window must be an integer >= 2, got {vol_window!r}")


def _label_arrays(sb: SortedBars, horizon: int, dead_zone: float, vol_window: int) -> _Labels:
    n = sb.close.shape[0]
    sizes = np.diff(sb.starts)
    group_start = np.repeat(sb.starts[:-1], sizes)
    group_end = np.repeat(sb.starts[1:], sizes)
    idx = np.arange(n)
    has_future = idx + horizon < group_end
    ahead = np.where(has_future, idx + horizon, idx)

    log_close = np.log(sb.close)
    forward_return = log_close[ahead] - log_close
    ret = np.empty(n)
    ret[1:] = np.diff(log_close)
    ret[idx == group_start] = np.nan  # so no window reaches into the previous symbol
    # A window containing a symbol's first row holds that NaN and yields NaN: the plain
    # rolling std cannot mix symbols.
    sigma = pd.Series(ret).rolling(vol_window).std().to_numpy()

    keep = has_future & ~np.isnan(sigma)
    threshold = dead_zone * sigma * np.sqrt(horizon)
    label = np.zeros(n, dtype=np.int8)
    label[forward_return > threshold] = 1
    label[forward_return < -threshold] = -1
    return _Labels(keep, sb.ts_ns[ahead], forward_return, label)


def make_labels(
    bars: pd.DataFrame, horizon: int, dead_zone: float, vol_window: int = 20
) -> pd.DataFrame:
    """Direction labels of the forward return over ``horizon`` bars (see module docstring).

    ``forward_return = log(close[t+h]/close[t])``; flat (0) when ``|forward_return| <=
    dead_zone * sigma_t * sqrt(h)`` with ``sigma_t`` the std of the last ``vol_window``
    1-bar log returns up to ``t``; else 1 (up) or -1 (down). Returns columns ``symbol``,
    ``timestamp``, ``label_time`` (timestamp of bar ``t+h``), ``forward_return``,
    ``label`` (int8), sorted by (symbol, timestamp); rows without a full horizon or
    without ``sigma_t`` are dropped.
    """
    _check_params(horizon, dead_zone, vol_window)
    sb = sort_bars(bars, columns=("timestamp", "symbol", "close"))
    lab = _label_arrays(sb, horizon, dead_zone, vol_window)
    keep = lab.keep
    return pd.DataFrame(
        {
            "symbol": sb.symbol[keep],
            "timestamp": sb.timestamp[keep],
            "label_time": _utc(lab.label_ns[keep]),
            "forward_return": lab.forward_return[keep],
            "label": lab.label[keep],
        }
    )


def training_frame(
    bars: pd.DataFrame,
    spec: FeatureSpec,
    horizon: int,
    dead_zone: float,
    vol_window: int = 20,
) -> pd.DataFrame:
    """The offline training set: features of bar ``t`` with the label of ``t -> t+h``.

    Columns ``symbol``, ``timestamp``, ``label_time``, ``spec.names...``,
    ``forward_return``, ``label``; rows with any NaN feature (warm-up) or without a
    label are dropped. Features use bars ``<= timestamp``; the label is known at
    ``label_time``. (The Feast point-in-time version has the same columns.)
    """
    _check_params(horizon, dead_zone, vol_window)
    sb = sort_bars(bars)
    features = _compute_sorted(sb, spec)
    lab = _label_arrays(sb, horizon, dead_zone, vol_window)
    keep = lab.keep & ~np.isnan(features[spec.names].to_numpy()).any(axis=1)
    frame = features.loc[keep].reset_index(drop=True)
    frame.insert(2, "label_time", _utc(lab.label_ns[keep]))
    frame["forward_return"] = lab.forward_return[keep]
    frame["label"] = lab.label[keep]
    return frame


def _utc(ns: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(ns.view("M8[ns]")).tz_localize("UTC")
