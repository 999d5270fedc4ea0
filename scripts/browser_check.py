"""Browser check of notebook 04's live explorer: JupyterLab on localhost, headless Chromium, the λ slider moved.

    python scripts/browser_check.py                       # the newest run under runs/ with a GRPO router, else
                                                          # a fresh run folder (notebook 04 then shows baselines only)
    python scripts/browser_check.py --run-dir runs/cpu-X  # a given run (its artifacts/ hold notebooks 02-03's routers)

What it does:
1. executes notebook 04 with papermill into a temporary folder (the run's artifacts; test episodes saved by an
   earlier run of notebook 04 are reused, so this is quick after the series has run);
2. starts JupyterLab on 127.0.0.1 (random port and token) in that folder and opens the executed copy in headless
   Chromium through selenium and Debian's chromedriver;
3. runs every cell in the live kernel, types a new λ into the explorer's slider and waits until the cost-accuracy
   plane's title shows it (the figure was redrawn by the kernel);
4. saves a screenshot of the redrawn explorer (default docs/screenshots/explorer.png).
Exit 0 when the figure redrew; 1 with a message otherwise.

Needs JupyterLab and selenium (pinned in requirements.txt) and Debian's chromium and chromium-driver, which
scripts/setup.sh installs as root (`apt-get install chromium chromium-driver`), or --chromium/--chromedriver paths.
Chromium starts headless with a fresh --user-data-dir and no background networking (the CI machine's network is
closed: without those flags it keeps trying Google's hosts).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "04_cost_quality_explorer.ipynb"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars"]


class CheckFailed(RuntimeError):
    """The explorer did not render or did not redraw; the message says which step."""


def newest_run(runs: Path, fresh: Path) -> Path:
    """runs/latest when it holds a GRPO router, else the most recent run that does, else `fresh` (baselines only)."""
    sys.path.insert(0, str(REPO))
    from xrouter_lite.profiles import latest_run

    latest = latest_run(runs)
    if latest and (latest / "artifacts" / "router_grpo" / "router.json").is_file():
        return latest
    found = sorted((p.parents[1] for p in runs.glob("*/artifacts/router_grpo/router.json")
                    if p.parents[1].name != "latest"), key=lambda p: p.stat().st_mtime)
    if not found:
        print(f"no run under {runs} has artifacts/router_grpo: notebook 04 shows the baselines only "
              "(run the series first, ./run_tutorial.sh, or pass --run-dir)")
        fresh.mkdir(parents=True, exist_ok=True)
        return fresh
    return found[-1]


def execute(run_dir: Path, out_dir: Path, profile: str, test_queries: int, timeout: int, threads: int = 0) -> Path:
    """Notebook 04 executed by papermill into out_dir (its injected parameters stay for the browser run)."""
    import papermill as pm

    out = out_dir / NOTEBOOK.name
    params = {"PROFILE": profile, "RUN_DIR": str(run_dir), "DATA_DIR": os.environ.get("XROUTER_LITE_DATA", ""),
              "CACHE_DIR": os.environ.get("XROUTER_LITE_CACHE", str(REPO / ".cache")), "EXPORT_PNG": False,
              "TEST_QUERIES": test_queries, "TORCH_THREADS": threads}
    pm.execute_notebook(str(NOTEBOOK), str(out), parameters=params, kernel_name="python3", cwd=str(out_dir),
                        progress_bar=False, execution_timeout=timeout)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_lab(root: Path, port: int, token: str, log) -> subprocess.Popen:
    """JupyterLab on 127.0.0.1 serving `root`, with its app object exposed to the page (for run-all)."""
    settings = root / ".lab-settings" / "@jupyterlab"
    for ext, name, value in [("notebook-extension", "tracker", {"windowingMode": "none"}),  # render every cell
                             ("apputils-extension", "notification", {"fetchNews": "false", "checkForUpdates": False})]:
        (settings / ext).mkdir(parents=True, exist_ok=True)
        (settings / ext / f"{name}.jupyterlab-settings").write_text(json.dumps(value))
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(root / ".lab-settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(root / ".lab-workspaces")}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
           "--ServerApp.port_retries=0"] + (["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])
    return subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_http(port: int, token: str, timeout: float) -> None:
    import urllib.request

    end = time.time() + timeout
    while time.time() < end:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=5)
            return
        except OSError:
            time.sleep(1)
    raise CheckFailed(f"JupyterLab did not answer on port {port} within {timeout:.0f} s")


def browser(chromium: str, chromedriver: str, profile_dir: Path, width: int, height: int):
    """Headless Chromium driven by selenium, with the flags a locked-down CI box needs and a fresh profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={profile_dir}", f"--window-size={width},{height}"]:
        opts.add_argument(flag)
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager try to download a driver
    return webdriver.Chrome(service=Service(chromedriver), options=opts)


def wait_for(driver, script: str, timeout: float, what: str, poll: float = 1.0):
    """Poll a JavaScript expression until it returns something truthy; that value."""
    end = time.time() + timeout
    while time.time() < end:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(poll)
    raise CheckFailed(f"timed out after {timeout:.0f} s waiting for {what}")


def plane_titles(prefix: str) -> str:
    """JavaScript: the titles of the rendered plotly figures that start with `prefix`, joined ('' if none)."""
    return ("return [...document.querySelectorAll('.jp-OutputArea .js-plotly-plot .gtitle')]"
            f".map(e => e.textContent).filter(t => t.startsWith({json.dumps(prefix)})).join('\\n');")


