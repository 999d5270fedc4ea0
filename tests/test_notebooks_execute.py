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
    (run,) = list((tmp_path / "runs").iterdir())
    summary = json.loads((run / "summary.json").read_text())
    expected = sorted(p.name for p in (REPO / "notebooks").glob("[0-9]*.ipynb"))
    assert sorted(summary["notebooks"]) == expected
    assert all(v["status"] == "ok" for v in summary["notebooks"].values())
