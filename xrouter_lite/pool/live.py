"""The live pool: real OpenAI-compatible endpoints behind the `Pool` interface, cached and budgeted.

Every call goes through the official `openai` client (one per endpoint, its own retries off so ours
are the only ones), waits for a slot of its endpoint, retries 429/5xx/timeouts with exponential
backoff and jitter (honouring `Retry-After`), and is charged at the spec's prices from the usage the
server reports. A `ResponseCache` answers a repeated call without paying again (`cached=True`,
`meta["paid_usd"] == 0.0`), but its `usd` stays what the original call cost, so rewards and evaluations on a
live pool count what the same calls cost (`charge_cache_hits=False` reports hits at $0 instead); a
`BudgetGuard` refuses a call before it is sent when its worst case would cross the cap.
API keys are read from the environment variable each spec names, and stored nowhere.

A budget is checked before anything is sent (this part runs anywhere):

    >>> from xrouter_lite.pool.live import BudgetGuard, BudgetExceeded
    >>> guard = BudgetGuard(0.01)                           # USD
    >>> r = guard.reserve(0.004, "gpt-4o-mini")             # worst case: prompt estimate + max_tokens
    >>> guard.settle(r, 0.001)                              # what the call actually cost
    >>> round(guard.spent, 4), round(guard.remaining, 4)
    (0.001, 0.009)
    >>> try:
    ...     guard.reserve(0.05, "gpt-4o")
    ... except BudgetExceeded as e:
    ...     print(e)
    budget cap $0.010000 would be exceeded, so gpt-4o was not sent: spent $0.001000 + in flight $0.000000 + this call's reservation $0.050000 (prompt estimate + max_tokens at its prices) > cap $0.010000

With keys in the environment (`export OPENAI_API_KEY=...`):

    >>> from xrouter_lite.pool.live import LivePool, load_pool_config
    >>> from xrouter_lite.pool.cache import ResponseCache
    >>> from xrouter_lite.pool.core import Query
    >>> from xrouter_lite.profiles import example_pool_config
    >>> specs = [s for s in load_pool_config(example_pool_config()) if s.provider == "openai"]  # doctest: +SKIP
    >>> pool = LivePool(specs, ResponseCache(".cache/responses.sqlite"), BudgetGuard(1.00))  # doctest: +SKIP
    >>> a = pool.call("gpt-4o-mini-2024-07-18", Query("demo/add/1", "live", "add", "What is 2+2?"))  # doctest: +SKIP
    >>> a.text, a.cached                                                              # doctest: +SKIP
    ('2 + 2 = 4.', False)

Record a pool into the tidy table (resumable: a rerun pays for nothing already answered):

    python -m xrouter_lite example-pool --out pool.yaml   # then keep the models you have keys for
    python -m xrouter_lite record --pool pool.yaml --tasks gsm,crux --n 20 --budget 2 \
        --out runs/live/pool.parquet
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import os
import random
import re
import socket
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from xrouter_lite.pool.cache import ResponseCache, open_db
from xrouter_lite.pool.core import TIERS, Answer, ModelSpec, Pool, PoolError, Query
from xrouter_lite.pool.build import COLUMNS  # the tidy table of docs/DESIGN.md: a recording writes the same columns

log = logging.getLogger(__name__)

RETRY_STATUSES = {408, 409, 429, 500, 502, 503, 504}  # transient by HTTP semantics; other 4xx are our fault
IN_TOKEN_SAFETY = 1.25  # the budget over-estimates prompt tokens by this factor: tokenizers differ
MESSAGE_OVERHEAD_TOKENS = 4  # role and format tokens a chat template adds per message


class LivePoolError(PoolError):
    """A live call that failed for good (after retries, or on a non-retryable status); names model and endpoint.

    A `PoolError`, so an episode records it as a failed call instead of crashing.
    """


class BudgetExceeded(RuntimeError):
    """A call refused before it was sent because its worst-case cost would cross the cap."""

    def __init__(self, message: str, spent: float, reserved: float, request_usd: float, cap: float) -> None:
        super().__init__(message)
        self.spent, self.reserved, self.request_usd, self.cap = spent, reserved, request_usd, cap


class ConfigError(ValueError):
    """An invalid pool config; the message names the file, entry index and field of every problem."""


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


# ----------------------------------------------------------------------------- budget guard

_BUDGET_SCHEMA = """
CREATE TABLE IF NOT EXISTS budget_ledger (
    id INTEGER PRIMARY KEY, run TEXT NOT NULL, usd REAL NOT NULL, what TEXT NOT NULL, ts REAL NOT NULL);
