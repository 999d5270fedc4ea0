"""Run one routing episode: router turns, tool calls against a pool, stop rules, cost, grade, reward.

A router is any function `router(messages, tools) -> str` returning one turn's raw text (an LM, a
baseline, or a script). A scripted router that asks two models, then picks one:

    >>> from xrouter_lite.pool.core import Answer, ModelSpec, Pool, Query
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

`EpisodeStepper` holds these rules once, one router turn per `step(text)`; `run_episode` drives it with a
text router, and GRPO's token-level rollout drives it with its own generations (`xrouter_lite.training.grpo`).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from xrouter_lite.pool.core import Answer, Pool, PoolError, Query, tool_name
from xrouter_lite.routing.protocol import (MAX_TOOL_RESULT_CHARS, MAX_TURN_CHARS, Action, Turn, format_tool_result,
                                           parse_turn, router_messages, tool_message, tool_schemas)
from xrouter_lite.routing.reward import RewardConfig, reward, router_usd

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
    """The project's token estimate (`xrouter_lite.pool.tokens.count_tokens`), else len(text)//4."""
    try:
        from xrouter_lite.pool.tokens import count_tokens  # lazily: tokens.py pulls in numpy
        return count_tokens
    except ImportError:
        return lambda text: len(text) // 4


def _default_grader(pool_records: Mapping | None) -> Grader:
    from xrouter_lite.pool.grading import grade_final  # lazily: grading pulls in math-verify
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


