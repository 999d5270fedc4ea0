"""Static checks on the committed notebooks, and proof that each check catches what it should."""

from __future__ import annotations

import json

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
        nb["cells"][2]["source"] = "SEED = 0\n"
    assert "does not set PROFILE" in _mutate(tmp_path, no_profile)


def test_badge_must_name_the_notebooks_own_path(tmp_path):
    def wrong_badge(nb):
        nb["cells"][0]["source"] = nb["cells"][0]["source"].replace("01_bad.ipynb", "02_other.ipynb")
    assert "Colab badge" in _mutate(tmp_path, wrong_badge)


def test_install_cell_pins_must_match_requirements(tmp_path):
    def bump(nb):
        nb["cells"][1]["source"] = nb["cells"][1]["source"].replace("trl==", "trl==0.0.1 x==")
    assert "trl==0.0.1" in _mutate(tmp_path, bump)
    def unguarded(nb):
        nb["cells"][1]["source"] = nb["cells"][1]["source"].replace("if \"google.colab\" in sys.modules:", "if True:  # google.colab")
    assert "not guarded" in _mutate(tmp_path, unguarded)
    def pins_torch(nb):
        nb["cells"][1]["source"] += "    !pip install torch==2.13.0\n"
    assert "pins torch" in _mutate(tmp_path, pins_torch)


def test_summary_and_exercises_are_required(tmp_path):
    def drop(nb):
        nb["cells"] = [c for c in nb["cells"] if "## Exercises" not in "".join(c["source"])]
    assert "'## Exercises'" in _mutate(tmp_path, drop)


def test_invalid_json_is_reported(tmp_path):
    p = tmp_path / "01_broken.ipynb"
    p.write_text('{"cells": [')
    assert "not valid JSON" in check_notebook(p)[0]
