"""What a proposer is told about recent performance: the incumbent's figures on the search
part of the out-of-sample period (never the hold-out), by symbol and by market regime,
its deepest drawdown, and where gating (the confidence gate and the incumbent's rules)
helped or hurt against taking every signal.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from augur.decision._program import CONSTANTS
from augur.rules._trial import Costs, OutOfSample, Trial

#: Regime codes by the names rules use for them (ranging_calm … trending_volatile).
REGIME_NAMES: dict[int, str] = {
    int(v): k for k, v in CONSTANTS.items() if k.startswith(("ranging_", "trending_"))
}


def summarise(data: OutOfSample, incumbent: Trial, ungated: Trial, costs: Costs) -> dict[str, Any]:
    """A JSON-ready summary (see the module doc). ``ungated``: the same predictions with
    no confidence gate and no rules."""
    frames = data.search_frames()
    symbols: dict[str, Any] = {}
    for symbol, frame in frames.items():
        m = incumbent.search[symbol]
        trial = incumbent.symbols[symbol]
        s = trial.part("search")
        equity = np.cumprod(1.0 + _net(trial.positions[s], trial.asset[s], costs))
        trough = int(np.argmax(1.0 - equity / np.maximum.accumulate(equity)))
        peak = int(np.argmax(equity[: trough + 1]))
        times = frame["timestamp"]
        symbols[symbol] = {
            "bars": len(frame),
            "from": str(times.iloc[0]),
            "to": str(times.iloc[-1]),
            "composite": round(m.composite, 4),
            "total_return": round(m.total_return, 5),
            "sharpe": round(m.sharpe, 3),
            "max_drawdown_pct": round(m.max_drawdown_pct, 3),
            "deepest_drawdown": {"peak": str(times.iloc[peak]), "trough": str(times.iloc[trough])},
            "trades": m.n_trades,
            "win_rate": None if np.isnan(m.win_rate) else round(m.win_rate, 3),
            "ungated_composite": round(ungated.search[symbol].composite, 4),
        }
    return {
        "part": "search part of the walk-forward's out-of-sample predictions",
        "symbols": symbols,
        "regimes": _by_regime(data, incumbent, ungated, costs),
    }


def _by_regime(
    data: OutOfSample, incumbent: Trial, ungated: Trial, costs: Costs
) -> dict[str, dict[str, Any]]:
    pooled: dict[str, list[np.ndarray]] = {
        k: [] for k in ("regime", "direction", "label", "entries", "net", "net_ungated")
    }
    for symbol, frame in data.search_frames().items():
        inc, ung = incumbent.symbols[symbol], ungated.symbols[symbol]
        s = inc.part("search")
        regime = frame["regime"] if "regime" in frame else np.full(len(frame), np.nan)
        pooled["regime"].append(np.asarray(regime, dtype=float))
        pooled["direction"].append(frame["direction"].to_numpy(dtype=float))
        pooled["label"].append(frame["label"].to_numpy(dtype=float))
        pooled["entries"].append(inc.entries[s].astype(float))
        pooled["net"].append(_net(inc.positions[s], inc.asset[s], costs))
        pooled["net_ungated"].append(_net(ung.positions[s], ung.asset[s], costs))
    a = {k: np.concatenate(v) for k, v in pooled.items()}
    out: dict[str, dict[str, Any]] = {}
    for code, name in REGIME_NAMES.items():
        here = a["regime"] == code
        if not here.any():
            continue
        called = here & (a["direction"] != 0)
        entered = here & (a["entries"] != 0)
        ret = float(np.prod(1.0 + a["net"][here]) - 1.0)
        ret_ungated = float(np.prod(1.0 + a["net_ungated"][here]) - 1.0)
        out[name] = {
            "bars": int(here.sum()),
            "hit_rate": _share(a["direction"][called] == a["label"][called]),
            "trades": int(entered.sum()),
            "trade_hit_rate": _share(a["entries"][entered] == a["label"][entered]),
            "return_incumbent": round(ret, 5),
            "return_ungated": round(ret_ungated, 5),
            "gating": "helped" if ret > ret_ungated else "hurt" if ret < ret_ungated else "even",
        }
    return out


def _net(positions: np.ndarray, asset: np.ndarray, costs: Costs) -> np.ndarray:
    return positions * asset - np.abs(np.diff(positions, prepend=0.0)) * costs.rate


def _share(hits: np.ndarray) -> float | None:
    return round(float(hits.mean()), 3) if len(hits) else None


__all__ = ["summarise"]
