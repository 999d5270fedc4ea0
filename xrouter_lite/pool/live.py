"""The live pool: real OpenAI-compatible endpoints behind the `Pool` interface, cached and budgeted.

Every call goes through the official `openai` client (one per endpoint, its own retries off so ours
are the only ones), waits for a slot of its endpoint, retries 429/5xx/timeouts with exponential
backoff and jitter (honouring `Retry-After`), and is charged at the spec's prices from the usage the
server reports. A `ResponseCache` answers a repeated call without paying again (`cached=True`,
`meta["paid_usd"] == 0.0`), but its `usd` stays what the original call cost, so rewards and evaluations on a
live pool count what the same calls cost (`charge_cache_hits=False` reports hits at $0 instead); a
`BudgetGuard` refuses a call before it is sent when its worst case would cross the cap.
API keys are read from the environment variable each spec names, and stored nowhere.

`BudgetGuard` is in `budget`, `load_pool_config` in `config`, and `record` (a tidy table from live calls) in
`recording`.

With keys in the environment (`export OPENAI_API_KEY=...`):

    >>> from xrouter_lite.pool.live import LivePool
    >>> from xrouter_lite.pool.budget import BudgetGuard
    >>> from xrouter_lite.pool.cache import ResponseCache
    >>> from xrouter_lite.pool.config import load_pool_config
    >>> from xrouter_lite.pool.core import Query
    >>> from xrouter_lite.profiles import example_pool_config, resolve_cache_dir
    >>> specs = [s for s in load_pool_config(example_pool_config()) if s.provider == "openai"]  # doctest: +SKIP
    >>> pool = LivePool(specs, ResponseCache(resolve_cache_dir() / "responses.sqlite"), BudgetGuard(1.00))  # doctest: +SKIP
    >>> a = pool.call("gpt-4o-mini-2024-07-18", Query("demo/add/1", "live", "add", "What is 2+2?"))  # doctest: +SKIP
    >>> a.text, a.cached                                                              # doctest: +SKIP
    ('2 + 2 = 4.', False)
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import os
import random
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Mapping, Sequence

from xrouter_lite.pool.budget import BudgetGuard
from xrouter_lite.pool.cache import ResponseCache
from xrouter_lite.pool.core import Answer, ModelSpec, Pool, PoolError, Query

log = logging.getLogger(__name__)

RETRY_STATUSES = {408, 409, 429, 500, 502, 503, 504}  # transient by HTTP semantics; other 4xx are our fault
IN_TOKEN_SAFETY = 1.25  # the budget over-estimates prompt tokens by this factor: tokenizers differ
MESSAGE_OVERHEAD_TOKENS = 4  # role and format tokens a chat template adds per message


class LivePoolError(PoolError):
    """A live call that failed for good (after retries, or on a non-retryable status); names model and endpoint.

    A `PoolError`, so an episode records it as a failed call instead of crashing.
    """


# ----------------------------------------------------------------------------- token estimate

_count_fn: Callable[[str], int] | None = None


def _count_tokens(text: str) -> int:
    """Token estimate: the project's `xrouter_lite.pool.tokens.count_tokens` when it exists, else ~4 chars per token."""
    global _count_fn
    if _count_fn is None:
        try:
            from xrouter_lite.pool.tokens import count_tokens as project_count  # lazily: tokens.py pulls in numpy
            _count_fn = project_count
        except ImportError:
            _count_fn = lambda t: math.ceil(len(t) / 4)  # noqa: E731
    return int(_count_fn(text or ""))


def _prompt_tokens(messages: Sequence[Mapping]) -> int:
    """Estimated prompt tokens of a chat: contents plus the per-message template overhead."""
    return sum(_count_tokens(m.get("content") or "") + MESSAGE_OVERHEAD_TOKENS for m in messages)


# ----------------------------------------------------------------------------- retries

def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """Seconds a server asked us to wait: `retry-after-ms`, or `Retry-After` as seconds or an HTTP-date."""
    if not headers:
        return None
    try:
        if headers.get("retry-after-ms"):
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
    except ValueError:
        pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None  # unparsable: fall back to our own backoff


