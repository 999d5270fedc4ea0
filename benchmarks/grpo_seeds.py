"""Does GRPO's gain over SFT hold across seeds? GRPO from one SFT checkpoint with 3 seeds, compared on the test split.

    python benchmarks/grpo_seeds.py --data ../shared/data                       # cpu profile, seeds 0 1 2
    python benchmarks/grpo_seeds.py --data ../shared/data --sft runs/cpu-.../artifacts/router_sft
    python benchmarks/grpo_seeds.py --data ../shared/data --sft ... --split validation --set agent_share=0.8  # variant
    nohup python benchmarks/grpo_seeds.py --data ../shared/data > grpo_seeds.log 2>&1 &   # it takes a while

Every seed starts from the **same** SFT router (`--sft`, else one is trained here once with the profile's SFT
settings) and changes what GRPO samples: the training rows (sub-pools, modes, order) and the rollouts. Each
GRPO router, the SFT router, every single model and the kNN router answer the same queries of `--split` with the
full pool of the source. Per seed it prints those rows, whether the gains hold, each as a 95% paired-bootstrap
interval verdict ("beats" only when the interval excludes 0: mean reward against SFT's, the (cost, accuracy)
point against the zero router's hull with the free point (0, 0), the cost saved against the most accurate model),
and GRPO's throughput: steps/s, completions/s and the process's peak memory. `--json PATH` writes everything;
`python -m xrouter_lite report RUN_DIR --seeds PATH` puts it in the results file.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def peak_rss_mb() -> float:
    """The process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> dict:
    """Parse the flags, prepare the SFT router once, then train and evaluate GRPO per seed."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="recorded data dir (default: $XROUTER_LITE_DATA)")
    p.add_argument("--profile", default="cpu")
    p.add_argument("--source", default="zeroeval")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--sft", type=Path, help="an SFT router dir (router_sft); default: train one into --out")
    p.add_argument("--steps", type=int, default=0, help="GRPO steps per seed (0: the profile's)")
    p.add_argument("--lam", type=float, default=0.0, help="reward's lambda (0: the profile's)")
    p.add_argument("--split", default="test", choices=("validation", "test"),
                   help="where the routers are compared (test: what results report; validation: for choosing)")
    p.add_argument("--eval-queries", type=int, default=0, help="queries of the split (0: all of them)")
    p.add_argument("--out", type=Path, default=Path("runs/grpo_seeds"))
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default); 1 on a busy machine")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="change a GRPOSettings field (value read as YAML), e.g. --set agent_share=0.8 (repeatable)")
    args = p.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from xrouter_lite.pool.core import ReplayPool
    from xrouter_lite.pool.splits import add_splits
    from xrouter_lite.pool.table import load_table
    from xrouter_lite.profiles import get_profile, resolve_data_dir, with_settings
    from xrouter_lite.routing.baselines import evaluate_all
    from xrouter_lite.routing.metrics import hull_value, verdict_hull
    from xrouter_lite.routing.verdicts import Outcomes, Singles
    from xrouter_lite.training import evaluate_lm_router, query_frame, spread
    from xrouter_lite.training.grpo import (gains_over_sft, grpo_router_info, settings_for_sft, train_grpo,
                                            training_rows, zero_variance_share)
    from xrouter_lite.training.modeling import load_saved_router

    prof = get_profile(args.profile, source=args.source)
    settings = replace(with_settings(prof.grpo, args.set), steps=args.steps or prof.grpo.steps,
                       lam=args.lam or prof.grpo.lam)
    cache = Path(os.environ.get("XROUTER_LITE_CACHE", Path(__file__).resolve().parents[1] / ".cache"))
    table = add_splits(load_table(resolve_data_dir(args.data), sources=[args.source], cache_dir=cache, progress=False))
    pool = ReplayPool(table)
    models = pool.models_for(args.source)
    train_queries = pool.queries(split="train", source=args.source)
    val = spread(pool.queries(split=args.split, source=args.source), args.eval_queries or None)
    args.out.mkdir(parents=True, exist_ok=True)

    sft_dir = args.sft
    if sft_dir is None:
        from xrouter_lite.training.sft import run_sft

        t = time.perf_counter()
        sft_dir = run_sft(prof, args.out, pool, train_queries, source=args.source, progress=False).path
        print(f"trained the SFT router in {time.perf_counter() - t:.0f} s -> {sft_dir}", flush=True)
    sft_info = json.loads((Path(sft_dir) / "router.json").read_text())
    mode = sft_info["mode"]
    settings = settings_for_sft(settings, sft_info)  # GRPO and evaluation read answers as the SFT router learned

    def evaluate(path, name):
        model, tok = load_saved_router(path)
        episodes, row = evaluate_lm_router(model, tok, pool, val, mode=mode, lam=settings.lam, name=name,
                                           tool_result_chars=settings.max_tool_chars, progress=False,
                                           answer_notes=settings.answer_notes, state_lambda=settings.state_lambda)
        return Outcomes.from_episodes(name, episodes, [q.id for q in val]), row

    t = time.perf_counter()
    sft_out, sft_row = evaluate(sft_dir, "sft router")
    singles = Singles.from_pool(pool, val)
    baselines = evaluate_all(models + ["knn"], query_frame(pool, train_queries), query_frame(pool, val), pool,
                             settings.lam)
    zero = next(r["hull"] for r in baselines if r.get("router") == "zero")
    best = next(r for r in baselines if "reference" in r)
    fixed = [sft_row] + [r for r in baselines if "accuracy" in r and "router" in r]
    print(f"evaluated SFT + baselines on {len(val)} {args.split} queries ({mode} mode, full pool, lambda "
          f"{settings.lam:g}) in {time.perf_counter() - t:.0f} s", flush=True)

    command = "python benchmarks/grpo_seeds.py " + " ".join(sys.argv[1:] if argv is None else argv)
    results = {"command": command.strip(), "split": args.split, "source": args.source, "lambda": settings.lam,
               "profile": prof.name, "settings": asdict(settings), "mode": mode, "sft": str(sft_dir),
               "n": len(val), "fixed": fixed, "zero_hull": zero, "most_accurate": best, "seeds": []}
    for seed in args.seeds:
        rows, stats = training_rows(pool, train_queries, settings, seed=seed)
        out = args.out / f"router_grpo_seed{seed}"
        t = time.perf_counter()
        log = train_grpo(str(sft_dir), None, rows, pool, out, settings, seed=seed, progress=False,
                         info=grpo_router_info(sft_info, settings, args.source))
        wall = time.perf_counter() - t
        completions = settings.prompts_per_step * settings.num_generations * len(log)
        grpo_out, row = evaluate(out, f"grpo seed {seed}")
        gains = {k: v.to_dict() for k, v in gains_over_sft(grpo_out, sft_out, singles, seed=seed).items()}
        speed = {"train_s": round(wall, 1), "steps_per_s": round(len(log) / wall, 4),
                 "completions_per_s": round(completions / wall, 2), "peak_rss_mb": round(peak_rss_mb()),
                 "zero_variance_share": zero_variance_share(log),
                 "train_reward_first_quarter": float(log["reward"].head(max(len(log) // 4, 1)).mean()),
                 "train_reward_last_quarter": float(log["reward"].tail(max(len(log) // 4, 1)).mean())}
        results["seeds"].append({"seed": seed, "grpo": row, "gains": gains, "speed": speed, "rows": stats})
        print(f"\n=== seed {seed}: GRPO {settings.steps} steps from {sft_dir} ===", flush=True)
        print(f"{'router':<32} {'acc':>6} {'usd/query':>10} {'reward':>7} {'valid':>6}")
        for r in [row] + fixed:
            print(f"{r['router']:<32} {r['accuracy']:>6.3f} {r['usd_per_query']:>10.6f} {r['mean_reward']:>7.4f} "
                  f"{r.get('valid_rate', 1.0):>6.2f}")
        singles_points = [(r["usd_per_query"], r["accuracy"]) for r in fixed if r["router"] in models]
        hull_at = hull_value(verdict_hull(singles_points), row["usd_per_query"])
        print(f"zero hull (with the free point) at GRPO's cost: {hull_at:.3f}; most accurate: "
              f"{best['model']} ${best['usd_per_query']:.6f}/query")
        for k, v in gains.items():
            print(f"  {k}: {v['outcome']}, {v['text']}")
        print("speed:", json.dumps(speed), flush=True)
    # "held" counts seeds whose 95% interval excludes 0 in GRPO's favour; "not shown" and "below" do not count
    held = {k: sum(s["gains"][k]["outcome"] == "beats" for s in results["seeds"]) for k in results["seeds"][0]["gains"]}
    print(f"\nover {len(args.seeds)} seeds, gains shown (95% interval excludes 0):", json.dumps(held))
    results["held"] = held
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=float))
    return results


if __name__ == "__main__":
    main()
