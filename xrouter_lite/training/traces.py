"""SFT traces: chat-format routing examples, with tools, from the replay pool's train split only.

Each train query gets a sub-pool (the whole pool in `full_pool_share` of the traces, else a random one, so the
router reads which tools it has) and a mode, and a *teacher* decides what the router does:

- `labels="expected"` (the default): the plan with the highest **expected reward** on the query's task, measured on
  the train split at the training λ, among the plans the sub-pool allows. A plan is one call (simple or agent
  mode) or, in agent mode, an **agreement check**: call two models in one turn, return the first one's answer
  when their final answers agree, and ask a third (stronger) model when they do not. The agreement is read from
  the answers the router sees, so the teacher only uses what the router can see. The plan is *sampled* from a
  softmax over the plans' expected rewards (`label_temperature`): near-equal plans share the traces, so GRPO
  still has alternatives to compare, while a plan far behind almost never appears.
- `labels="hindsight"`: the sub-pool's hindsight oracle, the cheapest model that answered this query correctly
  (the label routing datasets such as RouterBench provide). It depends on answers the router never sees, so
  the router can only learn its most frequent value per task: a cheap model, even where paying for a strong
  one earns more. Kept for notebook 02's exercise: compare the two teachers.

    >>> from xrouter_lite.training.traces import build_traces              # doctest: +SKIP
    >>> traces = build_traces(pool, pool.queries(split="train", source="zeroeval"), lam=10.0)   # doctest: +SKIP
    >>> traces[0]["plan"]                                          # doctest: +SKIP
    {'first': ['deepseek-v2.5-0908', 'gpt-4o-mini-2024-07-18'], 'strong': 'o1-mini-2024-09-12'}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from xrouter_lite.pool.core import Query, ReplayPool, sample_subpool
from xrouter_lite.pool.splits import split_of
from xrouter_lite.routing.agreement import agree, final_answer, note
from xrouter_lite.routing.protocol import (MAX_TOOL_RESULT_CHARS, Action, format_tool_result, render_calls,
                                           router_messages, tool_message, tool_schemas)
from xrouter_lite.routing.reward import RewardConfig

# The system prompt the router writes for the model it calls, per task. Short on purpose: the tiny router
# has to learn to write it, and a replayed model ignores it anyway (it only costs input tokens).
TASK_PROMPTS = {
    "gsm": "Solve the word problem step by step; end with the final number.",
    "math-l5": "Solve the competition math problem; give the final answer in LaTeX.",
    "crux": "Predict the exact output of the Python function call.",
    "mmlu-pro": "Answer the multiple-choice question with one letter.",
    "arc_challenge": "Answer the science question with one letter.",
    "mbpp": "Write the requested Python function.",
    "winogrande": "Pick the option that fits the sentence.",
}
DEFAULT_TASK_PROMPT = "Answer the user's question correctly and concisely."
AGENT_SHARE = 0.5  # share of traces in agent mode (call, read, select); the rest are simple mode
LABELS = ("expected", "hindsight")


def task_prompt(task: str) -> str:
    """The optimized_system_prompt the traces teach for a task."""
    return TASK_PROMPTS.get(task, DEFAULT_TASK_PROMPT)


def task_accuracy(pool: ReplayPool, queries: Sequence[Query]) -> dict[tuple[str, str], float]:
    """Train-split accuracy of every model per task: {(task, model): accuracy}; the hindsight label's tie-breaker."""
    table = pool.table[pool.table["query_id"].isin({q.id for q in queries})]
    return {k: float(v) for k, v in table.groupby(["task", "model"])["correct"].mean().items()}


def oracle_label(correct: np.ndarray, usd: np.ndarray, models: Sequence[str], fallback_acc: Sequence[float]) -> str:
    """The cheapest correct model of a sub-pool; its most accurate model (on train) when none is correct."""
    ok = np.flatnonzero(np.asarray(correct) > 0)
    if len(ok):
        return models[int(ok[np.argmin(np.asarray(usd)[ok])])]
    return models[int(np.argmax(fallback_acc))]


def _check_no_test(queries: Sequence[Query]) -> None:
    """Traces are training data: a test query here would leak the evaluation into training."""
    leaked = [q.id for q in queries if split_of(q.text) == "test"]
    if leaked:
        raise ValueError(f"{len(leaked)} test-split queries passed to trace building (e.g. {leaked[0]}); "
                         "use pool.queries(split='train')")


