"""Serve a trained router behind an OpenAI-compatible endpoint (FastAPI + uvicorn, localhost only).

Every request runs one routing episode against the pool (replay or live) and returns a normal chat
completion plus `router_metadata`: the models called with their tokens and USD, the router's tokens,
total USD, turns, the strategy (direct / called / selected / summarised / fell back) and latencies.

    python -m xrouter_lite serve --router runs/cpu-20250101-120000 --pool replay --data ../shared/data --port 8000

    from openai import OpenAI
    client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="unused")
    r = client.chat.completions.create(model="xrouter-lite", messages=[{"role": "user", "content": question}])
    r.choices[0].message.content, r.router_metadata["strategy"], r.router_metadata["total_usd"]

In a notebook or a test the router is any `(messages, tools) -> str` callable and the server runs in a thread:

    >>> from openai import OpenAI
    >>> from xrouter_lite.pool.core import Answer, ModelSpec, Pool
    >>> class Echo(Pool):
    ...     models = [ModelSpec("small", 0.1, 0.4, tier="budget")]
    ...     def call(self, model, query, system_prompt=None, temperature=None):
    ...         return Answer(f"{model} says hi", 10, 3, 2.2e-6, model=model)
    >>> call = '<tool_call>{"name": "call_small", "arguments": {"optimized_system_prompt": "Be brief."}}</tool_call>'
    >>> router = lambda messages, tools: call if messages[-1]["role"] == "user" else "Done: small says hi"
    >>> with BackgroundServer(create_app(router, Echo())) as server:
    ...     client = OpenAI(base_url=server.base_url, api_key="unused")
    ...     r = client.chat.completions.create(model="xrouter-lite", messages=[{"role": "user", "content": "Hi?"}])
    >>> r.choices[0].message.content, r.router_metadata["strategy"], r.router_metadata["models_called"]
    ('Done: small says hi', 'summarised', ['small'])

The cost preference travels with each request: `cost_weight` (reward points one USD costs the router, λ; a number
>= 0) in the request body, sent with the openai client as `extra_body={"cost_weight": 100}`. Higher means cheaper
routing. A λ-conditioned router (router.json `lambda_in_prompt`) is told it in its prompt, exactly as it was trained
(`protocol.cost_line`); any other router ignores it. Without the field the router's default applies (router.json's
`lambda`). `router_metadata` reports `cost_weight`, where it came from (`cost_weight_source`: request or default)
and whether the router was told it (`cost_weight_in_prompt`). A non-number, NaN, an infinity or a negative value is
a 400 naming `cost_weight`. The episode clips the model answers the router reads and adds the runtime's answer notes
as the router was trained (router.json `tool_result_chars`, `answer_notes`).

What the server does with a request: the router routes the LAST user message (it was trained on single
queries; earlier turns and client system prompts are not forwarded). With a replay pool that text must be
a recorded question, exactly; the router's tools are the models recorded for it. `temperature`,
`max_tokens`, `tools` and the like are accepted and ignored: the router's own settings apply. An invalid
router episode (or a router that raises) falls back to `fallback` (default: the cheapest available model).
Budgets: before an episode, the server's remaining USD must cover the most expensive plausible call of the
query; during it, every call is held against the per-request and per-process caps and settled at its
actual cost: what was paid (a live pool's cache hit reports the original call's cost but pays nothing,
`meta["paid_usd"]`). Errors are OpenAI-shaped JSON (`{"error": {"message", "type", "param", "code"}}`) with
`x-should-retry: false`, since retrying a refused or failed episode would only spend again.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations (Request) at runtime.
import asyncio
import json
import logging
import math
import os
import re
import socket
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

from xrouter_lite.pool.budget import BudgetExceeded, BudgetGuard
from xrouter_lite.pool.core import Answer, Pool, PoolError, Query, ReplayPool, blended_price
from xrouter_lite.pool.live import IN_TOKEN_SAFETY, LivePool
from xrouter_lite.routing.episode import Episode, Router, default_count_tokens, run_episode
from xrouter_lite.routing.protocol import MAX_TOOL_RESULT_CHARS, cost_line, system_prompt, tool_schemas
from xrouter_lite.routing.reward import RewardConfig

log = logging.getLogger(__name__)

ROUTER_NAME = "xrouter-lite"  # what clients put in `model`; --model-name changes it
MAX_BODY_BYTES = 256 * 1024  # larger bodies get a 413: a routed query is a question, not a document
DRAIN_BYTES = 8 * 2**20  # an oversized body is read (and dropped) up to this size, so the client sees the 413
DEFAULT_TIMEOUT_S = 60.0  # per request; raise it for slow live pools or a large router on a CPU
DEFAULT_WORKERS = 32  # episodes running at once; LMRouter batches their generations together
SYSTEM_PROMPT_ALLOWANCE = 256  # tokens the router may write as a system prompt, in the pre-episode estimate
DEFAULT_MAX_TOKENS = 1024  # output tokens assumed by the cost bound of a pool with no estimate of its own
DEFAULT_COST_WEIGHT = 10.0  # λ when neither the request nor router.json gives one (the profiles' training λ)
COST_WEIGHT = "cost_weight"  # the request field: reward points per USD (λ); extra_body={"cost_weight": 100}
ROUTER_DIRS = ("router_grpo", "router_sft")  # checkpoints the training notebooks write, preferred first
ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_KEY_LIKE = re.compile(r"\b(?:sk|rk|pk)-[A-Za-z0-9_\-]{8,}")  # provider keys an upstream error may echo back



# ----------------------------------------------------------------------------- errors and secrets

class ServeError(Exception):
    """A refused or failed request: HTTP status, OpenAI-style error type and code, and a message for the user."""

    def __init__(self, status: int, message: str, code: str = "invalid_request", kind: str = "",
                 param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.kind = kind or ("invalid_request_error" if status < 500 else "server_error")

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


class BudgetRefused(PoolError):
    """A call refused before it was made because it could cross a USD cap (a PoolError: the episode records it)."""


def secret_values(pool: Pool) -> list[str]:
    """The API keys this process holds for the pool (values of the env vars its specs name), longest first."""
    names = {m.api_key_env for m in pool.models if m.api_key_env}
    values = {os.environ.get(n, "") for n in names}
    return sorted((v for v in values if len(v) >= 4), key=len, reverse=True)


def redact(text: str, secrets: Sequence[str] = ()) -> str:
    """`text` with every known key and anything shaped like a provider key replaced by [redacted]."""
    for s in secrets:
        text = text.replace(s, "[redacted]")
    return _KEY_LIKE.sub("[redacted]", text)


# ----------------------------------------------------------------------------- request parsing

@dataclass(frozen=True)
class ChatRequest:
    """The parts of a chat completion request the server uses."""

    text: str  # the last user message: the query the router routes
    stream: bool = False
    include_usage: bool = False  # stream_options.include_usage: a last chunk carries the usage
    cost_weight: float | None = None  # the request's λ (reward points per USD); None: the server's default


_MISSING = object()
# Fields the server ignores but still type-checks, so a client bug gets a 400 instead of silence.
_NUMBERS = ("temperature", "top_p", "presence_penalty", "frequency_penalty")
_INTEGERS = ("max_tokens", "max_completion_tokens", "n", "seed")


def _type_name(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)


def parse_request(body: bytes, model_name: str) -> ChatRequest:
    """Validate a chat completion body; a ServeError (400, or 404 for an unknown model) naming the problem."""
    try:
        req = json.loads(body)
    except (ValueError, RecursionError):  # bad UTF-8 is a ValueError too
        raise ServeError(400, "the request body is not valid JSON") from None
    if not isinstance(req, dict):
        raise ServeError(400, f"the request body must be a JSON object, got {_type_name(req)}")
    _check_model(req.get("model", _MISSING), model_name)
    text = _last_user_text(req.get("messages", _MISSING))
    _check_options(req)
    options = req.get("stream_options") or {}
    return ChatRequest(text, bool(req.get("stream", False)), bool(options.get("include_usage", False)),
                       _cost_weight(req.get(COST_WEIGHT)))


def _cost_weight(value) -> float | None:
    """The request's cost weight λ: a finite number >= 0 (null or absent: None, the default); else a 400."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ServeError(400, f"'{COST_WEIGHT}' must be a number (reward points per USD, >= 0), got "
                              f"{_type_name(value)}", param=COST_WEIGHT)
    try:
        cost_line(float(value))  # the prompt's own check: finite and >= 0
    except (ValueError, OverflowError):
        raise ServeError(400, f"'{COST_WEIGHT}' must be a finite number >= 0 (reward points per USD), got {value!r}",
                         param=COST_WEIGHT) from None
    return float(value)


