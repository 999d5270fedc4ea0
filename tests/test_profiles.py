"""Where notebooks and commands find the data, the caches and a run's artifacts: one resolution order everywhere."""

from __future__ import annotations

from dataclasses import replace

import pytest

from xrouter_lite.profiles import (CACHE_ENV, DATA_ENV, OFFLINE_ENV, PARTIAL, RUNS_ENV, RUNS_ROOT_ENV, DataNotFound,
                                   artifacts_dir, checkout_root, example_pool_config, get_profile, latest_run,
                                   new_run_dir, resolve_cache_dir, resolve_data_dir, runs_root, with_settings)


def _checkout(tmp_path, monkeypatch, shared: bool = False, upstream: bool = False):
    """A fake checkout at tmp_path/repo (cwd: its notebooks/ folder, as in Jupyter), no data variable set."""
    root = tmp_path / "repo"
    (root / "notebooks").mkdir(parents=True)
    (root / "pyproject.toml").write_text("")
    if shared:
        (tmp_path / "shared" / "data" / "zeroeval").mkdir(parents=True)
    if upstream:
        (root / "data" / "upstream" / "mmlu-pro").mkdir(parents=True)
    monkeypatch.chdir(root / "notebooks")
    for var in (DATA_ENV, RUNS_ENV, RUNS_ROOT_ENV, OFFLINE_ENV):
        monkeypatch.delenv(var, raising=False)
    return root


def _no_download(monkeypatch):
    calls = []
    monkeypatch.setattr("xrouter_lite.pool.upstream.download", lambda target, **kw: calls.append(target) or [])
    return calls


def test_data_dir_comes_from_the_argument_then_the_environment(tmp_path, monkeypatch):
    _checkout(tmp_path, monkeypatch, shared=True)
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert resolve_data_dir() == tmp_path.resolve()
    (tmp_path / "mine").mkdir()
    assert resolve_data_dir(tmp_path / "mine") == (tmp_path / "mine").resolve()
    with pytest.raises(DataNotFound, match="nowhere .from the argument. does not exist.*download"):
        resolve_data_dir(tmp_path / "nowhere")  # a named folder is never silently replaced by another
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "gone"))
    with pytest.raises(DataNotFound, match=f"gone .from .{DATA_ENV}. does not exist"):
        resolve_data_dir()


def test_data_dir_falls_back_to_shared_beside_the_checkout_then_data_upstream(tmp_path, monkeypatch):
    calls = _no_download(monkeypatch)
    root = _checkout(tmp_path, monkeypatch, shared=True, upstream=True)
    assert resolve_data_dir("") == (tmp_path / "shared" / "data").resolve()  # ../shared/data first (CI's layout)
    for p in sorted((tmp_path / "shared").rglob("*"), reverse=True):
        p.rmdir()
    assert resolve_data_dir() == (root / "data" / "upstream").resolve()
    assert calls == []


def test_data_dir_is_downloaded_into_data_upstream_when_nowhere_found(tmp_path, monkeypatch):
    calls = _no_download(monkeypatch)
    root = _checkout(tmp_path, monkeypatch)
    (tmp_path / "shared" / "data").mkdir(parents=True)  # an empty folder is not data
    assert resolve_data_dir() == (root / "data" / "upstream").resolve()
    assert calls == [(root / "data" / "upstream").resolve()]


def test_a_half_done_download_is_not_taken_for_data(tmp_path, monkeypatch):
    calls = _no_download(monkeypatch)
    root = _checkout(tmp_path, monkeypatch, upstream=True)
    (root / "data" / "upstream" / PARTIAL).write_text("")
    resolve_data_dir()
    assert calls == [(root / "data" / "upstream").resolve()]  # resumed, not read half-done


def test_offline_and_nowhere_found_is_a_short_message(tmp_path, monkeypatch):
    root = _checkout(tmp_path, monkeypatch)

    def offline(target, **kw):
        raise OSError("x.json: download from https://example.invalid/x.json failed (<urlopen error [Errno -2] "
                      "Name or service not known>)")

    monkeypatch.setattr("xrouter_lite.pool.upstream.download", offline)
    with pytest.raises(DataNotFound) as err:
        resolve_data_dir()
    msg = str(err.value)
    assert len(msg.splitlines()) <= 3 and err.value.__cause__ is None and err.value.__suppress_context__
    assert str((tmp_path / "shared" / "data").resolve()) in msg and str(root / "data" / "upstream") in msg
    assert "Name or service not known" in msg
    assert f"python -m xrouter_lite download --data {root / 'data' / 'upstream'}" in msg
    monkeypatch.setenv(OFFLINE_ENV, "1")
    with pytest.raises(DataNotFound, match=f"download skipped .*{OFFLINE_ENV}"):
        resolve_data_dir()
    monkeypatch.delenv(OFFLINE_ENV)
    with pytest.raises(DataNotFound, match="download not attempted"):
        resolve_data_dir(download=False)


def test_cli_without_data_prints_two_lines_and_exits_2(tmp_path, monkeypatch, capsys):
    from xrouter_lite.__main__ import main

    _checkout(tmp_path, monkeypatch)
    monkeypatch.setenv(OFFLINE_ENV, "1")
    assert main(["pool"]) == 2
    err = capsys.readouterr().err
    assert 1 <= len(err.strip().splitlines()) <= 3 and "Traceback" not in err
    assert "python -m xrouter_lite download --data" in err


def test_cache_dir_defaults_to_the_checkouts_from_any_subfolder(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")  # where Jupyter runs a notebook
    monkeypatch.delenv(CACHE_ENV, raising=False)
    assert checkout_root() == tmp_path.resolve()
    assert resolve_cache_dir() == tmp_path.resolve() / ".cache"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "env"))
    assert resolve_cache_dir() == (tmp_path / "env").resolve()
    assert resolve_cache_dir(str(tmp_path / "arg")) == (tmp_path / "arg").resolve()


