"""Single-row ensemble latency: our fast path vs each library's own predict call.

One ensemble with the default hyper-parameters (200-tree forest, 200-round XGBoost,
RBF SVM on up to 3,000 rows, logistic regression, 150-round multi-quantile XGBoost) is
fitted on the 57 features of 2 synthetic symbols x 2,500 hourly bars (seeded random
walk, generated here). Then, for the same 300 held-out rows, one row at a time and
interleaved so both sides see the same machine noise:

- ours: ``Ensemble.predict_one`` — compiled forest/XGBoost trees (numba), SVM kernel and
  scaled logistic regression in numpy, Platt calibration, weights, agreement,
  confidence, quantiles and the top-5 tree-SHAP contributions (a compiled kernel);
- peer (naive): each member's ``CalibratedClassifierCV.predict_proba`` on the row, the
  weighted sum, ``XGBRegressor.predict`` for the quantiles and
  ``Booster.predict(DMatrix, pred_contribs=True)`` for the explanation — all n_jobs=1.

Both sides' outputs are checked to agree before timing. Per-member rows compare the
member alone. Latency: p50 and p99 of per-call wall time (``perf_counter_ns``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from benchmarks._table import Row

TITLE = "Ensemble single-row inference (4 calibrated members + quantiles + tree SHAP)"

N_ROWS = 300
WARMUP = 20


def _fit() -> tuple[object, np.ndarray]:
    from augur.features import FeatureSpec, training_frame
    from augur.models import Ensemble, EnsembleParams
    from benchmarks.bench_features import make_bars

    spec = FeatureSpec()
    frame = training_frame(make_bars(n_symbols=2, n_bars=2_500), spec, horizon=5, dead_zone=0.25)
    frame = frame.sort_values(["timestamp", "symbol"], kind="mergesort")
    names = spec.model_names
    X = frame[names].to_numpy()
    n_fit = len(X) - N_ROWS
    ens = Ensemble(EnsembleParams(n_jobs=1)).fit(
        X[:n_fit],
        frame["label"].to_numpy()[:n_fit],
        frame["forward_return"].to_numpy()[:n_fit],
        names,
        feature_spec_hash=spec.hash,
        purge=10,
        volatility_ref=float(frame["vol_20"].median()),
    )
    return ens, X[n_fit:]


def _pct(ns: list[int]) -> tuple[float, float]:
    a = np.asarray(ns, dtype=np.float64) / 1e3  # µs
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def _race(
    ours: Callable[[np.ndarray], object], peer: Callable[[np.ndarray], object], rows: np.ndarray
) -> tuple[list[int], list[int]]:
    for x in rows[:WARMUP]:
        ours(x)
        peer(x)
    t_ours, t_peer = [], []
    for x in rows:
        t0 = time.perf_counter_ns()
        ours(x)
        t1 = time.perf_counter_ns()
        peer(x)
        t2 = time.perf_counter_ns()
        t_ours.append(t1 - t0)
        t_peer.append(t2 - t1)
    return t_ours, t_peer


def run() -> list[Row]:
    import xgboost as xgb

    from augur.models import MEMBERS

    ens, rows = _fit()
    members = ens.members  # type: ignore[attr-defined]
    weights = ens.dynamic_weights.weights  # type: ignore[attr-defined]
    quantile = ens.quantile_model  # type: ignore[attr-defined]
    booster = members["xgb"].fast.booster

    def naive(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x2 = x.reshape(1, -1)
        per = np.stack([members[m].library_proba(x2)[0] for m in MEMBERS])
        p = weights @ per
        q = np.sort(quantile.predict(x2), axis=1)
        contribs = booster.predict(xgb.DMatrix(x2, nthread=1), pred_contribs=True)
        return p, q, contribs

    # Same numbers first: probabilities, quantiles and SHAP of the chosen class.
    for x in rows[:20]:
        out = ens.predict_one(x)  # type: ignore[attr-defined]
        p, q, contribs = naive(x)
        np.testing.assert_allclose([out.p_down, out.p_flat, out.p_up], p, atol=1e-6)
        np.testing.assert_allclose([out.q05, out.q50, out.q95], q[0], rtol=1e-5, atol=1e-6)
        lib_row = contribs[0, out.direction + 1, :-1]
        for name, value in out.contributions:
            assert abs(lib_row[ens.feature_names.index(name)] - value) < 1e-4  # type: ignore[attr-defined]

    result: list[Row] = []
    bench = "ensemble single row"
    t_ours, t_peer = _race(lambda x: ens.predict_one(x), naive, rows)  # type: ignore[attr-defined]
    (o50, o99), (p50, p99) = _pct(t_ours), _pct(t_peer)
    peer_name = "naive predict_proba x4 + predict + pred_contribs"
    result.append(
        Row(bench, "latency p50, full output", o50, peer_name, p50, "µs", False, "< 1,000 µs")
    )
    result.append(
        Row(bench, "latency p99, full output", o99, peer_name, p99, "µs", False, "< 1,000 µs")
    )

    def naive_probs(x: np.ndarray) -> np.ndarray:
        x2 = x.reshape(1, -1)
        return weights @ np.stack([members[m].library_proba(x2)[0] for m in MEMBERS])

    t_ours, t_peer = _race(lambda x: ens.predict_one(x, explain=False), naive_probs, rows)  # type: ignore[attr-defined]
    (o50, o99), (p50, p99) = _pct(t_ours), _pct(t_peer)
    result.append(
        Row(
            bench,
            "latency p50, no SHAP (ours still incl. quantiles)",
            o50,
            "naive predict_proba x4",
            p50,
            "µs",
            False,
        )
    )
    result.append(
        Row(
            bench,
            "latency p99, no SHAP (ours still incl. quantiles)",
            o99,
            "naive predict_proba x4",
            p99,
            "µs",
            False,
        )
    )

    for m in MEMBERS:
        mem = members[m]
        t_ours, t_peer = _race(
            lambda x, mem=mem: mem.proba(x.reshape(1, -1)),
            lambda x, mem=mem: mem.calibrated.predict_proba(x.reshape(1, -1)),
            rows,
        )
        result.append(
            Row(
                f"member {m}",
                "latency p50",
                _pct(t_ours)[0],
                "CalibratedClassifierCV.predict_proba",
                _pct(t_peer)[0],
                "µs",
                False,
            )
        )
    qfast = ens._quantile_fast  # type: ignore[attr-defined]
    t_ours, t_peer = _race(
        lambda x: qfast.raw(x.reshape(1, -1)), lambda x: quantile.predict(x.reshape(1, -1)), rows
    )
    result.append(
        Row(
            "quantiles (q05/q50/q95)",
            "latency p50",
            _pct(t_ours)[0],
            "XGBRegressor.predict",
            _pct(t_peer)[0],
            "µs",
            False,
        )
    )
    fast_xgb = members["xgb"].fast
    t_ours, t_peer = _race(
        lambda x: fast_xgb.contributions(x, 2),
        lambda x: booster.predict(xgb.DMatrix(x.reshape(1, -1), nthread=1), pred_contribs=True),
        rows,
    )
    result.append(
        Row(
            "tree SHAP (XGBoost member)",
            "latency p50",
            _pct(t_ours)[0],
            "Booster.predict(pred_contribs)",
            _pct(t_peer)[0],
            "µs",
            False,
        )
    )
    return result