# ---------------------------------------------------------------- plans and what they are worth
@dataclass(frozen=True)
class Plan:
    """What the teacher does: call `first` (one model, or two to compare), and ask `strong` if two disagree."""

    first: tuple[str, ...]
    strong: str | None = None

    @property
    def checks_agreement(self) -> bool:
        return len(self.first) == 2

    def label(self) -> str:
        """A short name for tables: "m", or "a+b>s" for an agreement check."""
        return self.first[0] if not self.checks_agreement else f"{self.first[0]}+{self.first[1]}>{self.strong}"

    def to_dict(self) -> dict:
        return {"first": list(self.first), "strong": self.strong}


def final_answers(pool: ReplayPool, queries: Sequence[Query], models: Sequence[str]) -> np.ndarray:
    """[query, model] normalised final answers (None where a task has no extractor or the answer has none)."""
    out = np.full((len(queries), len(models)), None, dtype=object)
    for i, q in enumerate(queries):
        records = pool.records(q.id)
        for j, m in enumerate(models):
            out[i, j] = final_answer(q.task, records.get(m, ""))
    return out


class PlanValues:
    """Expected reward of every plan per task, measured on train queries: the teacher's table.

    A single call to m is worth the mean reward of m's recorded answers on the task's train queries; an agreement
    check (a, b -> s) the mean reward of returning a's answer where a's and b's final answers agree and s's
    otherwise, charged for every call made. `plans(..., factors=)` re-prices some models (price jitter).
    """

    def __init__(self, pool: ReplayPool, queries: Sequence[Query], reward_cfg: RewardConfig,
                 agreement: bool = True):
        _check_no_test(queries)
        self.cfg = reward_cfg
        self.data: dict[str, tuple[list[str], np.ndarray, np.ndarray, np.ndarray | None]] = {}
        self._base: dict[str, tuple[dict[str, float], np.ndarray | None]] = {}
        by_task: dict[tuple[str, str], list[Query]] = {}
        for q in queries:
            by_task.setdefault((q.source, q.task), []).append(q)
        for (source, task), qs in by_task.items():
            models = pool.models_for(source)
            correct, usd = pool.outcome_matrix([q.id for q in qs], models)
            same = None
            if agreement:
                answers = final_answers(pool, qs, models)
                if any(a is not None for a in answers.ravel()):
                    k = len(models)
                    same = np.zeros((len(qs), k, k), dtype=bool)
                    for a, b in combinations(range(k), 2):
                        same[:, a, b] = same[:, b, a] = [agree(x, y) for x, y in zip(answers[:, a], answers[:, b])]
            self.data[task] = (models, correct, usd, same)

    def _values(self, task: str, idx, factors: np.ndarray, lam: float | None = None
                ) -> tuple[dict[str, float], np.ndarray | None]:
        """Singles {model: value} and checks [a, b, s] (over positions `idx`) at prices scaled by `factors`."""
        from dataclasses import replace

        from xrouter_lite.routing.reward import reward_array

        cfg = self.cfg if lam is None else replace(self.cfg, lam=lam)
        models, correct, usd, agree = self.data[task]
        idx = list(idx)
        c, u = correct[:, idx], usd[:, idx] * factors[None, :]
        singles = dict(zip([models[i] for i in idx], reward_array(c, u, cfg).mean(axis=0).tolist()))
        if agree is None:
            return singles, None
        k = len(idx)
        values = np.full((k, k, k), -np.inf)
        for a, b in combinations(range(k), 2):
            same = agree[:, idx[a], idx[b]]
            pair_cost = u[:, a] + u[:, b]
            r_agree = reward_array(c[:, a], pair_cost, cfg)
            r_escalate = reward_array(c, pair_cost[:, None] + u, cfg)  # [q, s]
            v = (same[:, None] * r_agree[:, None] + (~same)[:, None] * r_escalate).mean(axis=0)
            v[[a, b]] = -np.inf  # the third model must be another one
            values[a, b] = values[b, a] = v
        return singles, values

    def plans(self, task: str, allowed: Sequence[str], mode: str, factors: dict[str, float] | None = None,
              lam: float | None = None) -> tuple[list[Plan], np.ndarray]:
        """Every plan the sub-pool `allowed` permits in `mode`, with its expected reward (at scaled prices; at the
        cost weight `lam`, default the config's)."""
        models, _, usd, _ = self.data[task]
        pos = {m: i for i, m in enumerate(models)}
        if factors:
            idx = [pos[m] for m in allowed]
            f = np.array([factors.get(m, 1.0) for m in allowed])
            singles, checks = self._values(task, idx, f, lam)
            at = {m: i for i, m in enumerate(allowed)}
        else:
            key = (task, lam)
            if key not in self._base:  # every model at list prices: computed once per (task, λ)
                self._base[key] = self._values(task, range(len(models)), np.ones(len(models)), lam)
            singles, checks = self._base[key]
            at = pos
        plans = [Plan((m,)) for m in allowed]
        values = [singles[m] for m in allowed]
        if mode == "agent" and checks is not None:
            mean_cost = {m: float(usd[:, pos[m]].mean()) * ((factors or {}).get(m, 1.0)) for m in allowed}
            for a, b in combinations(allowed, 2):
                a, b = sorted((a, b), key=lambda m: mean_cost[m])  # the cheaper one answers when they agree
                for s in allowed:
                    v = checks[at[a], at[b], at[s]]
                    if np.isfinite(v) and mean_cost[s] > mean_cost[b]:  # escalate to a pricier model, never sideways
                        plans.append(Plan((a, b), s))
                        values.append(float(v))
        return plans, np.asarray(values)

    def best(self, task: str, allowed: Sequence[str], mode: str, factors: dict[str, float] | None = None,
             lam: float | None = None) -> tuple[Plan, float]:
        """The plan with the highest expected reward (ties: the first listed, singles before checks)."""
        plans, values = self.plans(task, allowed, mode, factors, lam)
        i = int(np.argmax(values))
        return plans[i], float(values[i])


