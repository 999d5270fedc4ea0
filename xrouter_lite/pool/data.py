"""Recorded model outcomes (ZeroEval, MMLU-Pro, RouterBench) as one tidy table, with splits and download.

One row per (query, model); the columns are the contract in docs/DESIGN.md. ZeroEval and MMLU-Pro are
graded here by `xrouter_lite.pool.grading.grade`; RouterBench carries its own scores and costs. Tokens are
ONE stated estimate, `count_tokens`; cost = tokens x the model's tokenizer factor (`TOKEN_FACTORS`, calibrated
on RouterBench's recorded costs) x the list prices of `prices.csv` (and your --prices file).

Bad data fails loudly and caches nothing: a DataError names the file (and record, field). A model file that
answers only part of its task is reported at every load, and the source keeps the queries EVERY one of its
models answered (so no (query, model) pair is ever missing later). Grader failures are counted per task/model,
warned with example ids, and cached with the table (`table.attrs`). A RouterBench pickle is read only on opt-in.

    >>> from xrouter_lite.pool.data import count_tokens, split_of
    >>> count_tokens("How many eggs does Janet sell every day?")
    9
    >>> split_of("What is 2 + 2?") == split_of("  what is 2 +   2? ")
    True
    >>> table = load_table("../shared/data")  # built once (~1 min), then cached   # doctest: +SKIP
    >>> pool_summary(table).head()                                               # doctest: +SKIP
"""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import os
import re
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import pandas as pd

from xrouter_lite.errors import DataError, UsageError
from xrouter_lite.pool.core import MissingPriceError, load_prices, missing_price_message, prices_fingerprint
from xrouter_lite.pool.splits import (SPLIT_EDGES, _normalise, add_splits,  # noqa: F401  (re-exported: data.split_of)
                                      split_of)
from xrouter_lite.pool.tokens import (ROUTERBENCH_TOKEN_FACTOR, TOKEN_FACTORS,  # noqa: F401  (re-exported)
                                      count_tokens, token_factor, tokenizer_family)
from xrouter_lite.pool.upstream import UPSTREAM, _read_csv, _read_json, _read_zip_json, download  # noqa: F401
from xrouter_lite.profiles import resolve_cache_dir

log = logging.getLogger(__name__)

SOURCES = ("zeroeval", "mmlu-pro", "routerbench")
PRICED_SOURCES = ("zeroeval", "mmlu-pro")  # costed here from tokens x prices; RouterBench records its own
COLUMNS = ["query_id", "source", "task", "category", "question", "gold", "model", "response",
           "correct", "in_tokens", "out_tokens", "usd"]
STR_COLUMNS = ["query_id", "source", "task", "category", "question", "model", "response"]
ZEROEVAL_TASKS = ("gsm", "math-l5", "crux")
DEFAULT_CACHE = str(resolve_cache_dir())  # $XROUTER_LITE_CACHE, else <checkout>/.cache (as baselines.EMBED_CACHE)
GRADE_WORKERS = 2  # processes that grade and count tokens; the CI machine has 2 cores
PARALLEL_MIN_ROWS = 4000  # below this a process pool costs more than it saves
CHUNK_ROWS = 2000  # rows per worker task: small enough for a smooth progress bar
PARALLEL_MIN_BYTES = 20_000_000  # read files in parallel above this total size (the real data: ~110 MB)

# Hidden reasoning tokens: o1-mini bills reasoning it never shows, and ZeroEval kept only the visible
# answer. The multiplier is billed output / visible output: one public o1 usage report (OpenAI forum,
# "How to correct compute the cost of an o1 model API call") shows 2,241 reasoning + 294 visible
# tokens, i.e. 8.6x; short GSM8K answers need less. 5x is a stated middle guess, not a measurement:
# notebook 01 shows 1x/5x/10x with `reprice`.
REASONING_MULTIPLIER: dict[str, float] = {"o1-mini-2024-09-12": 5.0}

# MMLU-Pro's 5-shot chain-of-thought prompt is not recorded. Upstream (evaluate_from_api.py) sends a
# one-line instruction (42 tokens by count_tokens) and 5 worked examples of the same subject, each a
# question with options (192 tokens: the test-set mean), the cue "Answer: Let's think step by step."
# (10) and a short GPT-4-written rationale (~100; the models' own answers here have a median of ~80):
# 42 + 5 x (192 + 10 + 100) ~ 1,550 tokens, added to every MMLU-Pro row's question tokens.
MMLU_PRO_FEWSHOT_TOKENS = 1550


