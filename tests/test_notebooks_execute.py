"""Execute the whole notebook series in the `smoke` profile through the runner, as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from notebook_checks import REPO


@pytest.mark.notebooks
def test_every_notebook_runs_in_the_smoke_profile(tmp_path, data_dir):
    env = {**os.environ, "XROUTER_LITE_DATA": str(data_dir), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "xrouter_lite", "notebooks", "--profile", "smoke",
                           "--runs", str(tmp_path / "runs")], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=1500)
    print(proc.stdout[-4000:], proc.stderr[-4000:])
    assert proc.returncode == 0, proc.stderr[-4000:]
    (run,) = [p for p in (tmp_path / "runs").iterdir() if p.name != "latest"]
    summary = json.loads((run / "summary.json").read_text())
    expected = sorted(p.name for p in (REPO / "notebooks").glob("[0-9]*.ipynb"))
    assert sorted(summary["notebooks"]) == expected
    assert all(v["status"] == "ok" for v in summary["notebooks"].values())
    assert (tmp_path / "runs" / "latest").resolve() == run.resolve()  # what JupyterLab's notebooks continue

    # Every figure renders off JupyterLab too (GitHub, nbviewer, HTML): a static PNG beside each plotly output.
    from xrouter_lite.notebook import browser_path

    if browser_path() is None:  # scripts/setup.sh installs Debian's chromium as root; say loudly what is unchecked
        print("NOTE: no Chrome/Chromium here: the PNG copies of figures were not checked")
        return
    pngs = 0
    for nb in sorted(run.glob("[0-9]*.ipynb")):
        outputs = [o for c in json.loads(nb.read_text())["cells"] for o in c.get("outputs", [])]
        figures = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
        assert all("image/png" in o["data"] for o in figures), f"{nb.name}: a figure without its PNG copy"
        pngs += len(figures)
    assert pngs >= 10, f"only {pngs} figures with PNG copies in the whole series"
