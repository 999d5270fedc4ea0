"""Results that are generated, never pasted: a finished run -> `docs/results/<profile>.json`, its markdown, the README.

    python -m xrouter_lite report runs/cpu-20261207-120000          # write docs/results/cpu.{json,md}, update README
    python -m xrouter_lite report runs/cpu-... --baselines zeroeval=ze.jsonl --baselines mmlu-pro=mp.jsonl \
        --seeds grpo_seeds.json --table unseen_pool.json
    python -m xrouter_lite report --check                           # exit 1 when a README block is stale

`collect` reads a run directory (summary.json, artifacts/headline.json, findings_03/04.json, eval_grpo.json,
eval_grpo_lambda.json, the seeds benchmark's JSON if given or in artifacts/grpo_seeds.json, tables in
artifacts/report_tables/*.json) and the per-source baseline rows of `python -m xrouter_lite evaluate --json`;
`render` is a pure function of the results JSON, and the README's block between
`<!-- results:<profile>:begin -->` and `<!-- results:<profile>:end -->` is exactly what it returns, so a test
(and `--check`) can tell when the README and the committed results disagree.

The results file (schema `xrouter_lite.results/1`) has these keys; only `schema`, `profile` and `provenance` are
required, every other section is optional and rendered when present:
- provenance: run (the run directory's name), run_command, report_command, run_date, generated, git_commit,
  git_dirty (at report time), run_git_commit (if the run recorded one);
- notebooks: [{notebook, status, wall_s, peak_mb}];
- headline: {split, source, n, tasks, lambda, reference, c_max, note, rows: [ROW]} (notebook 04, test split);
- lm_validation: {split, source, n, lambda, rows: [ROW], checks: {name: VERDICT}, sweep: [...], sweep_checks: [...]};
- findings: [{notebook, split, kind, text, verdicts: {name: VERDICT}}] (the generated "What this run found");
- seeds: {command, split, source, n, lambda, sft: ROW, rows: [ROW + seed + verdicts], shown: {check: count}};
- baselines: [{source, split, lambda, command, file, sha1, n, reference, zero_aiq, rows: [ROW]}];
- tables: [{title, command, split, source, lambda, note, rows: [ROW]}] (e.g. issue 14's unseen pool, MMLU-Pro);
- lambda_sweep: {router, checkpoint, split, source, n, c_max, aiq, mlp_aiq, aiq_vs_mlp: VERDICT, cost_falls:
  {overall: VERDICT, monotone, text, steps: [{from_lambda, to_lambda, ...VERDICT}]}, rows: [{lambda, n, accuracy,
  usd_per_query, mean_reward, valid_rate}]} (notebook 04: one λ-conditioned checkpoint told each λ in its prompt;
  summary.json's `lambda_sweep` section, else artifacts/summary_sections/lambda_sweep.json, else only the rows of
  artifacts/lambda_sweep.json).
ROW = {router, n, accuracy, usd_per_query, mean_reward, lambda, split, and optionally source, kind, valid_rate,
aiq, cost_saved_95, best_model_at_cost, best_model_accuracy, intervals: {name: VERDICT}}; VERDICT is
`verdicts.Verdict.to_dict()`: {estimate, low, high, level, n, n_boot, outcome, text, unit, scale, line}.

Why one module: collect (run -> JSON), render (JSON -> markdown) and write/check (markdown -> README) are one
pipeline whose render must stay byte-identical for `--check`.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

SCHEMA = "xrouter_lite.results/1"
RESULTS_DIR = Path("docs/results")
FIGURES_DIR = Path("docs/figures")
FIGURE_FROM = "_figure_from"  # where `collect` found the run's figure
README = Path("README.md")
BEGIN, END = "<!-- results:{profile}:begin -->", "<!-- results:{profile}:end -->"
NEW_BLOCKS = "<!-- results:new-blocks-go-here -->"  # where a profile's first block is inserted
MARKER_RE = re.compile(r"<!-- results:([A-Za-z0-9_-]+):begin -->\n(.*?)<!-- results:\1:end -->", re.S)


class ReportError(ValueError):
    """A run directory or option the report cannot use; the message says which file and what is missing."""


# ---------------------------------------------------------------- reading a run
def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ReportError(f"{path}: not valid JSON ({err})") from None


def _row(r: dict, **extra) -> dict:
    """The results file's row: the issue-14 fields first, then what else the producer knew."""
    keys = ("router", "kind", "n", "accuracy", "usd_per_query", "mean_reward", "lambda", "split", "source",
            "valid_rate", "calls_per_query", "aiq", "cost_vs_best_model", "cost_saved_95", "best_model_at_cost",
            "best_model_accuracy", "best_model_usd")
    out = {k: r[k] for k in keys if k in r}
    if "zero_margin" in r:
        out.setdefault("intervals", {})["zero_margin"] = r["zero_margin"]
    if r.get("intervals"):
        out.setdefault("intervals", {}).update(r["intervals"])
    return out | extra


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def _run_date(run_dir: Path) -> str:
    """The run's start from its name (`<profile>-YYYYmmdd-HHMMSS`), else summary.json's modification time."""
    m = re.search(r"(\d{8})-(\d{6})", run_dir.name)
    if m:
        return datetime.strptime("".join(m.groups()), "%Y%m%d%H%M%S").strftime("%Y-%m-%d %H:%M")
    return datetime.fromtimestamp((run_dir / "summary.json").stat().st_mtime).strftime("%Y-%m-%d %H:%M")