def _check_model(model, model_name: str) -> None:
    if model is _MISSING:
        raise ServeError(400, f"missing required field 'model' (use {model_name!r})", param="model")
    if not isinstance(model, str):
        raise ServeError(400, f"'model' must be a string, got {_type_name(model)}", param="model")
    if model != model_name:
        raise ServeError(404, f"model {model[:100]!r} does not exist here; this server serves {model_name!r} "
                              "(GET /v1/models lists it)", code="model_not_found", param="model")


def _last_user_text(messages) -> str:
    """The text of the last user message, after checking every message's shape."""
    if messages is _MISSING:
        raise ServeError(400, "missing required field 'messages'", param="messages")
    if not isinstance(messages, list):
        raise ServeError(400, f"'messages' must be a list of message objects, got {_type_name(messages)}",
                         param="messages")
    if not messages:
        raise ServeError(400, "'messages' is empty: send at least one user message", param="messages")
    texts = [_message_text(m, i) for i, m in enumerate(messages)]
    users = [t for m, t in zip(messages, texts) if m["role"] == "user"]
    if not users:
        raise ServeError(400, "no user message: the router routes the last user message", param="messages")
    if not users[-1].strip():
        raise ServeError(400, "the last user message is empty", param="messages")
    return users[-1]


def _message_text(m, i: int) -> str:
    """One message's text content (string, or a list of text parts); a 400 for any other shape."""
    where = f"messages[{i}]"
    if not isinstance(m, dict):
        raise ServeError(400, f"{where} must be an object with 'role' and 'content', got {_type_name(m)}",
                         param=where)
    if m.get("role") not in ROLES:
        raise ServeError(400, f"{where}.role must be one of {', '.join(ROLES)}, got {str(m.get('role'))[:40]!r}",
                         param=f"{where}.role")
    content = m.get("content")
    if content is None and m["role"] != "user":  # assistant turns that only called tools carry no text
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text"
                                         and isinstance(p.get("text"), str) for p in content):
        return "".join(p["text"] for p in content)
    raise ServeError(400, f"{where}.content must be a string or a list of text parts "
                          f"({{'type': 'text', 'text': ...}}), got {_type_name(content)}", param=f"{where}.content")