# ---------------------------------------------------------------- tokens: the estimate's calibration (`tokens`)
def token_residuals(routerbench: pd.DataFrame, factor: float = ROUTERBENCH_TOKEN_FACTOR,
                    split: str | None = None) -> pd.DataFrame:
    """Per RouterBench model: the estimated cost (count_tokens x list prices) against the recorded total_cost, in
    percent, before and after calibration by `factor`; with `split` (a table with splits), only those queries.

    Residual = estimate / recorded - 1 over all the model's rows; `median_abs_row_%` is the typical error of one
    query's cost after calibration.
    """
    t = routerbench[routerbench["source"] == "routerbench"]
    if split is not None:
        t = t[t["split"] == split]
    prices = load_prices()
    p_in = t["model"].map({m: s.price_in for m, s in prices.items()})
    p_out = t["model"].map({m: s.price_out for m, s in prices.items()})
    est = (t["in_tokens"] * p_in + t["out_tokens"] * p_out) / 1e6
    frame = pd.DataFrame({"model": t["model"], "est": est, "usd": t["usd"]})
    rows = []
    for model, g in frame.groupby("model", sort=False):
        rows.append({"model": model, "queries": len(g), "recorded_usd": g["usd"].sum(),
                     "residual_before_%": 100 * (g["est"].sum() / g["usd"].sum() - 1),
                     "residual_after_%": 100 * (factor * g["est"].sum() / g["usd"].sum() - 1),
                     "median_abs_row_%": 100 * float(np.median(np.abs(factor * g["est"] / g["usd"] - 1)))})
    return pd.DataFrame(rows)


def fit_token_factor(routerbench: pd.DataFrame, split: str | None = "train") -> float:
    """sum(recorded USD) / sum(estimated USD) over RouterBench rows (default: its train split): the calibration."""
    res = token_residuals(routerbench, 1.0, split)
    est = (1 + res["residual_before_%"] / 100) * res["recorded_usd"]
    return float(res["recorded_usd"].sum() / est.sum())


def _count_many(texts) -> np.ndarray:
    """count_tokens over a sequence, as an int64 array."""
    return np.fromiter((count_tokens(t) for t in texts), dtype=np.int64, count=len(texts))


def _field(rec, keys, path: Path, i: int):
    """The first present field of a record; a DataError naming file, record and field if none is."""
    if not isinstance(rec, dict):
        raise DataError(f"{path}: record {i} is a {type(rec).__name__}, not an object")
    for k in keys:
        if rec.get(k) is not None:
            return rec[k]
    raise DataError(f"{path}: record {i} has no {' or '.join(map(repr, keys))} field")


def _recorded_text(value) -> str:
    """A recorded output as plain text: ZeroEval lists hold one string; None/NaN -> ''."""
    if isinstance(value, (list, tuple)):
        return "\n\n".join(_recorded_text(v) for v in value)
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(value)


def _map_files(fn, paths: list[Path], *args) -> list:
    """fn(path, *args) for every file, in GRADE_WORKERS processes when the files are big enough to pay off."""
    if GRADE_WORKERS < 2 or sum(p.stat().st_size for p in paths) < PARALLEL_MIN_BYTES:
        return [fn(p, *args) for p in paths]
    with ProcessPoolExecutor(GRADE_WORKERS) as pool:
        return list(pool.map(fn, paths, *([a] * len(paths) for a in args)))


# ---------------------------------------------------------------- ZeroEval
def _zeroeval_rows(path: Path) -> dict[str, list]:
    """Columns of one ZeroEval result file `<task>/<model>.json` (ungraded); prompt kept for token counting."""
    task, records = path.parent.name, _read_json(path)
    if not isinstance(records, list):
        raise DataError(f"{path}: expected a JSON list of records, got {type(records).__name__}")
    cols = {k: [] for k in ("uid", "question", "gold", "response", "prompt")}
    for i, rec in enumerate(records):
        cols["uid"].append(str(_field(rec, ["id"], path, i)))
        cols["question"].append(str(_field(rec, ["question", "problem"], path, i)))
        gold = str(_field(rec, ["answer"], path, i))
        # GSM8K golds are recorded as "# 18": keep the number only.
        cols["gold"].append(gold.lstrip("#").strip() if task == "gsm" else gold)
        cols["response"].append(_recorded_text(rec.get("output")))  # missing/empty output: graded wrong
        cols["prompt"].append(_recorded_text(rec.get("chat_history")) or cols["question"][-1])
    _check_answer_field(records, ["output"], path)
    _check_unique(cols["uid"], path)
    return cols


def _check_answer_field(records: list, keys: list[str], path: Path) -> None:
    """A DataError when no record holds the model's answer under `keys`: the file would read as 0% correct.

    One record without it is an unanswered question (graded wrong); none with it is a renamed field.
    """
    if records and not any(isinstance(r, dict) and any(k in r for k in keys) for r in records):
        seen = sorted({k for r in records[:50] if isinstance(r, dict) for k in r})
        raise DataError(f"{path}: no record has the answer field {' or '.join(map(repr, keys))} "
                        f"(fields found: {', '.join(seen)})")


def _check_unique(ids: list[str], path: Path) -> None:
    """A DataError naming the first question id a model file answers twice (one row per query and model)."""
    seen: set[str] = set()
    for uid in ids:
        if uid in seen:
            raise DataError(f"{path}: question id {uid!r} appears twice")
        seen.add(uid)