def baseline_section(source: str, path: Path, lam: float, split: str = "test") -> dict:
    """One `python -m xrouter_lite evaluate --json` output (JSON lines) as the results file's baselines entry."""
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows = [r for r in lines if "router" in r and "accuracy" in r]
    if not rows:
        raise ReportError(f"{path}: no router rows; expected the output of "
                          f"`python -m xrouter_lite evaluate --split {split} --routers all --source {source} --json`")
    zero = next((r for r in lines if r.get("router") == "zero"), {})
    ref = next((r for r in lines if "reference" in r), {})
    return {"source": source, "split": split, "lambda": lam, "n": rows[0].get("n"),
            "command": f"python -m xrouter_lite evaluate --split {split} --routers all --source {source} "
                       f"--lambda {lam:g} --json",
            "file": path.name, "sha1": hashlib.sha1(path.read_bytes()).hexdigest()[:12],
            "reference": {k: ref[k] for k in ("model", "accuracy", "usd_per_query") if k in ref},
            "zero_aiq": zero.get("aiq"),
            "rows": [_row(r, split=split, source=source, **({"lambda": lam} if "lambda" not in r else {}))
                     for r in rows]}


def seeds_section(path: Path) -> dict:
    """The seeds benchmark's JSON (`python benchmarks/grpo_seeds.py --json PATH`) as the results file's seeds entry."""
    d = _read_json(path)
    split, lam = d.get("split", "validation"), d.get("settings", {}).get("lam", d.get("lambda"))
    sft = next((r for r in d.get("fixed", []) if r.get("router") == "sft router"), None)
    rows = []
    for s in d.get("seeds", []):
        gains = s.get("gains", {})
        if gains and not all(isinstance(v, dict) for v in gains.values()):
            raise ReportError(f"{path}: seed {s.get('seed')} has yes/no gains from before interval verdicts; "
                              "re-run benchmarks/grpo_seeds.py with today's code")
        rows.append(_row(s["grpo"], seed=s["seed"], split=split, intervals=gains,
                         **({"lambda": lam} if "lambda" not in s["grpo"] else {})))
    shown = {k: sum(r.get("intervals", {}).get(k, {}).get("outcome") == "beats" for r in rows)
             for k in (rows[0].get("intervals", {}) if rows else {})}
    return {"command": d.get("command", "python benchmarks/grpo_seeds.py"), "split": split,
            "source": d.get("source", "zeroeval"), "n": d.get("n", d.get("n_validation")), "lambda": lam,
            "file": path.name, "sft": _row(sft, split=split) if sft else None, "rows": rows, "shown": shown}


def table_section(path: Path) -> dict:
    """An extra table (title, command, rows, ...) a producer wrote as JSON, e.g. issue 14's unseen-pool evaluation."""
    d = _read_json(path)
    if isinstance(d, dict) and path.name == "headline.json" and "title" not in d:
        d = headline_as_table(d, path)
    if not isinstance(d, dict) or not d.get("rows") or not d.get("title") or not d.get("command"):
        raise ReportError(f"{path}: a table needs 'title', 'command' and 'rows' (each with router, n, accuracy, "
                          "usd_per_query, mean_reward, lambda, split)")
    return {k: d[k] for k in ("title", "command", "split", "source", "lambda", "note") if k in d} | {
        "file": path.name, "rows": [_row(r) for r in d["rows"]]}


