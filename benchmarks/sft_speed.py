"""SFT steps per second and peak memory with a profile's settings: a short full-parameter run, then LoRA.

    python benchmarks/sft_speed.py --data ../shared/data                     # cpu profile: 40 + 10 steps
    python benchmarks/sft_speed.py --data ../shared/data --threads 1 --json  # 1 torch thread (busy machine)

It builds the profile's tiny base in a temporary artifacts dir (or reuses `--artifacts`), makes traces from the
train split and times TRL's SFTTrainer on them. Steps/s and tokens/s come from the trainer's own runtime
(tokenizing the traces is reported apart); peak memory is the process's maximum RSS. The notebook's
full-parameter stage takes `full_steps / steps_per_s` seconds, plus tokenization.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from dataclasses import replace

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the tiny model is built locally


def main(argv=None) -> int:
    """Time SFT steps of both stages and print steps/s, tokens/s and peak memory."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=None, help="recorded data directory (default: $XROUTER_LITE_DATA)")
    ap.add_argument("--profile", default="cpu", help="profile whose SFT settings are timed (default: cpu)")
    ap.add_argument("--steps", type=int, default=40, help="full-parameter steps timed (LoRA: a quarter)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads; 0: torch's default")
    ap.add_argument("--artifacts", default=None, help="artifacts dir holding (or to hold) tiny_base; default: a temp dir")
    ap.add_argument("--json", action="store_true", help="one JSON object instead of lines")
    args = ap.parse_args(argv)

    import torch

    from xrouter_lite.pool.core import ReplayPool
    from xrouter_lite.pool.splits import add_splits
    from xrouter_lite.pool.table import load_table
    from xrouter_lite.profiles import get_profile, resolve_data_dir
    from xrouter_lite.training import build_or_load_base, limit_per_task, lora_settings, parameter_count, train_sft
    from xrouter_lite.training.traces import build_traces

    if args.threads:
        torch.set_num_threads(args.threads)
    prof = get_profile(args.profile)
    s = replace(prof.sft, full_steps=args.steps, lora_steps=max(1, args.steps // 4))
    pool = ReplayPool(add_splits(load_table(resolve_data_dir(args.data), sources=["zeroeval"], progress=False)))
    train = limit_per_task(pool.queries("train", "zeroeval"), prof.max_queries_per_task, seed=prof.seed)
    artifacts = args.artifacts or tempfile.mkdtemp(prefix="sft_speed_")
    start = time.perf_counter()
    model, tok = build_or_load_base(replace(prof, sft=s), artifacts, pool, train, device="cpu")
    base_s = time.perf_counter() - start
    traces = build_traces(pool, train, seed=prof.seed, agent_share=s.agent_share, min_pool=s.min_pool,
                          max_pool=s.max_pool, tool_result_chars=s.tool_result_chars)
    out = {"profile": prof.name, "threads": torch.get_num_threads(), "parameters": parameter_count(model)[1],
           "base_s": round(base_s, 1), "stages": {}}
    stages = [("full", None)] if prof.router_model == "tiny" else []
    for stage, lora in stages + [("lora", lora_settings(s))]:
        start = time.perf_counter()
        log = train_sft(model, tok, traces, os.path.join(artifacts, "router_sft"), s, lora=lora, progress=False)
        wall, a = time.perf_counter() - start, log.attrs
        out["stages"][stage] = {"steps": a["steps"], "steps_per_s": round(a["steps"] / a["train_runtime"], 3),
                                "tokens_per_s": round(a["tokens"] / a["train_runtime"]),
                                "mean_tokens_per_trace": round(a["tokens"] / a["traces"]),
                                "tokenize_and_setup_s": round(wall - a["train_runtime"], 1),
                                "loss_first_last": [round(float(log["loss"].iloc[0]), 3),
                                                    round(float(log["loss"].iloc[-1]), 3)]}
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if prof.router_model == "tiny" and "full" in out["stages"]:
        rate = out["stages"]["full"]["steps_per_s"]
        out["estimated_full_stage_s"] = round(prof.sft.full_steps / rate)  # the profile's real step count
    if args.json:
        print(json.dumps(out))
    else:
        print(f"profile {out['profile']}: {out['parameters']:,} parameters, {out['threads']} torch thread(s), "
              f"base built/loaded in {out['base_s']} s")
        for stage, r in out["stages"].items():
            print(f"  {stage:<5} {r['steps']:>4} steps: {r['steps_per_s']:.3f} steps/s, {r['tokens_per_s']:,} tokens/s "
                  f"({r['mean_tokens_per_trace']} tokens/trace; tokenize+setup {r['tokenize_and_setup_s']} s); "
                  f"loss {r['loss_first_last'][0]} -> {r['loss_first_last'][1]}")
        if "estimated_full_stage_s" in out:
            print(f"  the profile's {prof.sft.full_steps} full-parameter steps: about {out['estimated_full_stage_s']} s")
        print(f"  peak memory (max RSS): {out['peak_rss_mb']:,} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