def _zeroeval_raw(data_dir: Path) -> pd.DataFrame:
    """All ZeroEval files as rows (ungraded), with in_tokens from the rendered prompt."""
    root = data_dir / "zeroeval" / "result_dirs"
    files = []
    for task in ZEROEVAL_TASKS:
        found = sorted((root / task).glob("*.json"))
        if not found:
            raise FileNotFoundError(f"{root / task}: no ZeroEval result files (*.json)")
        files += found
    frames = []
    for path, cols in zip(files, _map_files(_zeroeval_rows, files)):
        task = path.parent.name
        frame = pd.DataFrame({k: v for k, v in cols.items() if k != "uid"})
        frame["query_id"] = [f"zeroeval/{task}/{u}" for u in cols["uid"]]
        frame["task"], frame["model"] = task, path.stem
        frames.append(frame)
    raw = pd.concat(frames, ignore_index=True)
    raw["source"], raw["category"] = "zeroeval", ""
    raw, coverage = _keep_answered_by_all(
        raw, "zeroeval", lambda task, model: f"zeroeval/result_dirs/{task}/{model}.json")
    # The rendered prompt is the same for every model: count each distinct prompt once.
    prompts = raw["prompt"].drop_duplicates()
    raw["in_tokens"] = raw["prompt"].map(pd.Series(_count_many(prompts.tolist()), index=prompts.values))
    raw = raw.drop(columns="prompt")
    raw.attrs["coverage"] = coverage
    return raw


# ---------------------------------------------------------------- partial model files
# The pool's rule: a source keeps only the queries EVERY one of its models answered, so every (query, model)
# pair of the table has a record and no router, oracle or episode meets a missing answer later. A model file
# that covers part of its task (a truncated download, an unfinished run) shrinks its task for all models;
# the load reports each such file (answered / expected) and how many queries were dropped.
PARTIAL_WARN_SHARE = 0.99  # a file answering fewer of its task's questions is a warning; upstream's MMLU-Pro
#                            files differ by 12-20 of ~12,030 questions (99.8%), which is logged, not warned


def _keep_answered_by_all(raw: pd.DataFrame, source: str, label) -> tuple[pd.DataFrame, dict]:
    """The rows of queries every model of `raw` answered, and what was dropped (files short of their task)."""
    models = sorted(raw["model"].unique())
    per_query = raw.groupby("query_id")["model"].nunique()
    complete = raw["query_id"].map(per_query).to_numpy() == len(models)
    files, dropped, kept, questions = [], {}, {}, {}
    for task, rows in raw.groupby("task", sort=False):
        expected = questions[task] = rows["query_id"].nunique()
        answered = rows.groupby("model")["query_id"].nunique().reindex(models, fill_value=0)
        files += [{"file": label(task, m), "task": task, "answered": int(n), "expected": int(expected)}
                  for m, n in answered.items() if n < expected]
        kept[task] = int(rows.loc[complete[rows.index], "query_id"].nunique())
        dropped[task] = int(expected - kept[task])
    coverage = {"rule": f"queries answered by every {source} model", "models": len(models), "files": files,
                "questions": questions, "kept": kept, "dropped": dropped}
    return raw[complete].reset_index(drop=True), coverage


def read_zeroeval(data_dir=None, progress: bool = True) -> pd.DataFrame:
    """ZeroEval (12 models x GSM8K, MATH-L5, CRUXEval) graded by `grading.grade`, as the tidy table."""
    return _finish(_zeroeval_raw(_data_dir(data_dir)), progress)


# ---------------------------------------------------------------- MMLU-Pro
def _mmlu_model(path: Path) -> str:
    """Model id from `model_outputs_<model>_5shots.zip`; upstream writes 3.1 as 3_1 in file names."""
    name = path.name.removeprefix("model_outputs_").removesuffix("_5shots.zip")
    return re.sub(r"(\d)_(\d)", r"\1.\2", name)


def _mmlu_question(question: str, options) -> str:
    """What the router sees: the question and its lettered options (MMLU-Pro's own layout)."""
    lines = [f"{chr(65 + i)}. {opt}" for i, opt in enumerate(options)]
    return f"{question}\nOptions:\n" + "\n".join(lines)


MMLU_ANSWER_FIELDS = ("model_outputs", "generated_text")  # where upstream's model files keep the model's answer