CREATE TABLE IF NOT EXISTS budget_reservations (
    id INTEGER PRIMARY KEY, run TEXT NOT NULL, usd REAL NOT NULL, what TEXT NOT NULL, ts REAL NOT NULL,
    pid INTEGER NOT NULL, host TEXT NOT NULL);
"""


def _pid_alive(pid: int) -> bool:
    """Whether a local process exists (on Windows, where signal 0 is not a probe, always True)."""
    if os.name == "nt":
        return True  # never reap there: a stale reservation only makes the guard stricter
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class BudgetGuard:
    """A hard USD cap: reserve a call's worst case before sending it, settle the actual cost after.

    With `path` (e.g. the cache DB) the ledger is a SQLite file shared by every process using the same
    `run` name, so parallel or resumed recordings share one cap. A reservation left by a process that
    died is counted as spent (it may have been billed): the guard errs towards refusing, never
    towards overspending. The cap is hard while a call costs at most its reservation: servers bill
    at most `max_tokens` output tokens, and the prompt estimate (padded by IN_TOKEN_SAFETY) holds.
    """

    def __init__(self, cap_usd: float, path: str | os.PathLike | None = None, run: str = "default") -> None:
        if not (isinstance(cap_usd, (int, float)) and cap_usd >= 0):
            raise ValueError(f"cap_usd must be a number >= 0, got {cap_usd!r}")
        self.cap_usd, self.path, self.run = float(cap_usd), path, run
        self._lock = threading.Lock()  # one connection, shared by this process's threads
        # not fsynced per commit (three per call would cap a recording at ~40 calls/s): a killed process
        # loses nothing, a power cut may forget the last settlements (their answers are in the cache)
        self._db = open_db(path if path is not None else ":memory:", durable=False)
        self._db.executescript(_BUDGET_SCHEMA)
        self._host = socket.gethostname()

    @contextmanager
    def _txn(self):
        """One write transaction (BEGIN IMMEDIATE locks out other processes), after reaping dead reservations."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._reap()
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _reap(self) -> None:
        """Turn the reservations of dead processes on this host into spend (they may have been billed)."""
        rows = self._db.execute("SELECT id, pid FROM budget_reservations WHERE host = ? AND pid != ?",
                                (self._host, os.getpid())).fetchall()
        for rid, pid in rows:
            if not _pid_alive(pid):
                self._db.execute("INSERT INTO budget_ledger (run, usd, what, ts) SELECT run, usd, "
                                 "'orphaned: ' || what, ? FROM budget_reservations WHERE id = ?", (time.time(), rid))
                self._db.execute("DELETE FROM budget_reservations WHERE id = ?", (rid,))

    def _totals(self) -> tuple[float, float]:
        spent = self._db.execute("SELECT COALESCE(SUM(usd), 0) FROM budget_ledger WHERE run = ?", (self.run,)).fetchone()[0]
        held = self._db.execute("SELECT COALESCE(SUM(usd), 0) FROM budget_reservations WHERE run = ?", (self.run,)).fetchone()[0]
        return float(spent), float(held)

    def reserve(self, usd: float, what: str = "") -> int:
        """Hold `usd` for one call, or raise BudgetExceeded (nothing sent); returns the reservation id."""
        with self._txn() as db:
            spent, held = self._totals()
            if spent + held + usd > self.cap_usd + 1e-12:
                raise BudgetExceeded(
                    f"budget cap ${self.cap_usd:.6f} would be exceeded, so {what or 'the call'} was not sent: "
                    f"spent ${spent:.6f} + in flight ${held:.6f} + this call's reservation ${usd:.6f} "
                    f"(prompt estimate + max_tokens at its prices) > cap ${self.cap_usd:.6f}",
                    spent, held, usd, self.cap_usd)
            return db.execute("INSERT INTO budget_reservations (run, usd, what, ts, pid, host) VALUES (?, ?, ?, ?, ?, ?)",
                              (self.run, float(usd), what, time.time(), os.getpid(), self._host)).lastrowid

    def settle(self, reservation: int, usd: float) -> None:
        """Replace a reservation by the call's actual cost."""
        with self._txn() as db:
            what = db.execute("SELECT what FROM budget_reservations WHERE id = ?", (reservation,)).fetchone()
            db.execute("DELETE FROM budget_reservations WHERE id = ?", (reservation,))
            db.execute("INSERT INTO budget_ledger (run, usd, what, ts) VALUES (?, ?, ?, ?)",
                       (self.run, float(usd), what[0] if what else "", time.time()))

    def release(self, reservation: int) -> None:
        """Drop a reservation whose call was never billed (it failed)."""
        with self._txn() as db:
            db.execute("DELETE FROM budget_reservations WHERE id = ?", (reservation,))

    def close(self) -> None:
        """Close the ledger's connection."""
        with self._lock:
            self._db.close()

    @property
    def spent(self) -> float:
        """USD settled so far in this run (all processes)."""
        with self._txn():
            return self._totals()[0]

    @property
    def reserved(self) -> float:
        """USD held by calls in flight (all processes)."""
        with self._txn():
            return self._totals()[1]

    @property
    def remaining(self) -> float:
        """USD still available: cap - spent - reserved."""
        with self._txn():
            spent, held = self._totals()
        return self.cap_usd - spent - held

    def __repr__(self) -> str:
        with self._txn():
            spent, held = self._totals()
        return f"BudgetGuard(cap=${self.cap_usd:.4f}, spent=${spent:.4f}, reserved=${held:.4f}, run={self.run!r})"


