"""The three upstream sources read into raw rows, one per (query, model), not yet graded or priced.

ZeroEval (`<task>/<model>.json`), MMLU-Pro (`model_outputs_<model>_5shots.zip`) and RouterBench (its CSV slice, and
`routerbench_0shot.pkl` only on opt-in) each keep their own layout; the readers here check the fields they need and
fail loudly: a DataError names the file (and record, field). A model file that answers only part of its task shrinks
that task for all of the source's models, so no (query, model) pair is ever missing later; what was dropped travels
in `attrs["coverage"]`. The question tokens (and RouterBench's output tokens) are counted here; `build` grades the
ZeroEval and MMLU-Pro rows, counts their output tokens and prices them. Opening one file and failing on a truncated or
corrupt one is `upstream`'s.

    >>> from xrouter_lite.pool.readers import READERS, SOURCES
    >>> list(READERS) == list(SOURCES)
    True
    >>> raw = READERS["zeroeval"](Path("../shared/data"))   # ungraded rows   # doctest: +SKIP
"""

from __future__ import annotations

import ast
import hashlib
import logging
import os
import re
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from xrouter_lite.errors import DataError
from xrouter_lite.pool.splits import _normalise
from xrouter_lite.pool.tokens import count_tokens
from xrouter_lite.pool.upstream import _read_csv, _read_json, _read_zip_json

log = logging.getLogger(__name__)

SOURCES = ("zeroeval", "mmlu-pro", "routerbench")
ZEROEVAL_TASKS = ("gsm", "math-l5", "crux")
GRADE_WORKERS = 2  # processes that read the files (here) and grade them (`build`); the CI machine has 2 cores
PARALLEL_MIN_BYTES = 20_000_000  # read files in parallel above this total size (the real data: ~110 MB)

# MMLU-Pro's 5-shot chain-of-thought prompt is not recorded. Upstream (evaluate_from_api.py) sends a
# one-line instruction (42 tokens by count_tokens) and 5 worked examples of the same subject, each a
# question with options (192 tokens: the test-set mean), the cue "Answer: Let's think step by step."
# (10) and a short GPT-4-written rationale (~100; the models' own answers here have a median of ~80):
# 42 + 5 x (192 + 10 + 100) ~ 1,550 tokens, added to every MMLU-Pro row's question tokens.
MMLU_PRO_FEWSHOT_TOKENS = 1550


def count_many(texts) -> np.ndarray:
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


def zeroeval_raw(data_dir: Path) -> pd.DataFrame:
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
    raw["in_tokens"] = raw["prompt"].map(pd.Series(count_many(prompts.tolist()), index=prompts.values))
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


def mmlu_raw(data_dir: Path) -> pd.DataFrame:
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
    raw["in_tokens"] = raw["uid"].map(pd.Series(count_many(text.tolist()), index=text.index)) \
        + MMLU_PRO_FEWSHOT_TOKENS
    raw["source"] = "mmlu-pro"
    raw = raw.drop(columns=["uid", "q", "options"])
    raw.attrs["coverage"] = coverage
    return raw


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


def routerbench_pickles(data_dir: Path) -> list[Path]:
    """RouterBench's recorded pickle, in either place the download step or a user may have put it."""
    return [p for p in (data_dir / "routerbench" / "routerbench_0shot.pkl", data_dir / "routerbench_0shot.pkl")
            if p.is_file()]


def _routerbench_files(data_dir: Path, allow_pickle: bool | None = None) -> list[Path]:
    """The CSV slice plus, only when allowed, the official routerbench_0shot.pkl (same columns).

    Unpickling runs whatever code the file holds, so a pickle found in the data directory is read only on
    an explicit opt-in (`allow_pickle=True`, --allow-pickle, ${PICKLE_ENV}=1); otherwise it is skipped, loudly.
    """
    root = data_dir / "routerbench"
    files = sorted((root / "routerbench_zs").glob("*.csv"))
    pickles = routerbench_pickles(data_dir)
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


def routerbench_raw(data_dir: Path, allow_pickle: bool | None = None) -> pd.DataFrame:
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
    base["in_tokens"] = count_many(base["question"].tolist())
    frames = [base.assign(model=m, response=wide[f"{m}|model_response"].map(_unlist).to_numpy(),
                          correct=scores.loc[wide.index, m].to_numpy(float),
                          usd=costs.loc[wide.index, f"{m}|total_cost"].to_numpy(float)) for m in models]
    raw = pd.concat(frames, ignore_index=True)
    raw["source"], raw["gold"] = "routerbench", None
    raw["out_tokens"] = count_many(raw["response"].tolist())
    raw.attrs["dropped"] = stats
    return raw


# ---------------------------------------------------------------- every source
# source -> its reader: the data directory's files as raw rows (`build` grades and prices them)
READERS = {"zeroeval": zeroeval_raw, "mmlu-pro": mmlu_raw, "routerbench": routerbench_raw}


def data_dir_or_default(data_dir) -> Path:
    """The data directory (argument or $XROUTER_LITE_DATA), failing loudly when missing."""
    from xrouter_lite.profiles import resolve_data_dir

    return resolve_data_dir(data_dir)
