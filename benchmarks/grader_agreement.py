"""Our graders against upstream: ZeroEval's published accuracy and MMLU-Pro's extracted letters; grading speed.

    python benchmarks/grader_agreement.py --data ../shared/data --out runs/grader_agreement.json

Goals: every ZeroEval (model, task) accuracy within 2 points of ZeroEval's `<task>.summary.json`; our
MMLU-Pro letter equal to upstream `pred` on >= 98% of all rows (no row excluded); ~120k rows graded in
well under a minute on 2 cores; no grader failure (an exception or a math-verify timeout, each scored 0 and
listed per task/model).

MMLU-Pro agreement: a row agrees when our letter equals `pred`. Where upstream found no letter, `pred`
is a fill-in (null, or a random letter); such a row agrees when we find no letter either. A fill-in is
recognised by re-running upstream's own extraction chain ("answer is (X)", then "Answer: X", then the
last standalone capital A-J): if that finds nothing, or `pred` is null, `pred` was not read from the text.

The raw files are read here by two small readers rather than through `xrouter_lite.pool.build`, which returns
already-graded rows without upstream's `pred` and keeps only the MMLU-Pro questions all models answered;
this script needs every row, `pred`, and the time each task's grading takes. Each worker process reads
and grades whole files, so only the small results travel between processes.
"""

from __future__ import annotations

import argparse
import json
import re
import time
import zipfile
from collections import defaultdict
from multiprocessing import Pool
from pathlib import Path

from tqdm.auto import tqdm

from xrouter_lite.pool.grading import TASKS, GraderError, extract_answer, grade
from xrouter_lite.profiles import resolve_data_dir

ZEROEVAL_TASKS = ("gsm", "math-l5", "crux")
GOAL_GAP = 2.0  # max |ours - published| accuracy points per ZeroEval (model, task)
GOAL_AGREEMENT = 98.0  # min pooled MMLU-Pro letter agreement, %


# ---------------------------------------------------------------- readers (one file each)
def read_zeroeval_file(path: Path) -> list[dict]:
    """The rows of one ZeroEval file `<task>/<model>.json`: task, model, response, gold."""
    rows = []
    for rec in json.loads(path.read_text(encoding="utf-8")):
        output = rec.get("output") or [""]
        rows.append({"task": path.parent.name, "model": path.stem, "gold": rec["answer"],
                     "response": output[0] if isinstance(output, list) else str(output)})
    return rows


def read_mmlu_pro_file(path: Path) -> list[dict]:
    """The rows of one MMLU-Pro model zip, with upstream's `pred`."""
    model = path.name.removeprefix("model_outputs_").removesuffix("_5shots.zip")
    with zipfile.ZipFile(path) as zf:
        records = json.loads(zf.read(zf.namelist()[0]))
    return [{"task": "mmlu-pro", "model": model, "gold": rec["answer"], "pred": rec.get("pred"),
             # gemini and jamba write `model_outputs`, the other five `generated_text`
             "response": rec.get("model_outputs", rec.get("generated_text")) or ""} for rec in records]


def data_files(data_dir: Path) -> list[Path]:
    """Every ZeroEval result file and MMLU-Pro zip under `data_dir`."""
    ze = [p for t in ZEROEVAL_TASKS for p in sorted((data_dir / "zeroeval" / "result_dirs" / t).glob("*.json"))]
    return ze + sorted((data_dir / "mmlu-pro" / "eval_results").glob("model_outputs_*_5shots.zip"))


def read_published(data_dir: Path) -> dict[tuple[str, str], float]:
    """ZeroEval's published accuracy (`Acc`, %) per (task, model)."""
    out = {}
    for task in ZEROEVAL_TASKS:
        for row in json.loads((data_dir / "zeroeval" / "result_dirs" / f"{task}.summary.json").read_text()):
            out[task, row["Model"]] = float(row["Acc"])
    return out


# ---------------------------------------------------------------- grading (whole files per process)
_UPSTREAM_CHAIN = [re.compile(r"answer is \(?([A-J])\)?"), re.compile(r"[aA]nswer:\s*([A-J])"),
                   re.compile(r"\b([A-J])\b")]