# ----------------------------------------------------------------------------- pool configs

def _is_text(v) -> bool:
    return isinstance(v, str) and v.strip() != ""


def _is_price(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0


_FIELDS: dict[str, tuple[Callable[[object], bool], str]] = {  # field -> (check, what it must be)
    "id": (_is_text, "a non-empty string (the model id routers and tables use)"),
    "provider": (_is_text, "a non-empty string, e.g. openai, openrouter, together, vllm"),
    "base_url": (lambda v: isinstance(v, str) and re.fullmatch(r"https?://\S+", v) is not None,
                 "an http(s):// URL of an OpenAI-compatible API, e.g. https://api.openai.com/v1"),
    "api_key_env": (lambda v: v is None or (isinstance(v, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v) is not None),
                    "the NAME of an environment variable holding the key (null for a local server without auth)"),
    "model_name": (_is_text, "a non-empty string (the provider's name for the model)"),
    "price_in": (_is_price, "a number >= 0 (USD per 1M input tokens)"),
    "price_out": (_is_price, "a number >= 0 (USD per 1M output tokens)"),
    "tier": (lambda v: v in TIERS, f"one of {', '.join(TIERS)}"),
    "context": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0, "a positive integer (tokens)"),
}
_OPTIONAL = {"description": (lambda v: isinstance(v, str), "a string")}