def headline_as_table(d: dict, path: Path) -> dict:
    """Another run's notebook-04 headline (e.g. the MMLU-Pro series) as a table: `--table RUN/artifacts/headline.json`."""
    run = path.resolve().parents[1]
    summary = _read_json(run / "summary.json") if (run / "summary.json").is_file() else {}
    profile, source = summary.get("profile", run.name.split("-")[0]), d.get("source", "zeroeval")
    sets = "".join(f" --set {k}={json.dumps(v)}" for k, v in summary.get("notebook_settings", {}).items())
    return d | {"title": f"Every router on the {source} {d.get('split', 'test')} split (run `{run.name}`, notebook 04)",
                "command": f"python -m xrouter_lite notebooks --profile {profile} --source {source}{sets}"}


SWEEP_ROW = ("lambda", "n", "accuracy", "usd_per_query", "mean_reward", "valid_rate", "calls_per_query")
SWEEP_KEYS = ("router", "checkpoint", "stage", "split", "source", "n", "c_max", "aiq", "mlp_aiq", "knn_aiq",
              "zero_aiq", "aiq_vs_mlp", "cost_falls", "lambda_grid")


def lambda_sweep_section(summary: dict, art: Path) -> dict | None:
    """Notebook 04's sweep of one λ-conditioned checkpoint: its rows, its AIQ beside the MLP's, the cost verdicts."""
    sec = summary.get("lambda_sweep")
    if sec is None and (art / "summary_sections" / "lambda_sweep.json").is_file():
        sec = _read_json(art / "summary_sections" / "lambda_sweep.json")
    rows = sec.get("rows") if sec else None
    if rows is None and (art / "lambda_sweep.json").is_file():
        rows = _read_json(art / "lambda_sweep.json")
    if not rows:
        return None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "lambda" in r for r in rows):
        raise ReportError(f"{art / 'lambda_sweep.json'}: expected a list of {{lambda, n, accuracy, usd_per_query, "
                          "mean_reward}} rows")
    return {k: sec[k] for k in SWEEP_KEYS if sec and k in sec} | {
        "rows": [{k: r[k] for k in SWEEP_ROW if k in r} for r in sorted(rows, key=lambda r: r["lambda"])]}