def _mmlu_rows(path: Path) -> pd.DataFrame:
    """One MMLU-Pro model file as rows keyed by question_id (ungraded)."""
    records = _read_zip_json(path)
    if not isinstance(records, list):
        raise DataError(f"{path}: expected a JSON list of records, got {type(records).__name__}")
    rows = []
    for i, rec in enumerate(records):
        options = _field(rec, ["options"], path, i)
        if not isinstance(options, list):
            raise DataError(f"{path}: record {i} has options of type {type(options).__name__}, not a list")
        gold = str(_field(rec, ["answer"], path, i)).strip()
        if len(gold) != 1 or gold not in "ABCDEFGHIJ":
            raise DataError(f"{path}: record {i} has the gold answer {gold!r}, not an option letter A-J")
        rows.append((str(_field(rec, ["question_id"], path, i)), str(_field(rec, ["question"], path, i)),
                     tuple(map(str, options)), gold, str(rec.get("category") or ""),
                     # gemini and jamba write `model_outputs`, the others `generated_text`.
                     _recorded_text(rec.get("model_outputs", rec.get("generated_text")))))
    _check_answer_field(records, list(MMLU_ANSWER_FIELDS), path)
    frame = pd.DataFrame(rows, columns=["uid", "q", "options", "gold", "category", "response"])
    _check_unique(frame["uid"].tolist(), path)
    frame["model"] = _mmlu_model(path)
    return frame


def _mmlu_raw(data_dir: Path) -> pd.DataFrame:
    """MMLU-Pro rows for the questions every model answered, asked the same way (ungraded)."""
    files = sorted((data_dir / "mmlu-pro" / "eval_results").glob("model_outputs_*_5shots.zip"))
    if not files:
        raise FileNotFoundError(f"{data_dir / 'mmlu-pro' / 'eval_results'}: no model_outputs_*_5shots.zip")
    raw = pd.concat(_map_files(_mmlu_rows, files), ignore_index=True)
    by_model = {_mmlu_model(p): p.name for p in files}
    raw["query_id"], raw["task"] = "mmlu-pro/mmlu-pro/" + raw["uid"], "mmlu-pro"
    # Keep questions answered by all models (the pool's rule, as for ZeroEval) ...
    raw, coverage = _keep_answered_by_all(raw, "mmlu-pro", lambda task, model: f"mmlu-pro/eval_results/{by_model[model]}")
    # ... and drop the ~48 whose text, options or gold letter differ between model files (upstream revised them
    # between runs): no single question was asked of all.
    versions = raw.assign(key=raw["q"] + "\x00" + raw["options"].map("\x00".join) + "\x00" + raw["gold"])
    same = versions.groupby("uid")["key"].nunique() == 1
    coverage["revised"] = int((~same).sum())
    log.info("mmlu-pro: %d questions answered by all %d models; %d of them dropped as revised between runs",
             len(same), coverage["models"], coverage["revised"])
    raw = raw[raw["uid"].isin(same.index[same])].reset_index(drop=True)
    questions = raw.drop_duplicates("uid").set_index("uid")
    text = pd.Series([_mmlu_question(q, o) for q, o in zip(questions["q"], questions["options"])],
                     index=questions.index)
    raw["question"] = raw["uid"].map(text)
    raw["in_tokens"] = raw["uid"].map(pd.Series(_count_many(text.tolist()), index=text.index)) \
        + MMLU_PRO_FEWSHOT_TOKENS
    raw["source"] = "mmlu-pro"
    raw = raw.drop(columns=["uid", "q", "options"])
    raw.attrs["coverage"] = coverage
    return raw


def read_mmlu_pro(data_dir=None, progress: bool = True) -> pd.DataFrame:
    """MMLU-Pro (8 models; the questions all of them were asked identically) graded by `grading.grade`.

    Upstream's `pred` is ignored: where its parser found no letter it holds a random fill-in.
    """
    return _finish(_mmlu_raw(_data_dir(data_dir)), progress)


# ---------------------------------------------------------------- RouterBench
def _unlist(text) -> str:
    """RouterBench stores prompts/responses as Python-list strings ("['...']"): the joined text."""
    if isinstance(text, (list, tuple)):
        return "\n\n".join(map(str, text))
    if not isinstance(text, str):
        return _recorded_text(text)
    if text.startswith("[") and text.endswith("]"):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return text
        if isinstance(value, (list, tuple)):
            return "\n\n".join(map(str, value))
    return text


def _routerbench_task(eval_name: str) -> tuple[str, str]:
    """(task, category) from RouterBench's eval_name: arc-challenge -> arc_challenge; mmlu-<subject> -> mmlu."""
    name = str(eval_name).strip().lower()
    if name.startswith("mmlu-"):
        return "mmlu", name.removeprefix("mmlu-")
    return re.sub(r"[^a-z0-9]+", "_", name).strip("_"), ""


PICKLE_ENV = "XROUTER_LITE_ALLOW_PICKLE"  # "1": read routerbench_0shot.pkl (CLI: --allow-pickle)


def pickle_allowed(allow_pickle: bool | None = None) -> bool:
    """`allow_pickle` if given, else whether ${PICKLE_ENV} is 1/true/yes."""
    if allow_pickle is not None:
        return bool(allow_pickle)
    return os.environ.get(PICKLE_ENV, "").strip().lower() in ("1", "true", "yes")