class EpisodeStepper:
    """One episode, driven one router turn at a time: the single copy of the stop rules, cost, grade and reward.

    `run_episode` feeds it text from a `router(messages, tools)` function; GRPO's token-level rollout
    (`xrouter_lite.training.grpo`) feeds it decoded generations and appends the returned tool messages as tokens,
    so training and evaluation play by exactly the same rules:

        >>> stepper = EpisodeStepper(query, pool, allowed, mode="agent")        # doctest: +SKIP
        >>> while not stepper.done:                                            # doctest: +SKIP
        ...     tool_messages = stepper.step(my_router(stepper.messages, stepper.tools))
        >>> stepper.episode.reward                                             # doctest: +SKIP

    `max_tool_chars` clips each model answer the router reads (`select_response` still returns it whole);
    a small CPU router needs short tool results, and training and evaluation must clip alike. `answer_notes`
    adds the runtime's final-answer check to each tool message after the first (`agreement.note`).
    `state_lambda` tells the router the reward's cost weight in its system prompt (a λ-conditioned router).
    """

    def __init__(self, query: Query, pool: Pool, allowed: Sequence[str], mode: str = "agent", max_turns: int = 3,
                 reward_cfg: RewardConfig = RewardConfig(), grader: Grader | None = None,
                 pool_records: Mapping[str, float] | None = None, count_tokens: Callable[[str], int] | None = None,
                 max_chars: int = MAX_TURN_CHARS, max_tool_chars: int = MAX_TOOL_RESULT_CHARS,
                 answer_notes: bool = False, state_lambda: bool = False):
        allowed = list(allowed)
        tools = tool_schemas([pool.spec(m) for m in allowed], mode)  # validates mode and every id
        if mode == "simple":
            max_turns = 1  # one decision: answer, or one call whose answer is final
        self.query, self.pool, self.allowed, self.mode, self.max_turns = query, pool, allowed, mode, max_turns
        self.reward_cfg, self.max_chars, self.max_tool_chars = reward_cfg, max_chars, max_tool_chars
        self.answer_notes = answer_notes
        self.stated_lambda = reward_cfg.lam if state_lambda else None
        self.grader = grader or _default_grader(pool_records)
        self.count = count_tokens or default_count_tokens()
        self.episode = Episode(query.id, query.task, query.source, allowed, mode, tools=tools,
                               messages=router_messages(query.text, mode, max_turns, self.stated_lambda))
        self.msg_tokens = sum(self.count(m["content"]) for m in self.episode.messages)
        self.tool_tokens = self.count(json.dumps(tools))
        self.answers: dict[str, Answer] = {}  # model -> its latest answer, for select_response
        self.done = False

    @property
    def messages(self) -> list[dict]:
        """The conversation so far, as the router reads it (a copy: the router must not edit the record)."""
        return list(self.episode.messages)

    @property
    def tools(self) -> list[dict]:
        """The tool schemas of the sample's sub-pool."""
        return self.episode.tools

    def step(self, raw) -> list[dict]:
        """Play one router turn (its raw text); the tool messages it produced ([] once the episode has ended)."""
        if self.done:
            raise RuntimeError(f"episode {self.query.id} has already ended ({self.episode.ending})")
        ep = self.episode
        turn = ep.turns = ep.turns + 1
        ep.router_in_tokens += self.tool_tokens + self.msg_tokens
        parsed = parse_turn(raw, self.allowed, self.mode, self.max_chars)
        content = _stored(raw, self.max_chars)
        # a rejected runaway output was still generated: estimate it cheaply rather than tokenise megabytes
        ep.router_out_tokens += self.count(content) if content is raw else len(str(raw)) // 4
        self._add({"role": "assistant", "content": content})
        before = len(ep.messages)
        if self._play(parsed, turn):
            self._finish()
            return []
        return ep.messages[before:]

    def stop(self, reason: str) -> Episode:
        """End the episode as invalid from outside (a generation cut by a token budget); scored, never raises."""
        if not self.done:
            self._end("invalid", reason=reason)
            self._finish()
        return self.episode

    def _add(self, message: dict) -> None:
        self.episode.messages.append(message)
        self.msg_tokens += self.count(message["content"])

    def _end(self, ending: str, final: str | None = None, reason: str = "") -> None:
        self.episode.ending, self.episode.final, self.episode.invalid_reason = ending, final, reason

    def _execute(self, actions: list[Action], turn: int) -> str:
        """Run the calls, record them and their tool messages; the first pool error's text, or ''."""
        error = ""
        for a, result in zip(actions, _run_calls(self.pool, self.query, actions)):
            if isinstance(result, PoolError):
                error = error or f"pool error from {a.model}: {result}"
                self.episode.calls.append(Call(a.model, turn, temperature=a.temperature, error=str(result)))
                self._add(tool_message(a.model, f"{tool_name(a.model)} failed: {result}"))
                continue
            self.episode.calls.append(Call(a.model, turn, result.in_tokens, result.out_tokens, result.usd,
                                           result.cached, a.temperature))
            note = ""
            if self.answer_notes:
                from xrouter_lite.routing.agreement import note as agreement_note

                note = agreement_note(self.query.task, result.text, {tool_name(m): r.text for m, r in self.answers.items()},
                                      self.stated_lambda)
            self.answers[a.model] = result
            self._add(tool_message(a.model, format_tool_result(a.model, result, self.max_tool_chars, note)))
        return error

    def _play(self, parsed: Turn, turn: int) -> bool:
        """Apply one parsed turn; True when the episode has ended."""
        if parsed.kind == "invalid":
            self._end("invalid", reason=parsed.error)
        elif parsed.kind == "answer":
            self._end("summarised" if self.episode.calls else "direct", parsed.actions[0].text)
        elif parsed.kind == "select":
            model = parsed.actions[0].model
            if model in self.answers:
                self._end("selected", self.answers[model].text)
            else:
                self._end("invalid", reason=f"{tool_name(model)} selected but not called in this episode")
        elif self.mode == "agent" and turn == self.max_turns:
            self._end("invalid", reason=f"turns exhausted: calls in the last turn ({self.max_turns}) get no answers")
        else:
            error = self._execute(parsed.calls, turn)
            if error:
                self._end("invalid", reason=error)
            elif self.mode == "simple":
                self._end("called", self.answers[parsed.calls[0].model].text)
            else:
                return False
        return True

    def _finish(self) -> None:
        """Cost, grade and reward of the ended episode (invalid endings score and earn 0)."""
        ep, cfg = self.episode, self.reward_cfg
        ep.usd = sum(c.usd for c in ep.calls)
        ep.router_usd = router_usd(ep.router_in_tokens, ep.router_out_tokens, cfg)
        cost = ep.usd + (ep.router_usd if cfg.charge_router_tokens else 0.0)
        ep.score = 0.0 if ep.invalid else float(self.grader(self.query, ep.final))
        ep.reward = reward(ep.score, cost, cfg, invalid=ep.invalid)
        self.done = True


def run_episode(router: Router, query: Query, pool: Pool, allowed: Sequence[str], mode: str = "agent",
                max_turns: int = 3, reward_cfg: RewardConfig = RewardConfig(), grader: Grader | None = None,
                pool_records: Mapping[str, float] | None = None,
                count_tokens: Callable[[str], int] | None = None,
                max_chars: int = MAX_TURN_CHARS, max_tool_chars: int = MAX_TOOL_RESULT_CHARS,
                answer_notes: bool = False, state_lambda: bool = False) -> Episode:
    """Run the router on one query with the sample's sub-pool `allowed` (ids); the graded, rewarded Episode.

    An id in `allowed` that the pool lacks raises PoolError up front (a caller's mistake, not the router's).
    """
    stepper = EpisodeStepper(query, pool, allowed, mode, max_turns, reward_cfg, grader, pool_records,
                             count_tokens, max_chars, max_tool_chars, answer_notes, state_lambda)
    while not stepper.done:
        stepper.step(router(stepper.messages, stepper.tools))
    return stepper.episode


def _stored(raw, max_chars: int) -> str:
    """The router's text as kept in the record: whole, unless it was rejected for its size or type."""
    if not isinstance(raw, str):
        return f"[router returned {type(raw).__name__}]"
    return raw if len(raw) <= max_chars else f"{raw[:1000]}\n[... {len(raw) - 1000} more chars, rejected]"


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
