"""Time the tidy table: a cold build from the upstream files, then a reload from the parquet cache.

    python benchmarks/build_table.py                      # data from $XROUTER_LITE_DATA or ../shared/data
    python benchmarks/build_table.py --data DIR --keep    # keep the cache it built (in a temp dir otherwise)

Goals on 2 CPU cores: cold build <= 120 s, cached load <= 5 s.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from xrouter_lite.pool.table import load_table  # noqa: E402  (after the path tweak, so it runs from a checkout)

GOALS = {"build": 120.0, "cached load": 5.0}


def cpu_seconds() -> float:
    """CPU time of this process and its finished worker processes."""
    return sum(resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
               for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))


def timed(label: str, fn):
    """Run fn, print its wall and CPU time against the goal, return its result."""
    start, cpu = time.perf_counter(), cpu_seconds()
    out = fn()
    secs, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    verdict = "" if secs <= GOALS[label] else "  SLOWER THAN GOAL"
    # CPU seconds do not depend on other load on the machine; wall seconds do (see the load average).
    print(f"{label:>12}: {secs:6.1f} s wall, {cpu:6.1f} s CPU  (goal <= {GOALS[label]:.0f} s){verdict}")
    return out


def main() -> int:
    """Build cold into a fresh cache dir, reload, print times and row counts."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=os.environ.get("XROUTER_LITE_DATA") or str(REPO.parent / "shared" / "data"))
    p.add_argument("--keep", action="store_true", help="build into ./.cache and keep it")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cache = REPO / ".cache" / "bench" if args.keep else Path(tmp)
        for old in cache.glob("table-*.parquet"):
            old.unlink()  # a cold build: no cached parts
        table = timed("build", lambda: load_table(args.data, cache_dir=cache, progress=False))
        built = sorted(cache.glob("table-*.parquet"))
        again = timed("cached load", lambda: load_table(args.data, cache_dir=cache, progress=False))
        assert len(again) == len(table)
        if sorted(cache.glob("table-*.parquet")) != built:
            print("note: the second load rebuilt: the table's code (table.TABLE_CODE) or prices changed during the run")
        size = sum(f.stat().st_size for f in cache.glob("table-*.parquet")) / 1e6
    print(f"cache: {size:.0f} MB of parquet; cores: {os.cpu_count()}; load average: {os.getloadavg()[0]:.1f}")
    counts = table.groupby("source").agg(rows=("query_id", "size"), queries=("query_id", "nunique"),
                                         models=("model", "nunique"), accuracy=("correct", "mean"))
    print(counts.to_string(float_format=lambda x: f"{x:.3f}"))
    print(f"total rows: {len(table)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