def sample_plan(plans: Sequence[Plan], values: np.ndarray, temperature: float, rng: np.random.Generator) -> Plan:
    """A plan drawn from softmax(values / temperature); temperature 0 = the best one."""
    if temperature <= 0:
        return plans[int(np.argmax(values))]
    z = (values - values.max()) / temperature
    p = np.exp(z)
    return plans[int(rng.choice(len(plans), p=p / p.sum()))]


# ---------------------------------------------------------------- traces
def build_traces(pool: ReplayPool, queries: Sequence[Query], seed: int = 0, agent_share: float = AGENT_SHARE,
                 min_pool: int = 2, max_pool: int | None = None, max_turns: int = 3,
                 tool_result_chars: int = MAX_TOOL_RESULT_CHARS, labels: str = "expected", lam: float = 10.0,
                 label_temperature: float = 0.02, full_pool_share: float = 0.5, agreement: bool = True,
                 values: PlanValues | None = None, price_jitter: float = 0.0, jitter_share: float = 0.5,
                 answer_notes: bool = False, held_out: Sequence[str] = (), lambda_grid: Sequence[float] = (),
                 state_lambda: bool = False) -> list[dict]:
    """One SFT example per query: {"messages", "tools", "query_id", "task", "mode", "label", "plan", "allowed"}.

    `lam` is the reward's cost weight the expected-reward teacher optimises (use the GRPO stage's); `agreement`
    lets it use agreement checks in agent mode. `price_jitter` > 1 reprices some models of `jitter_share` of the
    traces by up to that factor either way (`repricing.py`): the prompt shows the new prices and the teacher
    values plans at them, so the label follows the prices. `tool_result_chars` clips the model answers an agent trace shows
    the router; evaluation and GRPO clip the same way (`format_tool_result`), so the router always reads what it
    was trained on. `held_out` models never appear in a trace: evaluation can then offer them as unseen models.
    `lambda_grid` (non-empty: a λ-conditioned router) draws each trace's cost weight from the grid, states it in the
    system prompt and values the plans at it, so the label depends on the stated λ; `state_lambda` states the
    fixed `lam` in every prompt.
    """
    if labels not in LABELS:
        raise ValueError(f"unknown labels {labels!r}; choose one of: {', '.join(LABELS)}")
    _check_no_test(queries)
    from xrouter_lite.pool.repricing import RepricedPool, draw_factors

    rng = np.random.default_rng(seed)
    draws = []  # (sub-pool, mode, price factors) per query, drawn in query order: a seed always gives the same traces
    for q in queries:
        source_models = [m for m in pool.models_for(q.source) if m not in held_out]
        if rng.random() < full_pool_share:
            allowed = list(source_models)
        else:
            allowed = sample_subpool(source_models, rng, min_size=min(min_pool, len(source_models)), max_size=max_pool)
        mode = "agent" if rng.random() < agent_share else "simple"
        factors = draw_factors(allowed, rng, price_jitter) if rng.random() < jitter_share else {}
        draws.append((allowed, mode, factors))
    lams = [float(rng.choice(lambda_grid)) for _ in queries] if len(lambda_grid) else [lam] * len(queries)
    if labels == "expected":
        values = values or PlanValues(pool, queries, RewardConfig(lam=lam), agreement=agreement)
        plans = [sample_plan(*values.plans(q.task, allowed, mode, factors, q_lam), label_temperature, rng)
                 for q, (allowed, mode, factors), q_lam in zip(queries, draws, lams)]
    else:
        acc = task_accuracy(pool, queries)
        outcomes = pool.subpool_outcomes([q.id for q in queries], [allowed for allowed, _, _ in draws])
        plans = [Plan((oracle_label(correct, usd * np.array([f.get(m, 1.0) for m in allowed]), allowed,
                                    [acc.get((q.task, m), 0.0) for m in allowed]),))
                 for q, (allowed, _, f), (correct, usd) in zip(queries, draws, outcomes)]
    stated = bool(len(lambda_grid)) or state_lambda
    traces = []
    for q, (allowed, mode, factors), plan, q_lam in zip(queries, draws, plans, lams):
        view = RepricedPool(pool, factors) if factors else pool
        trace = make_trace(view, q, allowed, plan, mode, max_turns, tool_result_chars, answer_notes,
                           q_lam if stated else None)
        traces.append(trace | {"prices": factors, "lambda": q_lam})
    return traces


