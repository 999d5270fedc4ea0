"""The Colab setup cell, run as Colab would run it: a fake `google.colab`, recorders in place of pip and the download.

The cell is the one every notebook carries (tests/test_notebooks_static.py checks they are identical); IPython turns
its `!pip` line into `get_ipython().system(...)`, which a recorder receives here with IPython's `{var}` expansion.
"""

from __future__ import annotations

import sys
import types

import pytest
from IPython.core.inputtransformer2 import TransformerManager

from notebook_checks import REPO, colab_cell_source, repo_source
from xrouter_lite import colab
from xrouter_lite.profiles import CACHE_ENV, DATA_ENV, RUNS_ENV, RUNS_ROOT_ENV, artifacts_dir, latest_run

# What a Colab GPU runtime had installed (the versions are what matters: Colab's own torch, pandas 2 or 3, ...)
COLAB = {"torch": "2.8.0+cu126", "numpy": "2.0.2", "pandas": "2.2.2", "ipykernel": "6.17.1", "ipywidgets": "7.7.1",
         "nbformat": "5.10.4", "tqdm": "4.67.1", "pyyaml": "6.0.2", "psutil": "5.9.5", "plotly": "5.24.1",
         "transformers": "4.57.1", "pyarrow": "18.1.0", "accelerate": "1.10.1", "datasets": "4.0.0"}


class FakeShell:
    """Stands in for Colab's IPython: records `!` commands after expanding {names} the way IPython does."""

    def __init__(self, namespace):
        self.namespace, self.commands = namespace, []

    def system(self, cmd):
        self.commands.append(cmd.format(**self.namespace))


@pytest.fixture()
def colab_runtime(tmp_path, monkeypatch):
    """A fake Colab: google.colab imported, a CUDA GPU, Drive mounted (tmp), xrouter_lite not yet installed."""
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    content = tmp_path / "content"
    (content / "drive" / "MyDrive").mkdir(parents=True)
    monkeypatch.setattr(colab, "CONTENT", content)
    monkeypatch.setattr(colab, "DRIVE", content / "drive" / "MyDrive")
    monkeypatch.chdir(content)  # Colab's working folder: no checkout around
    for var in (DATA_ENV, RUNS_ENV, RUNS_ROOT_ENV, CACHE_ENV, colab.PROFILE_ENV, "XROUTER_LITE_SOURCE"):
        monkeypatch.delenv(var, raising=False)
    versions = dict(COLAB)
    monkeypatch.setattr(colab, "installed_version", lambda name: versions.get(name))
    monkeypatch.setattr(colab, "has_cuda", lambda: True)
    pip, downloads = [], []
    monkeypatch.setattr(colab.subprocess, "run", lambda cmd, check=False: pip.append(cmd))

    def download(target, **kwargs):
        downloads.append(target)
        (target / "zeroeval").mkdir(parents=True)
        return []

    monkeypatch.setattr("xrouter_lite.pool.upstream.download", download)
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "xrouter_lite" else real_find_spec(name, *a))
    return types.SimpleNamespace(versions=versions, pip=pip, downloads=downloads, drive=colab.DRIVE, content=content)


def run_cell(profile: str = "cpu"):
    """Execute the notebooks' Colab cell as IPython would; (namespace after the cell, the shell's commands)."""
    code = TransformerManager().transform_cell(colab_cell_source())
    namespace = {"PROFILE": profile}
    shell = FakeShell(namespace)
    namespace["get_ipython"] = lambda: shell
    exec(compile(code, "colab-cell", "exec"), namespace)
    return namespace, shell.commands


def installed(pip_calls):
    """The requirements each recorded `pip install` was given."""
    return [req for cmd in pip_calls for req in cmd[cmd.index("-q") + 1:]]


