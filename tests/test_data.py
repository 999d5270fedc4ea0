"""The replay data layer: readers, tokens, prices, splits, the cache, the summary and the download."""

from __future__ import annotations

import functools
import http.server
import json
import os
import pickle
import threading
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from xrouter_lite.errors import DataError
from xrouter_lite.pool.build import COLUMNS, STR_COLUMNS, read_mmlu_pro, read_routerbench, read_zeroeval
from xrouter_lite.pool.commands import pool_command
from xrouter_lite.pool.core import load_prices
from xrouter_lite.pool.costs import REASONING_MULTIPLIER, reprice
from xrouter_lite.pool.readers import MMLU_PRO_FEWSHOT_TOKENS, PICKLE_ENV, READERS, SOURCES, ZEROEVAL_TASKS
from xrouter_lite.pool.splits import _normalise, add_splits, split_of
from xrouter_lite.pool.table import SUMMARY_COLUMNS, TABLE_ERRORS, grader_error_counts, load_table, pool_summary
from xrouter_lite.pool.tokens import count_tokens, token_factor
from xrouter_lite.pool.upstream import UPSTREAM, _local_path, download

REPO = Path(__file__).resolve().parents[1]
RIGHT = '```json\n{"reasoning": "16 - 3 - 4 = 9 eggs, 9 * 2 = 18", "answer": "18"}\n```'
WRONG = '```json\n{"reasoning": "16 - 3 = 13, 13 + 4 = 17", "answer": "17"}\n```'


