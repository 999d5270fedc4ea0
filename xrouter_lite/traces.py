"""SFT traces: chat-format routing examples, with tools, from the replay pool's train split only.

For each training query and a randomly drawn sub-pool, the target is the *hindsight oracle label* of that
sub-pool: the cheapest model that answered the query correctly, or the sub-pool's most accurate model
(train-split accuracy on the query's task) when none did. That is the supervised label routing datasets
such as RouterBench provide. It teaches the output format and a prior over models; it cannot teach the
best choice per query (the label depends on answers the router never sees) and it ignores expected reward,
which is what GRPO optimises next.

    >>> from xrouter_lite.traces import build_traces              # doctest: +SKIP
    >>> traces = build_traces(pool, pool.queries(split="train", source="zeroeval"), seed=0)   # doctest: +SKIP
    >>> traces[0]["messages"][-1]["content"][:11]                 # doctest: +SKIP
    '<tool_call>'
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from xrouter_lite.data import split_of
from xrouter_lite.pool import Query, ReplayPool, sample_subpool
from xrouter_lite.protocol import (MAX_TOOL_RESULT_CHARS, Action, format_tool_result, render_calls, router_messages,
                                   tool_message, tool_schemas)

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


def task_prompt(task: str) -> str:
    """The optimized_system_prompt the traces teach for a task."""
    return TASK_PROMPTS.get(task, DEFAULT_TASK_PROMPT)


def task_accuracy(pool: ReplayPool, queries: Sequence[Query]) -> dict[tuple[str, str], float]:
    """Train-split accuracy of every model per task: {(task, model): accuracy}; the tie-breaker for labels."""
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


def build_traces(pool: ReplayPool, queries: Sequence[Query], seed: int = 0, agent_share: float = AGENT_SHARE,
                 min_pool: int = 2, max_pool: int | None = None, max_turns: int = 3,
                 tool_result_chars: int = MAX_TOOL_RESULT_CHARS) -> list[dict]:
    """One SFT example per query: {"messages", "tools", "query_id", "mode", "label", "allowed"}.

    `tool_result_chars` clips the model answer an agent trace shows the router; use the same clip when
    evaluating (`evaluate_lm_router(tool_result_chars=...)`), so the router reads answers as long as it was
    trained on.
    """
    _check_no_test(queries)
    rng = np.random.default_rng(seed)
    acc = task_accuracy(pool, queries)
    draws = []  # (sub-pool, mode) per query, drawn in query order so a seed always gives the same traces
    for q in queries:
        source_models = pool.models_for(q.source)
        allowed = sample_subpool(source_models, rng, min_size=min(min_pool, len(source_models)), max_size=max_pool)
        draws.append((allowed, "agent" if rng.random() < agent_share else "simple"))
    outcomes = pool.subpool_outcomes([q.id for q in queries], [allowed for allowed, _ in draws])
    traces = []
    for q, (allowed, mode), (correct, usd) in zip(queries, draws, outcomes):
        label = oracle_label(correct, usd, allowed, [acc.get((q.task, m), 0.0) for m in allowed])
        traces.append(make_trace(pool, q, allowed, label, mode, max_turns, tool_result_chars))
    return traces


def make_trace(pool: ReplayPool, query: Query, allowed: Sequence[str], label: str, mode: str,
               max_turns: int = 3, tool_result_chars: int = MAX_TOOL_RESULT_CHARS) -> dict:
    """The conversation that routes `query` to `label`: call it, and in agent mode read and select it."""
    call = Action("call", model=label, args={"optimized_system_prompt": task_prompt(query.task)})
    messages = router_messages(query.text, mode, max_turns)
    messages.append({"role": "assistant", "content": render_calls([call])})
    if mode == "agent":
        answer = pool.call(label, query, system_prompt=task_prompt(query.task))
        messages.append(tool_message(label, format_tool_result(label, answer, tool_result_chars)))
        select = Action("select", model=label, args={"model_call_name": pool.spec(label).tool})
        messages.append({"role": "assistant", "content": render_calls([select])})
    return {"messages": messages, "tools": tool_schemas([pool.spec(m) for m in allowed], mode),
            "query_id": query.id, "mode": mode, "label": label, "allowed": list(allowed)}
