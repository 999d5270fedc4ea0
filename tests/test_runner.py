"""The notebook runner: order, parameters, run records, failure reports, no overwrite."""

from __future__ import annotations

import csv
import json
import sys

import pytest

from notebook_checks import make_notebook
from xrouter_lite.__main__ import main
from xrouter_lite.runner import NotebookFailed, list_notebooks, run_notebooks

WRITE_ARTIFACT = """
from pathlib import Path
from xrouter_lite.runner import record_router_results
art = Path(RUN_DIR) / "artifacts"
(art / "{name}.txt").write_text(PROFILE + "|" + DATA_DIR)
record_router_results([{{"router": "{name}", "accuracy": 0.5, "usd_per_query": 0.001, "mean_reward": 0.4,
                        "aiq": 0.3, "lambda": 3.0, "ignored": 1}}], art)
"""
PARAMS = 'PROFILE: str = "cpu"\nDATA_DIR: str = ""\nRUN_DIR: str = ""\n'


def _series(tmp_path, failing_at: int | None = None):
    nbdir = tmp_path / "notebooks"
    for i, name in enumerate(["01_first", "02_second", "10_last"]):
        body = [("code", WRITE_ARTIFACT.format(name=name))]
        if i == failing_at:
            body.insert(0, ("code", "x = 1\nraise ValueError('deliberate failure in ' + PROFILE)"))
        make_notebook(nbdir / f"{name}.ipynb", body, params=PARAMS)
    return nbdir


def test_notebooks_are_listed_in_numeric_order(tmp_path):
    nbdir = _series(tmp_path)
    (nbdir / "notes.ipynb").write_text("{}")  # not numbered: not part of the series
    assert [p.name for p in list_notebooks(nbdir)] == ["01_first.ipynb", "02_second.ipynb", "10_last.ipynb"]


def test_a_run_executes_every_notebook_and_writes_its_records(tmp_path):
    run = run_notebooks("smoke", _series(tmp_path), tmp_path / "runs", data_dir=tmp_path, progress=False)
    assert run.name.startswith("smoke-") and run.parent == (tmp_path / "runs").resolve()
    assert (run / "artifacts" / "10_last.txt").read_text() == f"smoke|{tmp_path.resolve()}"
    for name in ["01_first", "02_second", "10_last"]:
        executed = json.loads((run / f"{name}.ipynb").read_text())
        assert any(c.get("outputs") is not None for c in executed["cells"] if c["cell_type"] == "code")
    rows = list(csv.DictReader(open(run / "notebooks.csv")))
    assert [r["status"] for r in rows] == ["ok"] * 3 and all(float(r["wall_s"]) > 0 for r in rows)
    assert all(float(r["peak_mb"]) > 10 for r in rows), "the kernel's memory was not measured"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["profile"] == "smoke" and summary["seeds"] == [0] and summary["data_dir"] == str(tmp_path.resolve())
    assert summary["notebooks"]["02_second.ipynb"]["status"] == "ok"
    assert [r["router"] for r in summary["routers"]] == ["01_first", "02_second", "10_last"]
    assert set(summary["routers"][0]) == {"router", "accuracy", "usd_per_query", "mean_reward", "aiq", "lambda"}


def test_a_failing_cell_is_reported_and_later_notebooks_do_not_run(tmp_path):
    with pytest.raises(NotebookFailed) as err:
        run_notebooks("smoke", _series(tmp_path, failing_at=1), tmp_path / "runs", progress=False)
    msg = str(err.value)
    assert "02_second.ipynb" in msg and "ValueError: deliberate failure in smoke" in msg and "cell 4" in msg
    run = next((tmp_path / "runs").iterdir())
    rows = {r["notebook"]: r for r in csv.DictReader(open(run / "notebooks.csv"))}
    assert rows["01_first.ipynb"]["status"] == "ok"
    assert rows["02_second.ipynb"]["status"] == "failed" and "deliberate failure" in rows["02_second.ipynb"]["error"]
    assert rows["10_last.ipynb"]["status"] == "not run" and not (run / "10_last.ipynb").exists()


def test_resume_reruns_only_what_did_not_run_ok_in_that_run_directory(tmp_path):
    from xrouter_lite.errors import UsageError

    nbdir = _series(tmp_path, failing_at=1)
    with pytest.raises(NotebookFailed):
        run_notebooks("smoke", nbdir, tmp_path / "runs", data_dir=tmp_path, progress=False)
    run = next(p for p in (tmp_path / "runs").iterdir() if p.name != "latest")
    first = (run / "01_first.ipynb").stat().st_mtime_ns
    fixed = _series(tmp_path)  # the failing cell mended, same notebooks folder
    with pytest.raises(UsageError, match="profile 'smoke'"):
        run_notebooks("cpu", fixed, data_dir=tmp_path, progress=False, resume=run)
    assert run_notebooks("smoke", fixed, data_dir=tmp_path, progress=False, resume=run) == run.resolve()
    assert (run / "01_first.ipynb").stat().st_mtime_ns == first  # kept, not executed again
    rows = {r["notebook"]: r for r in csv.DictReader(open(run / "notebooks.csv"))}
    assert [r["status"] for r in rows.values()] == ["ok"] * 3 and (run / "artifacts" / "10_last.txt").exists()
    assert float(rows["01_first.ipynb"]["wall_s"]) > 0  # the first run's measurement is kept
    with pytest.raises(UsageError, match="not a run directory"):
        run_notebooks("smoke", fixed, data_dir=tmp_path, progress=False, resume=tmp_path / "nowhere")


