"""Colab from a badge: what the Colab cell of every notebook calls once this package is installed.

The cell (identical in every notebook, right after the parameters; `tests/test_colab.py` runs it with a fake
`google.colab` and records what it would install and download):

    import importlib.util, os, sys
    if "google.colab" in sys.modules:  # Colab only
        if importlib.util.find_spec("xrouter_lite") is None:
            XROUTER_LITE_SOURCE = os.environ.get("XROUTER_LITE_SOURCE", "git+https://github.com/<owner>/<repo>")
            !pip install -q --no-deps "{XROUTER_LITE_SOURCE}"
        from xrouter_lite.colab import setup
        PROFILE = setup(PROFILE)

`XROUTER_LITE_SOURCE` is anything pip installs: a git URL (a fork, a branch: `git+https://...@branch`), a wheel, or a
checkout on Drive (`/content/drive/MyDrive/xrouter-lite`). `setup` then:
1. installs the pinned dependencies (this package's metadata = requirements.txt) that Colab lacks or has at another
   version, but never Colab's torch (its CUDA build) or its kernel packages (ipykernel, ipywidgets, ...), and skips
   what only a checkout needs (pytest, selenium, papermill, JupyterLab, kaleido). numpy and pandas, loaded in the
   live kernel, are kept when their major version matches the pin; otherwise the pin is installed and the cell
   stops with `RestartRequired` (Runtime > Restart session, then run all again: the second run installs nothing);
2. downloads the recorded data once into a persistent place: Google Drive when it is mounted
   (`/content/drive/MyDrive/xrouter_lite/data`), else `/content/xrouter_lite/data` (this runtime only);
3. keeps the runs (and the table cache) beside it, so a notebook opened later from its own badge finds
   `runs/latest` and the routers trained before (only through Drive: each badge opens a new runtime);
4. returns the profile: "gpu" on a CUDA runtime when the notebook's `PROFILE` is the default "cpu" (set
   $XROUTER_LITE_PROFILE to force one).
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

from xrouter_lite.profiles import CACHE_ENV, DATA_ENV, RUNS_ROOT_ENV, _holds_data, checkout_root

CONTENT = Path("/content")  # Colab's working folder (lost when the runtime goes)
DRIVE = CONTENT / "drive" / "MyDrive"  # where Google Drive appears once mounted (drive.mount("/content/drive"))
PROFILE_ENV = "XROUTER_LITE_PROFILE"  # forces the profile on Colab (otherwise: gpu when CUDA is there)
COLAB_KEEPS = {"torch", "ipykernel", "ipywidgets", "nbformat", "jupyterlab", "notebook"}  # Colab's own builds
NOT_ON_COLAB = {"pytest", "selenium", "papermill", "kaleido"}  # tests, the runner, PNG export: checkout only
ANY_VERSION = {"tqdm", "pyyaml", "psutil"}  # loaded by Colab's kernel; any recent version serves this package
SAME_MAJOR = {"numpy", "pandas"}  # loaded in the live kernel: replaced only when the major version differs


class RestartRequired(RuntimeError):
    """A package already loaded in the kernel was replaced: restart the session, then run all again."""


def on_colab() -> bool:
    """True inside a Colab kernel."""
    return "google.colab" in sys.modules


def has_cuda() -> bool:
    """A CUDA GPU is visible to torch (Colab's T4/L4/A100 runtimes)."""
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def installed_version(name: str) -> str | None:
    """The installed version of a distribution, or None."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def pinned_requirements() -> dict[str, str]:
    """name -> version of every `name==version` this package pins (its metadata; a checkout's requirements.txt)."""
    lines = importlib.metadata.requires("xrouter_lite") or []
    root = checkout_root()
    if not lines and root and (root / "requirements.txt").is_file():
        lines = (root / "requirements.txt").read_text().splitlines()
    pins = {}
    for line in lines:
        m = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9_.\-]*)\s*==\s*([^\s;#]+)", line)
        if m:
            pins[m.group(1).lower()] = m.group(2)
    return pins


def plan_install(pins: dict[str, str], version=None) -> tuple[list[str], list[str], list[str]]:
    """(to install as `name==version`, kept as Colab has them, of those to install: the ones that need a restart)."""
    version = version or installed_version
    install, kept, restart = [], [], []
    for name, want in sorted(pins.items()):
        have = version(name)
        if name in COLAB_KEEPS or name in NOT_ON_COLAB:
            continue
        if have is not None and (name in ANY_VERSION or have == want
                                 or (name in SAME_MAJOR and have.split(".")[0] == want.split(".")[0])):
            kept.append(f"{name} {have}")
            continue
        install.append(f"{name}=={want}")
        if name in SAME_MAJOR and have is not None:
            restart.append(f"{name} {have} -> {want}")
    return install, kept, restart


def pip_install(requirements: list[str]) -> None:
    """`pip install -q` into this kernel's Python (raises with pip's exit status if it fails)."""
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *requirements], check=True)


def home() -> Path:
    """Where data, runs and caches live: Drive when mounted (they outlive the runtime), else /content."""
    return (DRIVE if DRIVE.is_dir() else CONTENT) / "xrouter_lite"


def setup(profile: str = "cpu", install: bool = True, data: bool = True) -> str:
    """Prepare a Colab runtime (see the module docstring); returns the profile the notebook should use."""
    if not on_colab():
        return profile
    lines = []
    if install:
        todo, kept, restart = plan_install(pinned_requirements())
        if todo:
            pip_install(todo)
        lines.append(f"installed {len(todo)} pinned package(s)" + (f" ({', '.join(todo)})" if todo else "")
                     + f"; kept Colab's torch {installed_version('torch') or '?'} and kernel packages")
        if restart:
            print("\n".join(lines))
            raise RestartRequired(f"replaced {', '.join(restart)} that the running kernel has loaded: restart the "
                                  "session (Runtime > Restart session), then run all again (nothing is reinstalled)")
    base = home()
    on_drive = base.is_relative_to(DRIVE)
    os.environ.setdefault(RUNS_ROOT_ENV, str(base / "runs"))
    os.environ.setdefault(CACHE_ENV, str(base / "cache"))
    if data and not os.environ.get(DATA_ENV):
        target = base / "data"
        if not _holds_data(target):
            from xrouter_lite.pool import upstream

            print(f"downloading the recorded data (~130 MB, once) into {target}")
            upstream.download(target)
        os.environ[DATA_ENV] = str(target)
    chosen = os.environ.get(PROFILE_ENV) or ("gpu" if profile == "cpu" and has_cuda() else profile)
    lines.append(f"profile {chosen}" + (" (a CUDA GPU is here)" if chosen == "gpu" else "")
                 + f"; data {os.environ.get(DATA_ENV)}; runs {os.environ[RUNS_ROOT_ENV]}")
    if not on_drive:
        lines.append("Drive is not mounted: data and trained routers last as long as this runtime. To hand them to "
                     "the next notebook, run `from google.colab import drive; drive.mount('/content/drive')` first.")
    print("\n".join(lines))
    return chosen
