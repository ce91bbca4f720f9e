"""`augur rules evolve` offline: candidates are parsed, replayed over the walk-forward's
out-of-sample bars and judged; a winner becomes the next version with its evidence, a
loser leaves the incumbent alone; the hold-out stays out of the search."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from augur.backtest.metrics import trading_metrics
from augur.decision import DecisionConfig
from augur.rules import (
    INCUMBENT_FILE,
    Costs,
    GateConfig,
    LocalProposer,
    Proposal,
    ProposalRequest,
    ProposalRound,
    RuleSet,
    adopt,
    evolve,
    load_rule_set,
    parse,
    save_rule_set,
    split_out_of_sample,
    write_evolution_report,
)
from augur.rules._trial import composite_rows

CONFIG = DecisionConfig(confidence_threshold=0.5, max_holding_bars=2)
GATE = GateConfig(bootstrap_reps=300, min_block=5)
SKIP_LOSERS = "if regime == trending_volatile: act = false"  # the regime that loses
SKIP_WINNERS = "if regime == trending_calm: act = false"


def synthetic_predictions(n: int = 800, symbol: str = "SYN", seed: int = 0) -> pd.DataFrame:
    """Hourly out-of-sample bars whose long signals win, except in trending_volatile
    bars (regime 3), where they lose."""
    rng = np.random.default_rng(seed)
    regime = np.repeat(np.arange(n // 10) % 4, 10)[:n].astype(float)
    next_return = np.where(regime == 3, -0.002, 0.0015) + rng.normal(0, 0.001, n)
    close = np.concatenate([[1.0], np.cumprod(1 + next_return)[:-1]])
    return pd.DataFrame(
        {
            "symbol": symbol,
            "timestamp": pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC"),
            "direction": 1.0,
            "probability": 0.7,
            "p_up": 0.7,
            "p_down": 0.2,
            "confidence": rng.uniform(0.55, 0.95, n),
            "agreement": 1.0,
            "q05": -0.01,
            "q50": 0.005,
            "q95": 0.02,
            "close": close,
            "next_return": next_return,
            "volatility": 0.01,
            "volatility_ref": 0.01,
            "trend": 0.5,
            "regime": regime,
            "label": np.sign(next_return),
        }
    )


class Scripted:
    """A proposer that answers each round with the texts it was given."""

    name = "scripted"

    def __init__(self, *rounds: list[str]) -> None:
        self.rounds = list(rounds)
        self.requests: list[ProposalRequest] = []

    def propose(self, request: ProposalRequest) -> ProposalRound:
        self.requests.append(request)
        texts = self.rounds[request.round - 1]
        return ProposalRound([Proposal(t, "scripted", self.name) for t in texts], self.name)


@pytest.fixture(scope="module")
def data():
    return split_out_of_sample(synthetic_predictions(), 0.3)


def run(data, proposer, incumbent=None, rounds=1):
    return evolve(
        data,
        incumbent,
        proposer,
        decision_config=CONFIG,
        costs=Costs(),
        gate=GATE,
        candidates=5,
        rounds=rounds,
    )


def test_the_composite_of_many_series_is_the_backtests_composite() -> None:
    rng = np.random.default_rng(3)
    for case in range(100):
        n = int(rng.integers(2, 120))
        pos = rng.choice([0.0, 0.0, 0.3, -0.2, 0.5, -0.5], n) * (rng.random(n) < 0.8)
        if case % 3 == 0:  # long trades, resized while open
            pos = np.repeat(pos[: n // 4 + 1], 4)[:n] * rng.choice([1.0, 1.5], n)
        ret = rng.normal(0, 0.01, n)
        expected = trading_metrics(pos, ret, 252.0, 1.0, 2.0).composite
        assert composite_rows(pos[None], ret[None], 3e-4, 252.0)[0] == pytest.approx(expected)


def test_the_hold_out_is_the_latest_bars_and_the_search_never_sees_it(data) -> None:
    frame = data.frames["SYN"]
    cut = data.split["SYN"]
    assert cut == 560 and len(frame) == 800
    assert data.search_frames()["SYN"]["timestamp"].max() < frame["timestamp"].iloc[cut]
    proposer = Scripted([SKIP_LOSERS], [SKIP_WINNERS])
    result = run(data, proposer, rounds=2)
    told = pd.Timestamp(result.summary["symbols"]["SYN"]["to"])
    assert told < frame["timestamp"].iloc[cut]
    # the second round hears of the first round's candidate, by its search-part figures
    (heard,) = proposer.requests[1].feedback
    assert heard["rules"] == SKIP_LOSERS and heard["composite_minus_incumbent"] > 0
    assert not any("holdout" in key for key in heard)
    with pytest.raises(ValueError, match="fewer than 20"):
        split_out_of_sample(synthetic_predictions(n=40), 0.3)


def test_the_summary_says_where_gating_lost_money(data) -> None:
    result = run(data, Scripted([]))
    regimes = result.summary["regimes"]
    assert set(regimes) == {
        "ranging_calm",
        "ranging_volatile",
        "trending_calm",
        "trending_volatile",
    }
    assert regimes["trending_volatile"]["return_incumbent"] < 0
    assert regimes["trending_calm"]["return_incumbent"] > 0
    assert result.summary["symbols"]["SYN"]["trades"] > 0


def test_a_better_rule_set_is_accepted_and_written_with_its_evidence(data, tmp_path) -> None:
    result = run(data, Scripted([SKIP_WINNERS, "if confidence > : act = false", SKIP_LOSERS]))
    bad, broken, good = result.candidates
    assert good.verdict.passed and good.verdict.interval.low > 0
    assert not bad.verdict.passed and "margin" in bad.reason
    assert not broken.parsed and broken.reason.startswith("not parsed: line 1, column")
    assert "accepted candidate 3 over no rules (3 candidate(s) tried, 2 parsed" in result.decision()
    path = adopt(result, tmp_path)
    written = load_rule_set(path)
    assert path.name == "evolved-v1.yaml" and written.rules == SKIP_LOSERS
    assert written.parent is None and written.created_by == "scripted"
    assert written.evidence["candidates_tried"] == 3
    assert written.evidence["search"]["difference"] > GATE.margin
    assert "composite" in written.evidence["holdout"]
    assert load_rule_set(tmp_path / INCUMBENT_FILE) == written
    report = write_evolution_report(result, tmp_path / "r.html")
    assert "accepted candidate 3" in report.read_text()


def test_the_next_version_names_its_parent(data, tmp_path) -> None:
    current = RuleSet(name="desk", version=3, rules=SKIP_WINNERS)
    result = run(data, Scripted([SKIP_LOSERS]), incumbent=current)
    written = load_rule_set(adopt(result, tmp_path))
    assert (written.name, written.version, written.parent) == ("desk", 4, "desk@3")


def test_when_nothing_passes_the_incumbent_stays_and_says_why(data, tmp_path) -> None:
    current = RuleSet(name="desk", version=2, rules=SKIP_LOSERS)
    path = save_rule_set(current, tmp_path / INCUMBENT_FILE)
    before = path.read_bytes()
    result = run(
        data,
        Scripted([SKIP_LOSERS, SKIP_WINNERS, "if confidence > 0.999: act = false"]),
        incumbent=current,
    )
    assert result.winner is None
    same, worse, noop = result.candidates
    assert same.reason == "the same rules as the incumbent" and same.trial is None
    assert "margin" in worse.reason and "margin" in noop.reason
    assert adopt(result, tmp_path) is None
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == [
        INCUMBENT_FILE
    ]
    assert result.decision().startswith("kept desk@2: no candidate passed the gate (3 candidate")


def test_the_local_proposer_is_deterministic_and_proposes_valid_rules() -> None:
    request = ProposalRequest(
        1,
        6,
        "if confidence > 0.75 and volatility < 0.02: size = kelly * 1.5\n"
        "elif hour >= 14 or regime == trending_calm: act = false",
        {"regimes": {"ranging_volatile": {"return_incumbent": -0.01}}},
    )
    first = LocalProposer(seed=1).propose(request)
    again = LocalProposer(seed=1).propose(request)
    assert first.proposals == again.proposals and len(first.proposals) == 6
    texts = [p.rules for p in first.proposals]
    assert len(set(texts)) == 6 and request.incumbent not in texts
    for text in texts:
        parse(text)
    assert any("regime == ranging_volatile: act = false" in t for t in texts)
    assert LocalProposer(seed=2).propose(request).proposals != first.proposals


def test_offline_cli_round_prints_every_candidate_and_writes_the_report(tmp_path, monkeypatch):
    from augur.cli import app
    from augur.config import get_settings

    home = tmp_path / "home"
    (home / "reports").mkdir(parents=True)
    synthetic_predictions().to_parquet(home / "reports" / "oos_predictions.parquet")
    save_rule_set(RuleSet(name="desk", rules=SKIP_WINNERS), home / "rules" / INCUMBENT_FILE)
    monkeypatch.setenv("AUGUR_HOME", str(home))
    monkeypatch.setenv("AUGUR_LLM_API_KEY", "")
    monkeypatch.setenv("AUGUR_RULES_BOOTSTRAP_REPS", "200")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(
            app, ["rules", "evolve", "--candidates", "4"], env={"COLUMNS": "60"}
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.startswith("no AUGUR_LLM_API_KEY: the local proposer")
    assert "round 1 (local-proposer): 4 candidate(s)" in out
    rows = [line for line in out.splitlines() if line.startswith("│ ")]
    assert len(rows) == 5 and all(("accepted" in r) or ("rejected" in r) for r in rows[1:])
    # piped, each row is one line with its figures whole, whatever COLUMNS says
    assert all(re.search(r"│ +[+-]\d+\.\d{4} │", row) for row in rows)
    assert (home / "reports" / "rules_evolve.html").exists()
    assert ("accepted candidate" in out) == (home / "rules" / "desk-v1.yaml").exists()
    assert yaml.safe_load((home / "rules" / INCUMBENT_FILE).read_text())["name"] == "desk"


def test_the_local_proposer_steps_counts_by_one_and_scales_the_rest() -> None:
    request = ProposalRequest(1, 8, "if volatility_ratio > 1 and hour >= 14: act = false", {})
    mutants = [
        p.rules for p in LocalProposer(seed=5).propose(request).proposals if "\n" not in p.rules
    ]
    assert mutants
    for text in mutants:
        ratio, hour = re.fullmatch(
            r"if volatility_ratio > (\S+) and hour >= (\S+): act = false", text
        ).groups()
        assert hour in {"13", "14", "15"}
        assert 0.2 < float(ratio) < 5 and ratio not in {"0", "2"}