def _entry_errors(entry: object, where: str) -> list[str]:
    """Every problem of one config entry, each naming the entry and field."""
    if not isinstance(entry, dict):
        return [f"{where}: expected a mapping of fields, got {type(entry).__name__}"]
    errors = [f"{where}: missing field {f!r} ({what})" for f, (_, what) in _FIELDS.items() if f not in entry]
    for f, v in entry.items():
        check = _FIELDS.get(f) or _OPTIONAL.get(f)
        if check is None:
            errors.append(f"{where}: unknown field {f!r} (allowed: {', '.join([*_FIELDS, *_OPTIONAL])})")
        elif not check[0](v):
            # never echo api_key_env's value: a common mistake is pasting the key itself there
            shown = "a value that is not a variable name (not shown: it may be a secret)" if f == "api_key_env" else repr(v)
            errors.append(f"{where}: field {f!r} must be {check[1]}; got {shown}")
    return errors


def load_pool_config(path: str | os.PathLike) -> list[ModelSpec]:
    """Read and validate a YAML pool config (a list of models, or a mapping with `models:`)."""
    import yaml

    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: pool config not found") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    entries = doc.get("models") if isinstance(doc, dict) else doc
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: expected a non-empty list of models (top-level `models:`), got {type(entries).__name__}")
    errors, seen = [], {}
    for i, entry in enumerate(entries):
        where = f"{path}: models[{i}]" + (f" ({entry['id']})" if isinstance(entry, dict) and _is_text(entry.get("id")) else "")
        errors += _entry_errors(entry, where)
        if isinstance(entry, dict) and _is_text(entry.get("id")):
            if entry["id"] in seen:
                errors.append(f"{where}: field 'id' duplicates models[{seen[entry['id']]}]")
            seen.setdefault(entry["id"], i)
    if errors:
        raise ConfigError(f"invalid pool config ({len(errors)} problem{'s' * (len(errors) > 1)}):\n  " + "\n  ".join(errors))
    return [ModelSpec(**entry) for entry in entries]


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


# ----------------------------------------------------------------------------- recording

RESPONSE_CACHE = Path(".cache/responses.sqlite")  # same default as `python -m xrouter_lite record --cache`
CHECKPOINT_S = 30.0  # how often the output table is rewritten during a recording (the journal is per call)


_TEXT_DTYPES = {c: str for c in ("query_id", "source", "task", "category", "question", "gold", "model", "response")}


def _journal_path(out_path: Path) -> Path:
    """Append-only JSON-lines journal beside the output: one line per answered call, flushed at once."""
    return out_path.with_name(out_path.name + ".partial.jsonl")


def _read_rows(out_path: Path) -> list[dict]:
    """Rows already recorded: the output table if it exists, then the journal (a torn last line is skipped)."""
    import pandas as pd

    rows: list[dict] = []
    if out_path.exists():
        old = (pd.read_parquet(out_path) if out_path.suffix == ".parquet" else
               pd.read_csv(out_path, keep_default_na=False, dtype=_TEXT_DTYPES))  # "3.10" stays "3.10"
        rows += old.to_dict("records")
    journal = _journal_path(out_path)
    if journal.exists():
        for line in journal.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                pass  # the last line of a killed run may be half written; its call is in the cache
    return rows


def _write_table(rows: list[dict], out_path: Path):
    """Write the tidy table (deduplicated by query and model) atomically: no reader sees half a file."""
    import pandas as pd

    table = pd.DataFrame(rows, columns=COLUMNS).drop_duplicates(["query_id", "model"], keep="last")
    table = table.sort_values(["query_id", "model"], kind="stable").reset_index(drop=True)
    table["gold"] = table["gold"].map(lambda g: None if g is None or g == "" or g != g else str(g))
    table = table.astype({"in_tokens": "int64", "out_tokens": "int64", "correct": "float64", "usd": "float64"})
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    if out_path.suffix == ".parquet":
        table.to_parquet(tmp, index=False)
    else:
        table.to_csv(tmp, index=False)
    os.replace(tmp, out_path)
    return table


def _default_grade() -> Callable[[str, str, str | None], float]:
    from xrouter_lite.pool.grading import grade  # lazily: grading pulls in math-verify
    return grade