def make_trace(pool: ReplayPool, query: Query, allowed: Sequence[str], plan: Plan | str, mode: str,
               max_turns: int = 3, tool_result_chars: int = MAX_TOOL_RESULT_CHARS, answer_notes: bool = False,
               lam: float | None = None) -> dict:
    """The conversation that carries out `plan` (or a single model id) for `query` in `mode`.

    Simple mode: one call. Agent mode: call, read, select; for an agreement check, two calls in one turn, then
    select the first when their final answers agree, else call `plan.strong`, read it, and select it.
    """
    plan = Plan((plan,)) if isinstance(plan, str) else plan
    if mode == "simple" and plan.checks_agreement:
        raise ValueError("simple mode makes exactly one call: an agreement check needs agent mode")
    prompt = task_prompt(query.task)
    messages = router_messages(query.text, mode, max_turns, lam)  # lam: stated to a λ-conditioned router

    def call(models: Sequence[str]) -> dict[str, str]:
        messages.append({"role": "assistant", "content": render_calls(
            [Action("call", model=m, args={"optimized_system_prompt": prompt}) for m in models])})
        for m in models:
            answer = pool.call(m, query, system_prompt=prompt)
            if mode == "agent":
                line = note(query.task, answer.text, {pool.spec(k).tool: t for k, t in texts.items()}, lam) if answer_notes else ""
                messages.append(tool_message(m, format_tool_result(m, answer, tool_result_chars, line)))
            texts[m] = answer.text

    texts: dict[str, str] = {}  # every answer so far, in call order (what the runtime's note compares against)

    def select(model: str) -> None:
        messages.append({"role": "assistant", "content": render_calls(
            [Action("select", model=model, args={"model_call_name": pool.spec(model).tool})])})

    call(plan.first)
    if mode == "agent":
        chosen = plan.first[0]
        if plan.checks_agreement:
            a, b = (final_answer(query.task, texts[m]) for m in plan.first)
            if not agree(a, b):
                call([plan.strong])
                chosen = plan.strong
        select(chosen)
    return {"messages": messages, "tools": tool_schemas([pool.spec(m) for m in allowed], mode),
            "query_id": query.id, "task": query.task, "mode": mode, "label": plan.label(), "plan": plan.to_dict(),
            "allowed": list(allowed)}