def test_the_cell_installs_from_pyprojects_url_then_the_pins_colab_lacks(colab_runtime):
    colab_runtime.versions["pandas"] = "3.0.2"  # a Colab whose pandas has the pin's major version
    ns, commands = run_cell("cpu")
    assert commands == [f'pip install -q --no-deps "{repo_source()}"']
    reqs = installed(colab_runtime.pip)
    assert colab_runtime.pip[0][:4] == [sys.executable, "-m", "pip", "install"]
    assert "transformers==5.24.0" in reqs and "trl==1.16.0" in reqs and "plotly==7.1.0" in reqs
    assert "bitsandbytes==0.50.2" in reqs  # QLoRA on the GPU
    names = {r.split("==")[0] for r in reqs}
    # Colab's torch and kernel packages stay; what only a checkout needs is not installed
    assert not names & {"torch", "numpy", "pandas", "ipykernel", "ipywidgets", "nbformat", "tqdm", "pyyaml", "psutil",
                        "pytest", "selenium", "jupyterlab", "papermill", "kaleido"}
    assert ns["PROFILE"] == "gpu"  # CUDA present and the notebook's default profile


def test_data_once_on_drive_and_runs_where_the_next_notebook_finds_them(colab_runtime):
    colab_runtime.versions["pandas"] = "3.0.2"
    run_cell()
    home = colab_runtime.drive / "xrouter_lite"
    assert colab_runtime.downloads == [home / "data"]
    import os

    assert os.environ[DATA_ENV] == str(home / "data") and os.environ[RUNS_ROOT_ENV] == str(home / "runs")
    assert os.environ[CACHE_ENV] == str(home / "cache")
    first = artifacts_dir("", "gpu")  # notebook 01 (empty RUN_DIR): a new series on Drive
    assert first.is_relative_to(home / "runs") and latest_run(home / "runs") == first.parent
    # the next notebook, from its own badge (a new runtime: only the Drive survives)
    for var in (DATA_ENV, RUNS_ROOT_ENV, CACHE_ENV):
        del os.environ[var]
    run_cell()
    assert colab_runtime.downloads == [home / "data"]  # not downloaded again
    assert artifacts_dir("", "gpu") == first  # it continues the same series


def test_without_drive_data_goes_to_content_and_the_cell_says_so(colab_runtime, capsys):
    colab_runtime.versions["pandas"] = "3.0.2"
    colab_runtime.drive.rmdir()
    run_cell()
    assert colab_runtime.downloads == [colab_runtime.content / "xrouter_lite" / "data"]
    assert "Drive is not mounted" in capsys.readouterr().out


def test_a_kernel_package_of_another_major_version_asks_for_one_restart(colab_runtime):
    with pytest.raises(colab.RestartRequired, match=r"pandas 2\.2\.2 -> 3\.1\.1.*Restart session"):
        run_cell()
    assert "pandas==3.1.1" in installed(colab_runtime.pip) and colab_runtime.downloads == []
    # after the restart pandas is the pin's: the cell goes through, and installs nothing twice
    colab_runtime.versions.update({r.split("==")[0]: r.split("==")[1] for r in installed(colab_runtime.pip)})
    colab_runtime.pip.clear()
    ns, _ = run_cell()
    assert colab_runtime.pip == [] and ns["PROFILE"] == "gpu"


def test_the_source_is_configurable_and_an_explicit_profile_stays(colab_runtime, monkeypatch):
    colab_runtime.versions["pandas"] = "3.0.2"
    wheel = "/content/drive/MyDrive/xrouter_lite-0.1.0-py3-none-any.whl"
    monkeypatch.setenv("XROUTER_LITE_SOURCE", wheel)
    ns, commands = run_cell("smoke")
    assert commands == [f'pip install -q --no-deps "{wheel}"'] and ns["PROFILE"] == "smoke"
    monkeypatch.setattr(colab, "has_cuda", lambda: False)
    assert run_cell("cpu")[0]["PROFILE"] == "cpu"
    monkeypatch.setenv(colab.PROFILE_ENV, "cpu")
    monkeypatch.setattr(colab, "has_cuda", lambda: True)
    assert run_cell("cpu")[0]["PROFILE"] == "cpu"  # $XROUTER_LITE_PROFILE wins over the GPU


def test_off_colab_the_cell_does_nothing(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    ns, commands = run_cell("cpu")
    assert commands == [] and ns["PROFILE"] == "cpu"


def test_the_pins_come_from_requirements_txt():
    from notebook_checks import requirement_pins

    assert colab.pinned_requirements() == requirement_pins(REPO / "requirements.txt")
