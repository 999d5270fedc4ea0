"""Run one routing episode: router turns, tool calls against a pool, stop rules, cost, grade, reward.

A router is any function `router(messages, tools) -> str` returning one turn's raw text (an LM, a
baseline, or a script). A scripted router that asks two models, then picks one:

    >>> from xrouter_lite.pool import Answer, ModelSpec, Pool, Query
    >>> class TwoModels(Pool):
    ...     models = [ModelSpec("small", 0.1, 0.4, tier="budget"), ModelSpec("big", 2.0, 8.0, tier="premium")]
    ...     def call(self, model, query, system_prompt=None, temperature=None):
    ...         return Answer("4" if model == "big" else "5", 100, 10, 0.0002 if model == "big" else 0.00001)
    >>> script = iter(['<tool_call>{"name": "call_small", "arguments": {"optimized_system_prompt": "Add."}}</tool_call>'
    ...                '<tool_call>{"name": "call_big", "arguments": {"optimized_system_prompt": "Add."}}</tool_call>',
    ...                '<tool_call>{"name": "select_response", "arguments": {"model_call_name": "call_big"}}</tool_call>'])
    >>> ep = run_episode(lambda messages, tools: next(script), Query("demo/add/1", "demo", "add", "2+2?", gold="4"),
    ...                  TwoModels(), ["small", "big"], grader=lambda q, text: float(text == q.gold))
    >>> ep.ending, ep.final, ep.score, round(ep.usd, 5), round(ep.reward, 5)
    ('selected', '4', 1.0, 0.00021, 0.99937)

Stop rules (PAPER.md): plain text ends the episode with an answer ("direct" before any call,
"summarised" after); `select_response` ends it with a called model's answer verbatim ("selected");
in simple mode the one call's answer is final ("called"). Invalid endings (reward 0): unparsable
output, unknown tool or one outside the sample's pool, `select_response` mixed with calls or naming a
model not called in this episode, calls in the last agent turn (they are not run: nobody would read
them), and a `PoolError` from the pool (recorded, never raised).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from xrouter_lite.pool import Answer, Pool, PoolError, Query, tool_name
from xrouter_lite.protocol import (MAX_TURN_CHARS, Action, Turn, format_tool_result, parse_turn,
                                   router_messages, tool_message, tool_schemas)
from xrouter_lite.reward import RewardConfig, reward, router_usd

Router = Callable[[list, list], str]
Grader = Callable[[Query, str], float]
ENDINGS = ("direct", "called", "selected", "summarised", "invalid")
MAX_PARALLEL_CALLS = 16  # threads shared by all episodes; live calls are I/O bound, so more threads than cores is fine

_executor: ThreadPoolExecutor | None = None


def _pool_executor() -> ThreadPoolExecutor:
    """One long-lived thread pool: creating one per turn would cost more than a replayed call."""
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(MAX_PARALLEL_CALLS, thread_name_prefix="xrouter-call")
    return _executor


@dataclass
class Call:
    """One executed tool call: who, in which turn, its tokens and USD, and the pool error if it failed."""

    model: str
    turn: int
    in_tokens: int = 0
    out_tokens: int = 0
    usd: float = 0.0
    cached: bool = False
    temperature: float = 1.0
    error: str = ""


@dataclass
class Episode:
    """Everything one episode did and earned; `to_json`/`from_json` keep it as one JSON line."""

    query_id: str
    task: str
    source: str
    allowed: list[str]
    mode: str
    messages: list[dict] = field(default_factory=list)  # every message, system prompt first
    tools: list[dict] = field(default_factory=list)  # the tool schemas the router saw
    calls: list[Call] = field(default_factory=list)
    router_in_tokens: int = 0  # prompt tokens over all router turns (each turn re-reads the conversation)
    router_out_tokens: int = 0
    usd: float = 0.0  # sum of every call's USD: the paper's cost
    router_usd: float = 0.0  # the router's own tokens at RewardConfig's router prices (reported)
    final: str | None = None  # the final answer text; None when the episode ended invalid
    ending: str = "invalid"  # direct | called | selected | summarised | invalid
    invalid_reason: str = ""
    score: float = 0.0
    reward: float = 0.0
    turns: int = 0  # router turns taken

    @property
    def invalid(self) -> bool:
        return self.ending == "invalid"

    def to_json(self) -> str:
        """One JSON line (no newlines inside)."""
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> "Episode":
        """The inverse of `to_json`."""
        d = json.loads(line)
        d["calls"] = [Call(**c) for c in d.get("calls", [])]
        return cls(**d)

    def render(self, max_chars: int = 300, system: bool = False) -> str:
        """A readable trace for notebooks: each message clipped to `max_chars`, then the outcome."""
        lines = [f"episode {self.query_id} · {self.mode} · pool: {', '.join(self.allowed)}"]
        turn = 0
        for m in self.messages:
            if m["role"] == "system" and not system:
                continue
            content = m["content"]
            if m["role"] == "assistant":
                turn += 1
                label = f"router {turn}"
            else:
                label = m.get("name") or m["role"]
                content = content.removeprefix(f"{label} answered:\n")  # the label already names it
            lines.append(f"[{label}] {_clip(content, max_chars)}")
        outcome = self.ending + (f" ({self.invalid_reason})" if self.invalid else "")
        lines.append(f"=> {outcome} · score {self.score:g} · ${self.usd:.6f} over {len(self.calls)} call(s)"
                     f" · reward {self.reward:.4f} · {self.turns} turn(s)")
        return "\n".join(lines)


def _clip(text: str, n: int) -> str:
    text = " ⏎ ".join(text.strip().splitlines())
    return text if len(text) <= n else f"{text[:n]} … (+{len(text) - n} chars)"


def write_jsonl(episodes: Iterable[Episode], path: str | Path) -> Path:
    """Write episodes as JSON lines."""
    path = Path(path)
    with path.open("w", encoding="utf-8") as f:
        for ep in episodes:
            f.write(ep.to_json() + "\n")
    return path


def read_jsonl(path: str | Path) -> list[Episode]:
    """Read episodes written by `write_jsonl`."""
    with Path(path).open(encoding="utf-8") as f:
        return [Episode.from_json(line) for line in f if line.strip()]


def default_count_tokens() -> Callable[[str], int]:
    """The project's token estimate (`xrouter_lite.data.count_tokens`), else len(text)//4."""
    try:
        from xrouter_lite.data import count_tokens  # lazily: data.py pulls in pandas
        return count_tokens
    except ImportError:
        return lambda text: len(text) // 4