def collect(run_dir, baselines: dict[str, Path] | None = None, baselines_lambda: float = 3.0,
            seeds: Path | None = None, tables: list[Path] | None = None) -> dict:
    """Everything the results file holds, read from a finished run directory and the optional producer outputs."""
    run_dir = Path(run_dir)
    art = run_dir / "artifacts"
    if not (run_dir / "summary.json").is_file():
        raise ReportError(f"{run_dir}: no summary.json; give a finished run directory (runs/<profile>-<timestamp>)")
    summary = _read_json(run_dir / "summary.json")
    profile = summary["profile"]
    options = [f"--baselines {s}={Path(p).name}" for s, p in (baselines or {}).items()]
    options += [f"--baselines-lambda {baselines_lambda:g}"] if baselines else []
    options += [f"--seeds {Path(seeds).name}"] if seeds else []
    options += [f"--table {Path(t).name}" for t in tables or []]
    out: dict = {"schema": SCHEMA, "profile": profile, "provenance": {
        "run": run_dir.name, "run_command": f"python -m xrouter_lite notebooks --profile {profile}",
        "report_command": " ".join(["python -m xrouter_lite report", f"runs/{run_dir.name}", *options]),
        "run_date": _run_date(run_dir), "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "git_commit": _git("rev-parse", "--short=12", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        **({"run_git_commit": summary["git_commit"]} if summary.get("git_commit") else {})}}
    out["notebooks"] = [{"notebook": k, **{f: v.get(f) for f in ("status", "wall_s", "peak_mb")}}
                        for k, v in summary.get("notebooks", {}).items()]

    if (art / "headline.json").is_file():
        h = _read_json(art / "headline.json")
        out["headline"] = {k: h[k] for k in ("split", "source", "n", "tasks", "lambda", "reference", "c_max", "note")
                           if k in h} | {"rows": [_row(r, split=h.get("split", "test")) for r in h["rows"]]}

    if (art / "eval_grpo.json").is_file():
        g = _read_json(art / "eval_grpo.json")
        lm = [r for r in g.get("rows", []) if r.get("router") in ("grpo router", "sft router")]
        f03 = _read_json(art / "findings_03.json") if (art / "findings_03.json").is_file() else {}
        lam = f03.get("lambda", g.get("settings", {}).get("lam"))
        sec = {"split": "validation", "source": f03.get("source"), "n": g.get("n"), "lambda": lam,
               "rows": [_row(r, split="validation") for r in lm]}
        if all(isinstance(v, dict) for v in g.get("checks", {}).values()):
            sec["checks"] = g.get("checks", {})
        if (art / "eval_grpo_lambda.json").is_file():
            sec["sweep"] = _read_json(art / "eval_grpo_lambda.json")
        out["lm_validation"] = sec

    findings = []
    for nb in ("03", "04"):
        path = art / f"findings_{nb}.json"
        if path.is_file():
            f = _read_json(path)
            findings += [{"notebook": nb, "split": f.get("split"), **x} for x in f.get("findings", [])]
    if findings:
        out["findings"] = findings

    seeds = Path(seeds) if seeds else (art / "grpo_seeds.json" if (art / "grpo_seeds.json").is_file() else None)
    if seeds:
        out["seeds"] = seeds_section(seeds)
    if baselines:
        out["baselines"] = [baseline_section(s, Path(p), baselines_lambda) for s, p in baselines.items()]
    sweep = lambda_sweep_section(summary, art)
    if sweep:
        out["lambda_sweep"] = sweep
    table_files = list(tables or []) + sorted((art / "report_tables").glob("*.json"))
    if table_files:
        out["tables"] = [table_section(Path(t)) for t in table_files]
    if (art / "cost_accuracy.png").is_file():  # notebook 04's figure (a PNG where kaleido and Chromium work)
        out["figure"] = f"{FIGURES_DIR.as_posix()}/cost_accuracy_{profile}.png"
        out[FIGURE_FROM] = str(art / "cost_accuracy.png")  # copied by `write`, not kept in the results file
    return out


# ---------------------------------------------------------------- rendering (pure: JSON in, markdown out)
def _num(v, fmt: str) -> str:
    return "" if v is None else fmt.format(v)


def _pct(v) -> str:
    return "not reached" if v is None else f"{v:.0%}"


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    esc = [[str(c).replace("|", "\\|") for c in r] for r in rows]
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|",
                      *("| " + " | ".join(r) + " |" for r in esc)])


def _margin_cells(row: dict) -> list[str]:
    z = row.get("intervals", {}).get("zero_margin")
    if not z:
        return ["", "", ""]
    verdict = {"beats": "above", "below": "below"}.get(z["outcome"], "not shown")
    return [f"{100 * z['estimate']:+.1f}", f"{100 * z['low']:+.1f} to {100 * z['high']:+.1f}", verdict]


def _router_table(rows: list[dict], lam_label: str = "reward") -> str:
    header = ["router", "kind", "λ", "n", "accuracy", "USD/query", "best model at ≤ its cost (accuracy)",
              "vs zero hull (points)", "95% interval", "verdict", lam_label]
    body = []
    for r in rows:
        best = r.get("best_model_at_cost")
        body.append([r["router"], r.get("kind", ""), _num(r.get("lambda"), "{:g}"), _num(r.get("n"), "{}"),
                     _num(r.get("accuracy"), "{:.3f}"), _num(r.get("usd_per_query"), "{:.6f}"),
                     f"{best} ({r['best_model_accuracy']:.3f})" if best else "none (every model costs more)",
                     *_margin_cells(r), _num(r.get("mean_reward"), "{:.3f}")])
    return _md_table(header, body)


def _verdict_cell(v: dict | None) -> str:
    """'beats: +1.2 points (95% interval +0.3 to +2.1)', 'not shown: ...' (outcomes as `verdicts.verdict` says them)."""
    return f"{v['outcome']}: {v['text']}" if v else ""