def test_artifacts_dir_is_made_under_the_run_dir(tmp_path, monkeypatch):
    monkeypatch.delenv(RUNS_ENV, raising=False)
    assert artifacts_dir(tmp_path / "run") == (tmp_path / "run" / "artifacts").resolve()
    assert (tmp_path / "run" / "artifacts").is_dir()
    monkeypatch.setenv(RUNS_ENV, str(tmp_path / "from-runner"))
    assert artifacts_dir(None, "smoke") == (tmp_path / "from-runner" / "artifacts").resolve()


def test_an_interactive_notebook_continues_the_newest_series(tmp_path, monkeypatch):
    root = _checkout(tmp_path, monkeypatch)
    assert latest_run() is None
    first = artifacts_dir("", "cpu")  # nothing yet: a new series under <checkout>/runs, which becomes the newest
    assert first.parent.parent == (root / "runs").resolve() and first.parent.name.startswith("cpu-")
    assert latest_run() == first.parent and artifacts_dir("", "cpu") == first
    tutorial = new_run_dir(runs_root(), "smoke")  # what ./run_tutorial.sh does
    assert (root / "runs" / "latest").is_symlink()
    assert artifacts_dir("", "cpu") == (tutorial / "artifacts").resolve()  # notebook 04 in JupyterLab finds it


def test_latest_falls_back_to_a_pointer_file_where_links_fail(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("symbolic links are not supported here")

    runs = tmp_path / "runs"
    a = new_run_dir(runs, "cpu")
    monkeypatch.setattr("os.symlink", refuse)
    b = new_run_dir(runs, "cpu")
    assert (runs / "latest").is_file() and (runs / "latest").read_text().strip() == b.name
    assert latest_run(runs) == b.resolve() != a.resolve()
    monkeypatch.undo()
    c = new_run_dir(runs, "gpu")  # links work again: the pointer file is replaced by a link
    assert (runs / "latest").is_symlink() and latest_run(runs) == c.resolve()


def test_runs_root_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(RUNS_ROOT_ENV, str(tmp_path / "drive" / "runs"))
    assert runs_root() == (tmp_path / "drive" / "runs").resolve()


def test_the_example_pool_config_ships_inside_the_package():
    from xrouter_lite.pool.config import load_pool_config

    path = example_pool_config()
    assert path.is_file() and "xrouter_lite" in path.parts
    assert len(load_pool_config(path)) >= 4


def test_unknown_profile_names_the_choices():
    with pytest.raises(ValueError, match="unknown profile 'fast'.*smoke"):
        get_profile("fast")


def test_a_notebook_shows_the_message_not_a_traceback(tmp_path, monkeypatch):
    """IPython renders an exception's `_render_traceback_` instead of its frames: the notebook shows 2-3 lines."""
    from IPython.core.interactiveshell import InteractiveShell

    _checkout(tmp_path, monkeypatch)
    monkeypatch.setenv(OFFLINE_ENV, "1")
    shell = InteractiveShell.instance()
    shown = []
    monkeypatch.setattr(shell, "_showtraceback", lambda etype, evalue, stb: shown.append(stb))
    shell.run_cell("from xrouter_lite.profiles import resolve_data_dir\nresolve_data_dir('')")
    (lines,) = shown
    text = "\n".join(lines)
    assert text.startswith("DataNotFound: no recorded data") and len(text.splitlines()) <= 3


def test_the_cpu_profile_trains_mmlu_pro_with_fewer_steps_and_zeroeval_as_listed():
    """MMLU-Pro's prompts are 2.7x longer, so the cpu series sizes its training by tokens, not steps."""
    cpu, mmlu = get_profile("cpu"), get_profile("cpu", source="mmlu-pro")
    assert get_profile("cpu", source="zeroeval") == cpu
    assert mmlu.grpo.steps < cpu.grpo.steps and mmlu.sft.full_steps < cpu.sft.full_steps
    assert mmlu.for_source("mmlu-pro") == mmlu  # applying it twice changes nothing
    assert mmlu.sft.full_lr == cpu.sft.full_lr
    # GRPO's rate was re-chosen on ZeroEval only; MMLU-Pro keeps the rate its reported run was measured at
    assert (mmlu.grpo.learning_rate, cpu.grpo.learning_rate) == (5e-4, 2e-4)
    with pytest.raises(ValueError, match="per_source.*'eval'"):
        replace(cpu, per_source={"x": {"eval": {}}}).for_source("x")


def test_benchmark_overrides_change_named_fields_and_name_a_typo():
    """`--set KEY=VALUE` in the GRPO benchmarks reads values as the runner's --set does (YAML) into typed fields; a
    typo lists the real fields and a wrong type is named."""
    grpo = get_profile("cpu").grpo
    changed = with_settings(grpo, ["agent_share=0.8", "lambda_grid=[1.0, 10.0]", "max_pool=null", "lam=30"])
    assert (changed.agent_share, changed.lambda_grid, changed.max_pool, changed.lam) == (0.8, (1.0, 10.0), None, 30)
    assert with_settings(grpo, ["learning_rate=5e-4"]).learning_rate == 5e-4  # YAML 1.1 alone reads "5e-4" as text
    assert with_settings(grpo, []) is grpo
    with pytest.raises(ValueError, match="agent_shar.*full_pool_share"):
        with_settings(grpo, ["agent_shar=0.8"])
    with pytest.raises(ValueError, match="agent_share='high': expected a float"):
        with_settings(grpo, ["agent_share=high"])
    with pytest.raises(ValueError, match="expected NAME=VALUE"):
        with_settings(grpo, ["agent_share"])