def _routerbench_pickles(data_dir: Path) -> list[Path]:
    return [p for p in (data_dir / "routerbench" / "routerbench_0shot.pkl", data_dir / "routerbench_0shot.pkl")
            if p.is_file()]


def _routerbench_files(data_dir: Path, allow_pickle: bool | None = None) -> list[Path]:
    """The CSV slice plus, only when allowed, the official routerbench_0shot.pkl (same columns).

    Unpickling runs whatever code the file holds, so a pickle found in the data directory is read only on
    an explicit opt-in (`allow_pickle=True`, --allow-pickle, ${PICKLE_ENV}=1); otherwise it is skipped, loudly.
    """
    root = data_dir / "routerbench"
    files = sorted((root / "routerbench_zs").glob("*.csv"))
    pickles = _routerbench_pickles(data_dir)
    if pickles and not pickle_allowed(allow_pickle):
        log.warning("%s: skipped: unpickling runs code from the file. If you downloaded it yourself from "
                    "RouterBench, pass --allow-pickle (or set %s=1) to read it", ", ".join(map(str, pickles)),
                    PICKLE_ENV)
        pickles = []
    files += pickles
    if not files:
        raise FileNotFoundError(f"{root}: no routerbench_zs/*.csv (and no routerbench_0shot.pkl read)")
    return files


def _routerbench_frame(path: Path) -> pd.DataFrame:
    """One RouterBench file in its own wide layout, checked for the columns we need."""
    if path.suffix == ".pkl":
        try:  # unpickling runs code: only read a routerbench_0shot.pkl you downloaded yourself
            frame = pd.read_pickle(path)
        except Exception as err:  # noqa: BLE001 - any unpickling failure means a bad file
            raise DataError(f"{path}: unreadable pickle ({type(err).__name__}: {err})") from None
        if not isinstance(frame, pd.DataFrame):
            raise DataError(f"{path}: expected a pandas DataFrame, got {type(frame).__name__}")
    else:
        frame = _read_csv(path)
    missing = [c for c in ("sample_id", "prompt", "eval_name") if c not in frame.columns]
    models = [c for c in frame.columns if f"{c}|model_response" in frame.columns]
    if missing or not models:
        raise DataError(f"{path}: not RouterBench's layout (missing {missing or 'every <model>|model_response'})")
    absent = [f"{m}|total_cost" for m in models if f"{m}|total_cost" not in frame.columns]
    if absent:
        raise DataError(f"{path}: missing cost columns {absent}")
    return frame


def _routerbench_raw(data_dir: Path, allow_pickle: bool | None = None) -> pd.DataFrame:
    """RouterBench rows (one per prompt and model) after dropping blank scores and duplicate prompts."""
    wide = pd.concat([_routerbench_frame(p) for p in _routerbench_files(data_dir, allow_pickle)], ignore_index=True)
    models = [c for c in wide.columns if f"{c}|model_response" in wide.columns]
    scores = wide[models].apply(pd.to_numeric, errors="coerce")
    costs = wide[[f"{m}|total_cost" for m in models]].apply(pd.to_numeric, errors="coerce")
    blank = scores.isna().any(axis=1) | costs.isna().any(axis=1)
    wide = wide[~blank].copy()
    wide["prompt"] = wide["prompt"].map(_unlist)
    # Upstream train/test leak: the same prompt appears twice (once with other scores); keep the first.
    dup = wide["prompt"].map(_normalise).duplicated()
    stats = {"rows": int(len(blank)), "blank_scores": int(blank.sum()), "duplicate_prompts": int(dup.sum())}
    wide = wide[~dup]
    log.info("routerbench: %(rows)d rows read, %(blank_scores)d dropped for blank scores or costs, "
             "%(duplicate_prompts)d dropped as duplicate prompts", stats)
    ids = wide["sample_id"].astype(str)
    # A few sample_ids name different prompts: suffix every colliding id with its prompt's hash.
    clash = ids.duplicated(keep=False)
    ids[clash] = ids[clash] + "~" + wide.loc[clash, "prompt"].map(lambda p: hashlib.sha1(p.encode()).hexdigest()[:8])
    task_cat = wide["eval_name"].map(_routerbench_task)
    base = pd.DataFrame({"task": [t for t, _ in task_cat], "category": [c for _, c in task_cat],
                         "question": wide["prompt"].to_numpy()})
    base["query_id"] = "routerbench/" + base["task"] + "/" + ids.to_numpy()
    base["in_tokens"] = _count_many(base["question"].tolist())
    frames = [base.assign(model=m, response=wide[f"{m}|model_response"].map(_unlist).to_numpy(),
                          correct=scores.loc[wide.index, m].to_numpy(float),
                          usd=costs.loc[wide.index, f"{m}|total_cost"].to_numpy(float)) for m in models]
    raw = pd.concat(frames, ignore_index=True)
    raw["source"], raw["gold"] = "routerbench", None
    raw["out_tokens"] = _count_many(raw["response"].tolist())
    raw.attrs["dropped"] = stats
    return raw


