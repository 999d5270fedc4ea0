"""The server without HTTP: one request, end to end, under the USD caps.

`RouterService` finds the query (a recorded one by exact text on a replay pool), checks the budgets, runs one
routing episode through a `MeteredPool` (each call held against the per-request and per-process caps, then settled
at what was paid: `paid_usd`), falls back when the episode ends invalid, and returns an `Outcome` (the answer and
everything `router_metadata` reports). `call_bounds` is the upper cost estimate of one call that the caps use.
"""

import asyncio
import logging
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Sequence

from xrouter_lite.pool.core import Answer, Pool, PoolError, Query, ReplayPool, blended_price
from xrouter_lite.pool.budget import BudgetExceeded, BudgetGuard
from xrouter_lite.pool.live import IN_TOKEN_SAFETY, LivePool
from xrouter_lite.routing.episode import Episode, Router, default_count_tokens, run_episode
from xrouter_lite.routing.protocol import MAX_TOOL_RESULT_CHARS, cost_line, system_prompt, tool_schemas
from xrouter_lite.routing.reward import RewardConfig
from xrouter_lite.serve.request import ServeError, redact, secret_values

log = logging.getLogger(__name__)

ROUTER_NAME = "xrouter-lite"  # what clients put in `model`; --model-name changes it
DEFAULT_TIMEOUT_S = 60.0  # per request; raise it for slow live pools or a large router on a CPU
DEFAULT_WORKERS = 32  # episodes running at once; LMRouter batches their generations together
SYSTEM_PROMPT_ALLOWANCE = 256  # tokens the router may write as a system prompt, in the pre-episode estimate
DEFAULT_MAX_TOKENS = 1024  # output tokens assumed by the cost bound of a pool with no estimate of its own
DEFAULT_COST_WEIGHT = 10.0  # λ when neither the request nor router.json gives one (the profiles' training λ)


# ----------------------------------------------------------------------------- costs and budgets

class BudgetRefused(PoolError):
    """A call refused before it was made because it could cross a USD cap (a PoolError: the episode records it)."""


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