def render(results: dict) -> str:
    """The results file as markdown: what the README's block and docs/results/<profile>.md contain, byte for byte."""
    p, prov = results["profile"], results["provenance"]
    rerun = f"`{prov['run_command']}`, then `{prov['report_command']}`"
    dirty = " (with uncommitted changes)" if prov.get("git_dirty") else ""
    out = [f"*Generated by `python -m xrouter_lite report` from `docs/results/{p}.json`; do not edit by hand.* "
           f"Profile `{p}`, run `{prov['run']}` of {prov['run_date']}, reported at commit `{prov['git_commit']}`"
           f"{dirty}. Reproduce: {rerun}."]
    if p == "smoke":
        out.append("The `smoke` profile is CI-sized (a handful of queries, routers trained for a few steps): its "
                   "numbers show that the pipeline runs end to end, not what routing achieves.")

    h = results.get("headline")
    if h:
        tasks = ", ".join(f"{t} {k}" for t, k in (h.get("tasks") or {}).items())
        ref = h.get("reference", {})
        out += [f"#### Every router on the {h.get('source', '')} {h.get('split', 'test')} split (notebook 04)",
                f"From `{prov['run_command']}` (run `{prov['run']}`): {h.get('n')} test queries ({tasks}), never used "
                f"for training; λ = {h.get('lambda'):g}. The zero router's hull mixes single models *and* answering "
                f"nothing (the free point (0, 0)); a verdict says above or below only when the 95% paired-bootstrap "
                f"interval over these queries excludes 0. Most accurate single model: {ref.get('model')} "
                f"({_num(ref.get('accuracy'), '{:.3f}')} at ${_num(ref.get('usd_per_query'), '{:.6f}')}/query). "
                f"The oracle reads the answers: an upper bound, not a router.",
                _router_table(h["rows"], f"reward at λ={h.get('lambda'):g}")]

    f = results.get("findings")
    if f:
        out.append(f"#### What this run found (generated from the numbers of run `{prov['run']}`)")
        out.append("\n".join(f"- {x['text']}" + (f" *(notebook {x['notebook']})*" if x.get("notebook") else "")
                             for x in f))

    lm = results.get("lm_validation")
    if lm:
        out += [f"#### SFT and GRPO routers on the validation split (notebook 03)",
                f"From `{prov['run_command']}` (run `{prov['run']}`): {lm.get('n')} validation queries, "
                f"λ = {_num(lm.get('lambda'), '{:g}')}, the full pool, greedy.",
                _md_table(["router", "n", "accuracy", "USD/query", "mean reward", "valid episodes"],
                          [[r["router"], _num(r.get("n"), "{}"), _num(r.get("accuracy"), "{:.3f}"),
                            _num(r.get("usd_per_query"), "{:.6f}"), _num(r.get("mean_reward"), "{:.3f}"),
                            _num(r.get("valid_rate"), "{:.1%}")] for r in lm["rows"]])]
        if lm.get("checks"):
            out.append(_md_table(["GRPO check (95% interval)", "verdict"],
                                 [[v.get("what", k), _verdict_cell(v)] for k, v in lm["checks"].items()]))

    s = results.get("seeds")
    if s:
        head = ["seed", "accuracy", "USD/query", "mean reward", "valid", "reward vs SFT", "vs zero hull"]
        body = [[str(r.get("seed")), _num(r.get("accuracy"), "{:.3f}"), _num(r.get("usd_per_query"), "{:.6f}"),
                 _num(r.get("mean_reward"), "{:.3f}"), _num(r.get("valid_rate"), "{:.1%}"),
                 _verdict_cell(r.get("intervals", {}).get("reward_vs_sft")),
                 _verdict_cell(r.get("intervals", {}).get("above_zero_hull"))] for r in s["rows"]]
        sft = s.get("sft") or {}
        shown = ", ".join(f"{k} {v} of {len(s['rows'])}" for k, v in s.get("shown", {}).items())
        out += [f"#### GRPO over seeds from one SFT router ({s.get('split')} split)",
                f"From `{s['command']}` (file `{s.get('file')}`): {s.get('n')} queries, "
                f"λ = {_num(s.get('lambda'), '{:g}')}; "
                f"SFT router: accuracy {_num(sft.get('accuracy'), '{:.3f}')}, mean reward "
                f"{_num(sft.get('mean_reward'), '{:.3f}')}. Gains shown (95% interval excludes 0): {shown}.",
                _md_table(head, body)]

    for b in results.get("baselines", []):
        ref = b.get("reference", {})
        out += [f"#### Baseline routers, {b['source']} {b['split']} split",
                f"From `{b['command']}` (file `{b['file']}`, sha1 {b['sha1']}): {b.get('n')} queries, "
                f"λ = {b['lambda']:g}; most accurate model {ref.get('model')} "
                f"({_num(ref.get('accuracy'), '{:.3f}')} at ${_num(ref.get('usd_per_query'), '{:.6f}')}/query); "
                f"zero router AIQ {_num(b.get('zero_aiq'), '{:.3f}')}.",
                _md_table(["router", "accuracy", "USD/query", "mean reward", "AIQ", "cost saved at 95%"],
                          [[r["router"], _num(r.get("accuracy"), "{:.3f}"), _num(r.get("usd_per_query"), "{:.6f}"),
                            _num(r.get("mean_reward"), "{:.3f}"), _num(r.get("aiq"), "{:.3f}"),
                            _pct(r.get("cost_saved_95"))] for r in b["rows"]])]

    sw = results.get("lambda_sweep")
    if sw:
        out += _sweep_block(sw, prov)

    for t in results.get("tables", []):
        out += [f"#### {t['title']}",
                f"From `{t['command']}`" + (f" ({t['split']} split)" if t.get("split") else "") + "."
                + (f" {t['note']}" if t.get("note") else ""),
                _router_table(t["rows"])]

    if results.get("figure"):
        out.append(f"![cost against accuracy of every router on the test split, run {prov['run']}]({results['figure']})")

    nbs = results.get("notebooks")
    if nbs:
        out += [f"#### Runtime of run `{prov['run']}`",
                _md_table(["notebook", "status", "wall s", "peak MB"],
                          [[n["notebook"], str(n.get("status")), _num(n.get("wall_s"), "{:.0f}"),
                            _num(n.get("peak_mb"), "{:.0f}")] for n in nbs])]
    return "\n\n".join(out) + "\n"


