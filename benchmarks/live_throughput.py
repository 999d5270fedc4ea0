"""Throughput of the live pool: live calls against the local test server, then cached replays.

    python benchmarks/live_throughput.py                       # 400 live calls at concurrency 8, then replays
    python benchmarks/live_throughput.py --live 1000 --concurrency 16 --delay 0.05 --json

Live calls go through the whole path a recording uses (openai client, endpoint semaphore, retries,
cache write, budget reserve/settle) against `tests/openai_test_server.py` run in its own process, so
the figure is the pool's overhead plus the server's, not a provider's latency (`--delay` adds one).
Cached replays ask the same questions again: key hashing + one SQLite lookup per call (goal >= 5,000/s).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from xrouter_lite.pool.budget import BudgetGuard  # noqa: E402
from xrouter_lite.pool.cache import ResponseCache  # noqa: E402
from xrouter_lite.pool.core import ModelSpec, Query  # noqa: E402
from xrouter_lite.pool.live import LivePool  # noqa: E402


def start_server() -> tuple[subprocess.Popen, str]:
    """The test server in a child process (its own GIL); returns it and its base URL."""
    proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "openai_test_server.py"), "--port", "0"],
                            stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


def timed(fn, jobs: list, workers: int) -> float:
    """Seconds to run fn over jobs on `workers` threads."""
    t0 = time.perf_counter()
    if workers == 1:
        for j in jobs:
            fn(j)
    else:
        with ThreadPoolExecutor(workers) as ex:
            list(ex.map(fn, jobs))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--live", type=int, default=400, help="distinct live calls (each is then replayed)")
    ap.add_argument("--concurrency", type=int, default=8, help="threads and per-endpoint slots for live calls")
    ap.add_argument("--delay", type=float, default=0.0, help="seconds the server waits per answer (fake latency)")
    ap.add_argument("--replays", type=int, default=20_000, help="cached calls to time")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    args = ap.parse_args()

    os.environ.setdefault("XR_BENCH_KEY", "sk-bench-not-a-real-key")
    proc, base_url = start_server()
    model = f"echo?delay={args.delay}" if args.delay else "echo"
    spec = ModelSpec("echo", 0.15, 0.60, provider="test", base_url=base_url, api_key_env="XR_BENCH_KEY",
                     model_name=model)
    queries = [Query(f"bench/t/{i}", "live", "t", f"What is {i} + {i}?") for i in range(args.live)]
    results = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cache = ResponseCache(Path(tmp) / "cache.sqlite")
            budget = BudgetGuard(100.0, path=Path(tmp) / "cache.sqlite")
            pool = LivePool([spec], cache, budget, max_tokens=256, concurrency_per_endpoint=args.concurrency)
            s = timed(lambda q: pool.call("echo", q), queries, args.concurrency)
            results["live_calls_per_s"] = args.live / s
            results["live_concurrency"] = args.concurrency
            assert pool.stats["paid"] == args.live, pool.stats

            replays = [queries[i % args.live] for i in range(args.replays)]
            s = timed(lambda q: pool.call("echo", q), replays, 1)
            results["cached_calls_per_s"] = args.replays / s  # the whole Pool.call path, one thread
            s = timed(lambda q: pool.call("echo", q), replays, 4)
            results["cached_calls_per_s_4_threads"] = args.replays / s
            keys = [pool.call("echo", q).meta["cache_key"] for q in queries]
            lookups = [keys[i % len(keys)] for i in range(args.replays)]
            s = timed(cache.get, lookups, 1)
            results["cache_get_per_s"] = args.replays / s  # the SQLite lookup alone
            assert pool.stats["paid"] == args.live, "a replay was paid for"
            pool.close()
            cache.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    if args.json:
        print(json.dumps({k: round(v, 1) for k, v in results.items()}))
    else:
        for k, v in results.items():
            print(f"{k:32s} {v:12,.1f}")


if __name__ == "__main__":
    main()