def read_routerbench(data_dir=None, progress: bool = True, allow_pickle: bool | None = None) -> pd.DataFrame:
    """RouterBench 0-shot (11 models) with its recorded scores and USD; tokens estimated for display.

    Reads `routerbench/routerbench_zs/*.csv` and, if present AND allowed (`allow_pickle`, else
    ${PICKLE_ENV}=1: unpickling runs code), `routerbench_0shot.pkl` (same columns).
    Rows with a blank score or cost for ANY model are dropped (28 of 3,178 in the CSV slice), then
    duplicate prompts (upstream's train/test leak; 2 in the slice) keeping the first. The counts are
    logged and kept in `table.attrs["dropped"]`. There is no gold answer: `gold` is None.
    """
    raw = _routerbench_raw(_data_dir(data_dir), allow_pickle)
    table = _conform(raw)
    table.attrs["dropped"] = raw.attrs["dropped"]
    return table


# ---------------------------------------------------------------- grading, pricing, the tidy table
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
    return correct, _count_many(responses), failures


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


def reprice(table: pd.DataFrame, multipliers: dict[str, float] | float | None = None,
            prices: dict | None = None) -> pd.DataFrame:
    """The table with `usd` recomputed from tokens, prices, reasoning multipliers and each model's tokenizer factor
    (`token_factor`; the token columns stay the raw estimate), RouterBench's recorded USD kept.

    `multipliers` override REASONING_MULTIPLIER per model ({"o1-mini-2024-09-12": 10}); a single
    number applies to every model in REASONING_MULTIPLIER. Cheap: notebook 01 uses it for 1x/5x/10x.
    """
    mult = _multipliers(multipliers)
    prices = prices or load_prices()
    out = table.copy()
    priced = out["source"].isin(PRICED_SOURCES)  # RouterBench (and live pools) keep the USD they recorded
    models = out.loc[priced, "model"]
    unknown = sorted(set(models) - set(prices))
    if unknown:
        raise MissingPriceError(missing_price_message(unknown))
    p_in = models.map({m: s.price_in for m, s in prices.items()}).to_numpy(float)
    p_out = models.map({m: s.price_out for m, s in prices.items()}).to_numpy(float)
    factor = models.map(mult).fillna(1.0).to_numpy(float)
    calibration = models.map(token_factor).to_numpy(float)  # estimated -> billed tokens, per tokenizer family
    tokens_in, tokens_out = out.loc[priced, "in_tokens"].to_numpy(float), out.loc[priced, "out_tokens"].to_numpy(float)
    out.loc[priced, "usd"] = (tokens_in * p_in + tokens_out * factor * p_out) * calibration / 1e6
    return out


def _multipliers(multipliers) -> dict[str, float]:
    """REASONING_MULTIPLIER updated by a dict, or every reasoning model set to one number."""
    if multipliers is None:
        return dict(REASONING_MULTIPLIER)
    if isinstance(multipliers, (int, float)):
        return {m: float(multipliers) for m in REASONING_MULTIPLIER}
    return {**REASONING_MULTIPLIER, **{m: float(v) for m, v in multipliers.items()}}


# ---------------------------------------------------------------- load_table and its cache
READERS = {"zeroeval": _zeroeval_raw, "mmlu-pro": _mmlu_raw, "routerbench": _routerbench_raw}


def _data_dir(data_dir) -> Path:
    """The data directory (argument or $XROUTER_LITE_DATA), failing loudly when missing."""
    from xrouter_lite.profiles import resolve_data_dir

    return resolve_data_dir(data_dir)


