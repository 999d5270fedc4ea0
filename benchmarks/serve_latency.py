"""Router-overhead latency of the served router: requests/s and p50/p95 at concurrency 1 and 8.

The pool is a replay pool (answers are table lookups, ~0 ms), so what is measured is the server's own
cost: HTTP + JSON through the official `openai` client, the episode harness, and the router. Two routers:

- `scripted`: calls the cheapest model, then selects it (the HTTP + harness floor, no LM);
- `tiny-lm`:  an untrained tiny Qwen2 router (`serve.build_placeholder_router`) on the CPU, generating
  `--new-tokens` tokens per turn (an untrained model never stops early, so each turn costs exactly that;
  a trained router writes ~40-token tool calls over ~2 turns). Concurrent requests share LMRouter batches.

    python benchmarks/serve_latency.py                       # synthetic 4-model pool, both routers
    python benchmarks/serve_latency.py --data ../shared/data --routers tiny-lm --requests 32 --json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the tiny router is built locally; never reach for the Hub

import pandas as pd  # noqa: E402
from openai import OpenAI  # noqa: E402

from xrouter_lite.pool.core import ReplayPool, load_prices, tool_name  # noqa: E402
from xrouter_lite.routing.protocol import Action, render_calls  # noqa: E402
from xrouter_lite.serve import BackgroundServer, build_placeholder_router, create_app  # noqa: E402

MODELS = ["gemma-2-2b-it", "gpt-4o-mini-2024-07-18", "claude-3-5-haiku-20241022", "gpt-4o-2024-08-06"]


def synthetic_table(n: int) -> pd.DataFrame:
    """n arithmetic queries answered by every model of MODELS (the tidy table of docs/DESIGN.md)."""
    prices = load_prices()
    rows = [{"query_id": f"bench/add/{i}", "source": "zeroeval", "task": "gsm", "category": "",
             "question": f"A shop sells {i} apples in the morning and {i + 7} in the afternoon. How many in total?",
             "gold": str(2 * i + 7), "model": m, "response": f"They sold {2 * i + 7} apples. Answer: {2 * i + 7}",
             "correct": 1.0, "in_tokens": 60, "out_tokens": 20,
             "usd": (60 * prices[m].price_in + 20 * prices[m].price_out) / 1e6}
            for i in range(n) for m in MODELS]
    return pd.DataFrame(rows)


def replay_pool(data: str | None, n: int) -> tuple[ReplayPool, list[str]]:
    """The pool and the questions to send: the real validation split of --data, else a synthetic table."""
    if data:
        from xrouter_lite.pool.table import load_table

        pool = ReplayPool(load_table(data, sources=["zeroeval"], progress=False))
        return pool, list(pool.query_table(split="validation")["question"][:n])
    pool = ReplayPool(synthetic_table(n))
    return pool, list(pool.query_table()["question"])


def scripted_router(pool: ReplayPool):
    """Turn 1: call the cheapest model; turn 2: select its answer."""
    cheapest = min(pool.models, key=lambda s: s.price_in + s.price_out).id
    first = render_calls([Action("call", model=cheapest, args={"optimized_system_prompt": "Answer briefly."})])
    then = render_calls([Action("select", model=cheapest, args={"model_call_name": tool_name(cheapest)})])
    return lambda messages, tools: first if messages[-1]["role"] == "user" else then


def tiny_lm_router(pool: ReplayPool, questions: list[str], new_tokens: int):
    """An untrained tiny LM router behind LMRouter (micro-batched), built in a temporary directory."""
    from xrouter_lite.training.lm_router import LMRouter
    from xrouter_lite.training.modeling import load_router

    out = build_placeholder_router(pool, tempfile.mkdtemp(prefix="serve-bench-"), questions)
    model, tokenizer = load_router(out, device="cpu")
    return LMRouter(model, tokenizer, max_new_tokens=new_tokens)


def measure(client: OpenAI, questions: list[str], requests: int, concurrency: int) -> dict:
    """Send `requests` chat completions from `concurrency` threads; throughput and latency percentiles."""
    def one(i: int) -> tuple[float, dict]:
        start = time.perf_counter()
        r = client.chat.completions.create(model="xrouter-lite",
                                           messages=[{"role": "user", "content": questions[i % len(questions)]}])
        return time.perf_counter() - start, r.router_metadata

    with ThreadPoolExecutor(concurrency) as ex:
        list(ex.map(one, range(min(concurrency, requests))))  # warm up: first batch, imports, connections
        start = time.perf_counter()
        results = list(ex.map(one, range(requests)))
        wall = time.perf_counter() - start
    latencies = sorted(t for t, _ in results)
    router_s = [m["router_s"] for _, m in results]
    return {"concurrency": concurrency, "requests": requests, "req_per_s": round(requests / wall, 2),
            "p50_ms": round(1000 * _percentile(latencies, 50), 1), "p95_ms": round(1000 * _percentile(latencies, 95), 1),
            "router_p50_ms": round(1000 * statistics.median(router_s), 1),
            "strategies": dict(Counter(m["strategy"] for _, m in results))}


def _percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated percentile of sorted values."""
    k = (len(sorted_values) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--routers", default="scripted,tiny-lm", help="comma-separated: scripted, tiny-lm")
    ap.add_argument("--requests", type=int, default=48, help="timed requests per (router, concurrency)")
    ap.add_argument("--concurrency", default="1,8", help="comma-separated client thread counts")
    ap.add_argument("--new-tokens", type=int, default=32, help="tiny-lm: tokens generated per router turn")
    ap.add_argument("--data", default=None, help="recorded data dir: replay its zeroeval validation questions")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: torch's); 1 is often faster on a busy 2-core machine")
    ap.add_argument("--json", action="store_true", help="one JSON object per line")
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    pool, questions = replay_pool(args.data, max(args.requests, 8))
    rows = []
    for name in [r.strip() for r in args.routers.split(",") if r.strip()]:
        router = scripted_router(pool) if name == "scripted" else tiny_lm_router(pool, questions, args.new_tokens)
        with BackgroundServer(create_app(router, pool, timeout_s=600)) as server:
            client = OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=600)
            for c in (int(x) for x in args.concurrency.split(",")):
                row = {"router": name, **measure(client, questions, args.requests, c)}
                rows.append(row)
                print(json.dumps(row) if args.json else
                      f"{name:9s} concurrency {c:2d}: {row['req_per_s']:7.2f} req/s  p50 {row['p50_ms']:8.1f} ms  "
                      f"p95 {row['p95_ms']:8.1f} ms  (router p50 {row['router_p50_ms']} ms; {row['strategies']})",
                      flush=True)


if __name__ == "__main__":
    main()
