"""The command line on bad input: one clear line and exit status 2, nothing partial cached, and what to do next.

Fixtures are small copies of the real recorded files (read through the `data_dir` fixture), written to tmp dirs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from xrouter_lite.__main__ import is_user_error, main
from xrouter_lite.errors import DataError
from xrouter_lite.pool import commands
from xrouter_lite.pool.core import PRICES_ENV, load_prices
from xrouter_lite.pool.table import TABLE_ERRORS

REPO = Path(__file__).resolve().parents[1]
SIZES = {"gsm": 120, "math-l5": 40, "crux": 40}  # questions per task copied from each real file


def zeroeval_copy(data_dir: Path, dest: Path, sizes=SIZES) -> Path:
    """The first questions of every real ZeroEval file (all 12 models), in the upstream layout under `dest`."""
    for task, n in sizes.items():
        (dest / "zeroeval" / "result_dirs" / task).mkdir(parents=True, exist_ok=True)
        for path in sorted((data_dir / "zeroeval" / "result_dirs" / task).glob("*.json")):
            records = json.loads(path.read_text(encoding="utf-8"))[:n]
            (dest / "zeroeval" / "result_dirs" / task / path.name).write_text(json.dumps(records))
    return dest


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    """A fresh table cache for this test only: $XROUTER_LITE_CACHE, which load_table looks up at each call (here and in
    a subprocess)."""
    path = tmp_path / "cache"
    monkeypatch.setenv("XROUTER_LITE_CACHE", str(path))
    monkeypatch.delenv(PRICES_ENV, raising=False)
    return path


def _records(path: Path) -> list:
    return json.loads(path.read_text(encoding="utf-8"))


def _cli(*args: str) -> subprocess.CompletedProcess:
    """`python -m xrouter_lite ARGS` in a fresh process (this environment, this checkout first on the path)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "xrouter_lite", *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=600)


# ---------------------------------------------------------------- bad data files
@pytest.mark.data
def test_pool_on_a_renamed_answer_field_exits_2_naming_file_and_field_and_caches_nothing(data_dir, tmp_path, cache):
    d = zeroeval_copy(data_dir, tmp_path / "d")
    path = d / "zeroeval" / "result_dirs" / "math-l5" / "gemini-1.5-pro.json"
    path.write_text(json.dumps([{("model_output" if k == "output" else k): v for k, v in r.items()}
                                for r in _records(path)]))
    done = _cli("pool", "--data", str(d), "--source", "zeroeval")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")  # one line, no traceback
    assert "math-l5/gemini-1.5-pro.json: no record has the answer field 'output'" in lines[0]
    assert "model_output" in lines[0]  # the fields it does have, so the rename is easy to spot
    assert not cache.exists() or not any(cache.rglob("*.parquet"))


@pytest.mark.data
def test_debug_shows_the_traceback_and_bugs_keep_theirs(data_dir, tmp_path, cache, monkeypatch):
    d = zeroeval_copy(data_dir, tmp_path / "d", {"gsm": 5, "math-l5": 5, "crux": 5})
    path = d / "zeroeval" / "result_dirs" / "gsm" / "gemma-2-2b-it.json"
    path.write_text(path.read_text()[:-30])  # truncated
    assert main(["pool", "--data", str(d), "--source", "zeroeval"]) == 2
    with pytest.raises(DataError, match="gemma-2-2b-it.json: truncated JSON"):
        main(["pool", "--data", str(d), "--source", "zeroeval", "--debug"])

    def bug(args):
        raise ZeroDivisionError("a bug, not the user's mistake")

    monkeypatch.setattr(commands, "pool_command", bug)
    with pytest.raises(ZeroDivisionError):  # not swallowed into one line
        main(["pool", "--data", str(d)])


def test_user_errors_are_named_not_everything(tmp_path):
    from xrouter_lite.pool.budget import BudgetExceeded
    from xrouter_lite.pool.config import ConfigError
    from xrouter_lite.pool.core import MissingPriceError, PoolError

    assert is_user_error(DataError("x")) and is_user_error(PoolError("x")) and is_user_error(MissingPriceError("x"))
    assert is_user_error(ConfigError("x")) and is_user_error(BudgetExceeded("x", 0.0, 0.0, 1.0, 0.5))  # named by module
    assert is_user_error(FileNotFoundError("x")) and is_user_error(PermissionError("x"))
    assert not is_user_error(KeyError("x")) and not is_user_error(ValueError("x")) and not is_user_error(TypeError())