def test_a_second_run_does_not_overwrite_the_first(tmp_path):
    nbdir = _series(tmp_path)
    first = run_notebooks("smoke", nbdir, tmp_path / "runs", progress=False, only=["01"])
    second = run_notebooks("smoke", nbdir, tmp_path / "runs", progress=False, only=["01"])
    assert first != second and (first / "summary.json").exists() and (second / "summary.json").exists()


def test_cli_exit_code_and_report(tmp_path, capsys):
    nbdir = _series(tmp_path, failing_at=0)
    code = main(["notebooks", "--profile", "smoke", "--notebooks", str(nbdir), "--runs", str(tmp_path / "r")])
    assert code == 1
    assert "FAILED 01_first.ipynb: cell" in capsys.readouterr().err


def test_runs_latest_points_at_the_newest_run(tmp_path):
    from xrouter_lite.profiles import latest_run

    nbdir = _series(tmp_path)
    first = run_notebooks("smoke", nbdir, tmp_path / "runs", data_dir=tmp_path, progress=False, only=["01"])
    assert latest_run(tmp_path / "runs") == first
    second = run_notebooks("smoke", nbdir, tmp_path / "runs", data_dir=tmp_path, progress=False, only=["01"])
    assert latest_run(tmp_path / "runs") == second != first


def test_no_data_anywhere_stops_before_any_kernel_in_two_lines(tmp_path, monkeypatch, capsys):
    """Offline in a checkout with no data beside it: a short message, exit 2, no run directory, no traceback."""
    nbdir = _series(tmp_path / "repo")
    (tmp_path / "repo" / "pyproject.toml").write_text("")
    monkeypatch.chdir(tmp_path / "repo")
    monkeypatch.delenv("XROUTER_LITE_DATA", raising=False)
    monkeypatch.setenv("XROUTER_LITE_OFFLINE", "1")
    code = main(["notebooks", "--profile", "smoke", "--notebooks", str(nbdir), "--runs", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) <= 3 and "Traceback" not in err
    assert "python -m xrouter_lite download --data" in err and not (tmp_path / "r").exists()


def test_set_gives_a_parameter_only_to_the_notebooks_that_declare_it(tmp_path, capsys):
    """--set LAMBDA_SWEEP=false reaches the notebook that has it; a typo or a runner-owned name is refused first."""
    nbdir = tmp_path / "notebooks"
    make_notebook(nbdir / "01_plain.ipynb", [("code", WRITE_ARTIFACT.format(name="01_plain"))], params=PARAMS)
    make_notebook(nbdir / "02_sweep.ipynb", [("code", "from pathlib import Path\n(Path(RUN_DIR) / 'artifacts' / "
                                              "'sweep.txt').write_text(repr(LAMBDA_SWEEP))")],
                  params=PARAMS + "LAMBDA_SWEEP: bool = True\n")
    run = run_notebooks("smoke", nbdir, tmp_path / "runs", data_dir=tmp_path, progress=False, source="mmlu-pro",
                        settings={"LAMBDA_SWEEP": False})
    assert (run / "artifacts" / "sweep.txt").read_text() == "False"
    injected = [c for c in json.loads((run / "01_plain.ipynb").read_text())["cells"]
                if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and "RUN_DIR" in "".join(injected[0]["source"])
    assert not {"LAMBDA_SWEEP", "SOURCE"} & set("".join(injected[0]["source"]).replace("=", " ").split())
    assert json.loads((run / "summary.json").read_text())["notebook_settings"] == {"LAMBDA_SWEEP": False}
    runs_before = sorted((tmp_path / "runs").iterdir())
    assert main(["notebooks", "--profile", "smoke", "--notebooks", str(nbdir), "--runs", str(tmp_path / "runs"),
                 "--data", str(tmp_path), "--set", "LAMBDA_SWEPT=false"]) == 2
    err = capsys.readouterr().err
    assert "LAMBDA_SWEPT" in err and "LAMBDA_SWEEP" in err and len(err.strip().splitlines()) == 1
    assert main(["notebooks", "--profile", "smoke", "--notebooks", str(nbdir), "--runs", str(tmp_path / "runs"),
                 "--data", str(tmp_path), "--set", "PROFILE=cpu"]) == 2
    assert sorted((tmp_path / "runs").iterdir()) == runs_before  # nothing started, nothing written
    with pytest.raises(ValueError, match="that run had --set"):  # a resumed run keeps its settings
        run_notebooks("smoke", nbdir, data_dir=tmp_path, progress=False, resume=run, source="mmlu-pro")