def _check_options(req: dict) -> None:
    """Type checks of the optional fields (values are ignored: the router's own settings apply)."""
    def bad(name: str, what: str):
        return ServeError(400, f"'{name}' must be {what}, got {_type_name(req[name])}", param=name)

    if "stream" in req and not isinstance(req["stream"], bool):
        raise bad("stream", "a boolean")
    if req.get("stream_options") is not None and not isinstance(req["stream_options"], dict):
        raise bad("stream_options", "an object")
    for name in _NUMBERS:
        v = req.get(name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise bad(name, "a number")
    for name in _INTEGERS:
        v = req.get(name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise bad(name, "an integer")
    if req.get("n") not in (None, 1):
        raise ServeError(400, "'n' must be 1: one routed answer per request", param="n")


# ----------------------------------------------------------------------------- costs and budgets

def call_bounds(pool: Pool, query: Query, models: Sequence[str], system_prompt: str | None = None,
                extra_tokens: int = 0) -> dict[str, float]:
    """Upper estimates of one call's USD per model: exact on a replay pool, prompt + max output tokens elsewhere."""
    specs = [pool.spec(m) for m in models]
    count = default_count_tokens()
    prompt_tokens = (count(system_prompt) if system_prompt else 0) + extra_tokens
    if isinstance(pool, ReplayPool):  # the recorded cost, plus the system prompt at the input price, as call() bills
        try:
            recorded = pool.outcomes([query.id] * len(specs), [s.id for s in specs])[1]
        except PoolError:
            recorded = [0.0] * len(specs)  # a model without a record fails its call, which bills nothing
        return {s.id: float(usd) + prompt_tokens * s.price_in / 1e6 for s, usd in zip(specs, recorded)}
    if isinstance(pool, LivePool):  # the live pool's own worst case (padded prompt + its max_tokens)
        messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + \
                   [{"role": "user", "content": query.text}]
        return {s.id: pool.estimate_usd(s, messages) + IN_TOKEN_SAFETY * extra_tokens * s.price_in / 1e6 for s in specs}
    n_in = count(query.text) + prompt_tokens
    return {s.id: (n_in * s.price_in + DEFAULT_MAX_TOKENS * s.price_out) / 1e6 for s in specs}


def paid_usd(answer: Answer) -> float:
    """What a call really cost: a live pool's cache hit reports the original call's `usd` but paid nothing."""
    return float(answer.meta.get("paid_usd", answer.usd))


class MeteredPool(Pool):
    """One request's view of the pool: each call is held against the request and server caps, then settled."""

    def __init__(self, pool: Pool, request_cap: float | None, guard: BudgetGuard | None) -> None:
        self.inner, self.models = pool, pool.models
        self.request_cap, self.guard = request_cap, guard
        self.spent = 0.0  # USD settled by this request
        self.held = 0.0  # USD of its calls in flight
        self.pool_s = 0.0  # seconds spent in pool calls, summed over calls
        self._lock = threading.Lock()  # one turn's calls run concurrently

    def spec(self, model_id: str):
        return self.inner.spec(model_id)

    def call(self, model: str, query: Query, system_prompt: str | None = None,
             temperature: float | None = None) -> Answer:
        """The inner pool's answer, or BudgetRefused when its cost bound does not fit a cap."""
        bound = call_bounds(self.inner, query, [model], system_prompt)[model]
        reservation = self._hold(model, bound)
        start = time.perf_counter()
        try:
            answer = self.inner.call(model, query, system_prompt, temperature)
        except PoolError:
            self._settle(bound, reservation, None)  # a failed call bills nothing (LivePool releases its own hold too)
            raise
        except BaseException:
            self._settle(bound, reservation, bound)  # interrupted mid-call: it may have been billed
            raise
        finally:
            with self._lock:
                self.pool_s += time.perf_counter() - start
        self._settle(bound, reservation, paid_usd(answer))
        return answer

    def _hold(self, model: str, bound: float) -> int | None:
        with self._lock:
            if self.request_cap is not None and self.spent + self.held + bound > self.request_cap + 1e-12:
                raise BudgetRefused(f"{model} was not called: the request budget ${self.request_cap:.6f} would be "
                                    f"exceeded (spent ${self.spent:.6f}, in flight ${self.held:.6f}, "
                                    f"this call up to ${bound:.6f})")
            self.held += bound
        if self.guard is None:
            return None
        try:
            return self.guard.reserve(bound, what=model)
        except BudgetExceeded as e:
            with self._lock:
                self.held -= bound
            raise BudgetRefused(f"server budget: {e}") from None

    def _settle(self, bound: float, reservation: int | None, usd: float | None) -> None:
        with self._lock:
            self.held -= bound
            self.spent += usd or 0.0
        if reservation is not None:
            if usd is None:
                self.guard.release(reservation)
            else:
                self.guard.settle(reservation, usd)


# ----------------------------------------------------------------------------- one request, end to end

class _TimedRouter:
    """The router for one request: time spent generating, and the first error (turned into an invalid turn)."""

    def __init__(self, router: Router) -> None:
        self.router, self.seconds, self.error = router, 0.0, ""

    def __call__(self, messages: list, tools: list) -> str:
        start = time.perf_counter()
        try:
            return self.router(messages, tools)
        except Exception as e:  # the user still gets an answer: the episode ends invalid and the server falls back
            self.error = self.error or f"{type(e).__name__}: {e}"
            return ""
        finally:
            self.seconds += time.perf_counter() - start


@dataclass
class Outcome:
    """What answering one request produced: the final text and everything `router_metadata` reports."""

    query: Query
    episode: Episode
    text: str
    strategy: str
    calls: list[dict] = field(default_factory=list)
    fallback_model: str | None = None
    fallback_reason: str = ""
    router_s: float = 0.0
    pool_s: float = 0.0
    latency_s: float = 0.0
    cost_weight: float = DEFAULT_COST_WEIGHT  # the λ this request was routed under
    cost_weight_source: str = "default"  # request | default
    cost_weight_in_prompt: bool = False  # the router was told it (a λ-conditioned router)

    @property
    def usd(self) -> float:
        return sum(c["usd"] for c in self.calls)

    def usage(self) -> dict:
        """OpenAI `usage`: the router's tokens plus every called model's tokens."""
        prompt = self.episode.router_in_tokens + sum(c["in_tokens"] for c in self.calls)
        completion = self.episode.router_out_tokens + sum(c["out_tokens"] for c in self.calls)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def metadata(self) -> dict:
        """The `router_metadata` object of the response."""
        ep = self.episode
        return {"strategy": self.strategy, "ending": ep.ending, "fallback_model": self.fallback_model,
                "fallback_reason": self.fallback_reason or None, "query_id": self.query.id, "mode": ep.mode,
                "turns": ep.turns, "models_called": list(dict.fromkeys(c["model"] for c in self.calls if not c["error"])),
                "calls": self.calls, "router_in_tokens": ep.router_in_tokens,
                "router_out_tokens": ep.router_out_tokens, "total_usd": self.usd,
                "latency_s": round(self.latency_s, 4), "router_s": round(self.router_s, 4),
                "pool_s": round(self.pool_s, 4), "cost_weight": self.cost_weight,
                "cost_weight_source": self.cost_weight_source, "cost_weight_in_prompt": self.cost_weight_in_prompt}


class RouterService:
    """The server without HTTP: find the query, check budgets, run one episode, fall back, account the spend."""

    def __init__(self, router: Router, pool: Pool, *, model_name: str = ROUTER_NAME, mode: str = "agent",
                 max_turns: int = 3, fallback: str | None = None, budget_usd: float | None = None,
                 request_budget_usd: float | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
                 workers: int = DEFAULT_WORKERS, cost_weight: float | None = None, state_lambda: bool = False,
                 tool_result_chars: int | None = None, answer_notes: bool = False) -> None:
        system_prompt(mode, max_turns)  # validates both
        cost_weight = DEFAULT_COST_WEIGHT if cost_weight is None else float(cost_weight)
        cost_line(cost_weight)  # a bad default fails at start: finite and >= 0
        if tool_result_chars is not None and tool_result_chars < 1:
            raise ValueError(f"tool_result_chars must be >= 1 (or None: {MAX_TOOL_RESULT_CHARS}), got {tool_result_chars}")
        for name, cap in (("budget_usd", budget_usd), ("request_budget_usd", request_budget_usd)):
            if cap is not None and not cap >= 0:
                raise ValueError(f"{name} must be a number >= 0 (USD) or None, got {cap!r}")
        if fallback is not None:
            pool.spec(fallback)  # a typo fails at start, not on the first invalid episode
        tool_schemas(pool.models, mode)  # two models sharing a tool name fail here too
        self.router, self.pool, self.model_name = router, pool, model_name
        self.mode, self.max_turns, self.fallback = mode, max_turns, fallback
        self.request_cap, self.timeout_s = request_budget_usd, timeout_s
        # how the router was trained (router.json): told λ in its prompt, tool results clipped, answer notes
        self.cost_weight, self.state_lambda = cost_weight, bool(state_lambda)
        self.tool_result_chars = tool_result_chars or MAX_TOOL_RESULT_CHARS
        self.answer_notes = bool(answer_notes)
        self.guard = BudgetGuard(budget_usd) if budget_usd is not None else None
        self.index = replay_index(pool) if isinstance(pool, ReplayPool) else None
        self.count_tokens = default_count_tokens()
        self.secrets = secret_values(pool)
        self.executor = ThreadPoolExecutor(workers, thread_name_prefix="xrouter-serve")
        self.stats: Counter = Counter()  # answered, fell_back, refused, failed, timeouts
        self.spent_usd = 0.0
        self.started = time.time()
        self._lock = threading.Lock()

    # -- the steps of one request (all run in a worker thread)
    def resolve(self, text: str) -> Query:
        """The query to route: a recorded one by exact text (replay), else a new live query."""
        if self.index is None:
            return Query(f"live/chat/{uuid.uuid4().hex[:12]}", "live", "chat", text)
        query = self.index.get(text)
        if query is None:
            example = next(iter(self.index), "")
            raise ServeError(400, f"query not in the recorded data: this server replays recorded answers, so the "
                                  f"last user message must be the exact text of one of its {len(self.index)} recorded "
                                  f"questions (e.g. {example[:60]!r}...); got {text[:80]!r}",
                             code="query_not_recorded", param="messages")
        return query

    def available(self, query: Query) -> list[str]:
        """Models that can answer the query: on a replay pool, those with a record of it."""
        if self.index is None:
            return self.pool.model_ids
        recorded = self.pool.records(query.id)
        return [m for m in self.pool.model_ids if m in recorded]

    def precheck(self, query: Query, available: list[str]) -> list[str]:
        """The router's models for this request (those whose call fits the request cap); 429 when a cap is hit."""
        bounds = call_bounds(self.pool, query, available, extra_tokens=SYSTEM_PROMPT_ALLOWANCE)
        allowed = available
        if self.request_cap is not None:
            allowed = [m for m in available if bounds[m] <= self.request_cap]
            if not allowed:
                cheapest = min(bounds, key=bounds.get)
                raise ServeError(429, f"request budget ${self.request_cap:.6f} is below the cheapest plausible call "
                                      f"for this query ({cheapest}, up to ${bounds[cheapest]:.6f})",
                                 code="request_budget_exceeded", kind="insufficient_quota")
        if self.guard is not None:
            worst = max(allowed, key=bounds.get)
            left = self.guard.remaining
            if left < bounds[worst]:
                raise ServeError(429, f"server budget exhausted: ${max(left, 0):.6f} of ${self.guard.cap_usd:.6f} left, "
                                      f"and this query's most expensive plausible call ({worst}) costs up to "
                                      f"${bounds[worst]:.6f}; restart with a larger --budget-usd",
                                 code="budget_exhausted", kind="insufficient_quota")
        return allowed

    def answer(self, text: str, cost_weight: float | None = None) -> Outcome:
        """Route one query under the cost weight λ (None: the default): the episode's answer, or the fallback
        model's when the episode ends invalid."""
        start = time.perf_counter()
        query = self.resolve(text)
        available = self.available(query)
        allowed = self.precheck(query, available)
        lam, source = (self.cost_weight, "default") if cost_weight is None else (float(cost_weight), "request")
        meter, router = MeteredPool(self.pool, self.request_cap, self.guard), _TimedRouter(self.router)
        try:
            ep = run_episode(router, query, meter, allowed, self.mode, self.max_turns, reward_cfg=RewardConfig(lam=lam),
                             grader=_no_grade, count_tokens=self.count_tokens, max_tool_chars=self.tool_result_chars,
                             answer_notes=self.answer_notes, state_lambda=self.state_lambda)
            calls = [self._call_record(c.model, c.turn, c, c.error) for c in ep.calls]
            out = Outcome(query, ep, ep.final or "", ep.ending, calls,  # an invalid ending is replaced by "fell back"
                          cost_weight=lam, cost_weight_source=source, cost_weight_in_prompt=self.state_lambda)
            if router.error:
                ep.invalid_reason = f"router error: {router.error}"
                log.warning("router raised on %s: %s", query.id, redact(router.error, self.secrets))
            if ep.invalid:
                self._fall_back(out, meter, available)
        finally:
            with self._lock:
                self.spent_usd += meter.spent  # refused and failed requests may have spent too
        out.router_s, out.pool_s, out.latency_s = router.seconds, meter.pool_s, time.perf_counter() - start
        return out

    def _fall_back(self, out: Outcome, meter: MeteredPool, available: list[str]) -> None:
        """Answer with the fallback model; 429 if it does not fit a budget, 502 if the pool fails it too."""
        model = self.fallback if self.fallback in available else min(
            available, key=lambda m: blended_price(self.pool.spec(m).price_in, self.pool.spec(m).price_out))
        reason = redact(out.episode.invalid_reason, self.secrets)
        try:
            answer = meter.call(model, out.query)
        except BudgetRefused as e:
            raise ServeError(429, f"the router's episode ended invalid ({reason}) and the fallback model {model} "
                                  f"was refused: {redact(str(e), self.secrets)}",
                             code="budget_exhausted", kind="insufficient_quota") from None
        except PoolError as e:
            raise ServeError(502, f"the pool failed: the router's episode ended invalid ({reason}) and the fallback "
                                  f"model {model} failed too: {redact(str(e), self.secrets)}",
                             code="pool_error", kind="upstream_error") from None
        out.calls.append(self._call_record(model, None, answer, "", fallback=True))
        out.text, out.strategy, out.fallback_model, out.fallback_reason = answer.text, "fell back", model, reason

    def _call_record(self, model: str, turn: int | None, c, error: str, fallback: bool = False) -> dict:
        return {"model": model, "turn": turn, "in_tokens": c.in_tokens, "out_tokens": c.out_tokens,
                "usd": c.usd, "cached": c.cached, "error": redact(error, self.secrets), "fallback": fallback}

    # -- the async side
    async def run(self, text: str, cost_weight: float | None = None) -> Outcome:
        """`answer` in the worker pool (the event loop stays free), bounded by the request timeout."""
        future = asyncio.get_running_loop().run_in_executor(self.executor, self.answer, text, cost_weight)
        try:
            return await asyncio.wait_for(future, self.timeout_s)
        except TimeoutError:
            self.count("timeouts")
            raise ServeError(504, f"no answer within {self.timeout_s:g} s; the episode keeps running in the background "
                                  "and its spend is still accounted (raise --timeout, or retry later)",
                             code="timeout", kind="timeout_error") from None

    def count(self, what: str) -> None:
        with self._lock:
            self.stats[what] += 1

    def health(self) -> dict:
        """Status, settings, counters and spend for GET /health."""
        with self._lock:
            stats, spent = dict(self.stats), self.spent_usd
        budget = {"cap_usd": None, "spent_usd": round(spent, 8), "remaining_usd": None}
        if self.guard is not None:
            budget.update(cap_usd=self.guard.cap_usd, remaining_usd=round(max(self.guard.remaining, 0.0), 8))
        return {"status": "ok", "model": self.model_name, "mode": self.mode, "max_turns": self.max_turns,
                "cost_weight": self.cost_weight, "cost_weight_in_prompt": self.state_lambda,
                "tool_result_chars": self.tool_result_chars, "answer_notes": self.answer_notes,
                "pool": type(self.pool).__name__, "pool_models": len(self.pool.models),
                "recorded_queries": len(self.index) if self.index is not None else None,
                "request_budget_usd": self.request_cap, "budget": budget, "requests": stats,
                "uptime_s": round(time.time() - self.started, 1)}

    def close(self) -> None:
        """Stop accepting work; episodes still running finish in the background."""
        self.executor.shutdown(wait=False, cancel_futures=True)


def _no_grade(query: Query, text: str) -> float:
    """Serving does not grade answers (the client may, with grading.grade_final)."""
    return 0.0


def replay_index(pool: ReplayPool) -> dict[str, Query]:
    """Recorded question text -> Query, for exact-text lookup (the first query of a repeated text wins)."""
    index: dict[str, Query] = {}
    for q in pool.queries():
        index.setdefault(q.text, q)
    return index


# ----------------------------------------------------------------------------- HTTP

def create_app(router: Router, pool: Pool, *, model_name: str = ROUTER_NAME, mode: str = "agent",
               max_turns: int = 3, fallback: str | None = None, budget_usd: float | None = None,
               request_budget_usd: float | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
               max_body_bytes: int = MAX_BODY_BYTES, workers: int = DEFAULT_WORKERS, cost_weight: float | None = None,
               state_lambda: bool = False, tool_result_chars: int | None = None, answer_notes: bool = False):
    """The FastAPI app: POST /v1/chat/completions, GET /v1/models, GET /health (`app.state.service` holds the logic).

    Pass what router.json says of the router (`service_options(info)` does): `cost_weight` its default λ,
    `state_lambda` its `lambda_in_prompt`, `tool_result_chars` and `answer_notes` as it was trained.
    """
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.exceptions import HTTPException

    service = RouterService(router, pool, model_name=model_name, mode=mode, max_turns=max_turns, fallback=fallback,
                            budget_usd=budget_usd, request_budget_usd=request_budget_usd, timeout_s=timeout_s,
                            workers=workers, cost_weight=cost_weight, state_lambda=state_lambda,
                            tool_result_chars=tool_result_chars, answer_notes=answer_notes)

    @asynccontextmanager
    async def lifespan(app):
        yield
        service.close()

    app = FastAPI(title="xrouter-lite", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.service = service

    @app.exception_handler(ServeError)
    async def serve_error(request: Request, e: ServeError):
        service.count("refused" if e.status < 500 else "failed")
        log.info("%s %s -> %d %s", request.method, request.url.path, e.status, e.message[:300])
        return JSONResponse(e.body(), status_code=e.status, headers={"x-should-retry": "false"})

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException):  # unknown routes and methods, in OpenAI's shape
        return await serve_error(request, ServeError(e.status_code, f"{request.method} {request.url.path}: {e.detail}",
                                                     code="not_found" if e.status_code == 404 else "bad_request"))

    @app.get("/health")
    async def health():
        return service.health()

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": service.model_name, "object": "model",
                                            "created": int(service.started), "owned_by": "xrouter-lite"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        req = parse_request(await read_body(request, max_body_bytes), service.model_name)
        try:
            out = await service.run(req.text, req.cost_weight)
        except ServeError:
            raise
        except Exception as e:  # a bug or a crashed pool: a 500 with a message, never a dead server
            log.error("request failed:\n%s", redact("".join(traceback.format_exception(e)), service.secrets))
            raise ServeError(500, f"internal error: {type(e).__name__}: {redact(str(e), service.secrets)}",
                             code="internal_error") from None
        service.count("fell_back" if out.strategy == "fell back" else "answered")
        rid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        log.info("%s %s %s $%.6f %.2fs", rid, out.query.id, out.strategy, out.usd, out.latency_s)
        headers = {"x-request-id": rid}
        if req.stream:
            return StreamingResponse(sse_events(rid, created, service.model_name, out, req.include_usage),
                                     media_type="text/event-stream", headers=headers)
        return JSONResponse(completion(rid, created, service.model_name, out), headers=headers)

    return app


async def read_body(request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body; a 413 once it passes `limit` (the rest is drained so the client can read the 413)."""
    declared = request.headers.get("content-length", "")
    too_big = declared.isdigit() and int(declared) > limit
    if too_big and int(declared) > DRAIN_BYTES:  # not worth reading: answer now, the connection closes
        raise ServeError(413, _too_large(int(declared), limit), code="request_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        elif size > DRAIN_BYTES:
            break
    if size > limit:
        raise ServeError(413, _too_large(int(declared) if too_big else size, limit), code="request_too_large")
    return b"".join(chunks)


def _too_large(size: int, limit: int) -> str:
    return f"request body is {size:,} bytes; this server accepts up to {limit:,} bytes: send a shorter prompt"


def completion(rid: str, created: int, model: str, out: Outcome) -> dict:
    """A chat.completion object for one routed answer, with `router_metadata`."""
    return {"id": rid, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": out.text},
                         "finish_reason": "stop", "logprobs": None}],
            "usage": out.usage(), "router_metadata": out.metadata()}


def sse_events(rid: str, created: int, model: str, out: Outcome, include_usage: bool = False) -> Iterator[str]:
    """The answer as OpenAI chat.completion.chunk server-sent events; the last chunk carries `router_metadata`."""
    base = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model}

    def event(choices: list, **extra) -> str:
        return f"data: {json.dumps({**base, 'choices': choices, **extra}, ensure_ascii=False)}\n\n"

    yield event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
    for piece in text_pieces(out.text):
        yield event([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
    yield event([{"index": 0, "delta": {}, "finish_reason": "stop"}], router_metadata=out.metadata())
    if include_usage:
        yield event([], usage=out.usage())
    yield "data: [DONE]\n\n"


def text_pieces(text: str, words: int = 4) -> list[str]:
    """`text` cut into chunks of a few words that join back to it exactly (the answer exists whole already)."""
    parts = re.split(r"(?<=\s)(?=\S)", text) if text else []
    return ["".join(parts[i:i + words]) for i in range(0, len(parts), words)]


class BackgroundServer:
    """Serve an app with uvicorn from a daemon thread on 127.0.0.1 (notebooks, tests, benchmarks); `with` stops it."""

    def __init__(self, app, port: int = 0, host: str = "127.0.0.1", log_level: str = "warning") -> None:
        self.app, self.host, self.port, self.log_level = app, host, port, log_level
        self.server = self.thread = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What the openai client takes as `base_url`."""
        return f"{self.url}/v1"

    def start(self, timeout_s: float = 30.0) -> "BackgroundServer":
        """Bind (port 0 = a free one), start serving, and wait until /health answers."""
        import uvicorn

        # proto=IPPROTO_TCP matters: asyncio enables TCP_NODELAY only on sockets that say so, and without it a
        # keep-alive client (the openai client) waits ~40 ms per reply for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))  # bound here, so the port is known before uvicorn starts
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level=self.log_level, timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True,
                                       name=f"uvicorn-{self.port}")
        self.thread.start()
        wait_for_health(self.url, timeout_s, alive=self.thread.is_alive)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask uvicorn to exit, and wait for its thread."""
        if self.server is None:
            return
        self.server.should_exit = True
        self.thread.join(timeout_s)
        if self.thread.is_alive():  # requests still running past the grace period
            self.server.force_exit = True
            self.thread.join(timeout_s)

    def __enter__(self) -> "BackgroundServer":
        return self.start() if self.server is None else self

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_for_health(url: str, timeout_s: float = 30.0, alive: Callable[[], bool] = lambda: True) -> dict:
    """Poll GET <url>/health until it answers 200; a RuntimeError after `timeout_s` or if `alive()` turns False."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"the server at {url} stopped before it answered /health")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                return json.loads(r.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    raise RuntimeError(f"no answer from {url}/health within {timeout_s:g} s")


# ----------------------------------------------------------------------------- checkpoints, pools and the CLI

def find_router(path: str | os.PathLike) -> Path | None:
    """The checkpoint to serve: `path` if it holds one, else <path>/artifacts/router_grpo, then router_sft."""
    p = Path(path).expanduser()
    for c in (p, *(p / "artifacts" / d for d in ROUTER_DIRS), *(p / d for d in ROUTER_DIRS)):
        if (c / "config.json").is_file() or (c / "adapter_config.json").is_file():
            return c
    return None


def read_router_info(checkpoint: str | os.PathLike) -> dict:
    """The checkpoint's router.json (mode, max_turns, base, stage, lambda, lambda_in_prompt, tool_result_chars,
    answer_notes, ...), or {} when it has none."""
    path = Path(checkpoint) / "router.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def service_options(info: dict) -> dict:
    """`create_app` keywords from a router.json: mode, max_turns, and how the router was trained to read (its
    default cost weight `lambda`, whether it is told λ, `tool_result_chars`, `answer_notes`)."""
    lam = info.get("lambda")
    return {"mode": info.get("mode", "agent"), "max_turns": info.get("max_turns", 3),
            "cost_weight": DEFAULT_COST_WEIGHT if lam is None else float(lam),
            "state_lambda": bool(info.get("lambda_in_prompt", False)),
            "tool_result_chars": info.get("tool_result_chars") or None,
            "answer_notes": bool(info.get("answer_notes", False))}


def build_placeholder_router(pool: Pool, out_dir: str | os.PathLike, questions: Sequence[str] = (),
                             mode: str = "agent", max_turns: int = 3, hidden_size: int = 64, layers: int = 2) -> Path:
    """An UNTRAINED tiny router (random weights) for when no trained checkpoint exists; its turns are invalid."""
    from xrouter_lite.training.modeling import build_tiny_router

    # The tokenizer learns the router's own prompt (system prompt + tool schemas), so prompts stay short.
    texts = [system_prompt(mode, max_turns), json.dumps(tool_schemas(pool.models, mode))] * 4 + list(questions)
    out = Path(out_dir)
    build_tiny_router(texts, out, vocab_size=2048, hidden_size=hidden_size, layers=layers, heads=2)
    info = {"mode": mode, "max_turns": max_turns, "base": "tiny", "stage": "untrained", "lambda": None}
    (out / "router.json").write_text(json.dumps(info, indent=2) + "\n")
    return out


def load_replay_table(data: str | os.PathLike | None, sources: Sequence[str] = ("zeroeval",)):
    """A tidy table: a .parquet/.csv file (e.g. a live recording), else `load_table` of a data directory."""
    import pandas as pd

    path = Path(data) if data else None
    if path is not None and path.suffix in (".parquet", ".csv"):
        if not path.is_file():
            raise FileNotFoundError(f"tidy table {path} does not exist")
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        text = {c: str for c in ("query_id", "source", "task", "category", "question", "gold", "model", "response")}
        table = pd.read_csv(path, keep_default_na=False, dtype=text)
        return table.assign(gold=table["gold"].map(lambda g: g if g != "" else None))
    from xrouter_lite.pool.table import load_table

    return load_table(data, sources=list(sources), progress=sys.stderr.isatty())


def open_pool(pool: str, data: str | None = None, sources: Sequence[str] = ("zeroeval",),
              cache: str | None = None) -> Pool:
    """'replay' -> a ReplayPool of the recorded table; a YAML path -> a LivePool (the server keeps the budget)."""
    if pool == "replay":
        return ReplayPool(load_replay_table(data, sources))
    from xrouter_lite.pool.cache import ResponseCache
    from xrouter_lite.pool.config import load_pool_config

    return LivePool(load_pool_config(pool), ResponseCache(cache) if cache else None, budget=None)


def app_from_args(args):
    """The app the `serve` command runs: router checkpoint + router.json settings + pool."""
    checkpoint = find_router(args.router)
    if checkpoint is None:
        raise FileNotFoundError(f"no router checkpoint in {args.router}: expected artifacts/router_grpo or "
                                "artifacts/router_sft (notebooks 02 and 03 write them), or a checkpoint directory")
    info = read_router_info(checkpoint)
    pool = open_pool(args.pool, args.data, [s.strip() for s in args.sources.split(",") if s.strip()], args.cache)
    from xrouter_lite.training.lm_router import LMRouter  # torch loads only once the checkpoint and pool are known good
    from xrouter_lite.training.modeling import load_saved_router

    model, tokenizer = load_saved_router(checkpoint, device=args.device)  # whole, or a 4-bit base + its adapter
    print(f"router: {checkpoint} ({info.get('stage', 'unknown stage')}); pool: {type(pool).__name__} of "
          f"{len(pool.models)} models", file=sys.stderr)
    options = service_options(info)
    cli_weight = getattr(args, "cost_weight", None)
    if cli_weight is not None and not (math.isfinite(cli_weight) and cli_weight >= 0):
        raise ValueError(f"--cost-weight must be a finite number >= 0 (reward points per USD), got {cli_weight}")
    options.update({k: v for k, v in (("mode", args.mode), ("max_turns", args.max_turns),
                                      ("cost_weight", getattr(args, "cost_weight", None))) if v is not None})
    told = "told λ in its prompt" if options["state_lambda"] else "not trained with a stated λ: cost_weight is reported only"
    print(f"cost weight: {options['cost_weight']:g} per USD by default ({told}); tool results clipped to "
          f"{options['tool_result_chars'] or MAX_TOOL_RESULT_CHARS} chars, answer notes "
          f"{'on' if options['answer_notes'] else 'off'}", file=sys.stderr)
    return create_app(LMRouter(model, tokenizer, max_new_tokens=args.max_new_tokens), pool,
                      model_name=args.model_name, fallback=args.fallback, budget_usd=args.budget_usd,
                      request_budget_usd=args.request_budget_usd, timeout_s=args.timeout, **options)


def serve_command(args) -> int:
    """CLI `python -m xrouter_lite serve`: load the router and the pool, then serve until Ctrl-C."""
    import uvicorn

    try:
        app = app_from_args(args)
    except (FileNotFoundError, ValueError, PoolError) as e:  # missing data/checkpoint, bad config, unset API key
        print(f"serve: {e}", file=sys.stderr)
        return 2
    print(f"serving {args.model_name!r} at http://{args.host}:{args.port}/v1 (Ctrl-C stops)", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m xrouter_lite.serve ...`: `python -m xrouter_lite serve ...`, whose parser holds the options."""
    from xrouter_lite.__main__ import main as cli

    return cli(["serve", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