# ---------------------------------------------------------------- fixture builders
def _write_json(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


def _zeroeval_record(task: str, i: int, output, question_key: str = "question") -> dict:
    q = f"{task} question {i}: Janet has 16 eggs, eats 3 and bakes 4; she sells the rest for $2. Earnings?"
    return {"id": f"{task}-#{i}", question_key: q, "answer": "# 18" if task == "gsm" else "18",
            "output": output, "chat_history": [f"\n## Question: \n\n{q}\n\n## Instruction\nAnswer in JSON."],
            "generator": "x/y", "configs": "{}"}


def make_zeroeval(root: Path, models=("gpt-4o-mini-2024-07-18", "o1-mini-2024-09-12"), n: int = 3) -> Path:
    """zeroeval/result_dirs/<task>/<model>.json: model 0 answers right, model 1 wrong, query 0 of o1 empty."""
    for task in ZEROEVAL_TASKS:
        key = "problem" if task == "math-l5" else "question"
        for j, model in enumerate(models):
            recs = [_zeroeval_record(task, i, [RIGHT if j == 0 else WRONG], key) for i in range(n)]
            if j == 1:
                recs[0]["output"] = [""]  # an empty output must score 0, not crash
            _write_json(root / "zeroeval" / "result_dirs" / task / f"{model}.json", recs)
    return root


def _mmlu_record(qid: int, text_key: str, right: bool, options=None, answer="C") -> dict:
    opts = options or ["1", "2", "3", "4"]
    return {"question_id": qid, "question": f"How many lamps in room {qid}?", "options": opts,
            "answer": answer, "answer_index": "ABCD".index(answer), "category": "engineering", "src": "x",
            "pred": answer, "cot_content": "",
            text_key: f"Lamps... The answer is ({answer if right else 'A'})."}


def make_mmlu(root: Path) -> Path:
    """Two model zips (one writes model_outputs, one generated_text); q3 only in one, q4 revised."""
    files = {"model_outputs_gemini-1.5-flash-002_5shots.zip":
             [_mmlu_record(q, "model_outputs", True) for q in (1, 2, 3)] + [_mmlu_record(4, "model_outputs", True)],
             "model_outputs_Meta-Llama-3_1-8B-Instruct_5shots.zip":
             [_mmlu_record(q, "generated_text", q == 1) for q in (1, 2)]
             + [_mmlu_record(4, "generated_text", True, options=["1", "2", "3"])]}
    for name, recs in files.items():
        path = root / "mmlu-pro" / "eval_results" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(path, "w") as z:
            z.writestr(name.replace(".zip", ".json"), json.dumps(recs))
    return root


RB_MODELS = ("gpt-4-1106-preview", "mistralai/mistral-7b-chat")


def _rb_row(sample_id, prompt, scores, costs, eval_name="arc-challenge") -> dict:
    row = {"sample_id": sample_id, "prompt": str([prompt]), "eval_name": eval_name}
    for m, s, c in zip(RB_MODELS, scores, costs):
        row[m], row[f"{m}|model_response"], row[f"{m}|total_cost"] = s, str(["B\n" if s else "A"]), c
    row["oracle_model_to_route_to"] = RB_MODELS[1]
    return row


def rb_rows() -> list[dict]:
    """Good rows, a blank score, a duplicate prompt, and one sample_id naming two prompts."""
    return [_rb_row("arc.val.1", "Which is a chemical change?\nA) wood burning", [1.0, 0.0], [3.54e-3, 7.06e-5]),
            _rb_row("arc.val.2", "Which gas do plants take in?\nA) CO2", [1.0, 1.0], [2.0e-3, 5.0e-5]),
            _rb_row("arc.val.3", "Blank score row", [np.nan, 1.0], [1.0e-3, 1.0e-5]),
            _rb_row("arc.val.4", "Which is a chemical change?\nA) wood burning", [0.0, 0.0], [3.54e-3, 7.06e-5]),
            _rb_row("arc.val.5", "Five: first prompt", [1.0, 0.0], [1e-3, 2e-5]),
            _rb_row("arc.val.5", "Five: a different prompt", [0.0, 1.0], [1e-3, 2e-5]),
            _rb_row("wino.dev.1", "Sam _ the ball. A) threw B) ate", [1.0, 1.0], [1e-3, 2e-5], "winogrande")]


def make_routerbench(root: Path) -> Path:
    path = root / "routerbench" / "routerbench_zs" / "arc_challenge_test.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rb_rows()).to_csv(path)
    return root


@pytest.fixture()
def fixture_dir(tmp_path) -> Path:
    """A small data directory in the three upstream layouts."""
    return make_routerbench(make_mmlu(make_zeroeval(tmp_path / "data")))


def _check_contract(table: pd.DataFrame) -> None:
    """The DESIGN.md columns, dtypes and one row per (query, model)."""
    assert list(table.columns) == COLUMNS
    for c in STR_COLUMNS:
        assert pd.api.types.is_string_dtype(table[c]), c
    assert table["correct"].dtype == float and table["usd"].dtype == float
    assert table["in_tokens"].dtype == np.int64 and table["out_tokens"].dtype == np.int64
    assert not table.duplicated(["query_id", "model"]).any()
    assert set(table["correct"].unique()) <= {0.0, 1.0}


# ---------------------------------------------------------------- tokens
def test_count_tokens_is_the_stated_estimate():
    assert count_tokens("How many eggs does Janet sell every day?") == 9
    assert count_tokens("") == 0 and count_tokens(None) == 0
    assert count_tokens("1234567") == 3  # numbers in groups of <= 3 digits, as GPT tokenizers split them
    assert count_tokens("internationalization") == 3  # long words in pieces of <= 7 letters
    prose = ("Janet’s ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins "
             "for her friends every day with four. She sells the remainder at the farmers' market daily for $2 "
             "per fresh duck egg. How much in dollars does she make every day at the farmers' market?")
    assert count_tokens(prose) == 63
    assert 4.0 <= len(prose) / count_tokens(prose) <= 4.8  # ~4 chars/token on English


# ---------------------------------------------------------------- ZeroEval
def test_read_zeroeval_grades_counts_and_prices(fixture_dir):
    t = read_zeroeval(fixture_dir, progress=False)
    _check_contract(t)
    assert len(t) == 2 * 3 * 3 and t["source"].eq("zeroeval").all()
    assert set(t["task"]) == {"gsm", "math-l5", "crux"} and t["category"].eq("").all()
    assert t.loc[t["task"] == "gsm", "gold"].eq("18").all()  # "# 18" -> "18"
    assert t.loc[t["task"] == "math-l5", "question"].str.startswith("math-l5 question").all()  # from `problem`
    mini = t[t["model"] == "gpt-4o-mini-2024-07-18"]
    o1 = t[t["model"] == "o1-mini-2024-09-12"]
    assert mini["correct"].eq(1.0).all() and o1["correct"].eq(0.0).all()
    empty = o1[o1["query_id"] == "zeroeval/gsm/gsm-#0"].iloc[0]
    assert empty["response"] == "" and empty["out_tokens"] == 0
    row = mini[mini["query_id"] == "zeroeval/gsm/gsm-#1"].iloc[0]
    prompt = _zeroeval_record("gsm", 1, [RIGHT])["chat_history"][0]
    assert row["in_tokens"] == count_tokens(prompt) and row["out_tokens"] == count_tokens(RIGHT)
    f = token_factor("gpt-4o-mini-2024-07-18")  # estimated -> billed tokens for OpenAI's tokenizer
    assert row["usd"] == pytest.approx((row["in_tokens"] * 0.15 + row["out_tokens"] * 0.60) * f / 1e6)
    r = o1[o1["query_id"] == "zeroeval/gsm/gsm-#1"].iloc[0]  # o1-mini: output tokens x the reasoning multiplier
    mult = REASONING_MULTIPLIER["o1-mini-2024-09-12"]
    assert r["usd"] == pytest.approx((r["in_tokens"] * 3.0 + r["out_tokens"] * mult * 12.0) * f / 1e6)


def test_zeroeval_missing_field_names_file_and_record(fixture_dir):
    path = fixture_dir / "zeroeval" / "result_dirs" / "crux" / "gpt-4o-mini-2024-07-18.json"
    recs = json.loads(path.read_text())
    del recs[1]["id"]
    path.write_text(json.dumps(recs))
    with pytest.raises(ValueError, match=r"gpt-4o-mini-2024-07-18\.json: record 1 has no 'id'"):
        read_zeroeval(fixture_dir, progress=False)


def test_zeroeval_missing_output_field_scores_zero(fixture_dir):
    path = fixture_dir / "zeroeval" / "result_dirs" / "gsm" / "gpt-4o-mini-2024-07-18.json"
    recs = json.loads(path.read_text())
    del recs[2]["output"]
    path.write_text(json.dumps(recs))
    t = read_zeroeval(fixture_dir, progress=False)
    row = t[(t["query_id"] == "zeroeval/gsm/gsm-#2") & (t["model"] == "gpt-4o-mini-2024-07-18")].iloc[0]
    assert row["response"] == "" and row["correct"] == 0.0


def test_zeroeval_answer_field_renamed_names_file_and_field_and_caches_nothing(fixture_dir, tmp_path):
    path = fixture_dir / "zeroeval" / "result_dirs" / "gsm" / "o1-mini-2024-09-12.json"
    recs = json.loads(path.read_text())
    for r in recs:
        r["response"] = r.pop("output")  # read as-is, this model would be 0% correct and cached as complete
    path.write_text(json.dumps(recs))
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=r"gsm/o1-mini-2024-09-12\.json: no record has the answer field 'output'"):
        load_table(fixture_dir, sources="zeroeval", cache_dir=cache, progress=False)
    assert not cache.exists() or not any(cache.iterdir())