def upstream_found_letter(text: str) -> bool:
    """Whether MMLU-Pro's own parser finds a letter in `text` (else its `pred` is a fill-in)."""
    return any(p.search(text) for p in _UPSTREAM_CHAIN)


def grade_file(path: Path) -> tuple[list[dict], float]:
    """One file's rows graded (`correct`; MMLU-Pro also `letter`, `fill_in`), text dropped; grading CPU seconds."""
    rows = read_mmlu_pro_file(path) if path.suffix == ".zip" else read_zeroeval_file(path)
    start = time.process_time()  # reading is not timed: only grading
    for r in rows:
        try:  # a grader failure (exception, math-verify timeout) scores 0 here too, and is reported
            r["correct"] = grade(r["task"], r["response"], r["gold"], on_error="raise")
        except GraderError as err:
            r["correct"], r["grader_error"] = 0, err.kind
        if r["task"] == "mmlu-pro":
            r["letter"] = extract_answer("mmlu-pro", r["response"])
            r["fill_in"] = r["pred"] is None or not upstream_found_letter(r["response"])
        del r["response"]  # keep what travels back to the parent small
    return rows, time.process_time() - start


def grade_all(files: list[Path], workers: int) -> tuple[list[dict], dict]:
    """Every row of `files`, graded in `workers` processes; and the grading time per task."""
    rows, cpu, count = [], defaultdict(float), defaultdict(int)
    wall = time.perf_counter()
    with Pool(workers) as pool:
        results = pool.imap_unordered(grade_file, files)
        for file_rows, seconds in tqdm(results, total=len(files), unit="file", desc="grading"):
            rows += file_rows
            if file_rows:
                cpu[file_rows[0]["task"]] += seconds
                count[file_rows[0]["task"]] += len(file_rows)
    wall = time.perf_counter() - wall
    per_task = {t: {"rows": count[t], "cpu_s": round(cpu[t], 2),
                    "rows_per_cpu_s": round(count[t] / max(cpu[t], 1e-9))} for t in TASKS if count[t]}
    return rows, {"workers": workers, "rows": len(rows), "wall_s": round(wall, 2),
                  "rows_per_wall_s": round(len(rows) / wall), "per_task": per_task}


# ---------------------------------------------------------------- tables
def zeroeval_table(rows: list[dict], published: dict) -> list[dict]:
    """Per (task, model): our accuracy, ZeroEval's published one and the gap, in points."""
    groups = defaultdict(list)
    for r in rows:
        groups[r["task"], r["model"]].append(r["correct"])
    table = []
    for (task, model), correct in sorted(groups.items()):
        ours, pub = 100 * sum(correct) / len(correct), published.get((task, model))
        table.append({"task": task, "model": model, "n": len(correct), "ours": round(ours, 2), "published": pub,
                      "gap": None if pub is None else round(ours - pub, 2)})
    return table


def mmlu_table(rows: list[dict]) -> dict:
    """Per model and pooled: agreement of our letter with upstream `pred`, and where they differ."""
    kinds = ("same_letter", "both_no_letter", "we_no_letter", "other_letter", "we_letter_pred_fill_in")
    counts = defaultdict(lambda: dict.fromkeys(kinds, 0))
    raw_equal = defaultdict(int)  # plain letter equality, None == None included, fill-ins not special
    for r in rows:
        if r["fill_in"]:
            kind = "both_no_letter" if r["letter"] is None else "we_letter_pred_fill_in"
        else:
            kind = ("same_letter" if r["letter"] == r["pred"] else
                    "we_no_letter" if r["letter"] is None else "other_letter")
        for key in (r["model"], "POOLED"):
            counts[key][kind] += 1
            raw_equal[key] += r["letter"] == r["pred"]
    out = {}
    for model, c in counts.items():
        n = sum(c.values())
        out[model] = {"n": n, "agreement": round(100 * (c["same_letter"] + c["both_no_letter"]) / n, 2),
                      "raw_equal": round(100 * raw_equal[model] / n, 2), **c}
    return out