def _cache_key(data_dir: Path, source: str, allow_pickle: bool | None = None) -> str:
    """Hash of the source's input files (name, size, mtime) and of the code and prices that shape the table."""
    root = data_dir / source  # each source's files live in a folder of its name
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in {".json", ".zip", ".csv", ".pkl"})
    if source == "routerbench":  # a pickle beside the folder counts too, and whether it may be read
        files = sorted(set(files) | set(_routerbench_pickles(data_dir)))
    stats = [(str(p.relative_to(data_dir)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    here = Path(__file__).parent
    code = b"".join(f.read_bytes() for f in (here / "data.py", here / "grading.py", here / "tokens.py",
                                            here / "upstream.py", here / "prices.csv") if f.is_file())
    extra = [prices_fingerprint(), pickle_allowed(allow_pickle) if source == "routerbench" else None]
    blob = json.dumps([source, stats, hashlib.sha1(code).hexdigest(), extra]).encode()
    return hashlib.sha1(blob).hexdigest()[:16]


def _build(source: str, data_dir: Path, progress: bool, allow_pickle: bool | None = None) -> pd.DataFrame:
    """One source's tidy table, read and graded from the upstream files; `attrs` holds what the load reports."""
    if source == "routerbench":
        raw = READERS[source](data_dir, allow_pickle)
        table = _conform(raw)
        table.attrs = {"dropped": dict(raw.attrs.get("dropped", {})), "grader_errors": _summarise_failures([])}
        return table
    return _finish(READERS[source](data_dir), progress)


BUILD_META = b"xrouter_lite.build"  # parquet metadata key: the build report (coverage, grader errors) as JSON


def _write_atomic(table: pd.DataFrame, path: Path) -> None:
    """Write parquet (with the build report in its metadata) to a temp file and rename it into place, so a crash
    never leaves half a cache and the report always travels with its table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        arrow = pa.Table.from_pandas(table, preserve_index=False)
        meta = {**(arrow.schema.metadata or {}), BUILD_META: json.dumps(table.attrs, default=str).encode()}
        meta.pop(b"PANDAS_ATTRS", None)  # pandas' own copy of attrs: ours is the one key above
        pq.write_table(arrow.replace_schema_metadata(meta), tmp, compression="zstd")  # ~40% smaller than snappy
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _read_cached(path: Path) -> pd.DataFrame:
    """A cached table with its build report back in `attrs`."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    table = _conform(pd.read_parquet(path))
    table.attrs = json.loads(meta[BUILD_META]) if BUILD_META in meta else {}
    return table


def _load_source(source: str, data_dir: Path, cache_dir, progress: bool, allow_pickle: bool | None = None):
    """One source's table: read from the cache when its key matches, else built (and cached)."""
    if not cache_dir:
        return _build(source, data_dir, progress, allow_pickle)
    path = Path(cache_dir) / f"table-{source}-{_cache_key(data_dir, source, allow_pickle)}.parquet"
    if path.is_file():
        return _read_cached(path)
    table = _build(source, data_dir, progress, allow_pickle)
    _write_atomic(table, path)
    for stale in path.parent.glob(f"table-{source}-*.parquet"):  # one cached table per source
        if stale != path:
            stale.unlink(missing_ok=True)
    return table


def build_notes(source: str, report: dict) -> list[tuple[int, str]]:
    """(logging level, message) lines about one source's build: model files short of their task, grader failures."""
    notes = []
    cov = report.get("coverage") or {}
    for f in cov.get("files", []):
        share = f["answered"] / max(f["expected"], 1)
        level = logging.WARNING if share < PARTIAL_WARN_SHARE else logging.INFO
        notes.append((level, f"{f['file']} answers {f['answered']:,} of {f['expected']:,} {f['task']} questions"))
    for task, n in (cov.get("dropped") or {}).items():
        if n:
            worst = max((lvl for lvl, _ in notes), default=logging.INFO)
            notes.append((worst, f"{source}: kept the {cov['kept'][task]:,} {task} queries answered by every "
                                 f"{source} model; {n:,} of {cov['questions'][task]:,} dropped "
                                 "(the pool's rule: no missing answers)"))
    if cov.get("revised"):
        notes.append((logging.INFO, f"{source}: {cov['revised']} more questions dropped: their text, options or "
                                    "gold differ between model files (revised upstream between runs)"))
    errors = report.get("grader_errors") or {}
    if errors.get("counts"):
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(errors.get("kinds", {}).items()))
        cells = "; ".join(f"{key}: {n} (e.g. {', '.join(errors['examples'].get(key, []))})"
                          for key, n in errors["counts"].items())
        notes.append((logging.WARNING, f"{source}: the grader failed on {sum(errors['counts'].values())} rows "
                                       f"({kinds}); each scored 0 and counted: {cells}"))
    return notes


def grader_error_counts(table: pd.DataFrame) -> dict[str, int]:
    """{"task/model": n} of grader failures while the table was built (from `load_table`'s attrs; {} when none)."""
    return dict(table.attrs.get("grader_errors", {}))


def _record_for_run(reports: dict[str, dict]) -> None:
    """Inside a notebook run, keep each loaded source's grader-error counts for the run's summary.json."""
    from xrouter_lite.profiles import RUNS_ENV

    run_dir = os.environ.get(RUNS_ENV)
    if not run_dir:
        return
    path = Path(run_dir) / "artifacts" / TABLE_ERRORS
    try:
        known = json.loads(path.read_text()) if path.is_file() else {}
        known.update({s: r.get("grader_errors", {}).get("counts", {}) for s, r in reports.items()})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(known, indent=1, sort_keys=True) + "\n")
    except (OSError, ValueError) as err:
        log.warning("could not record the table's grader errors in %s: %s", path, err)


TABLE_ERRORS = "table_grader_errors.json"  # inside a run's artifacts/: {source: {"task/model": n}}
_USE_DEFAULT_CACHE = object()


def load_table(data_dir=None, sources=None, cache_dir=_USE_DEFAULT_CACHE, reasoning_multiplier=None,
               progress: bool = True, allow_pickle: bool | None = None) -> pd.DataFrame:
    """The tidy table of the chosen sources (default: all), built once and then read from a parquet cache.

    `reasoning_multiplier` (a number or {model: x}) reprices o1-mini's hidden reasoning without a
    rebuild; `cache_dir=None` disables the cache (default: DEFAULT_CACHE). The cache key covers the input
    files' names, sizes and mtimes, the code (data.py, grading.py, tokens.py, upstream.py, prices.csv) and your price file, so any
    change rebuilds. Every load (cached or not) warns about model files that answer only part of their task
    (their task keeps the queries every model answered) and about grader failures; `table.attrs` keeps both:
    `attrs["grader_errors"]` = {"task/model": n}, `attrs["build"]` = {source: its full build report}.
    `allow_pickle` (default: ${PICKLE_ENV}) lets RouterBench read a routerbench_0shot.pkl: unpickling runs code.
    """
    data_dir = _data_dir(data_dir)
    cache_dir = DEFAULT_CACHE if cache_dir is _USE_DEFAULT_CACHE else cache_dir
    chosen = list(SOURCES) if sources is None else [sources] if isinstance(sources, str) else list(sources)
    unknown = [s for s in chosen if s not in SOURCES]
    if unknown:
        raise UsageError(f"unknown source(s) {unknown}; choose from {list(SOURCES)}")
    tables = {s: _load_source(s, data_dir, cache_dir, progress, allow_pickle) for s in chosen}
    reports = {s: dict(t.attrs) for s, t in tables.items()}
    for source, report in reports.items():
        for level, note in build_notes(source, report):
            log.log(level, note)
    _record_for_run(reports)
    table = pd.concat(list(tables.values()), ignore_index=True)
    table = table if reasoning_multiplier is None else reprice(table, reasoning_multiplier)
    table.attrs = {"build": reports,
                   "grader_errors": {k: v for r in reports.values()
                                     for k, v in (r.get("grader_errors") or {}).get("counts", {}).items()}}
    return table


# ---------------------------------------------------------------- pool summary and its command
SUMMARY_COLUMNS = ["source", "task", "model", "n", "accuracy", "in_tokens_mean", "out_tokens_mean", "usd_per_query"]


def _oracle_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Per query the cheapest correct model's row, else the cheapest model's row scored 0."""
    t = table.assign(_ok=table["correct"] > 0.5)
    # Sort so each query's first row is: a correct one if any, and the cheapest among those.
    first = t.sort_values(["query_id", "_ok", "usd"], ascending=[True, False, True]).drop_duplicates("query_id")
    return first.assign(model="oracle", correct=first["correct"].where(first["_ok"], 0.0)).drop(columns="_ok")


def pool_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (source, task, model): n, accuracy, mean tokens, USD per query; plus each task's oracle."""
    both = pd.concat([table, _oracle_rows(table)], ignore_index=True)
    summary = both.groupby(["source", "task", "model"], sort=False).agg(
        n=("query_id", "size"), accuracy=("correct", "mean"), in_tokens_mean=("in_tokens", "mean"),
        out_tokens_mean=("out_tokens", "mean"), usd_per_query=("usd", "mean")).reset_index()
    # Each (source, task) block in table order, its oracle row last.
    block = pd.Categorical(summary["source"] + "/" + summary["task"],
                           categories=pd.unique(table["source"] + "/" + table["task"]), ordered=True)
    order = summary.assign(_block=block, _oracle=summary["model"] == "oracle")
    return order.sort_values(["_block", "_oracle"], kind="stable")[SUMMARY_COLUMNS].reset_index(drop=True)


def pool_command(args) -> int:
    """CLI `python -m xrouter_lite pool`: the pool summary as JSON lines (--json) or a table."""
    table = load_table(args.data, sources=getattr(args, "source", None) or None, progress=sys.stderr.isatty())
    summary = pool_summary(table)
    if getattr(args, "json", False):
        for row in summary.to_dict(orient="records"):
            print(json.dumps(row))
    else:
        with pd.option_context("display.max_rows", None, "display.width", 200):
            print(summary.to_string(index=False, float_format=lambda x: f"{x:.6g}"))
        print("tokens: xrouter_lite.pool.data.count_tokens estimate; usd: tokens x the tokenizer family's factor "
              "(data.TOKEN_FACTORS) x prices.csv "
              f"(o1-mini reasoning x{REASONING_MULTIPLIER['o1-mini-2024-09-12']:g}); RouterBench: recorded cost")
    return 0


# ---------------------------------------------------------------- download (`upstream`)
def download_command(args) -> int:
    """CLI `python -m xrouter_lite download [--data DIR] [--sources ...]` (default DIR: the checkout's data/upstream)."""
    from xrouter_lite.profiles import default_data_dir

    args.data = args.data or str(default_data_dir())
    try:
        fetched = download(args.data, sources=getattr(args, "sources", None) or None)
    except OSError as exc:  # no network: one line naming the file and the reason, not urllib's traceback
        print(f"download failed: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    print(f"downloaded {len(fetched)} file(s) into {Path(args.data).resolve()}; the others were already there")
    return 0