def test_a_question_answered_twice_in_one_file_names_it(fixture_dir):
    path = fixture_dir / "zeroeval" / "result_dirs" / "crux" / "o1-mini-2024-09-12.json"
    recs = json.loads(path.read_text())
    path.write_text(json.dumps(recs + recs[:1]))
    with pytest.raises(DataError, match=r"o1-mini-2024-09-12\.json: question id 'crux-#0' appears twice"):
        read_zeroeval(fixture_dir, progress=False)


def _truncate(path: Path, keep: int) -> None:
    path.write_text(json.dumps(json.loads(path.read_text())[:keep]))


def test_a_partial_model_file_is_reported_and_its_task_keeps_queries_every_model_answered(fixture_dir, tmp_path,
                                                                                          caplog):
    _truncate(fixture_dir / "zeroeval" / "result_dirs" / "gsm" / "o1-mini-2024-09-12.json", 2)  # 2 of 3
    cache = tmp_path / "cache"
    for attempt in ("built", "cached"):  # reported on every load, not only when the cache is built
        caplog.clear()
        with caplog.at_level("WARNING"):
            t = load_table(fixture_dir, sources="zeroeval", cache_dir=cache, progress=False)
        assert "zeroeval/result_dirs/gsm/o1-mini-2024-09-12.json answers 2 of 3 gsm questions" in caplog.text, attempt
        assert "kept the 2 gsm queries answered by every zeroeval model; 1 of 3 dropped" in caplog.text, attempt
        _check_contract(t)
        gsm = t[t["task"] == "gsm"]
        assert gsm["query_id"].nunique() == 2 and len(gsm) == 2 * 2  # every (query, model) pair has a record
        assert t[t["task"] == "crux"]["query_id"].nunique() == 3  # the other tasks keep every query
        cov = t.attrs["build"]["zeroeval"]["coverage"]
        assert cov["files"] == [{"file": "zeroeval/result_dirs/gsm/o1-mini-2024-09-12.json", "task": "gsm",
                                 "answered": 2, "expected": 3}]
        assert cov["dropped"] == {"gsm": 1, "math-l5": 0, "crux": 0}


