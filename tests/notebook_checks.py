"""Static checks every committed notebook must pass (STYLE.md); used by test_notebooks_static.py.

Each check returns a list of problems (empty = fine), so a test can show all of them at once and the
checks themselves can be tested on notebooks that break one rule each.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PIN = re.compile(r"(?<![\w.-])([A-Za-z0-9][A-Za-z0-9_.\-]*)==([0-9][^\s\"'\\]*)")


def repo_url() -> str:
    """The repository URL, defined once in pyproject's project.urls."""
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["urls"]["Repository"].rstrip("/")


def requirement_pins(path: Path = REPO / "requirements.txt") -> dict[str, str]:
    """name -> version for every `name==version` line of requirements.txt (names lower-cased)."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.strip().lower()] = version.strip()
    return pins


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def check_notebook(path: Path) -> list[str]:
    """All static problems of one notebook file."""
    try:
        nb = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return [f"{path.name}: not valid JSON: {exc}"]
    try:
        import nbformat

        nbformat.validate(nbformat.from_dict(nb))
    except Exception as exc:  # nbformat raises several types; any of them means invalid
        return [f"{path.name}: not a valid notebook: {str(exc).splitlines()[0]}"]
    cells = nb["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    md = "\n".join(_source(c) for c in cells if c["cell_type"] == "markdown")
    problems = []

    params = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(params) != 1:
        problems.append(f"{path.name}: {len(params)} cells tagged 'parameters' (need exactly 1)")
    elif not re.search(r"^PROFILE\s*(:\s*str\s*)?=", _source(params[0]), re.M):
        problems.append(f"{path.name}: the parameters cell does not set PROFILE")

    for i, c in enumerate(cells):
        if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count") is not None):
            problems.append(f"{path.name}: cell {i} has committed outputs or an execution count")

    badge = badge_url(path.name)
    first = _source(cells[0]) if cells else ""
    if cells and (cells[0]["cell_type"] != "markdown" or not first.lstrip().startswith("# ")):
        problems.append(f"{path.name}: the first cell must be a markdown H1 title")
    if badge not in first:
        problems.append(f"{path.name}: the first cell lacks the Colab badge {badge}")

    install = [c for c in code if "colab" in _source(c) and "pip install" in _source(c)]
    if len(install) != 1:
        problems.append(f"{path.name}: {len(install)} Colab setup cells (need exactly 1)")
    else:
        src = _source(install[0])
        if src != colab_cell_source():
            problems.append(f"{path.name}: the Colab setup cell differs from notebook_checks.colab_cell_source() "
                            f"(the one cell tests/test_colab.py runs; its source is {repo_source()})")
        if not re.search(r"^if\s+[\"']google\.colab[\"']\s+in\s+sys\.modules\s*:", src, re.M):
            problems.append(f"{path.name}: the Colab cell is not guarded by `if \"google.colab\" in sys.modules:`")
        if repo_source() not in src:
            problems.append(f"{path.name}: the Colab cell does not install from {repo_source()} (pyproject's URL)")
        for name, version in PIN.findall(src):
            problems.append(f"{path.name}: the Colab cell pins {name}=={version}; xrouter_lite.colab.setup installs "
                            "the pins (never Colab's torch or kernel packages)")
        params_at = next((i for i, c in enumerate(cells) if c in params), None)
        if params_at is not None and cells.index(install[0]) != params_at + 1:
            problems.append(f"{path.name}: the Colab cell must come right after the parameters cell (it reads PROFILE)")

    for heading in ("## Summary", "## Exercises"):
        if not re.search(rf"^{re.escape(heading)}\s*$", md, re.M):
            problems.append(f"{path.name}: no '{heading}' section")
    return problems


def repo_source() -> str:
    """The Colab cell's default XROUTER_LITE_SOURCE: pip's git form of pyproject's repository URL."""
    return f"git+{repo_url()}"


def colab_cell_source() -> str:
    """The Colab setup cell every notebook carries right after its parameters (run by tests/test_colab.py)."""
    return ("# Colab only: install this package (Colab's torch and kernel packages stay), fetch the data once (onto Drive\n"
            "# when mounted), pick the gpu profile on a GPU. XROUTER_LITE_SOURCE: a git URL, a wheel or a checkout on Drive.\n"
            "import importlib.util, os, sys\n"
            "if \"google.colab\" in sys.modules:\n"
            "    if importlib.util.find_spec(\"xrouter_lite\") is None:\n"
            f"        XROUTER_LITE_SOURCE = os.environ.get(\"XROUTER_LITE_SOURCE\", \"{repo_source()}\")\n"
            "        !pip install -q --no-deps \"{XROUTER_LITE_SOURCE}\"\n"
            "    from xrouter_lite.colab import setup\n"
            "    PROFILE = setup(PROFILE)")


def badge_url(name: str) -> str:
    """The Colab badge link of notebooks/<name>, derived from pyproject's repository URL."""
    return f"https://colab.research.google.com/github/{repo_url().split('github.com/')[1]}/blob/main/notebooks/{name}"


def make_notebook(path: Path, body: list[tuple[str, str]], params: str = 'PROFILE: str = "smoke"\n') -> Path:
    """Write a notebook that passes every static check, with `body` (kind, source) cells in the middle."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    badge = badge_url(path.name)
    cells = [new_markdown_cell(f"# {path.stem}\nA test notebook.\n\n[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({badge})"),
             new_code_cell(params, metadata={"tags": ["parameters"]}),
             new_code_cell(colab_cell_source())]
    cells += [new_code_cell(src) if kind == "code" else new_markdown_cell(src) for kind, src in body]
    cells += [new_markdown_cell("## Summary\n- done"), new_markdown_cell("## Exercises\n1. none")]
    nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                              "language": "python"}})
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path