def record(pool_config: str | os.PathLike | Sequence[ModelSpec], queries: Sequence[Query],
           out_path: str | os.PathLike, budget: float | BudgetGuard | None = None,
           cache_path: str | os.PathLike | None = None, concurrency: int = 4, *,
           system_prompt: str | None = None, temperature: float | None = 0.0, max_tokens: int = 1024,
           grade: Callable[[str, str, str | None], float] | None = None,
           categories: Mapping[str, str] | None = None, progress: bool = True):
    """Ask every pool model every query, grade, and write the tidy table (source "live"); resumable.

    A float `budget` is a cap for this output across restarts (kept in the cache DB). Calls that fail
    after retries are skipped (a rerun asks them again); BudgetExceeded is raised after saving.
    """
    specs = load_pool_config(pool_config) if isinstance(pool_config, (str, os.PathLike)) else list(pool_config)
    out_path, cache_path = Path(out_path), Path(cache_path or RESPONSE_CACHE)
    if out_path.suffix not in (".parquet", ".csv"):
        raise ValueError(f"out_path must end in .parquet or .csv, got {out_path}")
    grade = grade or _default_grade()
    rows = _read_rows(out_path)
    done = {(r["query_id"], r["model"]) for r in rows}
    todo = [(q, s) for q in queries for s in specs if (q.id, s.id) not in done]
    own_guard = isinstance(budget, (int, float))
    guard = BudgetGuard(budget, path=cache_path, run=f"record:{out_path.resolve()}") if own_guard else budget
    try:
        with ResponseCache(cache_path) as cache, \
                LivePool(specs, cache, guard, max_tokens=max_tokens, concurrency_per_endpoint=concurrency) as pool:
            new_rows, refused = _ask_all(pool, todo, out_path, rows, concurrency, system_prompt, temperature, grade,
                                         categories or {}, progress)
    finally:
        if own_guard:
            guard.close()
    table = _write_table(rows + new_rows, out_path)
    _journal_path(out_path).unlink(missing_ok=True)  # everything is in the table now
    if refused is not None:
        raise refused
    return table


def _ask_all(pool: LivePool, todo: list, out_path: Path, old_rows: list[dict], concurrency: int,
             system_prompt: str | None, temperature: float | None, grade: Callable,
             categories: Mapping[str, str], progress: bool) -> tuple[list[dict], BudgetExceeded | None]:
    """Run the calls on `concurrency` threads; journal each answered row the moment it is graded."""
    from tqdm.auto import tqdm

    stop = threading.Event()  # set on BudgetExceeded: queued calls then return without asking
    refused: list[BudgetExceeded] = []

    def one(q: Query, spec: ModelSpec) -> dict | None:
        if stop.is_set():
            return None
        try:
            a = pool.call(spec.id, q, system_prompt, temperature)
        except BudgetExceeded as e:
            stop.set()
            refused.append(e)
            return None
        usd = a.meta.get("original_usd", a.usd)  # the table holds what the call cost, even when replayed
        return {"query_id": q.id, "source": "live", "task": q.task, "category": categories.get(q.id, ""),
                "question": q.text, "gold": q.gold, "model": spec.id, "response": a.text,
                "correct": float(grade(q.task, a.text, q.gold)), "in_tokens": a.in_tokens,
                "out_tokens": a.out_tokens, "usd": usd}

    new_rows: list[dict] = []
    failures: list[str] = []
    last_checkpoint = time.monotonic()
    ex = ThreadPoolExecutor(max(1, concurrency), thread_name_prefix="record")
    try:
        with _journal_path(out_path).open("a", encoding="utf-8") as journal:
            futures = [ex.submit(one, q, s) for q, s in todo]
            bar = tqdm(as_completed(futures), total=len(futures), desc="record", unit="call", disable=not progress)
            for fut in bar:
                try:
                    row = fut.result()
                except LivePoolError as e:
                    failures.append(str(e))
                    log.warning("skipped (a rerun asks again): %s", e)
                    continue
                if row is None:
                    continue
                journal.write(json.dumps(row, ensure_ascii=False) + "\n")
                journal.flush()  # in the OS once flushed: a killed process loses no answered row
                new_rows.append(row)
                bar.set_postfix(paid=pool.stats["paid"], cached=pool.stats["cache_hits"], failed=len(failures))
                if time.monotonic() - last_checkpoint > CHECKPOINT_S:
                    _write_table(old_rows + new_rows, out_path)
                    last_checkpoint = time.monotonic()
    finally:
        stop.set()  # on Ctrl-C or an error: queued calls must not go on spending
        ex.shutdown(wait=True, cancel_futures=True)
    if failures:
        log.warning("%d call(s) failed after retries and were skipped; rerun to ask them again", len(failures))
    return new_rows, (refused[0] if refused else None)