def test_grader_failures_are_counted_per_task_and_model_warned_and_cached(fixture_dir, tmp_path, monkeypatch,
                                                                          caplog):
    from xrouter_lite.pool import grading
    from xrouter_lite.profiles import RUNS_ENV

    def flaky(response, gold):  # fails on the right answer's text: the first model's rows only
        if "9 * 2 = 18" in str(response):
            raise grading.GraderError("timeout", "math-verify ran past 4 s")
        return 0

    monkeypatch.setitem(grading._GRADERS, "math-l5", flaky)
    monkeypatch.setenv(RUNS_ENV, str(tmp_path / "run"))
    cache = tmp_path / "cache"
    with caplog.at_level("WARNING"):
        t = load_table(fixture_dir, sources="zeroeval", cache_dir=cache, progress=False)
    assert grader_error_counts(t) == {"math-l5/gpt-4o-mini-2024-07-18": 3}
    errors = t.attrs["build"]["zeroeval"]["grader_errors"]
    assert errors["examples"]["math-l5/gpt-4o-mini-2024-07-18"][0] == "zeroeval/math-l5/math-l5-#0"
    assert errors["kinds"] == {"timeout": 3}
    assert "the grader failed on 3 rows (3 timeout)" in caplog.text and "zeroeval/math-l5/math-l5-#0" in caplog.text
    assert t.loc[t["task"] == "math-l5", "correct"].eq(0).all()
    recorded = json.loads((tmp_path / "run" / "artifacts" / TABLE_ERRORS).read_text())
    assert recorded == {"zeroeval": {"math-l5/gpt-4o-mini-2024-07-18": 3}}
    monkeypatch.undo()  # a healthy grader now; the cache still holds the table as it was built, with its counts
    again = load_table(fixture_dir, sources="zeroeval", cache_dir=cache, progress=False)
    assert grader_error_counts(again) == {"math-l5/gpt-4o-mini-2024-07-18": 3}


def test_truncated_json_names_the_file(fixture_dir):
    path = fixture_dir / "zeroeval" / "result_dirs" / "math-l5" / "o1-mini-2024-09-12.json"
    path.write_text(path.read_text()[:-40])
    with pytest.raises(ValueError, match=r"o1-mini-2024-09-12\.json: truncated JSON"):
        read_zeroeval(fixture_dir, progress=False)


def test_invalid_json_names_the_file(fixture_dir):
    path = fixture_dir / "zeroeval" / "result_dirs" / "gsm" / "o1-mini-2024-09-12.json"
    path.write_text('[{"id": 1,, "question": "x"}]' + " " * 50)
    with pytest.raises(ValueError, match=r"o1-mini-2024-09-12\.json: invalid JSON at line 1"):
        read_zeroeval(fixture_dir, progress=False)


def test_missing_data_dir_fails_loudly(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_table(tmp_path / "nowhere", cache_dir=None)
    with pytest.raises(FileNotFoundError, match="no ZeroEval result files"):
        read_zeroeval(tmp_path, progress=False)


# ---------------------------------------------------------------- MMLU-Pro
def test_read_mmlu_pro_keeps_questions_all_models_answered_alike(fixture_dir):
    t = read_mmlu_pro(fixture_dir, progress=False)
    _check_contract(t)
    assert set(t["model"]) == {"gemini-1.5-flash-002", "Meta-Llama-3.1-8B-Instruct"}  # 3_1 -> 3.1
    # q3 is answered by one model only, q4's options were revised between the two runs: both dropped.
    assert sorted(t["query_id"].unique()) == ["mmlu-pro/mmlu-pro/1", "mmlu-pro/mmlu-pro/2"]
    q = t.iloc[0]
    assert q["question"] == "How many lamps in room 1?\nOptions:\nA. 1\nB. 2\nC. 3\nD. 4"
    assert q["gold"] == "C" and q["category"] == "engineering" and q["task"] == "mmlu-pro"
    assert (t["in_tokens"] == t["question"].map(count_tokens) + MMLU_PRO_FEWSHOT_TOKENS).all()
    by = t.set_index(["query_id", "model"])["correct"]
    assert by[("mmlu-pro/mmlu-pro/2", "gemini-1.5-flash-002")] == 1.0  # read from model_outputs
    assert by[("mmlu-pro/mmlu-pro/2", "Meta-Llama-3.1-8B-Instruct")] == 0.0  # from generated_text: "(A)"


def _rewrite_zip(path: Path, edit) -> None:
    with zipfile.ZipFile(path) as z:
        name = z.namelist()[0]
        recs = json.loads(z.read(name))
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(name, json.dumps([edit(r) for r in recs]))


def test_mmlu_answer_field_unknown_names_file_and_fields(fixture_dir, tmp_path):
    path = fixture_dir / "mmlu-pro" / "eval_results" / "model_outputs_gemini-1.5-flash-002_5shots.zip"
    _rewrite_zip(path, lambda r: {("response" if k == "model_outputs" else k): v for k, v in r.items()})
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=r"gemini-1\.5-flash-002_5shots\.zip: no record has the answer field "
                                          r"'model_outputs' or 'generated_text'"):
        load_table(fixture_dir, sources="mmlu-pro", cache_dir=cache, progress=False)
    assert not cache.exists() or not any(cache.iterdir())