class _BadResponse(Exception):
    """A 2xx reply we cannot use (malformed JSON, an error body, no message); retried like a 5xx."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


@dataclass(frozen=True)
class _Reply:
    """What one successful HTTP exchange gave us."""

    text: str
    in_tokens: int
    out_tokens: int
    usage_estimated: bool
    finish_reason: str | None
    reasoning_tokens: int
    latency_s: float = 0.0
    attempts: int = 1


def _parse_reply(status: int, body: str, messages: list[dict]) -> _Reply:
    """The answer and its usage from a chat completion body, or _BadResponse."""
    try:
        data = json.loads(body)
    except ValueError:
        raise _BadResponse(status, f"malformed JSON in the response body: {body[:120]!r}") from None
    if not isinstance(data, dict):
        raise _BadResponse(status, f"response body is not a JSON object: {body[:120]!r}")
    if data.get("error") and not data.get("choices"):
        err = data["error"]
        raise _BadResponse(status, f"error body: {err.get('message', err) if isinstance(err, dict) else err}")
    try:
        choice = data["choices"][0]
        text = choice["message"].get("content") or ""  # None when the model refused or only called tools
    except (KeyError, IndexError, TypeError, AttributeError):
        raise _BadResponse(status, f"no choices[0].message in the response body: {body[:120]!r}") from None
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    n_in, n_out = usage.get("prompt_tokens"), usage.get("completion_tokens")
    estimated = not (isinstance(n_in, int) and isinstance(n_out, int))
    if estimated:  # some local servers omit usage; never silently charge 0
        n_in, n_out = _prompt_tokens(messages), _count_tokens(text)
    details = usage.get("completion_tokens_details") or {}
    return _Reply(text, n_in, n_out, estimated, choice.get("finish_reason"), int(details.get("reasoning_tokens") or 0))


# ----------------------------------------------------------------------------- the pool

class LivePool(Pool):
    """A `Pool` answered by OpenAI-compatible endpoints, with per-endpoint concurrency, retries, cache and budget."""

    def __init__(self, specs: Iterable[ModelSpec],
                 cache: ResponseCache | None = None,  # None: every call is paid, nothing is kept
                 budget: BudgetGuard | None = None,  # None: no cap (only sensible for free local servers)
                 max_tokens: int = 1024,  # output cap per call; also sizes the budget reservation
                 timeout: float = 60,  # seconds per attempt; raise it for slow reasoning models
                 max_retries: int = 5,  # retries after the first attempt, on 408/409/429/5xx/timeouts/bad bodies
                 concurrency_per_endpoint: int = 4,  # calls in flight per base_url; lower it on 429 storms
                 *,
                 backoff_base: float = 0.5,  # first retry waits ~this many seconds, doubling each time
                 backoff_max: float = 30.0,  # cap of one backoff wait
                 max_retry_after: float = 120.0,  # a longer Retry-After fails the call instead of stalling
                 charge_cache_hits: bool = True) -> None:  # False: a cache hit's Answer.usd is 0 (what was paid)
        self.models = list(specs)
        self.cache, self.budget = cache, budget
        self.max_tokens, self.timeout, self.max_retries = max_tokens, timeout, max_retries
        self.backoff_base, self.backoff_max, self.max_retry_after = backoff_base, backoff_max, max_retry_after
        # Episodes reward and evaluations compare Answer.usd: a hit charged at $0 would make a cached live pool look
        # cheaper than the same calls are, so by default a hit costs what the original call cost (meta: paid_usd 0).
        self.charge_cache_hits = charge_cache_hits
        self._check_specs()
        import openai  # here, not at the top: it takes seconds to import, and budget/config users never need it

        self._clients: dict[tuple, openai.OpenAI] = {}
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        for s in self.models:
            if (s.base_url, s.api_key_env) not in self._clients:
                # max_retries=0: the client's own retries would hide attempts from our backoff, budget and tests
                key = os.environ[s.api_key_env] if s.api_key_env else "no-key"  # local servers ignore it
                self._clients[(s.base_url, s.api_key_env)] = openai.OpenAI(
                    api_key=key, base_url=s.base_url, timeout=timeout, max_retries=0)
            self._slots.setdefault(s.base_url, threading.BoundedSemaphore(concurrency_per_endpoint))
        self._inflight: dict[str, list] = {}  # cache key -> [lock, waiters]: one paid call per request
        self._guard = threading.Lock()
        self.stats: Counter = Counter()  # cache_hits, paid, retries, failed

    def _check_specs(self) -> None:
        """Every spec has an endpoint, ids are unique, and every named API-key variable is set."""
        ids = [s.id for s in self.models]
        if not ids or len(set(ids)) != len(ids):
            raise ValueError(f"LivePool needs at least one model and unique ids; got {ids}")
        no_url = [s.id for s in self.models if not s.base_url]
        if no_url:
            raise ValueError(f"LivePool: models without base_url (replay specs?): {', '.join(no_url)}")
        missing = sorted({s.api_key_env for s in self.models if s.api_key_env and not os.environ.get(s.api_key_env)})
        if missing:
            users = {v: [s.id for s in self.models if s.api_key_env == v] for v in missing}
            raise LivePoolError("API key not set: " + "; ".join(
                f"environment variable {v} is unset or empty (needed by {', '.join(users[v])})" for v in missing)
                + ". Export it (e.g. `export " + missing[0] + "=...`) or drop those models from the pool.")

    def _count(self, what: str, n: int = 1) -> None:
        with self._guard:
            self.stats[what] += n

    @staticmethod
    def _endpoint_model(spec: ModelSpec) -> str:
        """What answers the request, for the cache key: the provider's model at its endpoint."""
        return f"{spec.model_name or spec.id}@{spec.base_url}"

    def estimate_usd(self, spec: ModelSpec, messages: list[dict]) -> float:
        """Worst-case cost of one call: padded prompt estimate + max_tokens, at the spec's prices."""
        n_in = math.ceil(IN_TOKEN_SAFETY * _prompt_tokens(messages))
        return n_in * spec.price_in / 1e6 + self.max_tokens * spec.price_out / 1e6

    def call(self, model: str, query: Query, system_prompt: str | None = None,
             temperature: float | None = None) -> Answer:
        """Ask `model` the query: from the cache if asked before (nothing paid; `usd` is the original call's cost
        unless `charge_cache_hits` is False), else from its endpoint."""
        spec = self.spec(model)
        messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + \
                   [{"role": "user", "content": query.text}]
        settings = {"temperature": temperature, "max_tokens": self.max_tokens}
        key = ResponseCache.key(self._endpoint_model(spec), messages, settings)
        if self.cache is None:
            return self._paid_call(spec, messages, temperature, key)
        hit = self.cache.get(key)
        if hit is None:
            with self._single_flight(key):  # concurrent identical requests: the first pays, the rest then hit
                hit = self.cache.get(key)
                if hit is None:
                    return self._paid_call(spec, messages, temperature, key)
        self._count("cache_hits")
        return Answer(hit.text, hit.in_tokens, hit.out_tokens, hit.usd if self.charge_cache_hits else 0.0,
                      cached=True, model=spec.id,
                      meta={**hit.meta, "original_usd": hit.usd, "paid_usd": 0.0, "latency_s": hit.latency_s,
                            "created": hit.created, "cache_key": key})

    @contextmanager
    def _single_flight(self, key: str):
        with self._guard:
            entry = self._inflight.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._guard:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._inflight[key]

    def _paid_call(self, spec: ModelSpec, messages: list[dict], temperature: float | None, key: str) -> Answer:
        """Reserve the worst case, send with retries, cache the answer, settle the actual cost."""
        estimate = self.estimate_usd(spec, messages)
        rid = self.budget.reserve(estimate, what=f"{spec.id} (≤{self.max_tokens} output tokens)") if self.budget else None
        try:
            reply = self._send(spec, messages, temperature)
        except LivePoolError:
            if rid is not None:
                self.budget.release(rid)  # every attempt failed: nothing was billed
            self._count("failed")
            raise
        except BaseException:
            if rid is not None:
                self.budget.settle(rid, estimate)  # interrupted mid-request: it may have been billed
            raise
        usd = reply.in_tokens * spec.price_in / 1e6 + reply.out_tokens * spec.price_out / 1e6
        meta = {"usage_estimated": reply.usage_estimated, "latency_s": reply.latency_s, "attempts": reply.attempts,
                "finish_reason": reply.finish_reason, "reasoning_tokens": reply.reasoning_tokens,
                "endpoint": spec.base_url, "model_name": spec.model_name or spec.id}
        try:
            if self.cache is not None:  # cache first: a crash before settling is charged at the reservation
                self.cache.put(key, spec.id, reply.text, reply.in_tokens, reply.out_tokens, usd, reply.latency_s,
                               request={"model": self._endpoint_model(spec), "messages": messages,
                                        "settings": {"temperature": temperature, "max_tokens": self.max_tokens}},
                               meta=meta)
        finally:
            if rid is not None:
                self.budget.settle(rid, usd)
        self._count("paid")
        return Answer(reply.text, reply.in_tokens, reply.out_tokens, usd, cached=False, model=spec.id,
                      meta={**meta, "paid_usd": usd, "cache_key": key})

    def _where(self, spec: ModelSpec) -> str:
        return f"model {spec.id!r} ({spec.model_name or spec.id}) at {spec.base_url}"

    def _request_kwargs(self, spec: ModelSpec, messages: list[dict], temperature: float | None) -> dict:
        kwargs = {"model": spec.model_name or spec.id, "messages": messages}
        # OpenAI's reasoning models reject `max_tokens`; other servers (vLLM, Ollama, Together) know only it
        kwargs["max_completion_tokens" if spec.provider == "openai" else "max_tokens"] = self.max_tokens
        if temperature is not None:
            kwargs["temperature"] = temperature
        return kwargs

    def _send(self, spec: ModelSpec, messages: list[dict], temperature: float | None) -> _Reply:
        """One successful reply, after at most 1 + max_retries attempts; else LivePoolError."""
        import openai

        client = self._clients[(spec.base_url, spec.api_key_env)]
        kwargs = self._request_kwargs(spec, messages, temperature)
        attempts = self.max_retries + 1
        for attempt in range(1, attempts + 1):
            t0 = time.monotonic()
            headers = None
            try:
                with self._slots[spec.base_url]:  # held per attempt: a backoff sleep frees the slot
                    raw = client.chat.completions.with_raw_response.create(**kwargs)
                reply = _parse_reply(raw.status_code, raw.text, messages)
                return replace(reply, latency_s=time.monotonic() - t0, attempts=attempt)
            except openai.APIStatusError as e:
                detail = e.body.get("message", e.message) if isinstance(e.body, dict) else e.message
                status, headers = e.status_code, e.response.headers
                if status not in RETRY_STATUSES:
                    hint = f" (check ${spec.api_key_env})" if status in (401, 403) and spec.api_key_env else ""
                    raise LivePoolError(f"{self._where(spec)}: HTTP {status}{hint}: {detail}") from None
                last = f"HTTP {status}: {detail}"
            except openai.APITimeoutError:
                last = f"no response within timeout={self.timeout} s"
            except openai.APIConnectionError as e:
                last = f"connection error: {e.__cause__ or e}"
            except _BadResponse as e:
                last = f"HTTP {e.status}: {e.detail}"
            if attempt == attempts:
                break
            delay = self._backoff(spec, attempt, headers)
            self._count("retries")
            log.warning("%s: %s; retry %d/%d in %.2f s", self._where(spec), last, attempt, self.max_retries, delay)
            time.sleep(delay)
        raise LivePoolError(f"{self._where(spec)}: failed after {attempts} attempt{'s' * (attempts > 1)}; last: {last}")

    def _backoff(self, spec: ModelSpec, attempt: int, headers) -> float:
        """Seconds before the next attempt: the server's Retry-After, else exponential with jitter."""
        asked = retry_after_seconds(headers)
        if asked is not None:
            if asked > self.max_retry_after:
                raise LivePoolError(f"{self._where(spec)}: the server asked to retry after {asked:.0f} s "
                                    f"(Retry-After), more than max_retry_after={self.max_retry_after:.0f} s; try later")
            return asked + random.uniform(0, min(1.0, 0.1 * asked))  # jitter after, never before, the asked time
        # "equal jitter": half fixed, half random, so parallel callers spread out but never retry at once
        return min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)

    def close(self) -> None:
        """Close the HTTP clients."""
        for client in self._clients.values():
            client.close()

    def __enter__(self) -> "LivePool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
