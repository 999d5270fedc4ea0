"""Which GRPO recipe to keep? One variant from a λ-conditioned SFT router, judged on validation at three λ.

    python benchmarks/grpo_variants.py --data ../shared/data --sft runs/latest/artifacts/router_sft --lr 5e-4
    python benchmarks/grpo_variants.py --data ../shared/data --sft runs/latest/artifacts/router_sft --lr 1e-4 --conditioned
    python benchmarks/grpo_variants.py --data ../shared/data --sft runs/latest/artifacts/router_sft --lr 2e-4 \
        --set num_iterations=2 --name two-updates        # any GRPOSettings field, value read as YAML

A variant is a learning rate and whether the rows draw their cost weight from the SFT router's λ grid
(`--conditioned`: one router for every budget) or all train at the profile's λ (told it in the prompt). It trains the
profile's GRPO steps (or `--steps`) and evaluates the router on the **validation** split (choosing, never test),
full pool, agent mode, told λ = 10, 1 and 1000: accuracy, USD per query, mean reward at that λ, valid episodes and
where its calls go. Notebook 03 and `profiles.py` quote these numbers for the settings they keep (measured on
2 cores, cpu profile, 60 steps: fixed λ = 10 at 5e-4 reward 0.828 and at 1e-4 0.829; conditioned at 1e-4 0.814; the
conditioned router at 5e-4 collapsed onto gpt-4o-mini, 0.764, below its SFT router's 0.785).

`--grid` evaluates the router told every λ of its SFT router's grid instead and prints the sweep's AIQ beside the
MLP and kNN routers' over their own λ grids (validation, one shared c_max): how a one-checkpoint curve is chosen.
`--no-train` evaluates the SFT router itself (the line a GRPO variant must clear).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main(argv: list[str] | None = None) -> list[dict]:
    """Train one GRPO variant from `--sft`, then print and return its validation rows at λ = 10, 1 and 1000."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="recorded data dir (default: $XROUTER_LITE_DATA)")
    p.add_argument("--sft", type=Path, required=True, help="a λ-conditioned SFT router dir (router_sft)")
    p.add_argument("--profile", default="cpu")
    p.add_argument("--lr", type=float, default=0.0, help="GRPO learning rate (required unless --no-train)")
    p.add_argument("--conditioned", action="store_true", help="rows draw λ from the SFT router's grid")
    p.add_argument("--steps", type=int, default=0, help="GRPO steps (0: the profile's)")
    p.add_argument("--out", type=Path, default=Path("runs/grpo_variants"))
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 on a busy 2-core machine)")
    p.add_argument("--grid", action="store_true", help="evaluate at every λ of the SFT grid; print AIQ vs MLP/kNN")
    p.add_argument("--no-train", action="store_true", help="evaluate the SFT router itself (no GRPO)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="change a GRPOSettings field (value read as YAML), e.g. --set agent_share=0.8 (repeatable)")
    p.add_argument("--name", default="", help="the variant's name (default: from the learning rate and --conditioned)")
    args = p.parse_args(argv)
    if not args.no_train and args.lr <= 0:
        p.error("--lr is required (a positive GRPO learning rate) unless --no-train")

    import torch

    torch.set_num_threads(args.threads)
    from xrouter_lite.pool.core import ReplayPool
    from xrouter_lite.pool.splits import add_splits
    from xrouter_lite.pool.table import load_table
    from xrouter_lite.profiles import get_profile, resolve_cache_dir, resolve_data_dir, with_settings
    from xrouter_lite.training.evaluation import evaluate_lm_router
    from xrouter_lite.training.grpo import (grpo_router_info, settings_for_sft, train_grpo, training_rows,
                                            zero_variance_share)
    from xrouter_lite.training.modeling import load_saved_router

    info = json.loads((args.sft / "router.json").read_text())
    grid = tuple(info.get("lambda_grid") or ())
    if args.conditioned and len(grid) < 2:
        p.error(f"--conditioned needs an SFT router trained over a λ grid; {args.sft}/router.json has {list(grid)}")
    prof = get_profile(args.profile)
    s = settings_for_sft(replace(with_settings(prof.grpo, args.set), learning_rate=args.lr,
                                 steps=args.steps or prof.grpo.steps, lambda_grid=grid if args.conditioned else ()),
                         info)
    source = info.get("source", "zeroeval")
    pool = ReplayPool(add_splits(load_table(resolve_data_dir(args.data), sources=[source],
                                            cache_dir=resolve_cache_dir(), progress=False)))
    if args.no_train:
        name, out = "SFT router", args.sft
    else:
        rows, _ = training_rows(pool, pool.queries(split="train", source=source), s, seed=prof.seed)
        name = args.name or f"{'conditioned' if args.conditioned else f'fixed λ={s.lam:g}'}, lr {args.lr:g}"
        out = args.out / name.replace(" ", "").replace(",", "_").replace("=", "")
        start = time.perf_counter()
        log = train_grpo(str(args.sft), None, rows, pool, out, s, seed=prof.seed, progress=False,
                         info=grpo_router_info(info, s, source))
        print(f"{name}: {len(log)} steps in {time.perf_counter() - start:.0f} s; zero-variance groups "
              f"{zero_variance_share(log):.2f}; train reward {log['reward'].head(15).mean():.3f} (first 15 steps) -> "
              f"{log['reward'].tail(15).mean():.3f} (last 15)", flush=True)
    model, tok = load_saved_router(out)
    val = pool.queries(split="validation", source=source)
    found = []
    lams = sorted(grid) if args.grid else (10.0, 1.0, 1000.0)
    for lam in lams:
        _, row = evaluate_lm_router(model, tok, pool, val, mode=info.get("mode", "agent"), lam=lam, name=name,
                                    tool_result_chars=s.max_tool_chars, answer_notes=s.answer_notes,
                                    state_lambda=s.state_lambda or args.grid, progress=False)
        top = dict(sorted(row["model_share"].items(), key=lambda kv: -kv[1])[:4])
        found.append({"variant": name, "told_lambda": lam, "n": row["n"], "accuracy": row["accuracy"],
                      "usd_per_query": row["usd_per_query"], "mean_reward": row["mean_reward"],
                      "valid_rate": row["valid_rate"], "top_models": top})
        print(json.dumps(found[-1]), flush=True)
    if args.grid:
        print(json.dumps(validation_aiq(found, pool, source, val)), flush=True)
    return found


def validation_aiq(rows: list[dict], pool, source: str, val) -> dict:
    """The sweep's AIQ beside the MLP and kNN routers' (each over its own λ grid) with one c_max, on `val`."""
    from xrouter_lite.routing import metrics as M
    from xrouter_lite.routing.baselines import _points, evaluate_all
    from xrouter_lite.training import query_frame

    train = pool.queries(split="train", source=source)
    baselines = evaluate_all(["mlp", "knn"], query_frame(pool, train), query_frame(pool, val), pool)
    points = {r["router"]: _points(r) for r in baselines if r.get("router") in ("mlp", "knn")}
    points["sweep"] = [(r["usd_per_query"], r["accuracy"]) for r in rows]
    c_max = max(c for pts in points.values() for c, _ in pts)  # the window aiq_table shares, printed with it
    return {"split": "validation", "c_max": c_max} | {f"aiq_{k}": round(v, 4) for k, v in M.aiq_table(points).items()}


if __name__ == "__main__":
    main()