def test_mmlu_gold_that_is_no_option_letter_names_the_record(fixture_dir):
    path = fixture_dir / "mmlu-pro" / "eval_results" / "model_outputs_Meta-Llama-3_1-8B-Instruct_5shots.zip"
    _rewrite_zip(path, lambda r: {**r, "answer": "2"})
    with pytest.raises(DataError, match=r"record 0 has the gold answer '2', not an option letter"):
        read_mmlu_pro(fixture_dir, progress=False)


def test_corrupt_zip_names_the_file(fixture_dir):
    path = fixture_dir / "mmlu-pro" / "eval_results" / "model_outputs_gemini-1.5-flash-002_5shots.zip"
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(ValueError, match=r"model_outputs_gemini-1\.5-flash-002_5shots\.zip: corrupt zip"):
        read_mmlu_pro(fixture_dir, progress=False)


def test_truncated_json_inside_zip_names_the_zip(fixture_dir):
    path = fixture_dir / "mmlu-pro" / "eval_results" / "model_outputs_Meta-Llama-3_1-8B-Instruct_5shots.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("model_outputs_Meta-Llama-3_1-8B-Instruct_5shots.json", '[{"question_id": 1, "question": "x"')
    with pytest.raises(ValueError, match=r"Meta-Llama-3_1-8B-Instruct_5shots\.zip.*truncated JSON"):
        read_mmlu_pro(fixture_dir, progress=False)


# ---------------------------------------------------------------- RouterBench
def test_read_routerbench_drops_blanks_and_duplicates(fixture_dir):
    t = read_routerbench(fixture_dir)
    _check_contract(t)
    assert t.attrs["dropped"] == {"rows": 7, "blank_scores": 1, "duplicate_prompts": 1}
    ids = sorted(t["query_id"].unique())
    assert len(ids) == 5 and "routerbench/arc_challenge/arc.val.3" not in ids  # blank score dropped
    assert "routerbench/arc_challenge/arc.val.4" not in ids  # same prompt as arc.val.1: dropped
    fives = [i for i in ids if "arc.val.5" in i]
    assert len(fives) == 2 and all("~" in i for i in fives)  # one id, two prompts: both suffixed
    assert "routerbench/winogrande/wino.dev.1" in ids
    assert t["gold"].map(lambda g: g is None).all() and t["source"].eq("routerbench").all()
    row = t[(t["query_id"] == "routerbench/arc_challenge/arc.val.1") & (t["model"] == RB_MODELS[0])].iloc[0]
    assert row["usd"] == pytest.approx(3.54e-3) and row["correct"] == 1.0  # recorded cost and score
    assert row["question"] == "Which is a chemical change?\nA) wood burning"  # the list string unwrapped
    assert row["response"] == "B\n" and row["in_tokens"] == count_tokens(row["question"])


def test_routerbench_truncated_csv_names_the_file(fixture_dir):
    path = fixture_dir / "routerbench" / "routerbench_zs" / "arc_challenge_test.csv"
    path.write_bytes(path.read_bytes()[:-25])
    with pytest.raises(ValueError, match=r"arc_challenge_test\.csv: truncated CSV"):
        read_routerbench(fixture_dir)


def _official_pickle(fixture_dir: Path) -> Path:
    rows = [_rb_row("mmlu.1", "What is 2+2?\nA) 4", [1.0, 0.0], [1e-3, 1e-5], "mmlu-abstract-algebra"),
            _rb_row("arc.val.1", "Which is a chemical change?\nA) wood burning", [1.0, 0.0], [3.54e-3, 7.06e-5])]
    path = fixture_dir / "routerbench" / "routerbench_0shot.pkl"
    with path.open("wb") as f:
        pickle.dump(pd.DataFrame(rows), f)
    return path


def test_routerbench_reads_the_official_pickle_layout_when_allowed(fixture_dir, monkeypatch):
    _official_pickle(fixture_dir)
    t = read_routerbench(fixture_dir, allow_pickle=True)
    mmlu = t[t["task"] == "mmlu"]
    assert len(mmlu) == 2 and mmlu["category"].eq("abstract-algebra").all()
    assert t.attrs["dropped"]["duplicate_prompts"] == 2  # the pickle repeats a prompt of the CSV slice
    monkeypatch.setenv(PICKLE_ENV, "1")  # the CLI's --allow-pickle sets this
    assert (read_routerbench(fixture_dir)["task"] == "mmlu").sum() == 2


