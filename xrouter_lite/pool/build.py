"""One source's tidy table from its raw rows: graded, output tokens counted, priced, in exactly the DESIGN.md columns.

`readers` turn the upstream files into ungraded rows; here ZeroEval and MMLU-Pro rows are graded by
`xrouter_lite.pool.grading.grade` and their output tokens counted (in GRADE_WORKERS processes on the full data), then
priced by `costs.reprice`; RouterBench carries its own scores and costs. A grader failure (exception or timeout) scores
0 and is counted per task/model with example ids in `attrs["grader_errors"]`. `read_zeroeval`, `read_mmlu_pro` and
`read_routerbench` build one source, uncached; `table.load_table` caches what `_build` returns.

    >>> from xrouter_lite.pool.build import COLUMNS, read_routerbench
    >>> COLUMNS[-4:]
    ['correct', 'in_tokens', 'out_tokens', 'usd']
    >>> read_routerbench("../shared/data").shape   # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import pandas as pd

from xrouter_lite.pool.core import MissingPriceError, load_prices, missing_price_message
from xrouter_lite.pool.costs import REASONING_MULTIPLIER, reprice
from xrouter_lite.pool.readers import (GRADE_WORKERS, READERS, count_many, data_dir_or_default, mmlu_raw,
                                       routerbench_raw, zeroeval_raw)

COLUMNS = ["query_id", "source", "task", "category", "question", "gold", "model", "response",
           "correct", "in_tokens", "out_tokens", "usd"]
STR_COLUMNS = ["query_id", "source", "task", "category", "question", "model", "response"]
PARALLEL_MIN_ROWS = 4000  # below this a process pool costs more than it saves
CHUNK_ROWS = 2000  # rows per worker task: small enough for a smooth progress bar


# ---------------------------------------------------------------- grading and pricing the raw rows
def _grade_chunk(tasks: list, responses: list, golds: list, models: list, ids: list) -> tuple:
    """Grade one chunk (0/1) and count its output tokens; (correct, out_tokens, grader failures).

    A grader failure (exception or timeout) scores 0 and is returned as (task, model, query_id, kind, detail).
    """
    from xrouter_lite.pool.grading import GraderError, grade

    correct, failures = np.zeros(len(responses)), []
    with warnings.catch_warnings():
        # Outputs are arbitrary text; Python warns when the crux grader parses some of them as literals.
        warnings.simplefilter("ignore", SyntaxWarning)
        for i, (task, resp, gold) in enumerate(zip(tasks, responses, golds)):
            try:
                correct[i] = float(grade(task, resp, gold, on_error="raise"))
            except GraderError as err:
                failures.append((task, models[i], ids[i], err.kind, err.detail[:200]))
    return correct, count_many(responses), failures


def _grade_all(raw: pd.DataFrame, progress: bool) -> tuple[np.ndarray, np.ndarray, dict]:
    """Grade every row and count output tokens, in GRADE_WORKERS processes when there are many rows.

    Returns (correct, out_tokens, grader_errors) where grader_errors = {"counts": {"task/model": n},
    "examples": {"task/model": [query ids]}, "kinds": {"timeout": n, "exception": n}}.
    """
    from tqdm.auto import tqdm

    try:
        from xrouter_lite.pool.grading import grade  # noqa: F401 - fail here, with a clear message
    except ImportError as err:
        raise ImportError(f"grading ZeroEval/MMLU-Pro needs xrouter_lite.pool.grading.grade ({err})") from err
    cols = [raw[c].tolist() for c in ("task", "response", "gold", "model", "query_id")]
    n = len(raw)
    spans = [(i, min(i + CHUNK_ROWS, n)) for i in range(0, n, CHUNK_ROWS)]
    correct, out_tokens, failures = np.zeros(n), np.zeros(n, dtype=np.int64), []
    bar = tqdm(total=n, desc=f"grading {raw['source'].iloc[0] if n else ''}", unit="row", disable=not progress)

    def take(span, result):
        c, t, fails = result
        correct[span[0]:span[1]], out_tokens[span[0]:span[1]] = c, t
        failures.extend(fails)
        bar.update(span[1] - span[0])

    if n < PARALLEL_MIN_ROWS or GRADE_WORKERS < 2:
        for span in spans:
            take(span, _grade_chunk(*(c[span[0]:span[1]] for c in cols)))
    else:
        with ProcessPoolExecutor(GRADE_WORKERS) as pool:
            futures = {pool.submit(_grade_chunk, *(c[s[0]:s[1]] for c in cols)): s for s in spans}
            for fut in as_completed(futures):
                take(futures[fut], fut.result())
    bar.close()
    return correct, out_tokens, _summarise_failures(failures)


def _summarise_failures(failures: list[tuple]) -> dict:
    """Grader failures as counts per "task/model", up to 3 example query ids each, and counts per kind."""
    counts, examples, kinds = {}, {}, {}
    for task, model, qid, kind, _ in sorted(failures, key=lambda f: (f[0], f[1], f[2])):
        key = f"{task}/{model}"
        counts[key] = counts.get(key, 0) + 1
        if len(examples.setdefault(key, [])) < 3:
            examples[key].append(qid)
        kinds[kind] = kinds.get(kind, 0) + 1
    first = next((f"{f[3]}: {f[4]}" for f in failures), "")
    return {"counts": counts, "examples": examples, "kinds": kinds, "first": first}


def _finish(raw: pd.DataFrame, progress: bool) -> pd.DataFrame:
    """Grade, count output tokens and price raw ZeroEval/MMLU-Pro rows into the tidy table.

    `attrs` carries what the load reports: `coverage` (from the reader) and `grader_errors`.
    """
    unpriced = sorted(set(raw["model"]) - set(load_prices()))
    if unpriced:  # before grading, which takes a minute on the full data
        raise MissingPriceError(missing_price_message(unpriced))
    attrs = dict(raw.attrs)
    raw = raw.reset_index(drop=True)
    raw["correct"], raw["out_tokens"], errors = _grade_all(raw, progress)
    raw["usd"] = 0.0
    table = reprice(_conform(raw), REASONING_MULTIPLIER)
    table.attrs = {**attrs, "grader_errors": errors}
    return table


def _conform(table: pd.DataFrame) -> pd.DataFrame:
    """Exactly the DESIGN.md columns and dtypes, with a fresh index (rows stay in reader order)."""
    table = table[COLUMNS].copy()
    for c in STR_COLUMNS:
        table[c] = table[c].astype(str)
    table["gold"] = table["gold"].astype(object).where(table["gold"].notna(), None)
    table["correct"], table["usd"] = table["correct"].astype(float), table["usd"].astype(float)
    table["in_tokens"], table["out_tokens"] = table["in_tokens"].astype("int64"), table["out_tokens"].astype("int64")
    return table.reset_index(drop=True)


# ---------------------------------------------------------------- one source's table
def read_zeroeval(data_dir=None, progress: bool = True) -> pd.DataFrame:
    """ZeroEval (12 models x GSM8K, MATH-L5, CRUXEval) graded by `grading.grade`, as the tidy table."""
    return _finish(zeroeval_raw(data_dir_or_default(data_dir)), progress)


def read_mmlu_pro(data_dir=None, progress: bool = True) -> pd.DataFrame:
    """MMLU-Pro (8 models; the questions all of them were asked identically) graded by `grading.grade`.

    Upstream's `pred` is ignored: where its parser found no letter it holds a random fill-in.
    """
    return _finish(mmlu_raw(data_dir_or_default(data_dir)), progress)


def read_routerbench(data_dir=None, progress: bool = True, allow_pickle: bool | None = None) -> pd.DataFrame:
    """RouterBench 0-shot (11 models) with its recorded scores and USD; tokens estimated for display.

    Reads `routerbench/routerbench_zs/*.csv` and, if present AND allowed (`allow_pickle`, else
    ${PICKLE_ENV}=1: unpickling runs code), `routerbench_0shot.pkl` (same columns).
    Rows with a blank score or cost for ANY model are dropped (28 of 3,178 in the CSV slice), then
    duplicate prompts (upstream's train/test leak; 2 in the slice) keeping the first. The counts are
    logged and kept in `table.attrs["dropped"]`. There is no gold answer: `gold` is None.
    """
    raw = routerbench_raw(data_dir_or_default(data_dir), allow_pickle)
    table = _conform(raw)
    table.attrs["dropped"] = raw.attrs["dropped"]
    return table


def _build(source: str, data_dir: Path, progress: bool, allow_pickle: bool | None = None) -> pd.DataFrame:
    """One source's tidy table, read and graded from the upstream files; `attrs` holds what the load reports."""
    if source == "routerbench":
        raw = READERS[source](data_dir, allow_pickle)
        table = _conform(raw)
        table.attrs = {"dropped": dict(raw.attrs.get("dropped", {})), "grader_errors": _summarise_failures([])}
        return table
    return _finish(READERS[source](data_dir), progress)
