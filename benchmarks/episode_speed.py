"""Episodes per second for replayed agent-mode episodes: a scripted router calls two models, then selects one.

This measures the harness alone (prompting, parsing, the two concurrent calls, grading, reward), i.e. the
floor under every GRPO rollout and evaluation; a router LM's generation comes on top.

    python benchmarks/episode_speed.py --queries 2000
"""

from __future__ import annotations

import argparse
import random
import time

from xrouter_lite.pool.core import Answer, ModelSpec, Pool, PoolError, Query
from xrouter_lite.routing.episode import run_episodes
from xrouter_lite.routing.protocol import Action, render_calls

SPECS = [ModelSpec("budget-a", 0.1, 0.4, tier="budget", context=32768, description="Small general model."),
         ModelSpec("standard-b", 0.5, 2.0, context=128000, description="Solid general model."),
         ModelSpec("premium-c", 3.0, 12.0, tier="premium", context=200000, description="Strong reasoning model.")]


class DictPool(Pool):
    """Recorded answers in a dict {(query_id, model): Answer}: a replay pool without the table behind it."""

    models = SPECS

    def __init__(self, answers: dict):
        self.answers = answers

    def call(self, model, query, system_prompt=None, temperature=None):
        try:
            return self.answers[(query.id, model)]
        except KeyError:
            raise PoolError(f"no recorded answer of {model!r} for {query.id!r}") from None


def make_data(n: int, seed: int = 0) -> tuple[list[Query], DictPool]:
    """n arithmetic queries with a recorded answer of every model (premium right more often)."""
    rng = random.Random(seed)
    queries, answers = [], {}
    for i in range(n):
        a, b = rng.randint(1, 999), rng.randint(1, 999)
        q = Query(f"bench/add/{i}", "bench", "add", f"What is {a} + {b}? Show your work.", gold=str(a + b))
        queries.append(q)
        for spec, p_right in zip(SPECS, (0.5, 0.7, 0.9)):
            value = a + b if rng.random() < p_right else a + b + 1
            text = f"Adding {a} and {b} step by step gives {value}. " * 8 + f"Answer: {value}"
            answers[(q.id, spec.id)] = Answer(text, 40, 120, (40 * spec.price_in + 120 * spec.price_out) / 1e6,
                                              model=spec.id)
    return queries, DictPool(answers)


CALL_TWO = render_calls([Action("call", model=m, args={"optimized_system_prompt": "Solve it; end with 'Answer: N'."})
                         for m in ("budget-a", "premium-c")])
SELECT = render_calls([Action("select", model="premium-c", args={"model_call_name": "call_premium_c"})])


def scripted_router(messages: list[dict], tools: list[dict]) -> str:
    """Turn 1: call two models; turn 2: select the premium one."""
    return CALL_TWO if messages[-1]["role"] == "user" else SELECT


def grade(query: Query, text: str) -> float:
    return float(text.rsplit("Answer:", 1)[-1].strip() == query.gold)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3, help="timed passes; the best is reported")
    args = ap.parse_args()
    queries, pool = make_data(args.queries)
    allowed = [s.id for s in SPECS]
    run_episodes(scripted_router, queries[:50], pool, allowed, grader=grade, progress=False)  # warm up
    best = float("inf")
    for _ in range(args.repeats):
        start = time.perf_counter()
        eps = run_episodes(scripted_router, queries, pool, allowed, grader=grade, progress=False)
        best = min(best, time.perf_counter() - start)
    assert all(e.ending == "selected" and len(e.calls) == 2 for e in eps)
    acc = sum(e.score for e in eps) / len(eps)
    usd = sum(e.usd for e in eps) / len(eps)
    print(f"{len(eps)} agent-mode episodes (2 concurrent calls + select) in {best:.2f} s: "
          f"{len(eps) / best:,.0f} episodes/s · accuracy {acc:.3f} · ${usd:.6f}/query")


if __name__ == "__main__":
    main()
