"""GRPO seconds per step with a profile's settings, on a trained SFT router: what notebook 03's training costs.

    python benchmarks/grpo_speed.py --data ../shared/data --router runs/latest/artifacts/router_sft
    python benchmarks/grpo_speed.py --data ../shared/data --router runs/latest/artifacts/router_sft --threads 1 --json

A few GRPO steps (default 5) with the profile's GRPO settings (prompts per step, group size, the completion
budget, full pool share, on-policy guided log-probs), from the given SFT router, on the source's train rows.
It prints seconds per step (TRL's own step time: rollouts + loss + update), completions per second, the share of
a step spent generating, and the process's peak memory. A random router makes episodes that end at once and
would time nothing real, so `--router` is required (notebook 02 writes one).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main(argv: list[str] | None = None) -> dict:
    """Time a few GRPO steps and print seconds per step, completions per second and peak memory."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="recorded data dir (default: $XROUTER_LITE_DATA)")
    p.add_argument("--router", type=Path, required=True, help="an SFT router dir (notebook 02's artifacts/router_sft)")
    p.add_argument("--profile", default="cpu")
    p.add_argument("--source", default="zeroeval")
    p.add_argument("--steps", type=int, default=5, help="GRPO steps timed (the first one is reported apart)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default); 1 on a busy machine")
    p.add_argument("--json", action="store_true", help="one JSON object instead of lines")
    args = p.parse_args(argv)

    import torch

    from xrouter_lite.pool.core import ReplayPool
    from xrouter_lite.pool.splits import add_splits
    from xrouter_lite.pool.table import load_table
    from xrouter_lite.profiles import get_profile, resolve_data_dir
    from xrouter_lite.training.grpo import settings_for_sft, train_grpo, training_rows

    if args.threads:
        torch.set_num_threads(args.threads)
    prof = get_profile(args.profile, source=args.source)
    info = json.loads((args.router / "router.json").read_text())
    s = settings_for_sft(replace(prof.grpo, steps=args.steps, save_steps=10**6), info)
    pool = ReplayPool(add_splits(load_table(resolve_data_dir(args.data), sources=[args.source], progress=False)))
    rows, _ = training_rows(pool, pool.queries("train", args.source), s, seed=prof.seed)
    start = time.perf_counter()
    log = train_grpo(str(args.router), None, rows, pool, tempfile.mkdtemp(prefix="grpo_speed_"), s, seed=prof.seed,
                     progress=False, save=False, device="cpu" if not torch.cuda.is_available() else None)
    wall = time.perf_counter() - start
    steps = log["step_time"].tolist() if "step_time" in log else []
    later = steps[1:] or steps
    completions = s.prompts_per_step * s.num_generations
    out = {"profile": prof.name, "threads": torch.get_num_threads(), "steps": len(log),
           "completions_per_step": completions, "first_step_s": round(steps[0], 2) if steps else None,
           "s_per_step": round(sum(later) / len(later), 2) if later else None,
           "completions_per_s": round(completions * len(later) / sum(later), 2) if later else None,
           "wall_s": round(wall, 1), "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
           "profile_steps": prof.grpo.steps}
    if out["s_per_step"]:
        out["estimated_profile_run_s"] = round(out["s_per_step"] * prof.grpo.steps)
    if args.json:
        print(json.dumps(out))
    else:
        print(f"profile {out['profile']}, {out['threads']} torch thread(s), {completions} completions per step: "
              f"{out['s_per_step']} s/step after a first step of {out['first_step_s']} s "
              f"({out['completions_per_s']} completions/s); peak RSS {out['peak_rss_mb']} MB; the profile's "
              f"{prof.grpo.steps} steps would take ~{out.get('estimated_profile_run_s')} s")
    return out


if __name__ == "__main__":
    main()
