"""Run profiles (`smoke` for CI, `cpu` for a laptop, `gpu` for Colab) in one place.

Notebooks and scripts read every size from here, so a profile is changed in one file:

    >>> from xrouter_lite.profiles import get_profile
    >>> p = get_profile("smoke")
    >>> p.router_model
    'tiny'
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

DATA_ENV = "XROUTER_LITE_DATA"  # where the recorded upstream files live (CI: ../shared/data)
RUNS_ENV = "XROUTER_LITE_RUN_DIR"  # set by the notebook runner: where a notebook writes its artifacts


@dataclass(frozen=True)
class Profile:
    """Every size knob of the tutorial; fields say what to change when a run is too slow or too big."""

    name: str
    router_model: str  # "tiny" = local Qwen2-architecture LM built here; else a Hugging Face Hub id
    load_in_4bit: bool  # QLoRA (bitsandbytes NF4) base; only worth it on a CUDA GPU
    max_queries_per_task: int | None  # cap on queries per (source, task) after splitting; None = all
    eval_queries: int | None  # held-out queries evaluated per source; lower it if evaluation is slow
    seed: int = 0
    time_budget_min: int = 30  # the whole series should finish within this on the profile's machine

    def to_dict(self) -> dict:
        return asdict(self)


PROFILES: dict[str, Profile] = {
    # CI on every push: 2 CPU cores, the whole series in <= 10 minutes. Proves the code path, not learning.
    "smoke": Profile(name="smoke", router_model="tiny", load_in_4bit=False,
                     max_queries_per_task=40, eval_queries=100, time_budget_min=10),
    # A laptop CPU, the default: a few thousand queries, <= 30 minutes, and it must show learning.
    "cpu": Profile(name="cpu", router_model="tiny", load_in_4bit=False,
                   max_queries_per_task=None, eval_queries=600, time_budget_min=30),
    # Colab T4/L4 or A100: a real Hub model in 4-bit with LoRA (QLoRA). Runtimes are estimates until measured.
    "gpu": Profile(name="gpu", router_model="Qwen/Qwen2.5-1.5B-Instruct", load_in_4bit=True,
                   max_queries_per_task=None, eval_queries=None, time_budget_min=60),
}


def get_profile(name: str, **overrides) -> Profile:
    """The named profile, optionally with some fields overridden; a clear error for an unknown name."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of: {', '.join(PROFILES)}")
    return replace(PROFILES[name], **overrides) if overrides else PROFILES[name]


def resolve_data_dir(path: str | os.PathLike | None = None) -> Path:
    """The recorded-data directory: `path`, else $XROUTER_LITE_DATA; fails loudly if it is missing."""
    chosen = path if path not in (None, "") else os.environ.get(DATA_ENV)
    if not chosen:
        raise FileNotFoundError(
            f"no data directory given: pass one or set {DATA_ENV} (CI uses ../shared/data); "
            "or fetch the upstream files with `python -m xrouter_lite download --data DIR`")
    p = Path(chosen).expanduser().resolve()
    if not p.is_dir():
        raise FileNotFoundError(f"data directory {p} does not exist (from {'argument' if path else DATA_ENV}); "
                                "fetch it with `python -m xrouter_lite download --data DIR`")
    return p


def artifacts_dir(run_dir: str | os.PathLike | None = None, profile: str = "cpu") -> Path:
    """Where a notebook writes what the next one reads: `<run dir>/artifacts`, created if needed.

    The runner passes RUN_DIR; a notebook run alone (empty RUN_DIR) uses $XROUTER_LITE_RUN_DIR if set,
    else `runs/standalone-<profile>` under the working directory, so it can still find earlier outputs.
    """
    chosen = run_dir or os.environ.get(RUNS_ENV) or Path("runs") / f"standalone-{profile}"
    p = Path(chosen).expanduser().resolve() / "artifacts"
    p.mkdir(parents=True, exist_ok=True)
    return p