def print_tables(ze: list[dict], mmlu: dict, speed: dict) -> None:
    """The three tables, readable in a terminal."""
    print(f"\nZeroEval: our accuracy vs the published summary (goal |gap| <= {GOAL_GAP})")
    print(f"{'task':8s} {'model':30s} {'n':>5s} {'ours':>7s} {'published':>9s} {'gap':>6s}")
    nan = float("nan")
    for r in ze:
        gap = r["gap"] if r["gap"] is not None else nan
        flag = "  > 2" if abs(gap) > GOAL_GAP else "  > 1" if abs(gap) > 1 else ""
        pub = r["published"] if r["published"] is not None else nan
        print(f"{r['task']:8s} {r['model']:30s} {r['n']:5d} {r['ours']:7.2f} {pub:9.2f} {gap:+6.2f}{flag}")
    print(f"\nMMLU-Pro: our letter vs upstream pred (goal pooled agreement >= {GOAL_AGREEMENT}%)")
    print(f"{'model':30s} {'n':>6s} {'agree%':>7s} {'raw=%':>6s} {'same':>6s} {'none/fill':>9s} {'we-none':>7s} "
          f"{'other':>5s} {'we-letter/fill':>14s}")
    for model in sorted(mmlu, key=lambda m: (m == "POOLED", m)):
        c = mmlu[model]
        print(f"{model:30s} {c['n']:6d} {c['agreement']:7.2f} {c['raw_equal']:6.2f} {c['same_letter']:6d} "
              f"{c['both_no_letter']:9d} {c['we_no_letter']:7d} {c['other_letter']:5d} "
              f"{c['we_letter_pred_fill_in']:14d}")
    print(f"\nGrading speed: {speed['rows']} rows in {speed['wall_s']} s wall with {speed['workers']} processes "
          f"({speed['rows_per_wall_s']} rows/s, file reading included)")
    for task, t in speed["per_task"].items():
        print(f"  {task:9s} {t['rows']:6d} rows  {t['cpu_s']:7.2f} CPU s  {t['rows_per_cpu_s']:7d} rows per CPU s")
    print("  (CPU s of the grading processes; math-verify runs in a worker process of its own, not counted here)")


def main(argv=None) -> int:
    """Grade every recorded ZeroEval and MMLU-Pro row, print the agreement tables, write them as JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="recorded data directory (default: $XROUTER_LITE_DATA)")
    ap.add_argument("--out", default=None, help="write the tables here as JSON")
    ap.add_argument("--workers", type=int, default=2, help="grading processes; the CI machine has 2 cores")
    args = ap.parse_args(argv)
    data_dir = resolve_data_dir(args.data)

    rows, speed = grade_all(data_files(data_dir), args.workers)
    ze_rows = [r for r in rows if r["task"] != "mmlu-pro"]
    result = {"zeroeval": zeroeval_table(ze_rows, read_published(data_dir)),
              "mmlu_pro": mmlu_table([r for r in rows if r["task"] == "mmlu-pro"]), "speed": speed}
    errors = defaultdict(int)
    for r in rows:
        if "grader_error" in r:
            errors[f"{r['task']}/{r['model']}"] += 1
    result["grader_errors"] = dict(sorted(errors.items()))
    gaps = [abs(r["gap"]) for r in result["zeroeval"] if r["gap"] is not None]
    result["goals"] = {"max_abs_gap": max(gaps, default=0.0), "cells_over_1": sum(g > 1 for g in gaps),
                       "cells_over_2": sum(g > GOAL_GAP for g in gaps),
                       "mmlu_pooled_agreement": result["mmlu_pro"]["POOLED"]["agreement"],
                       "grader_errors": sum(errors.values())}
    print_tables(result["zeroeval"], result["mmlu_pro"], speed)
    print(f"\ngrader failures (exceptions, math-verify timeouts; each scored 0): {result['grader_errors'] or 'none'}")
    print(f"\ngoals: {result['goals']}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
