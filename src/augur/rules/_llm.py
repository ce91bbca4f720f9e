"""Candidate rule sets from an OpenAI-compatible chat model, robust to the service.

The official ``openai`` client makes the request: its ``timeout`` bounds each attempt and
its ``max_retries`` retries timeouts, connection errors, 429 and 5xx with exponential
backoff and jitter (honouring ``Retry-After``), so that is not written again here. Added
here: a circuit breaker (after ``failures`` failed rounds in a row the model is not asked
for ``cooldown`` seconds and the local proposer answers instead), token and cost
accounting per round (logged), and the checks on the answer: JSON, the schema, the
number of candidates. The rule texts are only data: they go to ``augur.rules.parse``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from augur.decision._program import CONSTANTS, KPIS, MAX_SIZE_MULTIPLIER
from augur.rules._parse import MAX_CHARS
from augur.rules._proposer import LocalProposer, Proposal, ProposalRequest, ProposalRound

log = logging.getLogger(__name__)

#: The answer's JSON schema (structured output).
ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "candidates": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "rules": {"type": "string", "description": "the rule text"},
                    "rationale": {"type": "string", "description": "why, in a sentence"},
                },
                "required": ["rules", "rationale"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["candidates"],
    "additionalProperties": False,
}


class _Candidate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    rules: str
    rationale: str = ""


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    candidates: list[_Candidate]


def system_prompt() -> str:
    """The language and the task, as the model is told them (from the code's own lists)."""
    return (
        "You propose decision rules for a trading system, in a small rule language (not "
        "Python: nothing is executed; text outside the language is rejected).\n"
        "A rule set is one or more chains `if COND: ASSIGN [elif COND: ASSIGN]... "
        "[else: ASSIGN]`, applied in order to each entry the risk manager already allows. "
        "ASSIGN is `size = EXPR` (the entry's size; the risk manager's is `kelly`; the "
        f"result is clipped to [0, {MAX_SIZE_MULTIPLIER:g} x kelly]) or `act = COND` "
        "(false skips the entry); `;` separates two assignments. COND: comparisons "
        "(< <= > >= == !=), and, or, not, true, false. EXPR: + - * / and parentheses over "
        "numbers, KPIs and constants. No calls, attributes, subscripts, strings, **, "
        f"imports or lambdas; at most {MAX_CHARS} characters.\n"
        f"KPIs: {', '.join(KPIS)}.\n"
        f"Constants: {', '.join(f'{k}={v:g}' for k, v in CONSTANTS.items())}.\n"
        "Example:\n  if confidence > 0.75 and volatility_ratio < 1: size = kelly * 1.5\n"
        "  elif confidence < 0.4 or regime == trending_volatile: act = false\n"
        "Each candidate is judged on out-of-sample data: it must beat the current rules' "
        "composite score (per-trade profit, Sharpe, win rate, drawdown) with a bootstrap "
        "interval above zero, without a deeper drawdown. Propose distinct, simple rule sets."
    )


class CircuitBreaker:
    """Closed: calls go through. After ``failures`` failures in a row it opens: calls are
    refused until ``cooldown`` seconds have passed, then one is let through (half open);
    its success closes the breaker, its failure opens it again."""

    def __init__(
        self,
        failures: int = 3,
        cooldown: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures = failures
        self.cooldown = cooldown
        self.clock = clock
        self.in_a_row = 0
        self.opened_at: float | None = None

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if self.clock() - self.opened_at >= self.cooldown else "open"

    def allow(self) -> bool:
        return self.state != "open"

    def success(self) -> None:
        self.in_a_row, self.opened_at = 0, None

    def failure(self) -> None:
        self.in_a_row += 1
        if self.in_a_row >= self.failures or self.opened_at is not None:
            self.opened_at = self.clock()


class LLMProposer:
    """Asks the model for the round's candidates; see the module doc."""

    def __init__(
        self,
        *,
        model: str,
        api_key: str,
        base_url: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
        max_output_tokens: int = 4000,
        input_cost_per_million: float = 0.0,
        output_cost_per_million: float = 0.0,
        breaker: CircuitBreaker | None = None,
        fallback: LocalProposer | None = None,
    ) -> None:
        from openai import OpenAI

        self.name = model
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_output_tokens = max_output_tokens
        self.prices = (input_cost_per_million, output_cost_per_million)
        self.breaker = breaker or CircuitBreaker()
        self.fallback = fallback or LocalProposer()
        self.client = OpenAI(
            api_key=api_key, base_url=base_url or None, timeout=timeout, max_retries=max_retries
        )

    def propose(self, request: ProposalRequest) -> ProposalRound:
        if not self.breaker.allow():
            return self._fallback(
                request,
                f"{self.name}: circuit open after {self.breaker.in_a_row} failed rounds in a "
                "row; the local proposer answers this round",
            )
        import openai

        started = time.perf_counter()
        try:
            response = self.client.chat.completions.create(
                model=self.name,
                messages=[
                    {"role": "system", "content": system_prompt()},
                    {"role": "user", "content": _user_prompt(request)},
                ],
                response_format={
                    "type": "json_schema",
                    "json_schema": {
                        "name": "rule_candidates",
                        "strict": True,
                        "schema": ANSWER_SCHEMA,
                    },
                },
                max_completion_tokens=self.max_output_tokens,
            )
        except openai.APITimeoutError:
            return self._failed(
                f"{self.name}: no answer within {self.timeout:g} s, "
                f"{self.max_retries} retries included",
                started,
            )
        except openai.APIConnectionError as exc:
            self.breaker.failure()
            return self._fallback(
                request, f"{self.name}: endpoint unreachable ({_cause(exc)}); local proposer"
            )
        except openai.APIStatusError as exc:
            return self._failed(
                f"{self.name}: HTTP {exc.status_code} after {self.max_retries} retries: "
                f"{_short(str(exc.message))}",
                started,
            )
        except openai.APIError as exc:  # a reply the client could not read
            return self._failed(f"{self.name}: {_short(str(exc))}", started)
        self.breaker.success()
        usage = getattr(response, "usage", None)
        prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion = int(getattr(usage, "completion_tokens", 0) or 0)
        out = ProposalRound(
            [],
            self.name,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost=(prompt * self.prices[0] + completion * self.prices[1]) / 1e6,
            seconds=time.perf_counter() - started,
        )
        log.info(
            "rules round %d, %s: %d prompt + %d completion tokens, cost %.4f, %.1f s",
            request.round,
            self.name,
            out.prompt_tokens,
            out.completion_tokens,
            out.cost,
            out.seconds,
        )
        content, trouble = _content(response)
        if content is None:
            out.notes.append(f"{self.name}: {trouble}")
            return out
        try:
            answer = _Answer.model_validate(json.loads(content))
        except json.JSONDecodeError as exc:
            out.notes.append(
                f"{self.name}: the answer is not JSON ({exc.msg}, at {exc.pos})"
                + (f"; {trouble}" if trouble else "")
            )
            return out
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(answer)"
            out.notes.append(
                f"{self.name}: the answer does not follow the schema: {where}: {first['msg']}"
            )
            return out
        if len(answer.candidates) > request.candidates:
            out.notes.append(
                f"{self.name}: {len(answer.candidates)} candidates for {request.candidates} "
                f"asked; the first {request.candidates} kept"
            )
        out.proposals = [
            Proposal(c.rules, _short(c.rationale), self.name)
            for c in answer.candidates[: request.candidates]
        ]
        return out

    def _failed(self, note: str, started: float) -> ProposalRound:
        self.breaker.failure()
        log.warning("rules: %s", note)
        return ProposalRound([], self.name, [note], seconds=time.perf_counter() - started)

    def _fallback(self, request: ProposalRequest, note: str) -> ProposalRound:
        log.warning("rules: %s", note)
        answer = self.fallback.propose(request)
        answer.notes.insert(0, note)
        return answer


def _content(response: Any) -> tuple[str | None, str | None]:
    """The answer's text, or None and why there is none; with the text, a warning when
    the model stopped at the token limit (the JSON is then likely cut short)."""
    try:
        choice = response.choices[0]
        content = choice.message.content
    except (AttributeError, IndexError, KeyError, TypeError):
        return None, "the reply is not a chat completion (no choices[0].message)"
    if content is None:
        refusal = getattr(choice.message, "refusal", None)
        return None, f"the model refused: {_short(str(refusal))}" if refusal else "no content"
    if not isinstance(content, str):
        return None, "the reply's content is not text"
    if getattr(choice, "finish_reason", None) == "length":
        return content, "it stopped at the token limit (AUGUR_LLM_MAX_OUTPUT_TOKENS)"
    return content, None


def _user_prompt(request: ProposalRequest) -> str:
    return json.dumps(
        {
            "task": f"Propose {request.candidates} candidate rule sets to replace the current "
            'rules. Answer with JSON: {"candidates": [{"rules": ..., "rationale": ...}]}.',
            "current_rules": request.incumbent or "(none: every entry the risk manager allows)",
            "recent_performance": request.summary,
            "earlier_candidates": request.feedback,
        },
        indent=1,
        default=str,
    )


def _cause(exc: BaseException) -> str:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return _short(str(exc) or type(exc).__name__)


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def proposer_from_settings(settings: Any, local: bool = False) -> tuple[Any, str | None]:
    """The proposer the settings ask for, and a one-line note when it is the local one
    for want of a key."""
    fallback = LocalProposer(seed=settings.seed)
    if local:
        return fallback, None
    key = settings.llm_api_key.get_secret_value()
    if not key:
        return fallback, (
            "no AUGUR_LLM_API_KEY: the local proposer (mutations and crossovers of the "
            "incumbent's numbers) proposes, offline"
        )
    breaker = CircuitBreaker(settings.llm_breaker_failures, settings.llm_breaker_cooldown_seconds)
    return (
        LLMProposer(
            model=settings.llm_model,
            api_key=key,
            base_url=settings.llm_base_url or None,
            timeout=settings.llm_timeout_seconds,
            max_retries=settings.llm_max_retries,
            max_output_tokens=settings.llm_max_output_tokens,
            input_cost_per_million=settings.llm_input_cost_per_million,
            output_cost_per_million=settings.llm_output_cost_per_million,
            breaker=breaker,
            fallback=fallback,
        ),
        None,
    )


__all__ = [
    "ANSWER_SCHEMA",
    "CircuitBreaker",
    "LLMProposer",
    "proposer_from_settings",
    "system_prompt",
]