def _sweep_block(sw: dict, prov: dict) -> list[str]:
    """The λ sweep of one conditioned checkpoint: its AIQ beside the MLP's, whether cost falls, one row per λ."""
    rows = sw["rows"]
    name = sw.get("router", "the λ-conditioned router")
    where = f"{sw.get('source', '')} {sw.get('split', 'test')} split".strip()
    lams = "λ = " + ", ".join(f"{r['lambda']:g}" for r in rows)
    text = (f"From `{prov['run_command']}` (run `{prov['run']}`): one checkpoint, {name}"
            + (f" (`{sw['checkpoint']}`)" if sw.get("checkpoint") else "")
            + f", told each cost weight in its prompt ({lams} reward points per USD) and rewarded at it, on "
              f"{_num(sw.get('n'), '{}')} {where} queries.")
    if sw.get("aiq") is not None:
        text += (f" AIQ over the sweep {sw['aiq']:.3f}; the MLP router's over its λ grid "
                 f"{_num(sw.get('mlp_aiq'), '{:.3f}')} (same queries, c_max ${_num(sw.get('c_max'), '{:.6f}')}/query).")
    v = sw.get("aiq_vs_mlp")
    if v:
        said = {"beats": "higher than", "below": "lower than"}.get(v["outcome"], "not shown to differ from")
        text += f" Its AIQ is {said} the MLP's: {v['text']}."
    falls = sw.get("cost_falls")
    if falls:
        text += f" {falls['text']}"
    steps = {(s["from_lambda"], s["to_lambda"]): s for s in (falls or {}).get("steps", [])}
    body = []
    for prev, r in zip([None, *rows], rows):
        step = steps.get((prev["lambda"], r["lambda"])) if prev else None
        body.append([f"{r['lambda']:g}", _num(r.get("n"), "{}"), _num(r.get("accuracy"), "{:.3f}"),
                     _num(r.get("usd_per_query"), "{:.6f}"), _num(r.get("mean_reward"), "{:.3f}"),
                     _num(r.get("valid_rate"), "{:.1%}"), _verdict_cell(step) if step else ""])
    return [f"#### One checkpoint, a whole curve: the cost weight in the prompt (notebook 04)", text,
            _md_table(["λ in the prompt", "n", "accuracy", "USD/query", "reward at that λ", "valid episodes",
                       "cost saved vs the previous λ"], body)]


# ---------------------------------------------------------------- the README block
def block(profile: str, body: str) -> str:
    """The README block of one profile: markers around the rendered results."""
    return f"{BEGIN.format(profile=profile)}\n{body}{END.format(profile=profile)}"


