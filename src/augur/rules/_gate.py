"""The gate a proposed rule set must pass to replace the incumbent.

On the search part of the out-of-sample period only, a candidate must:

1. beat the incumbent's composite (averaged over symbols) by at least ``margin``;
2. do so with a paired circular block-bootstrap interval of the difference that lies
   wholly above zero: blocks of consecutive bars (at least the label horizon long) are
   drawn once and both rule sets are re-scored on the same draw. The interval's level is
   raised for the number of candidates judged (Bonferroni), since the best of many
   tries looks better than it is;
3. make at least ``min_trades`` trades (a rule that stops trading is not judged by its
   empty record);
4. not worsen the maximum drawdown of any symbol by more than ``max_drawdown_worsening``
   percentage points.

Of the candidates that pass, the one with the largest difference wins. Its figure on the
final hold-out, which no proposal and no verdict ever saw, is reported beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from augur.backtest.metrics import BootstrapCI, _optimal_block
from augur.rules._trial import Costs, Trial, composite_rows


@dataclass(frozen=True)
class GateConfig:
    """What a candidate must show (see the module doc)."""

    margin: float = 0.05
    max_drawdown_worsening: float = 1.0  # percentage points
    ci_level: float = 0.90
    bootstrap_reps: int = 1000
    min_block: int = 5  # the label horizon
    min_trades: int = 10  # over all symbols, search part: fewer is too little to judge
    seed: int = 7


@dataclass(frozen=True)
class Verdict:
    """The gate's answer for one candidate, with the figures it rests on."""

    passed: bool
    reason: str
    difference: float = float("nan")  # candidate - incumbent composite, search part
    interval: BootstrapCI | None = None
    drawdown_worsening: float = float("nan")  # worst over symbols, percentage points


def paired_bootstrap(
    candidate: Trial, incumbent: Trial, costs: Costs, config: GateConfig, level: float
) -> BootstrapCI:
    """Percentile interval of the search-part composite difference, candidate minus
    incumbent, averaged over symbols; each symbol's bars resampled in circular blocks,
    the same blocks for both rule sets."""
    rng = np.random.default_rng(config.seed)
    reps = config.bootstrap_reps
    total = np.zeros(reps)
    blocks = []
    for symbol, cand in candidate.symbols.items():
        inc = incumbent.symbols[symbol]
        s = cand.part("search")
        pc, pi, asset = cand.positions[s], inc.positions[s], cand.asset[s]
        n = len(asset)
        diff = pc * asset - pi * asset
        block = int(max(config.min_block, min(_optimal_block(diff), n)))
        blocks.append(block)
        n_blocks = -(-n // block)
        offsets = np.arange(block)
        chunk = max(1, 1_000_000 // max(n, 1))
        for lo in range(0, reps, chunk):
            k = min(chunk, reps - lo)
            starts = rng.integers(0, n, size=(k, n_blocks))
            idx = ((starts[:, :, None] + offsets) % n).reshape(k, -1)[:, :n]
            total[lo : lo + k] += composite_rows(
                pc[idx], asset[idx], costs.rate, cand.periods_per_year
            ) - composite_rows(pi[idx], asset[idx], costs.rate, cand.periods_per_year)
    dist = total / len(candidate.symbols)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(dist, [alpha, 1.0 - alpha])
    estimate = candidate.score - incumbent.score
    return BootstrapCI(estimate, float(low), float(high), level, max(blocks), reps)


def judge(
    incumbent: Trial,
    candidates: Sequence[Trial | None],
    costs: Costs,
    config: GateConfig,
) -> list[Verdict | None]:
    """A verdict per backtested candidate (None stays None: it never reached a backtest).
    At most one verdict passes: the best of those that clear every bar."""
    judged = [c for c in candidates if c is not None]
    level = 1.0 - (1.0 - config.ci_level) / max(1, len(judged))
    verdicts: list[Verdict | None] = []
    for cand in candidates:
        if cand is None:
            verdicts.append(None)
            continue
        worsening = max(
            cand.search[s].max_drawdown_pct - incumbent.search[s].max_drawdown_pct
            for s in cand.search
        )
        ci = paired_bootstrap(cand, incumbent, costs, config, level)
        trades = sum(m.n_trades for m in cand.search.values())
        refusal = _refusal(ci, worsening, trades, config)
        verdicts.append(Verdict(refusal is None, refusal or "passed", ci.estimate, ci, worsening))
    return _keep_best(verdicts)


def _refusal(ci: BootstrapCI, worsening: float, trades: int, config: GateConfig) -> str | None:
    """Why the gate refuses a candidate with these figures; None: it does not."""
    if trades < config.min_trades:
        return f"{trades} trade(s) on the search part: fewer than {config.min_trades} to judge by"
    if ci.estimate < config.margin:
        return (
            f"composite {ci.estimate:+.3f} vs the incumbent: below the margin of "
            f"{config.margin:+.3f}"
        )
    if not ci.low > 0:
        return (
            f"composite {ci.estimate:+.3f}, but its {ci.level:.1%} interval "
            f"[{ci.low:+.3f}, {ci.high:+.3f}] does not exclude zero"
        )
    if worsening > config.max_drawdown_worsening:
        return (
            f"max drawdown {worsening:+.2f} pp worse than the incumbent's "
            f"(the bound is {config.max_drawdown_worsening:.2f} pp)"
        )
    return None


def _keep_best(verdicts: list[Verdict | None]) -> list[Verdict | None]:
    passing = {i: v for i, v in enumerate(verdicts) if v is not None and v.passed}
    if not passing:
        return verdicts
    best = max(passing, key=lambda i: passing[i].difference)
    out = list(verdicts)
    for i, v in passing.items():
        if i == best:
            out[i] = replace(v, reason="accepted: passed the gate with the largest difference")
        else:
            out[i] = replace(
                v,
                passed=False,
                reason=f"passed the gate, but candidate {best + 1} did better "
                f"({passing[best].difference:+.3f} vs {v.difference:+.3f})",
            )
    return out


__all__ = ["GateConfig", "Verdict", "judge", "paired_bootstrap"]