def test_a_dropped_in_pickle_is_never_unpickled_by_default(fixture_dir, tmp_path, monkeypatch, caplog):
    monkeypatch.delenv(PICKLE_ENV, raising=False)
    marker = tmp_path / "pwned"

    class Payload:  # what a malicious pickle does: run code while it is loaded
        def __reduce__(self):
            return (Path.touch, (marker,))

    (fixture_dir / "routerbench_0shot.pkl").write_bytes(pickle.dumps(Payload()))
    with caplog.at_level("WARNING"):
        t = load_table(fixture_dir, sources="routerbench", cache_dir=tmp_path / "c", progress=False)
    assert not marker.exists() and len(t) == 5 * len(RB_MODELS)  # the CSV slice alone
    assert "routerbench_0shot.pkl: skipped: unpickling runs code" in caplog.text and "--allow-pickle" in caplog.text


# ---------------------------------------------------------------- the table and its cache
def test_load_table_caches_and_rebuilds_on_change(fixture_dir, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = load_table(fixture_dir, cache_dir=cache, progress=False)
    _check_contract(first)
    assert sorted(first["source"].unique()) == sorted(SOURCES)
    assert len(list(cache.glob("table-*.parquet"))) == 3 and not list(cache.glob(".*tmp"))

    def refuse(*_):
        raise AssertionError("rebuilt although the cache is valid")

    monkeypatch.setitem(READERS, "zeroeval", refuse)
    again = load_table(fixture_dir, cache_dir=cache, progress=False)
    pd.testing.assert_frame_equal(first, again)
    path = fixture_dir / "zeroeval" / "result_dirs" / "gsm" / "o1-mini-2024-09-12.json"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    with pytest.raises(AssertionError, match="rebuilt"):
        load_table(fixture_dir, sources=["zeroeval"], cache_dir=cache, progress=False)
    monkeypatch.undo()
    load_table(fixture_dir, sources=["zeroeval"], cache_dir=cache, progress=False)
    assert len(list(cache.glob("table-zeroeval-*.parquet"))) == 1  # the stale table is replaced, not kept


def test_the_default_cache_is_looked_up_at_each_call(fixture_dir, tmp_path, monkeypatch):
    """$XROUTER_LITE_CACHE set after the import (as a notebook or a test does) still decides where the table goes."""
    monkeypatch.setenv("XROUTER_LITE_CACHE", str(tmp_path / "later"))
    load_table(fixture_dir, sources="routerbench", progress=False)
    assert len(list((tmp_path / "later").glob("table-routerbench-*.parquet"))) == 1


def test_failed_build_writes_no_cache(fixture_dir, tmp_path):
    cache = tmp_path / "cache"
    path = fixture_dir / "zeroeval" / "result_dirs" / "gsm" / "o1-mini-2024-09-12.json"
    path.write_text(path.read_text()[:100])
    with pytest.raises(ValueError, match="truncated JSON"):
        load_table(fixture_dir, sources="zeroeval", cache_dir=cache, progress=False)
    assert not cache.exists() or not any(cache.iterdir())


def test_reprice_only_changes_reasoning_rows(fixture_dir):
    t = read_zeroeval(fixture_dir, progress=False)
    o1 = t["model"] == "o1-mini-2024-09-12"
    one, ten = reprice(t, 1.0), reprice(t, {"o1-mini-2024-09-12": 10})
    assert np.allclose(one.loc[~o1, "usd"], t.loc[~o1, "usd"]) and np.allclose(ten.loc[~o1, "usd"], t.loc[~o1, "usd"])
    extra = (ten.loc[o1, "usd"] - one.loc[o1, "usd"]).to_numpy()
    assert np.allclose(extra, t.loc[o1, "out_tokens"].to_numpy() * 9 * 12.0 * token_factor("o1-mini") / 1e6)
    cached = load_table(fixture_dir, sources="zeroeval", cache_dir=None, reasoning_multiplier=10, progress=False)
    assert np.allclose(cached["usd"], ten["usd"])


# ---------------------------------------------------------------- splits
# Computed once from the hashing scheme; a change of normalisation or hash shows up here.
KNOWN_SPLITS = {
    "What is 2 + 2?": "train",
    "Janet’s ducks lay 16 eggs per day.": "train",
    "question 2": "test",
    "question 43": "validation",
    "question 64": "validation",
    "question 67": "test",
}


def test_split_of_is_stable_and_normalised():
    assert {q: split_of(q) for q in KNOWN_SPLITS} == KNOWN_SPLITS
    assert split_of("  WHAT is 2   +\n2? ") == split_of("What is 2 + 2?")


def test_split_proportions_and_disjointness():
    questions = [f"synthetic question number {i}" for i in range(30000)]
    share = pd.Series([split_of(q) for q in questions]).value_counts(normalize=True)
    assert share["train"] == pytest.approx(0.8, abs=0.01)
    assert share["validation"] == pytest.approx(0.1, abs=0.01) and share["test"] == pytest.approx(0.1, abs=0.01)
    table = pd.DataFrame({"question": questions[:500] * 3, "query_id": [f"q{i % 500}" for i in range(1500)]})
    split = add_splits(table)
    assert split.groupby("question")["split"].nunique().eq(1).all()  # one question, one split


# ---------------------------------------------------------------- the pool summary
def _tiny_table() -> pd.DataFrame:
    rows = [("q1", "a", 1.0, 0.30), ("q1", "b", 1.0, 0.10), ("q1", "c", 0.0, 0.05),
            ("q2", "a", 0.0, 0.40), ("q2", "b", 0.0, 0.20), ("q2", "c", 0.0, 0.02)]
    return pd.DataFrame([dict(query_id=q, source="zeroeval", task="gsm", category="", question=q, gold="1",
                              model=m, response="", correct=c, in_tokens=10, out_tokens=5, usd=u)
                         for q, m, c, u in rows])


def test_pool_summary_schema_and_oracle():
    s = pool_summary(_tiny_table())
    assert list(s.columns) == SUMMARY_COLUMNS
    assert list(s["model"]) == ["a", "b", "c", "oracle"]
    oracle = s.set_index("model").loc["oracle"]
    # q1: cheapest correct is b (0.10); q2: none correct -> the cheapest model's cost (c, 0.02), score 0.
    assert oracle["accuracy"] == 0.5 and oracle["usd_per_query"] == pytest.approx(0.06) and oracle["n"] == 2
    assert s.set_index("model").loc["a", "accuracy"] == 0.5


def test_pool_command_prints_json_lines(fixture_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XROUTER_LITE_CACHE", str(tmp_path / "c"))  # load_table looks it up at each call
    pool_command(SimpleNamespace(data=str(fixture_dir), json=True, source="routerbench"))
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["model"] for r in rows} == set(RB_MODELS) | {"oracle"}
    assert set(rows[0]) == set(SUMMARY_COLUMNS)
    pool_command(SimpleNamespace(data=str(fixture_dir), json=False, source=None))
    out = capsys.readouterr().out
    assert "usd_per_query" in out and "oracle" in out and "count_tokens" in out


# ---------------------------------------------------------------- download
@pytest.fixture()
def http_root(tmp_path):
    """A local HTTP server on 127.0.0.1 serving tmp_path/'srv'; yields (root, base_url, request log)."""
    root = tmp_path / "srv"
    root.mkdir()
    seen: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            seen.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def _serve(http_root, monkeypatch, files: dict[str, bytes], size_of=len):
    """Put files on the server and make them the routerbench manifest; returns the base URL."""
    root, base, _ = http_root
    for name, body in files.items():
        (root / "rb" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "rb" / name).write_bytes(body)
    manifest = {name: size_of(body) for name, body in files.items()}
    monkeypatch.setitem(UPSTREAM, "routerbench", ("https://example.invalid", "routerbench/", manifest))
    return base + "/rb"


def test_download_fetches_verifies_and_skips(http_root, tmp_path, monkeypatch):
    csv = pd.DataFrame(rb_rows()).to_csv().encode()
    base = _serve(http_root, monkeypatch, {"datasets/routerbench_zs/arc_challenge_test.csv": csv})
    dest = tmp_path / "data"
    got = download(dest, sources=["routerbench"], base_urls={"routerbench": base}, progress=False)
    target = dest / "routerbench" / "routerbench_zs" / "arc_challenge_test.csv"
    assert got == [target] and target.read_bytes() == csv
    assert len(read_routerbench(dest)) == 5 * len(RB_MODELS)  # what was fetched reads as RouterBench
    seen = http_root[2]
    n = len(seen)
    assert download(dest, sources=["routerbench"], base_urls={"routerbench": base}, progress=False) == []
    assert len(seen) == n  # present with the right size: not fetched again


def test_download_rejects_bad_files_and_leaves_nothing(http_root, tmp_path, monkeypatch):
    dest = tmp_path / "d"
    get = functools.partial(download, dest, sources=["routerbench"], progress=False)
    base = _serve(http_root, monkeypatch, {"datasets/x/a.csv": b"a,b\n1,2\n"}, size_of=lambda b: len(b) + 1)
    with pytest.raises(ValueError, match=r"a\.csv: downloaded 8 bytes, expected 9"):
        get(base_urls={"routerbench": base})
    base = _serve(http_root, monkeypatch, {"datasets/x/b.json": b'[{"id": 1'})
    with pytest.raises(ValueError, match=r"b\.json.*truncated JSON"):
        get(base_urls={"routerbench": base})
    monkeypatch.setitem(UPSTREAM, "routerbench", ("x", "routerbench/", {"datasets/x/missing.csv": 3}))
    with pytest.raises(OSError, match=r"missing\.csv: download from http://127\.0\.0\.1.* failed"):
        get(base_urls={"routerbench": base})
    assert not any(p.is_file() for p in dest.rglob("*"))  # nothing partial is left behind


@pytest.mark.data
def test_upstream_manifest_matches_the_shared_layout(data_dir):
    """Every upstream file lands where the readers look, with the size of the shared copy."""
    for source, (_, _, files) in UPSTREAM.items():
        for name, size in files.items():
            local = data_dir / _local_path(source, name)
            assert local.is_file() and local.stat().st_size == size, local


@pytest.mark.data
def test_download_reproduces_the_shared_copy(data_dir, http_root, tmp_path):
    """Serve the shared files at their upstream paths; the download lands byte-identical where readers look."""
    root, base, _ = http_root
    (root / "rb").mkdir()
    (root / "rb" / "datasets").symlink_to(data_dir / "routerbench", target_is_directory=True)
    got = download(tmp_path / "d", sources=["routerbench"], progress=False, base_urls={"routerbench": f"{base}/rb"})
    assert len(got) == 6
    for path in got:
        assert path.read_bytes() == (data_dir / path.relative_to(tmp_path / "d")).read_bytes()


# ---------------------------------------------------------------- the real data (through the cache)
@pytest.mark.data
def test_real_data_row_counts(real_table):
    _check_contract(real_table)
    per = real_table.groupby("source").agg(rows=("query_id", "size"), queries=("query_id", "nunique"),
                                           models=("model", "nunique"))
    assert per.loc["zeroeval"].tolist() == [12 * (1319 + 721 + 800), 1319 + 721 + 800, 12]
    assert per.loc["mmlu-pro", "models"] == 8 and 11900 <= per.loc["mmlu-pro", "queries"] <= 12002
    assert per.loc["mmlu-pro", "rows"] == 8 * per.loc["mmlu-pro", "queries"]
    rb = real_table[real_table["source"] == "routerbench"]
    assert per.loc["routerbench", "models"] == 11 and set(rb["task"]) == {"arc_challenge", "mbpp", "winogrande"}
    assert per.loc["routerbench", "rows"] == 11 * per.loc["routerbench", "queries"] == 11 * 3148
    assert not rb.drop_duplicates("query_id")["question"].map(_normalise).duplicated().any()


@pytest.mark.data
def test_real_zeroeval_accuracy_matches_its_published_summary(real_table, data_dir):
    """Readers + graders reproduce ZeroEval's own accuracies (its parser differs a little: <= 5 points)."""
    ours = real_table[real_table["source"] == "zeroeval"].groupby(["task", "model"])["correct"].mean() * 100
    for task in ZEROEVAL_TASKS:
        summary = json.loads((data_dir / "zeroeval" / "result_dirs" / f"{task}.summary.json").read_text())
        published = {row["Model"]: float(row["Acc"]) for row in summary}
        for model in ours[task].index:
            assert ours[(task, model)] == pytest.approx(published[model], abs=5.0), (task, model)


@pytest.mark.data
def test_real_prices_cover_every_model(real_table):
    prices = load_prices()
    assert set(real_table["model"]) <= set(prices)
    assert real_table["usd"].gt(0).all() and real_table["usd"].notna().all()


@pytest.mark.data
def test_real_splits_are_80_10_10_per_task(real_table):
    queries = add_splits(real_table.drop_duplicates("query_id"))
    share = queries.groupby("task")["split"].value_counts(normalize=True).unstack()
    big = queries["task"].value_counts() > 2000  # small tasks (MBPP: 425 queries) vary more
    tol = np.where(big.reindex(share.index), 0.02, 0.05)
    assert (abs(share["train"] - 0.8) < tol).all() and (abs(share["test"] - 0.1) < tol).all()
    assert queries.groupby(queries["question"].map(_normalise))["split"].nunique().eq(1).all()