def select_queries(table, tasks: Sequence[str], n: int, split: str = "train", seed: int = 0) -> list[Query]:
    """Up to `n` distinct queries per task from a tidy table's `split` (seeded, the same on every machine)."""
    if "split" not in table.columns:
        from xrouter_lite.pool.splits import add_splits
        table = add_splits(table)
    picked = []
    for task in tasks:
        qs = table[(table["task"] == task) & (table["split"] == split)].drop_duplicates("query_id")
        if qs.empty:
            raise ValueError(f"no {split} queries for task {task!r}; tasks in the table: {sorted(table['task'].unique())}")
        qs = qs.sort_values("query_id").sample(n=min(n, len(qs)), random_state=seed)
        picked += [Query(r.query_id, r.source, r.task, r.question,
                         None if r.gold is None or r.gold != r.gold else str(r.gold))  # None/NaN: no gold
                   for r in qs.itertuples()]
    return picked


def record_command(args) -> int:
    """`python -m xrouter_lite record`: pick queries from the recorded data, record the live pool."""
    from xrouter_lite.pool.readers import ZEROEVAL_TASKS
    from xrouter_lite.pool.table import load_table
    from xrouter_lite.profiles import resolve_data_dir

    specs = load_pool_config(args.pool)  # validate before loading data: a config typo fails fast
    tasks = [t.strip() for t in str(args.tasks).split(",") if t.strip()]
    sources = sorted({"zeroeval" if t in ZEROEVAL_TASKS else "mmlu-pro" if t == "mmlu-pro" else "routerbench"
                      for t in tasks})  # load only what is asked: building a source's table takes a while
    table = load_table(resolve_data_dir(getattr(args, "data", None)), sources=sources)
    queries = select_queries(table, tasks, args.n, getattr(args, "split", "train"), getattr(args, "seed", 0))
    categories = dict(zip(table["query_id"], table["category"])) if "category" in table else {}
    print(f"recording {len(specs)} models x {len(queries)} queries ({', '.join(tasks)}) into {args.out}; "
          f"cap ${args.budget:.2f}", file=sys.stderr)
    try:
        out = record(specs, queries, args.out, args.budget, getattr(args, "cache", None),
                     getattr(args, "concurrency", 4), system_prompt=getattr(args, "system_prompt", None),
                     max_tokens=getattr(args, "max_tokens", 1024), categories=categories)
    except BudgetExceeded as e:
        print(f"stopped: {e}\nrows recorded so far are in {args.out}; rerun with a larger --budget to continue "
              "(answered calls are cached and cost nothing again)", file=sys.stderr)
        return 2
    missing = len({(q.id, s.id) for q in queries for s in specs} - set(zip(out["query_id"], out["model"])))
    print(f"wrote {len(out)} rows to {args.out}" + (f"; {missing} calls failed, rerun to retry them" if missing > 0 else ""),
          file=sys.stderr)
    return 1 if missing > 0 else 0
