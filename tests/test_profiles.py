"""Where notebooks and commands find the data, the caches and a run's artifacts."""

from __future__ import annotations

import pytest

from xrouter_lite.profiles import (CACHE_ENV, DATA_ENV, RUNS_ENV, artifacts_dir, checkout_root, get_profile,
                                   resolve_cache_dir, resolve_data_dir)


def test_data_dir_comes_from_the_argument_then_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert resolve_data_dir() == tmp_path.resolve()
    (tmp_path / "mine").mkdir()
    assert resolve_data_dir(tmp_path / "mine") == (tmp_path / "mine").resolve()
    with pytest.raises(FileNotFoundError, match="nowhere does not exist .*download"):
        resolve_data_dir(tmp_path / "nowhere")
    monkeypatch.delenv(DATA_ENV)
    with pytest.raises(FileNotFoundError, match=f"no data directory given.*{DATA_ENV}"):
        resolve_data_dir("")


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
    monkeypatch.chdir(tmp_path)
    assert artifacts_dir(None, "smoke") == (tmp_path / "runs" / "standalone-smoke" / "artifacts").resolve()


def test_unknown_profile_names_the_choices():
    with pytest.raises(ValueError, match="unknown profile 'fast'.*smoke"):
        get_profile("fast")
