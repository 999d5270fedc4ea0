"""Static checks on the committed notebooks, and proof that each check catches what it should."""

from __future__ import annotations

import json
import re

import pytest

from notebook_checks import REPO, check_notebook, make_notebook

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_the_tutorial_has_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_passes_static_checks(path):
    assert check_notebook(path) == []


def test_a_well_formed_notebook_passes(tmp_path):
    assert check_notebook(make_notebook(tmp_path / "01_ok.ipynb", [("code", "x = 1")])) == []


def _mutate(tmp_path, fn):
    path = make_notebook(tmp_path / "01_bad.ipynb", [("code", "x = 1")])
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:  # nbformat stores sources as lists of lines; the mutations edit strings
        cell["source"] = "".join(cell["source"])
    fn(nb)
    path.write_text(json.dumps(nb))
    return " | ".join(check_notebook(path))


def test_outputs_and_execution_counts_are_rejected(tmp_path):
    def add_output(nb):
        nb["cells"][3]["execution_count"] = 3
        nb["cells"][3]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "1"}]
    assert "committed outputs" in _mutate(tmp_path, add_output)


def test_parameters_cell_must_be_unique_and_set_profile(tmp_path):
    def two_params(nb):
        nb["cells"][3]["metadata"]["tags"] = ["parameters"]
    assert "2 cells tagged 'parameters'" in _mutate(tmp_path, two_params)
    def no_profile(nb):
        nb["cells"][1]["source"] = "SEED = 0\n"
    assert "does not set PROFILE" in _mutate(tmp_path, no_profile)


def test_badge_must_name_the_notebooks_own_path(tmp_path):
    def wrong_badge(nb):
        nb["cells"][0]["source"] = nb["cells"][0]["source"].replace("01_bad.ipynb", "02_other.ipynb")
    assert "Colab badge" in _mutate(tmp_path, wrong_badge)


def test_the_colab_cell_is_the_shared_one_pins_nothing_and_follows_the_parameters(tmp_path):
    def pins(nb):
        nb["cells"][2]["source"] = nb["cells"][2]["source"].replace('--no-deps "', '--no-deps pandas==2.2.2 "')
    assert "pins pandas==2.2.2" in _mutate(tmp_path, pins)
    def unguarded(nb):
        nb["cells"][2]["source"] = nb["cells"][2]["source"].replace('if "google.colab" in sys.modules:', "if True:")
    assert "not guarded" in _mutate(tmp_path, unguarded)
    def other_url(nb):
        nb["cells"][2]["source"] = nb["cells"][2]["source"].replace("github.com/", "gitlab.com/")
    assert "does not install from git+https://github.com/" in _mutate(tmp_path, other_url)
    def before_params(nb):
        nb["cells"][1], nb["cells"][2] = nb["cells"][2], nb["cells"][1]
    assert "right after the parameters cell" in _mutate(tmp_path, before_params)


def test_badges_and_the_colab_source_derive_from_pyprojects_url():
    from notebook_checks import badge_url, colab_cell_source, repo_source, repo_url

    assert repo_source() == f"git+{repo_url()}" and repo_source() in colab_cell_source()
    readme = (REPO / "README.md").read_text()
    for path in NOTEBOOKS:
        assert badge_url(path.name) in readme, f"README lacks the Colab badge of {path.name}"
    assert readme.count("colab.research.google.com/github/") == len(NOTEBOOKS)  # no badge to another URL


def test_summary_and_exercises_are_required(tmp_path):
    def drop(nb):
        nb["cells"] = [c for c in nb["cells"] if "## Exercises" not in "".join(c["source"])]
    assert "'## Exercises'" in _mutate(tmp_path, drop)


def test_invalid_json_is_reported(tmp_path):
    p = tmp_path / "01_broken.ipynb"
    p.write_text('{"cells": [')
    assert "not valid JSON" in check_notebook(p)[0]


CHECKOUT_ONLY = re.compile(r"(?<![\w/.-])(?:benchmarks|examples|scripts)/[\w./-]*")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_refer_only_to_what_the_installed_package_has(path):
    """On Colab (or any pip install) there is no checkout: benchmarks/, examples/ and scripts/ do not exist there.
    Commands must be package commands, and those must exist."""
    from xrouter_lite.__main__ import build_parser

    text = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"])
    assert CHECKOUT_ONLY.findall(text) == []
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    used = set(re.findall(r"python -m xrouter_lite ([a-z][\w-]*)", text))
    assert used <= set(sub.choices), f"unknown subcommands: {used - set(sub.choices)}"


def test_the_checkout_only_pattern_catches_paths():
    assert CHECKOUT_ONLY.findall("run `python benchmarks/gpu_check.py` or see examples/pool.example.yaml") == [
        "benchmarks/gpu_check.py", "examples/pool.example.yaml"]
    assert CHECKOUT_ONLY.findall("xrouter_lite/examples/pool.example.yaml inside the package") == []


def test_set_repo_url_moves_every_badge_and_the_colab_default(tmp_path):
    import shutil
    import subprocess
    import sys

    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, tmp_path / name)
    shutil.copytree(REPO / "notebooks", tmp_path / "notebooks")
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "set_repo_url.py"), "https://github.com/me/fork",
                           "--root", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    from notebook_checks import repo_url

    old = repo_url().split("github.com/")[1]
    texts = [(tmp_path / n).read_text() for n in ("pyproject.toml", "README.md")]
    texts += [p.read_text() for p in (tmp_path / "notebooks").glob("*.ipynb")]
    assert not any(f"github.com/{old}" in t or f"github/{old}/" in t for t in texts)
    assert 'Repository = "https://github.com/me/fork"' in texts[0]
    assert all("git+https://github.com/me/fork" in t and "colab.research.google.com/github/me/fork/blob/main/notebooks/"
               in t for t in texts[2:])