KERNEL_IDLE = """const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
return Boolean(k && k.status === 'idle');"""
ALL_RAN = """const w = window.jupyterapp.shell.currentWidget;
const k = w.sessionContext.session && w.sessionContext.session.kernel;
const code = w.content.widgets.filter(c => c.model.type === 'code');
return Boolean(k && k.status === 'idle' && code.every(c => c.model.executionCount !== null));"""
LAMBDA_READOUT = """return [...document.querySelectorAll('.widget-slider')].map(s => [s, s.querySelector('.widget-label')])
  .filter(([s, l]) => l && l.textContent.trim() === 'λ').map(([s]) => s.querySelector('.widget-readout'))[0] || null;"""


HEADER_INTO_VIEW = """const h = [...document.querySelectorAll('.widget-html')]
  .find(e => e.textContent.includes('Cost/quality explorer:'));
if (h) h.scrollIntoView({block: 'start'});"""


def check(notebook: Path, port: int, token: str, new_lambda: float, screenshot: Path, args) -> dict:
    """Open the notebook, run it live, move λ, wait for the redraw, screenshot; what was seen."""
    from selenium.webdriver.common.keys import Keys

    driver = browser(args.chromium, args.chromedriver, notebook.parent / ".chromium", args.width, args.height)
    try:
        driver.get(f"http://127.0.0.1:{port}/doc/tree/{notebook.name}?token={token}")
        wait_for(driver, "return window.jupyterapp && document.querySelector('.jp-Notebook') !== null", 120,
                 "JupyterLab to open the notebook")
        wait_for(driver, KERNEL_IDLE, 120, "the kernel to start")
        # Clear papermill's outputs and counts (its widgets have no live models), then run everything live.
        driver.execute_script("return window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs');")
        driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells');")
        wait_for(driver, ALL_RAN, args.timeout, "every cell to run in the live kernel", poll=2.0)
        errors = driver.execute_script("return [...document.querySelectorAll('.jp-OutputArea-output[data-mime-type="
                                       "\"application/vnd.jupyter.stderr\"]')].map(e => e.textContent)"
                                       ".filter(t => /Error|Traceback/.test(t)).slice(0, 3);")
        readout = wait_for(driver, LAMBDA_READOUT, 120, "the explorer's λ slider")
        driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", readout)
        before = wait_for(driver, plane_titles("Cost vs accuracy at λ="), 120, "the explorer's cost-accuracy plane")
        readout.click()
        readout.send_keys(Keys.CONTROL, "a")
        readout.send_keys(f"{new_lambda:g}", Keys.ENTER)
        after = wait_for(driver, plane_titles(f"Cost vs accuracy at λ={new_lambda:g},"), args.timeout,
                         f"the plane to redraw at λ={new_lambda:g}", poll=0.5)
        time.sleep(2)  # let the other figures finish drawing before the picture
        driver.execute_script(HEADER_INTO_VIEW)
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(screenshot))
        return {"before": before, "after": after, "stderr_errors": errors, "screenshot": str(screenshot)}
    except CheckFailed:  # keep what the page showed: the picture says more than a timeout
        failed = screenshot.with_name(screenshot.stem + ".failed.png")
        failed.parent.mkdir(parents=True, exist_ok=True)
        driver.execute_script(HEADER_INTO_VIEW)
        driver.save_screenshot(str(failed))
        print(f"the page when it failed: {failed}")
        raise
    finally:
        driver.quit()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run-dir", type=Path, help="a run directory whose artifacts/ hold the routers (default: newest)")
    p.add_argument("--runs", type=Path, default=REPO / "runs", help="where to look for the newest run")
    p.add_argument("--profile", default="smoke", help="profile passed to notebook 04")
    p.add_argument("--test-queries", type=int, default=0, help="TEST_QUERIES for notebook 04 (0: the profile's)")
    p.add_argument("--torch-threads", type=int, default=0, help="TORCH_THREADS for notebook 04 (0: torch's default)")
    p.add_argument("--lambda", dest="new_lambda", type=float, default=1000.0, help="λ to type into the slider")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots" / "explorer.png")
    p.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    p.add_argument("--chromedriver", default=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    p.add_argument("--width", type=int, default=1400)
    p.add_argument("--height", type=int, default=1500)
    p.add_argument("--timeout", type=float, default=900, help="seconds for a notebook run (papermill, then live)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (JupyterLab's log is in it)")
    args = p.parse_args(argv)

    for tool in (args.chromium, args.chromedriver):
        if not Path(tool).exists():
            print(f"FAILED: {tool} not found (apt-get install chromium chromium-driver)", file=sys.stderr)
            return 1
    tmp = Path(tempfile.mkdtemp(prefix="browser-check-"))
    lab = None
    try:
        run_dir = (args.run_dir or newest_run(args.runs, tmp / "run")).resolve()
        start = time.perf_counter()
        notebook = execute(run_dir, tmp, args.profile, args.test_queries, int(args.timeout), args.torch_threads)
        print(f"executed notebook 04 on {run_dir} in {time.perf_counter() - start:.0f} s")
        port, token = free_port(), secrets.token_hex(16)
        log = open(tmp / "jupyterlab.log", "w")
        lab = start_lab(tmp, port, token, log)
        wait_http(port, token, 120)
        seen = check(notebook, port, token, args.new_lambda, args.out.resolve(), args)
        print(json.dumps(seen, indent=1, ensure_ascii=False))
        if seen["stderr_errors"]:
            raise CheckFailed(f"cells wrote errors in the live run: {seen['stderr_errors']}")
        print(f"OK: the explorer redrew at λ={args.new_lambda:g} in JupyterLab; screenshot {args.out}")
        return 0
    except CheckFailed as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if lab is not None:
            lab.terminate()
            try:
                lab.wait(timeout=30)
            except subprocess.TimeoutExpired:
                lab.kill()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
