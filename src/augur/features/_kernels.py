"""Numba kernels of the feature engine (imported lazily: numba is slow to import).

Every rolling statistic is computed directly over its window (not by sliding sums): the
value at bar ``t`` then depends only on the bars in its window, bit for bit, so the
latest row computed from a short history (:func:`augur.features.latest_features`, the
service) equals the row computed offline from the full history. The cost is O(w) per
row instead of O(1), which numba makes cheap (see ``benchmarks/bench_features.py``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from augur.features.spec import VAR_EPS

# Row offsets of the per-window block (``wdest[:, k]`` says where feature k goes).
RET_MEAN, RET_STD, RVOL, ZSCORE, ATR, MOM, ROC, RSI, SKEW, KURT, EFF, VCLUST = range(12)
N_PER_WINDOW = 12


@njit(cache=True, nogil=True)
def _degenerate(var_biased: float, mean: float) -> bool:
    return var_biased <= VAR_EPS * max(1.0, mean * mean)


@njit(cache=True, nogil=True)
def compute_kernel(
    close: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    starts: np.ndarray,
    windows: np.ndarray,
    wdest: np.ndarray,
    lags: np.ndarray,
    ldest: np.ndarray,
    ret_dest: int,
    out: np.ndarray,
) -> None:
    """Fill ``out`` (features x bars) for bars sorted by (symbol, time).

    ``starts`` holds the first row of each symbol plus a final ``n``. ``wdest[j, k]`` is
    the output row of per-window feature ``k`` for ``windows[j]`` (-1: not wanted);
    ``ldest[j]`` the row of the return lagged by ``lags[j]``; ``ret_dest`` the 1-bar
    return's row.
    """
    n = close.shape[0]
    nan = np.nan
    r = np.empty(n)  # 1-bar log return
    ar = np.empty(n)  # |r|
    arp = np.empty(n)  # |r| of the bar before (NaN at a symbol's first two bars)
    tr = np.empty(n)  # true range
    d = np.empty(n)  # close change
    for g in range(starts.shape[0] - 1):
        s = starts[g]
        e = starts[g + 1]
        r[s] = nan
        ar[s] = nan
        arp[s] = nan
        tr[s] = nan
        d[s] = nan
        for i in range(s + 1, e):
            pc = close[i - 1]
            r[i] = math.log(close[i] / pc)
            ar[i] = abs(r[i])
            arp[i] = ar[i - 1]
            d[i] = close[i] - pc
            tr[i] = max(high[i] - low[i], abs(high[i] - pc), abs(low[i] - pc))
        if ret_dest >= 0:
            for t in range(s, e):
                out[ret_dest, t] = r[t]
        for j in range(lags.shape[0]):
            k = lags[j]
            row = ldest[j]
            for t in range(s, e):
                out[row, t] = r[t - k] if t - k >= s else nan

        for j in range(windows.shape[0]):
            w = windows[j]
            dst = wdest[j]
            for t in range(s, e):
                m = t - s  # bars of history before t within the symbol
                if m < w - 1:  # not even the close window is full
                    for k in range(N_PER_WINDOW):
                        if dst[k] >= 0:
                            out[dst[k], t] = nan
                    continue
                lo = t - w + 1
                # Two fused passes over the window [lo, t] (every index >= s): sums, then
                # centred moments. Sums may include a symbol's leading NaNs while m < w + 1;
                # those results are replaced by NaN below.
                s_r = 0.0
                s_r2 = 0.0
                s_c = 0.0
                s_x = 0.0
                s_y = 0.0
                s_tr = 0.0
                gains = 0.0
                losses = 0.0
                for i in range(lo, t + 1):
                    ri = r[i]
                    s_r += ri
                    s_r2 += ri * ri
                    s_c += close[i]
                    s_x += ar[i]
                    s_y += arp[i]
                    s_tr += tr[i]
                    di = d[i]
                    if di > 0:
                        gains += di
                    else:
                        losses -= di
                mean = s_r / w
                cmean = s_c / w
                mx = s_x / w
                my = s_y / w
                m2 = 0.0
                m3 = 0.0
                m4 = 0.0
                c2 = 0.0
                sxx = 0.0
                syy = 0.0
                sxy = 0.0
                for i in range(lo, t + 1):
                    dv = r[i] - mean
                    d2 = dv * dv
                    m2 += d2
                    m3 += d2 * dv
                    m4 += d2 * d2
                    dc = close[i] - cmean
                    c2 += dc * dc
                    dx = ar[i] - mx
                    dy = arp[i] - my
                    sxx += dx * dx
                    syy += dy * dy
                    sxy += dx * dy

                # --- z-score of the close over close[t-w+1 .. t] (m >= w - 1) ---------
                if _degenerate(c2 / w, cmean):
                    zscore = 0.0
                else:
                    zscore = (close[t] - cmean) / math.sqrt(c2 / (w - 1))
                # --- return moments, true range, close changes (m >= w) ---------------
                if m >= w:
                    ret_mean = mean
                    ret_std = math.sqrt(m2 / (w - 1))
                    rvol = math.sqrt(s_r2)
                    b = m2 / w
                    skew = nan
                    kurt = nan
                    if b <= VAR_EPS:
                        skew = 0.0
                        kurt = 0.0
                    else:
                        if w >= 3:
                            skew = math.sqrt(w * (w - 1.0)) / (w - 2.0) * (m3 / w) / b**1.5
                        if w >= 4:
                            kurt = (
                                (w - 1.0)
                                / ((w - 2.0) * (w - 3.0))
                                * ((w + 1.0) * (m4 / w) / (b * b) - 3.0 * (w - 1.0))
                            )
                    atr = s_tr / w / close[t]
                    path = gains + losses
                    if path == 0.0:
                        rsi = 0.5
                        eff = 0.0
                    else:
                        rsi = gains / path
                        eff = abs(close[t] - close[t - w]) / path
                    mom = close[t] / close[t - w] - 1.0
                    roc = math.log(close[t] / close[t - w])
                else:
                    ret_mean = ret_std = rvol = skew = kurt = nan
                    atr = rsi = eff = mom = roc = nan
                # --- volatility clustering: corr(|r_i|, |r_(i-1)|) (m >= w + 1) -------
                if m < w + 1:
                    vclust = nan
                elif _degenerate(sxx / w, mx) or _degenerate(syy / w, my):
                    vclust = 0.0
                else:
                    vclust = sxy / math.sqrt(sxx * syy)

                if dst[RET_MEAN] >= 0:
                    out[dst[RET_MEAN], t] = ret_mean
                if dst[RET_STD] >= 0:
                    out[dst[RET_STD], t] = ret_std
                if dst[RVOL] >= 0:
                    out[dst[RVOL], t] = rvol
                if dst[ZSCORE] >= 0:
                    out[dst[ZSCORE], t] = zscore
                if dst[ATR] >= 0:
                    out[dst[ATR], t] = atr
                if dst[MOM] >= 0:
                    out[dst[MOM], t] = mom
                if dst[ROC] >= 0:
                    out[dst[ROC], t] = roc
                if dst[RSI] >= 0:
                    out[dst[RSI], t] = rsi
                if dst[SKEW] >= 0:
                    out[dst[SKEW], t] = skew
                if dst[KURT] >= 0:
                    out[dst[KURT], t] = kurt
                if dst[EFF] >= 0:
                    out[dst[EFF], t] = eff
                if dst[VCLUST] >= 0:
                    out[dst[VCLUST], t] = vclust