def _default_grader(pool_records: Mapping | None) -> Grader:
    from xrouter_lite.grading import grade_final  # lazily: grading pulls in math-verify
    return lambda query, text: grade_final(query, text, pool_records)


def _run_calls(pool: Pool, query: Query, actions: list[Action]) -> list[Answer | PoolError]:
    """Run one turn's calls, concurrently when there are several; a PoolError comes back as a value."""
    def one(a: Action) -> Answer | PoolError:
        try:
            return pool.call(a.model, query, a.args["optimized_system_prompt"], a.temperature)
        except PoolError as e:
            return e

    if len(actions) == 1:
        return [one(actions[0])]
    return list(_pool_executor().map(one, actions))


class _Run:
    """Mutable state of one episode while it runs: token counts and the answers select can return."""

    def __init__(self, ep: Episode, count_tokens: Callable[[str], int]):
        self.ep, self.count = ep, count_tokens
        self.msg_tokens = sum(count_tokens(m["content"]) for m in ep.messages)
        self.tool_tokens = count_tokens(json.dumps(ep.tools))
        self.answers: dict[str, Answer] = {}  # model -> its latest answer, for select_response

    def add(self, message: dict) -> None:
        self.ep.messages.append(message)
        self.msg_tokens += self.count(message["content"])

    def end(self, ending: str, final: str | None = None, reason: str = "") -> None:
        self.ep.ending, self.ep.final, self.ep.invalid_reason = ending, final, reason

    def execute(self, pool: Pool, query: Query, actions: list[Action], turn: int) -> str:
        """Run the calls, record them and their tool messages; the first pool error's text, or ''."""
        error = ""
        for a, result in zip(actions, _run_calls(pool, query, actions)):
            if isinstance(result, PoolError):
                error = error or f"pool error from {a.model}: {result}"
                self.ep.calls.append(Call(a.model, turn, temperature=a.temperature, error=str(result)))
                self.add(tool_message(a.model, f"{tool_name(a.model)} failed: {result}"))
                continue
            self.ep.calls.append(Call(a.model, turn, result.in_tokens, result.out_tokens, result.usd,
                                      result.cached, a.temperature))
            self.answers[a.model] = result
            self.add(tool_message(a.model, format_tool_result(a.model, result)))
        return error