def test_missing_data_dir_and_unknown_source_are_one_line(tmp_path, cache, capsys):
    assert main(["pool", "--data", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data directory" in err[0] and "does not exist" in err[0]
    assert main(["pool", "--data", str(tmp_path), "--source", "bogus"]) == 2
    assert "unknown source(s) ['bogus']" in capsys.readouterr().err


# ---------------------------------------------------------------- a model file covering part of its task
@pytest.mark.data
def test_partial_model_file_is_reported_by_pool_and_evaluate_completes(data_dir, tmp_path, cache, capsys, caplog):
    d = zeroeval_copy(data_dir, tmp_path / "d")
    path = d / "zeroeval" / "result_dirs" / "gsm" / "gemma-2-2b-it.json"
    path.write_text(json.dumps(_records(path)[:50]))  # 50 of 120, as a cut download would leave it
    with caplog.at_level("WARNING"):
        assert main(["pool", "--data", str(d), "--source", "zeroeval", "--json"]) == 0
    assert "zeroeval/result_dirs/gsm/gemma-2-2b-it.json answers 50 of 120 gsm questions" in caplog.text
    assert "kept the 50 gsm queries answered by every zeroeval model; 70 of 120 dropped" in caplog.text
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["n"] for r in rows if r["task"] == "gsm"} == {50}  # every model, the same 50 queries
    # Before the rule, evaluate crashed: "PoolError: model 'gemma-2-2b-it' has no recorded answer to query ...".
    assert main(["evaluate", "--data", str(d), "--source", "zeroeval", "--routers", "all", "--json"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {"knn", "mlp", "oracle", "gemma-2-2b-it"} <= {r.get("router") for r in out}


# ---------------------------------------------------------------- prices
@pytest.mark.data
def test_a_model_without_a_price_shows_the_row_to_add_and_prices_adds_it(data_dir, tmp_path, cache, capsys):
    d = zeroeval_copy(data_dir, tmp_path / "d", {"gsm": 8, "math-l5": 8, "crux": 8})
    for task in SIZES:  # a new model: the gemma answers under another name
        folder = d / "zeroeval" / "result_dirs" / task
        (folder / "my-new-model.json").write_text((folder / "gemma-2-2b-it.json").read_text())
    assert main(["pool", "--data", str(d), "--source", "zeroeval"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no price for model(s) 'my-new-model'" in err[0]
    assert '"my-new-model,PRICE_IN,PRICE_OUT"' in err[0] and "--prices FILE" in err[0]
    assert not any(cache.rglob("*.parquet"))

    prices = tmp_path / "my_prices.csv"
    prices.write_text("model,price_in,price_out\nmy-new-model,0.5,1.5\n")
    assert main(["pool", "--data", str(d), "--source", "zeroeval", "--json", "--prices", str(prices)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    new = [r for r in rows if r["model"] == "my-new-model"]
    gemma = {r["task"]: r for r in rows if r["model"] == "gemma-2-2b-it"}  # $0.10/$0.10, same tokens
    assert len(new) == 3 and all(r["usd_per_query"] > 3 * gemma[r["task"]]["usd_per_query"] for r in new)
    assert PRICES_ENV not in os.environ  # main() leaves the caller's environment as it was


def test_user_prices_are_merged_over_the_shipped_table_and_validated(tmp_path, monkeypatch):
    shipped = load_prices()
    mine = tmp_path / "prices.csv"
    mine.write_text("model,price_in,price_out,context\n"
                    "gpt-4o-mini-2024-07-18,0.10,0.40,\n"  # a newer price replaces the shipped one
                    "acme-1,2,8,32000\n")
    merged = load_prices(extra=mine)
    assert merged["gpt-4o-mini-2024-07-18"].price_in == 0.10 and merged["acme-1"].context == 32000
    assert merged["acme-1"].tier == "premium" and set(shipped) < set(merged)
    monkeypatch.setenv(PRICES_ENV, str(mine))
    assert load_prices()["acme-1"].price_out == 8.0  # $XROUTER_LITE_PRICES, what --prices sets
    for body, match in [("model,price_in,price_out\nacme-1,cheap,8\n", r"prices\.csv: line 2 \(acme-1\): price_in 'cheap'"),
                        ("model,price_in,price_out\nok,1,2\nacme-1,1,-3\n", r"line 3 \(acme-1\): price_out '-3'"),
                        ("model,price_in,price_out\n,1,2\n", "line 2: empty model id"),
                        ("model,price\nacme-1,1\n", r"missing column\(s\) \['price_in', 'price_out'\]")]:
        mine.write_text(body)
        with pytest.raises(ValueError, match=match):
            load_prices()


def test_a_bad_price_file_is_one_line_naming_file_and_line(tmp_path, cache, capsys):
    bad = tmp_path / "p.csv"
    bad.write_text("model,price_in,price_out\nacme-1,1.0,one\n")
    assert main(["pool", "--data", str(tmp_path), "--prices", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{bad}: line 2 (acme-1): price_out 'one' is not a number" in err[0]
    assert main(["pool", "--data", str(tmp_path), "--prices", str(tmp_path / "missing.csv")]) == 2
    assert "missing.csv: no such price file" in capsys.readouterr().err


# ---------------------------------------------------------------- the run summary
def test_summary_json_counts_grader_errors_of_tables_and_answers(tmp_path):
    from xrouter_lite.pool.grading import ERROR_LOG
    from xrouter_lite.profiles import get_profile
    from xrouter_lite.runner import NotebookResult, write_run_records

    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    (artifacts / TABLE_ERRORS).write_text(json.dumps({"zeroeval": {"math-l5/gemma-2-2b-it": 2}, "mmlu-pro": {}}))
    (artifacts / ERROR_LOG).write_text("".join(json.dumps({"task": "math-l5", "who": who, "kind": "timeout"}) + "\n"
                                               for who in ("final answer", "final answer", "gemma-2-2b-it")))
    write_run_records(tmp_path, get_profile("smoke").to_dict(), "", [NotebookResult("01_x.ipynb", "ok")])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["grader_errors"] == {"math-l5/final answer": 2, "math-l5/gemma-2-2b-it": 3}
    (artifacts / TABLE_ERRORS).unlink()
    (artifacts / ERROR_LOG).unlink()
    write_run_records(tmp_path, get_profile("smoke").to_dict(), "", [])
    assert json.loads((tmp_path / "summary.json").read_text())["grader_errors"] == {}  # checked, and none
