"""The live explorer in a real browser: scripts/browser_check.py on a run with two (untrained) tiny routers.

JupyterLab serves an executed notebook 04, headless Chromium runs it in a live kernel, the λ slider is moved and
the cost-accuracy plane must redraw; the test FAILS when the widgets do not respond. JupyterLab and selenium are
pinned in requirements.txt; Debian's chromium and chromium-driver are installed by scripts/setup.sh (as root with
apt-get, what CI has). The test is skipped only when those two could not be installed, and says so in the summary
(`./run_tests.sh` runs pytest with -rs). The routers are untrained: this proves the plumbing, not a result.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys

import pytest

from notebook_checks import REPO

NO_BROWSER = [tool for tool in ("chromium", "chromedriver") if shutil.which(tool) is None]
needs_browser = pytest.mark.skipif(bool(NO_BROWSER), reason=(
    f"BROWSER TEST SKIPPED: {' and '.join(NO_BROWSER)} not installed and scripts/setup.sh could not install them "
    "(needs root and apt-get: apt-get install chromium chromium-driver)"))


def test_the_python_side_of_the_browser_check_is_installed():
    """JupyterLab and selenium are pinned requirements: missing, this fails instead of skipping."""
    assert [n for n in ("jupyterlab", "selenium") if importlib.util.find_spec(n) is None] == []


def _run_with_tiny_routers(root, data_dir):
    """A run directory whose artifacts hold an SFT and a GRPO router (the same random tiny model)."""
    from xrouter_lite.pool.core import ReplayPool
    from xrouter_lite.pool.splits import add_splits
    from xrouter_lite.pool.table import load_table
    from xrouter_lite.training.modeling import build_tiny_router

    pool = ReplayPool(add_splits(load_table(data_dir, sources=["zeroeval"], cache_dir=REPO / ".cache",
                                            progress=False)))
    texts = [q.text for q in pool.queries(split="train", source="zeroeval")[:200]]
    artifacts = root / "artifacts"
    for folder, stage in (("router_sft", "sft"), ("router_grpo", "grpo")):
        build_tiny_router(texts, artifacts / folder, vocab_size=512, hidden_size=32, layers=1, heads=2)
        info = {"mode": "simple", "max_turns": 3, "base": "tiny", "stage": stage, "lambda": 30.0,
                "source": "zeroeval", "seed": 0, "tool_result_chars": 300}
        (artifacts / folder / "router.json").write_text(json.dumps(info))
    return root


@needs_browser
def test_explorer_redraws_in_jupyterlab(tmp_path, data_dir):
    run = _run_with_tiny_routers(tmp_path / "run", data_dir)
    shot = tmp_path / "explorer.png"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "browser_check.py"), "--run-dir", str(run),
                           "--test-queries", "6", "--lambda", "300", "--out", str(shot)],
                          cwd=REPO, capture_output=True, text=True, timeout=1500)
    print(proc.stdout[-3000:], proc.stderr[-3000:])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Cost vs accuracy at λ=300," in proc.stdout
    assert shot.stat().st_size > 20_000  # a real screenshot, not an empty page