def run_episode(router: Router, query: Query, pool: Pool, allowed: Sequence[str], mode: str = "agent",
                max_turns: int = 3, reward_cfg: RewardConfig = RewardConfig(), grader: Grader | None = None,
                pool_records: Mapping[str, float] | None = None,
                count_tokens: Callable[[str], int] | None = None,
                max_chars: int = MAX_TURN_CHARS) -> Episode:
    """Run the router on one query with the sample's sub-pool `allowed` (ids); the graded, rewarded Episode.

    An id in `allowed` that the pool lacks raises PoolError up front (a caller's mistake, not the router's).
    """
    allowed = list(allowed)
    tools = tool_schemas([pool.spec(m) for m in allowed], mode)  # validates mode and every id
    if mode == "simple":
        max_turns = 1  # one decision: answer, or one call whose answer is final
    ep = Episode(query.id, query.task, query.source, allowed, mode, tools=tools,
                 messages=router_messages(query.text, mode, max_turns))
    run = _Run(ep, count_tokens or default_count_tokens())
    for turn in range(1, max_turns + 1):
        raw = router(list(ep.messages), tools)  # a copy: the router must not edit the record
        ep.turns = turn
        ep.router_in_tokens += run.tool_tokens + run.msg_tokens
        parsed = parse_turn(raw, allowed, mode, max_chars)
        content = _stored(raw, max_chars)
        # a rejected runaway output was still generated: estimate it cheaply rather than tokenise megabytes
        ep.router_out_tokens += run.count(content) if content is raw else len(str(raw)) // 4
        run.add({"role": "assistant", "content": content})
        if _play_turn(run, parsed, pool, query, turn, mode, max_turns):
            break
    _score(ep, query, reward_cfg, grader or _default_grader(pool_records))
    return ep


def _stored(raw, max_chars: int) -> str:
    """The router's text as kept in the record: whole, unless it was rejected for its size or type."""
    if not isinstance(raw, str):
        return f"[router returned {type(raw).__name__}]"
    return raw if len(raw) <= max_chars else f"{raw[:1000]}\n[... {len(raw) - 1000} more chars, rejected]"


def _play_turn(run: _Run, parsed: Turn, pool: Pool, query: Query, turn: int, mode: str, max_turns: int) -> bool:
    """Apply one parsed turn; True when the episode has ended."""
    if parsed.kind == "invalid":
        run.end("invalid", reason=parsed.error)
    elif parsed.kind == "answer":
        run.end("summarised" if run.ep.calls else "direct", parsed.actions[0].text)
    elif parsed.kind == "select":
        model = parsed.actions[0].model
        if model in run.answers:
            run.end("selected", run.answers[model].text)
        else:
            run.end("invalid", reason=f"{tool_name(model)} selected but not called in this episode")
    elif mode == "agent" and turn == max_turns:
        run.end("invalid", reason=f"turns exhausted: calls in the last turn ({max_turns}) get no answers")
    else:
        error = run.execute(pool, query, parsed.calls, turn)
        if error:
            run.end("invalid", reason=error)
        elif mode == "simple":
            run.end("called", run.answers[parsed.calls[0].model].text)
        else:
            return False
    return True


def _score(ep: Episode, query: Query, cfg: RewardConfig, grader: Grader) -> None:
    """Cost, grade and reward of a finished episode (invalid endings score and earn 0)."""
    ep.usd = sum(c.usd for c in ep.calls)
    ep.router_usd = router_usd(ep.router_in_tokens, ep.router_out_tokens, cfg)
    cost = ep.usd + (ep.router_usd if cfg.charge_router_tokens else 0.0)
    ep.score = 0.0 if ep.invalid else float(grader(query, ep.final))
    ep.reward = reward(ep.score, cost, cfg, invalid=ep.invalid)


def run_episodes(router: Router, queries: Sequence[Query], pool: Pool,
                 allowed: Sequence[str] | Callable[[Query], Sequence[str]] | None = None,
                 pool_records: Mapping[str, Mapping[str, float]] | None = None, progress: bool = True,
                 workers: int = 1, **kwargs) -> list[Episode]:
    """`run_episode` over many queries with a progress bar; `allowed`: one sub-pool, a function of the query, or None (all).

    `workers` > 1 runs episodes in threads, so a batching router (`LMRouter`) sees many turns at once;
    results keep the order of `queries`.
    """
    from tqdm.auto import tqdm

    def pool_of(q: Query) -> Sequence[str]:
        if allowed is None:
            return pool.model_ids
        return allowed(q) if callable(allowed) else allowed

    kwargs.setdefault("count_tokens", default_count_tokens())  # resolve the import once, not per query

    def one(q: Query) -> Episode:
        records = pool_records.get(q.id) if pool_records is not None else None
        return run_episode(router, q, pool, pool_of(q), pool_records=records, **kwargs)

    bar = tqdm(total=len(queries), desc="episodes", disable=not progress)
    if workers <= 1:
        episodes = []
        for q in queries:
            episodes.append(one(q))
            bar.update(1)
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=workers) as ex:
            futures = [ex.submit(one, q) for q in queries]
            for f in futures:
                f.result()
                bar.update(1)
        episodes = [f.result() for f in futures]
    bar.close()
    return episodes
