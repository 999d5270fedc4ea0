"""Recording a live pool into the tidy table: `record` asks every model every query through a `LivePool`, grades
the answers and writes the table (source "live"); `select_queries` picks the queries from the recorded data, and
`record_command` is `python -m xrouter_lite record`.

A recording is resumable: each answered call is journaled the moment it is graded, the table is rewritten every
CHECKPOINT_S, and a rerun pays for nothing already answered (the response cache and the budget ledger share one
SQLite file, by default `responses.sqlite` in `profiles.resolve_cache_dir()`).

    python -m xrouter_lite example-pool --out pool.yaml   # then keep the models you have keys for
    python -m xrouter_lite record --pool pool.yaml --tasks gsm,crux --n 20 --budget 2 \
        --out runs/live/pool.parquet
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Callable, Mapping, Sequence

from xrouter_lite.pool.budget import BudgetExceeded, BudgetGuard
from xrouter_lite.pool.cache import ResponseCache
from xrouter_lite.pool.config import load_pool_config
from xrouter_lite.pool.core import ModelSpec, Query
from xrouter_lite.pool.build import COLUMNS  # the tidy table of docs/DESIGN.md: a recording writes the same columns
from xrouter_lite.pool.live import LivePool, LivePoolError
from xrouter_lite.profiles import resolve_cache_dir

log = logging.getLogger(__name__)

# The response cache's file name, in profiles.resolve_cache_dir() ($XROUTER_LITE_CACHE, else <checkout>/.cache) as it
# is when a recording starts (not at import, and not relative to the working directory): a recording run from
# notebooks/ or elsewhere reuses the cache and budget ledger of one run from the checkout. `record --cache` defaults
# to it too.
RESPONSE_CACHE = "responses.sqlite"
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
    `cache_path` defaults to RESPONSE_CACHE in `profiles.resolve_cache_dir()`.
    """
    specs = load_pool_config(pool_config) if isinstance(pool_config, (str, os.PathLike)) else list(pool_config)
    out_path, cache_path = Path(out_path), Path(cache_path or resolve_cache_dir() / RESPONSE_CACHE)
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
