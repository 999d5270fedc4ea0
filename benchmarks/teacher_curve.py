"""The SFT teacher's own cost-accuracy curve on test: how far a λ-conditioned router could get by imitating it.

    python benchmarks/teacher_curve.py --data ../shared/data
    python benchmarks/teacher_curve.py --data ../shared/data --source mmlu-pro --lambdas 1,10,100,1000 --json

The expected-reward teacher (`traces.PlanValues`, fitted on train queries only) picks one plan per task at each
cost weight: one model, or two cheap models whose answers are compared, escalating to a third when they disagree.
This script replays the plan it picks for each test query's task, on the whole pool in agent mode (the cpu SFT
stage's held-out models left out), and prints accuracy and cost per λ, then the AIQ of that curve beside the MLP
and kNN baselines' (one shared cost window, as in notebook 04). A λ-conditioned router that imitated the teacher
perfectly would reach the teacher's AIQ; the gap between the two is what imitation loses, not what the data allows.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def replay_plan(plan, i: int, pos: dict, correct, usd, answers) -> tuple[float, float]:
    """(correct, usd) of one plan on test query row i, read from the recorded answers."""
    from xrouter_lite.routing.agreement import agree

    if not plan.checks_agreement:
        j = pos[plan.first[0]]
        return float(correct[i, j]), float(usd[i, j])
    a, b, s = pos[plan.first[0]], pos[plan.first[1]], pos[plan.strong]
    cost = float(usd[i, a] + usd[i, b])
    if agree(answers[i, a], answers[i, b]):
        return float(correct[i, a]), cost
    return float(correct[i, s]), cost + float(usd[i, s])


def main(argv: list[str] | None = None) -> dict:
    """Print the teacher's test curve per λ and its AIQ beside MLP's and kNN's."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="recorded data dir (default: $XROUTER_LITE_DATA)")
    p.add_argument("--source", default="zeroeval")
    p.add_argument("--lambdas", default=None, help="comma-separated cost weights (default: the cpu SFT grid)")
    p.add_argument("--json", action="store_true", help="one JSON object instead of lines")
    args = p.parse_args(argv)

    from xrouter_lite.pool import ReplayPool, add_splits, load_table
    from xrouter_lite.profiles import get_profile
    from xrouter_lite.routing import evaluate_all, metrics
    from xrouter_lite.routing.reward import RewardConfig
    from xrouter_lite.training import query_frame
    from xrouter_lite.training.traces import PlanValues, final_answers

    sft = get_profile("cpu").sft
    lambdas = [float(x) for x in args.lambdas.split(",")] if args.lambdas else list(sft.lambda_grid)
    pool = ReplayPool(add_splits(load_table(args.data, sources=[args.source], progress=False)))
    train = pool.queries(split="train", source=args.source)
    test = pool.queries(split="test", source=args.source)
    models = pool.models_for(args.source)
    offered = [m for m in models if m not in sft.held_out]
    pos = {m: j for j, m in enumerate(models)}
    correct, usd = pool.outcome_matrix([q.id for q in test], models)
    answers = final_answers(pool, test, models)
    teacher = PlanValues(pool, train, RewardConfig(lam=sft.lam), agreement=sft.agreement)

    rows = []
    for lam in lambdas:
        outcomes = [replay_plan(teacher.best(q.task, offered, "agent", lam=lam)[0], i, pos, correct, usd, answers)
                    for i, q in enumerate(test)]
        rows.append({"lambda": lam, "n": len(test), "accuracy": sum(c for c, _ in outcomes) / len(test),
                     "usd_per_query": sum(u for _, u in outcomes) / len(test)})

    baselines = evaluate_all(["mlp", "knn"], query_frame(pool, train), query_frame(pool, test), pool, lam=sft.lam)
    curves = {"teacher": [(r["usd_per_query"], r["accuracy"]) for r in rows]}
    curves |= {r["router"]: [(c, a) for *_, c, a in r["points"]] for r in baselines if "points" in r}
    singles = list(zip(usd.mean(axis=0).tolist(), correct.mean(axis=0).tolist()))
    aiqs = metrics.aiq_table(curves | {"singles": singles})
    aiqs.pop("singles")  # only there to widen the window to the costliest single model, as notebook 04 does
    res = {"source": args.source, "split": "test", "rows": rows, "aiq": {k: round(v, 4) for k, v in aiqs.items()}}
    if args.json:
        print(json.dumps(res))
    else:
        for r in rows:
            print(f"λ {r['lambda']:>6g}: accuracy {r['accuracy']:.3f}, ${r['usd_per_query']:.5f}/query")
        print("AIQ on test: " + ", ".join(f"{k} {v:.3f}" for k, v in res["aiq"].items()))
    return res


if __name__ == "__main__":
    main()
