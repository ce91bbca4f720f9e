"""`augur rules evolve` against a model over real HTTP: a local server speaking the OpenAI
chat-completions API answers the real ``openai`` client with scripted answers, status
codes or silence.

Good proposals are parsed, replayed and judged by their figures. Malicious or broken
answers are rejected with a reason, failing requests are retried and then given up on,
nothing in an answer is ever executed (the canary a successful injection would create
never appears) and the incumbent's file stays as it was.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from augur.rules import (
    INCUMBENT_FILE,
    CircuitBreaker,
    Costs,
    Evolution,
    GateConfig,
    LLMProposer,
    LocalProposer,
    RuleSet,
    adopt,
    evolve,
    proposer_from_settings,
    save_rule_set,
    split_out_of_sample,
    write_evolution_report,
)
from tests.conftest import free_port
from tests.unit.rules.test_evolve import (
    CONFIG,
    SKIP_LOSERS,
    SKIP_WINNERS,
    synthetic_predictions,
)

pytestmark = pytest.mark.integration

MODEL = "scripted-model"


class ChatServer:
    """An OpenAI chat-completions endpoint on 127.0.0.1 that plays a script: each request
    takes the next step — ``("answer", content)``, ``("raw", body)``, ``("status", code)``
    or ``("sleep", seconds)`` — and is recorded."""

    def __init__(self) -> None:
        self.script: list[tuple[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                server.requests.append({"path": self.path, "json": json.loads(body)})
                kind, value = server.script.pop(0) if server.script else ("status", 500)
                try:
                    if kind == "sleep":
                        time.sleep(value)
                        self.reply(200, completion("{}"))
                    elif kind == "raw":
                        self.reply(200, value)
                    elif kind == "status":
                        self.reply(value, {"error": {"message": f"scripted {value}"}})
                    else:
                        self.reply(200, completion(value))
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting

            def reply(self, status: int, payload: Any) -> None:
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("retry-after-ms", "20")  # keeps the retries quick
                self.end_headers()
                self.wfile.write(data)

        self.port = free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


def completion(content: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500},
    }


def answer(*rules: str) -> tuple[str, str]:
    return "answer", json.dumps({"candidates": [{"rules": r, "rationale": "x"} for r in rules]})


@pytest.fixture
def server() -> Iterator[ChatServer]:
    s = ChatServer()
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


@pytest.fixture(scope="module")
def data():
    return split_out_of_sample(synthetic_predictions(), 0.3)


def proposer(server: ChatServer, **kw: Any) -> LLMProposer:
    options: dict[str, Any] = {
        "model": MODEL,
        "api_key": "test-key",
        "base_url": server.base_url,
        "timeout": 5.0,
        "max_retries": 2,
        "input_cost_per_million": 2.0,
        "output_cost_per_million": 10.0,
    }
    return LLMProposer(**{**options, **kw})


def run(data, llm, incumbent=None, rounds=1) -> Evolution:
    return evolve(
        data,
        incumbent,
        llm,
        decision_config=CONFIG,
        costs=Costs(),
        gate=GateConfig(bootstrap_reps=300),
        candidates=5,
        rounds=rounds,
    )


def test_good_proposals_are_judged_by_their_figures(server, data, tmp_path) -> None:
    server.script = [answer(SKIP_WINNERS, SKIP_LOSERS)]
    result = run(data, proposer(server))
    worse, better = result.candidates
    assert not worse.verdict.passed and "below the margin" in worse.reason
    assert better.verdict.passed and better.proposal.source == MODEL
    (sent,) = server.requests
    assert sent["path"] == "/v1/chat/completions" and sent["json"]["model"] == MODEL
    assert sent["json"]["response_format"]["type"] == "json_schema"
    told = json.loads(sent["json"]["messages"][1]["content"])
    assert "trending_volatile" in told["recent_performance"]["regimes"]
    (round_,) = result.rounds
    assert (round_.prompt_tokens, round_.completion_tokens) == (1200, 300)
    assert round_.cost == pytest.approx((1200 * 2.0 + 300 * 10.0) / 1e6)
    written = adopt(result, tmp_path)
    assert written is not None and "created_by: scripted-model" in written.read_text()


MALICIOUS = [
    "if confidence > 0: size = __import__('os').system('touch {canary}')",
    "if ().__class__.__bases__[0].__subclasses__(): act = false",
    "if confidence.real > 0.5: act = false",
    "if open('{canary}', 'w'): act = false",
    "if confidence > 0.5: act = false\nimport os",
    "if confidence > " + "confidence + " * 800_000 + "1: act = false",  # about 10 MB
    "if " + "(" * 1000 + "confidence" + ")" * 1000 + " > 0.5: act = false",
    "if confidence > 0.5: size = eval('1')",
    "if confidence > 0.5: size = [kelly][0]",
    "</pre><script>alert(1)</script>",
]


def test_malicious_answers_are_rejected_and_nothing_runs(server, data, tmp_path) -> None:
    canary = tmp_path / "canary"
    rules_dir = tmp_path / "rules"
    save_rule_set(RuleSet(name="desk", version=1, rules=SKIP_WINNERS), rules_dir / INCUMBENT_FILE)
    before = (rules_dir / INCUMBENT_FILE).read_bytes()
    texts = [t.replace("{canary}", str(canary)) for t in MALICIOUS]
    server.script = [answer(*texts[:5]), answer(*texts[5:])]  # two rounds
    result = run(data, proposer(server), RuleSet(name="desk", version=1, rules=SKIP_WINNERS), 2)
    assert len(result.candidates) == len(MALICIOUS)
    reasons = [c.reason for c in result.candidates]
    assert all(
        not c.parsed and r.startswith("not parsed: line ")
        for c, r in zip(result.candidates, reasons, strict=True)
    )
    assert "a call" in reasons[0] and "attribute access" in reasons[1]
    assert "attribute access" in reasons[2] and "a call" in reasons[3]
    assert "an import" in reasons[4] and "rule too long" in reasons[5]
    assert "nested" in reasons[6] or "deep" in reasons[6]
    assert "a call" in reasons[7] and "subscript" in reasons[8]
    assert "a call: 'alert(…)'" in reasons[9]
    report = write_evolution_report(result, tmp_path / "report.html").read_text()
    assert "<script>alert(1)" not in report and "&lt;script&gt;alert(1)" in report
    assert "confidence + " * 100 not in report  # the 10 MB proposal is shown as an excerpt
    assert adopt(result, rules_dir) is None
    assert not canary.exists()
    assert (rules_dir / INCUMBENT_FILE).read_bytes() == before
    assert sorted(p.name for p in rules_dir.iterdir()) == [INCUMBENT_FILE]
    assert result.decision().startswith("kept desk@1: no candidate passed the gate (10 candidate")


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("this is not JSON {", "the answer is not JSON"),
        (
            json.dumps({"rules": SKIP_LOSERS}),
            "does not follow the schema: candidates: Field required",
        ),
        (json.dumps({"candidates": [{"rule": SKIP_LOSERS}]}), "does not follow the schema"),
        (json.dumps({"candidates": SKIP_LOSERS}), "does not follow the schema"),
        (
            json.dumps({"candidates": [{"rules": 42, "rationale": ""}]}),
            "does not follow the schema",
        ),
    ],
)
def test_broken_answers_are_refused_with_the_reason(server, data, content, says) -> None:
    server.script = [("answer", content)]
    result = run(data, proposer(server))
    assert result.candidates == [] and result.winner is None
    (note,) = result.rounds[0].notes
    assert says in note
    assert result.rounds[0].prompt_tokens == 1200  # paid for, even so


def cut_short() -> bytes:
    reply = completion('{"candidates": [{"rules": "if confidence >')
    reply["choices"][0]["finish_reason"] = "length"
    return json.dumps(reply).encode()


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"[1, 2]", "not a chat completion"),
        (b'{"choices": [{"index": 0, "message": null}]}', "not a chat completion"),
        (
            json.dumps({**completion(""), "choices": [{"message": {"refusal": "no"}}]}).encode(),
            "the model refused: no",
        ),
        (cut_short(), "stopped at the token limit"),
    ],
)
def test_unreadable_replies_are_refused_with_the_reason(server, data, body, says) -> None:
    server.script = [("raw", body)]
    result = run(data, proposer(server))
    assert result.candidates == []
    (note,) = result.rounds[0].notes
    assert says in note


def test_429_and_500_are_retried_with_backoff(server, data) -> None:
    server.script = [("status", 429), ("status", 500), answer(SKIP_LOSERS)]
    result = run(data, proposer(server, max_retries=2))
    assert len(server.requests) == 3
    assert result.winner is not None and result.winner.proposal.rules == SKIP_LOSERS


def test_a_failing_service_is_given_up_on_and_the_circuit_opens(server, data) -> None:
    server.script = [("status", 503)] * 3
    breaker = CircuitBreaker(failures=1, cooldown=60.0)
    llm = proposer(server, max_retries=2, breaker=breaker, fallback=LocalProposer(seed=3))
    result = run(data, llm, rounds=2)
    assert len(server.requests) == 3  # one attempt and two retries, then never again
    first, second = result.rounds
    assert first.proposals == [] and "HTTP 503 after 2 retries" in first.notes[0]
    assert "circuit open" in second.notes[0] and second.source == "local-proposer"
    assert second.proposals and all(c.round == 2 for c in result.candidates)


def test_a_silent_service_times_out(server, data) -> None:
    server.script = [("sleep", 3.0), ("sleep", 3.0)]
    started = time.monotonic()
    result = run(data, proposer(server, timeout=0.3, max_retries=1))
    assert time.monotonic() - started < 2.5
    assert result.candidates == []
    assert "no answer within 0.3 s" in result.rounds[0].notes[0]


def test_no_reachable_endpoint_falls_back_to_the_local_proposer(data) -> None:
    closed = f"http://127.0.0.1:{free_port()}/v1"
    llm = LLMProposer(model=MODEL, api_key="k", base_url=closed, timeout=1.0, max_retries=0)
    result = run(data, llm)
    (round_,) = result.rounds
    assert round_.notes[0].startswith(f"{MODEL}: endpoint unreachable (")
    assert round_.source == "local-proposer" and len(result.candidates) == 5


def test_no_key_means_the_local_proposer_said_in_one_line() -> None:
    from augur.config import Settings

    chosen, note = proposer_from_settings(Settings(llm_api_key=""))
    assert isinstance(chosen, LocalProposer)
    assert note is not None and "\n" not in note and note.startswith("no AUGUR_LLM_API_KEY")
    chosen, note = proposer_from_settings(Settings(llm_api_key="k", llm_model="m"))
    assert isinstance(chosen, LLMProposer) and note is None and chosen.name == "m"


def test_the_key_is_never_in_the_settings_repr(monkeypatch) -> None:
    from augur.config import Settings

    monkeypatch.setenv("AUGUR_LLM_API_KEY", "sk-very-secret")
    settings = Settings()
    assert "sk-very-secret" not in repr(settings)
    assert settings.llm_api_key.get_secret_value() == "sk-very-secret"
