"""The same features written the plain pandas way: ``groupby(symbol).rolling(w)``.

Two uses: the unit tests check every engine feature against it, and the benchmark
(``benchmarks/bench_features.py``) times it as the peer. It is idiomatic pandas (several
columns per rolling call, built-in ``skew``/``kurt``), not a deliberately slow version.
Same definitions and degenerate-window conventions as the engine (see ``spec.py``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from augur.features.spec import FLAT_VOLATILITY, TRENDING_EFFICIENCY, VAR_EPS, FeatureSpec


def reference_features(bars: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """Columns ``symbol``, ``timestamp``, ``spec.names``, sorted by (symbol, timestamp)."""
    df = bars.sort_values(["symbol", "timestamp"], kind="stable").reset_index(drop=True)
    g = df.groupby("symbol", sort=False)
    close = df["close"]
    prev_close = g["close"].shift(1)
    base = pd.DataFrame(
        {
            "symbol": df["symbol"],
            "r": np.log(close / prev_close),
            "d": close - prev_close,
        }
    )
    base["r2"] = base["r"] ** 2
    base["ar"] = base["r"].abs()
    base["ar_prev"] = base.groupby("symbol", sort=False)["ar"].shift(1)
    base["ar_xy"] = base["ar"] * base["ar_prev"]
    base["ar_x2"] = base["ar"] ** 2
    base["ar_y2"] = base["ar_prev"] ** 2
    base["gain"] = base["d"].clip(lower=0)
    base["loss"] = (-base["d"]).clip(lower=0)
    base["tr"] = pd.concat(
        [
            df["high"] - df["low"],
            (df["high"] - prev_close).abs(),
            (df["low"] - prev_close).abs(),
        ],
        axis=1,
    ).max(axis=1, skipna=False)
    base["close"] = close
    gb = base.groupby("symbol", sort=False)

    out: dict[str, pd.Series] = {"ret_1": base["r"]}
    for k in spec.lags:
        out[f"ret_lag_{k}"] = gb["r"].shift(k)

    def rolled(frame: pd.core.groupby.DataFrameGroupBy, w: int, how: str) -> pd.DataFrame:
        res = getattr(frame.rolling(w), how)()
        return res.reset_index(level=0, drop=True).sort_index()

    names = set(spec.names)
    for w in spec.windows:
        sums = rolled(gb[["r", "r2", "tr", "gain", "loss"]], w, "sum")
        means = rolled(gb[["r", "ar", "ar_prev", "ar_xy", "ar_x2", "ar_y2"]], w, "mean")
        std = rolled(gb[["r"]], w, "std")["r"]
        out[f"ret_mean_{w}"] = means["r"]
        out[f"vol_{w}"] = std
        out[f"rvol_{w}"] = np.sqrt(sums["r2"])

        cmean = rolled(gb[["close"]], w, "mean")["close"]
        cstd = rolled(gb[["close"]], w, "std")["close"]
        cvar0 = cstd**2 * (w - 1) / w
        flat = cvar0 <= VAR_EPS * np.maximum(1.0, cmean**2)
        out[f"zscore_{w}"] = ((close - cmean) / cstd).mask(flat, 0.0)

        out[f"atr_{w}"] = sums["tr"] / w / close
        past = gb["close"].shift(w)
        out[f"mom_{w}"] = close / past - 1.0
        out[f"roc_{w}"] = np.log(close / past)
        path = sums["gain"] + sums["loss"]
        still = path <= 1e-12 * close  # rolling sums leave rounding residue, not exact 0
        out[f"rsi_{w}"] = (sums["gain"] / path).mask(still, 0.5)
        out[f"eff_ratio_{w}"] = ((close - past).abs() / path).mask(still, 0.0)

        rvar0 = std**2 * (w - 1) / w
        if f"skew_{w}" in names:
            out[f"skew_{w}"] = rolled(gb[["r"]], w, "skew")["r"].mask(rvar0 <= VAR_EPS, 0.0)
        if f"kurt_{w}" in names:
            out[f"kurt_{w}"] = rolled(gb[["r"]], w, "kurt")["r"].mask(rvar0 <= VAR_EPS, 0.0)

        # corr(|r_i|, |r_(i-1)|) over the window from rolling moments
        vx = means["ar_x2"] - means["ar"] ** 2
        vy = means["ar_y2"] - means["ar_prev"] ** 2
        cov = means["ar_xy"] - means["ar"] * means["ar_prev"]
        flat_x = vx <= VAR_EPS * np.maximum(1.0, means["ar"] ** 2)
        flat_y = vy <= VAR_EPS * np.maximum(1.0, means["ar_prev"] ** 2)
        out[f"vol_cluster_{w}"] = (cov / np.sqrt(vx * vy)).mask(flat_x | flat_y, 0.0)

    ts = df["timestamp"].dt.tz_convert("UTC")
    tod = 2 * np.pi * (ts.dt.hour * 3600 + ts.dt.minute * 60 + ts.dt.second) / 86_400
    dow = 2 * np.pi * ts.dt.dayofweek / 7
    out["tod_sin"], out["tod_cos"] = np.sin(tod), np.cos(tod)
    out["dow_sin"], out["dow_cos"] = np.sin(dow), np.cos(dow)

    w, longest = spec.regime_windows
    trend, vol, vol_long = out[f"eff_ratio_{w}"], out[f"vol_{w}"], out[f"vol_{longest}"]
    regime = 2.0 * (trend >= TRENDING_EFFICIENCY) + (vol > np.maximum(vol_long, FLAT_VOLATILITY))
    out["regime"] = regime.mask(trend.isna() | vol.isna() | vol_long.isna())

    result = pd.DataFrame({name: out[name].astype("float64") for name in spec.names})
    result.insert(0, "timestamp", ts)
    result.insert(0, "symbol", df["symbol"])
    return result