def readme_blocks(text: str) -> dict[str, str]:
    """{profile: the rendered text between its markers} of a README."""
    return {m.group(1): m.group(2) for m in MARKER_RE.finditer(text)}


def update_readme(text: str, profile: str, body: str) -> str:
    """The README with the profile's block replaced; a new profile's block goes where `NEW_BLOCKS` marks (else
    before the first existing block)."""
    new = block(profile, body)
    pattern = re.compile(re.escape(BEGIN.format(profile=profile)) + r"\n.*?" + re.escape(END.format(profile=profile)),
                         re.S)
    if pattern.search(text):
        return pattern.sub(lambda _: new, text, count=1)
    at = text.find(NEW_BLOCKS)
    if at < 0:
        first = MARKER_RE.search(text)
        if first is None:
            raise ReportError(f"the README has neither {NEW_BLOCKS} nor a results block "
                              "(<!-- results:<profile>:begin --> ... end -->) to put the new block by")
        at = first.start()
    return text[:at] + new + "\n\n" + text[at:]


def check(readme: Path = README, results_dir: Path = RESULTS_DIR) -> list[str]:
    """What is stale: every README block must equal the render of its committed results file, and so must the .md."""
    problems = []
    blocks = readme_blocks(readme.read_text())
    if not blocks:
        problems.append(f"{readme}: no results block")
    for profile, body in blocks.items():
        path = results_dir / f"{profile}.json"
        if not path.is_file():
            problems.append(f"{readme}: block '{profile}' has no results file {path}")
            continue
        results = _read_json(path)
        want = render(results)
        if body != want:
            problems.append(f"{readme}: block '{profile}' differs from the render of {path}")
        figure = results.get("figure")
        if figure and not (results_dir.parents[1] / figure).is_file():
            problems.append(f"{path}: its figure {figure} is missing")
        md = results_dir / f"{profile}.md"
        if not md.is_file() or md.read_text() != want:
            problems.append(f"{md}: differs from the render of {path}")
    return problems


def write(results: dict, results_dir: Path = RESULTS_DIR, readme: Path | None = README) -> list[Path]:
    """Write docs/results/<profile>.json and .md and update the README's block; the paths written."""
    results_dir.mkdir(parents=True, exist_ok=True)
    results = dict(results)
    figure_from = results.pop(FIGURE_FROM, None)
    p = results["profile"]
    if figure_from and results.get("figure"):  # the README links it relative to the checkout root
        figure = results_dir.parents[1] / results["figure"]
        figure.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(figure_from, figure)
    js, md = results_dir / f"{p}.json", results_dir / f"{p}.md"
    js.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    body = render(json.loads(js.read_text()))  # render what was written, exactly as --check will
    md.write_text(body)
    written = [js, md]
    if readme is not None:
        readme.write_text(update_readme(readme.read_text(), p, body))
        written.append(readme)
    return written


def _pairs(values: list[str] | None) -> dict[str, Path]:
    out = {}
    for v in values or []:
        source, sep, path = v.partition("=")
        if not sep or not source or not path:
            raise ReportError(f"--baselines takes SOURCE=FILE (e.g. zeroeval=zeroeval_test.jsonl), got {v!r}")
        if not Path(path).is_file():
            raise ReportError(f"--baselines {v}: no such file")
        out[source] = Path(path)
    return out


def report_command(args) -> int:
    """CLI: write the results of a run (RUN_DIR), or with --check only say whether the README is stale (exit 1)."""
    root = Path(args.root)
    readme, results_dir = root / "README.md", root / RESULTS_DIR
    try:
        if args.check or args.run_dir is None:
            problems = check(readme, results_dir)
            for line in problems:
                print(f"stale: {line}", file=sys.stderr)
            if problems:
                print("regenerate with `python -m xrouter_lite report RUN_DIR` (see docs/results/<profile>.json's "
                      "provenance.report_command)", file=sys.stderr)
            else:
                print(f"{readme}: every results block matches its results file")
            return 1 if problems else 0
        results = collect(args.run_dir, _pairs(args.baselines), args.baselines_lambda, args.seeds, args.table)
        for path in write(results, results_dir, None if args.no_readme else readme):
            print(f"wrote {path}")
        return 0
    except ReportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
