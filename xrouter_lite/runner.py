"""Execute the tutorial notebooks in order with papermill, one run directory per invocation.

    python -m xrouter_lite notebooks --profile smoke      # what CI runs
    python -m xrouter_lite notebooks --profile cpu        # the laptop default

Each run writes `runs/<profile>-<timestamp>/`: the executed notebooks, `artifacts/` (what one notebook
hands to the next), `notebooks.csv` (wall seconds and peak MB per notebook) and `summary.json`; `runs/latest`
then points at it, so notebooks opened in JupyterLab (empty RUN_DIR) continue that series.
Notebooks report evaluated routers with `record_router_results`, which the summary collects, and whole sections
(e.g. notebook 04's λ sweep of a conditioned router with its AIQ beside the MLP's) with `record_summary`; grader
failures (`grader_errors`: {"task/model": n}) reach it by themselves, through files that `table.load_table`
and `grading` write into `artifacts/` while $XROUTER_LITE_RUN_DIR is set.
"""

from __future__ import annotations

import csv
import json
import os
import re
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from xrouter_lite.profiles import (RUNS_ENV, get_profile, new_run_dir, parse_settings, resolve_data_dir, runs_root,
                                   set_latest)

ROUTER_RESULTS = "router_results.jsonl"  # inside artifacts/: one JSON object per evaluated router
SUMMARY_SECTIONS = "summary_sections"  # inside artifacts/: one <name>.json per extra section of summary.json


@dataclass
class NotebookResult:
    """What the runner measured for one notebook."""

    notebook: str
    status: str  # ok | failed | not run
    wall_s: float = 0.0
    peak_mb: float = 0.0
    error: str = ""


class NotebookFailed(RuntimeError):
    """A notebook cell raised; the message names notebook, cell and error."""


def list_notebooks(notebooks_dir: str | os.PathLike) -> list[Path]:
    """Notebooks named `NN_*.ipynb`, in numeric order."""
    found = [p for p in Path(notebooks_dir).glob("*.ipynb") if re.match(r"^\d+_", p.name)]
    return sorted(found, key=lambda p: (int(p.name.split("_", 1)[0]), p.name))


class _PeakMemory:
    """Samples the RSS of this process's children (the notebook kernel) in a background thread."""

    def __init__(self, interval_s: float = 0.25):
        import psutil

        self._me = psutil.Process()
        self._interval = interval_s
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            total = 0
            for child in self._me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:  # a child may exit between listing and reading
                    pass
            self.peak_mb = max(self.peak_mb, total / 2**20)
            self._stop.wait(self._interval)

    def __enter__(self) -> "_PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _describe_failure(notebook: Path, exc: Exception) -> str:
    """One line naming the notebook, the cell and the error."""
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        # papermill's cell_index counts its own injected-parameters cell; exec_count is what Jupyter shows
        return (f"{notebook.name}: cell {exc.cell_index} (execution count {exc.exec_count}) raised "
                f"{exc.ename}: {exc.evalue}")
    return f"{notebook.name}: {type(exc).__name__}: {exc}"


def run_notebooks(profile: str, notebooks_dir: str | os.PathLike = "notebooks",
                  runs: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None,
                  only: list[str] | None = None, progress: bool = True,
                  start_timeout: int = 120, source: str | None = None,
                  resume: str | os.PathLike | None = None, settings: dict | None = None) -> Path:
    """Run every notebook in numeric order into a new run dir under `runs` (default: `profiles.runs_root()`),
    which `runs/latest` then points at; stop at the first failing notebook.

    `resume`: continue that run directory instead (after a crash or an interrupted notebook): the notebooks its
    notebooks.csv records as "ok" are kept, the others run again, in order, with the artifacts already there.

    `settings`: {parameter: value} given to every notebook whose parameters cell declares that name (e.g.
    {"LAMBDA_SWEEP": False}); a name no notebook declares is refused before anything runs.

    The data directory is resolved first (`profiles.resolve_data_dir`: it may download), so a missing one
    fails in one short message before any kernel starts.
    """
    import papermill as pm
    from tqdm.auto import tqdm

    prof = get_profile(profile, source=source)
    notebooks = list_notebooks(notebooks_dir)
    if only:
        notebooks = [p for p in notebooks if any(p.name.startswith(o) for o in only)]
    if not notebooks:
        raise FileNotFoundError(f"no notebooks named NN_*.ipynb in {Path(notebooks_dir).resolve()}")
    declared = {nb.name: set(pm.inspect_notebook(str(nb))) for nb in notebooks}
    check_settings(settings or {}, declared)
    data = str(resolve_data_dir(data_dir))
    done = {}
    if resume:
        run_dir, done = resumable(resume, profile, source, settings)
        set_latest(run_dir)
    else:
        run_dir = new_run_dir(runs or runs_root(), profile).resolve()
    (run_dir / "artifacts").mkdir(exist_ok=bool(resume))
    params = {"PROFILE": profile, "DATA_DIR": data, "RUN_DIR": str(run_dir)}
    if source:  # the recorded source notebooks 02-05 train, evaluate and serve on (notebook 01 reads them all)
        params["SOURCE"] = source
    os.environ[RUNS_ENV] = str(run_dir)  # kernels inherit it, so package helpers find the run too

    results = [done.get(p.name) or NotebookResult(p.name, "not run") for p in notebooks]
    failure = ""
    bar = tqdm(total=len(notebooks), desc=f"notebooks ({profile})", unit="nb", disable=not progress)
    for nb, res in zip(notebooks, results):
        if res.status == "ok":  # resumed: this notebook already ran in this run directory
            bar.update(1)
            continue
        bar.set_postfix_str(nb.name)
        start = time.perf_counter()
        try:
            with _PeakMemory() as mem:
                # only what this notebook declares (notebook 01 reads every source: no SOURCE, no warning)
                own = {k: v for k, v in (params | (settings or {})).items() if k in declared[nb.name]}
                pm.execute_notebook(str(nb), str(run_dir / nb.name), parameters=own,
                                    kernel_name="python3", progress_bar=False, cwd=str(nb.parent.resolve()),
                                    start_timeout=start_timeout)
            res.status = "ok"
        except Exception as exc:  # report which notebook/cell failed, then stop the series
            res.status, res.error = "failed", _describe_failure(nb, exc)
            failure = res.error
        res.wall_s = round(time.perf_counter() - start, 1)
        res.peak_mb = round(mem.peak_mb, 1)
        bar.update(1)
        if failure:
            break
    bar.close()
    write_run_records(run_dir, prof.to_dict(), data, results, source, settings)
    if failure:
        raise NotebookFailed(f"{failure}\n(executed copy with the traceback: {run_dir / nb.name})")
    return run_dir


RUNNER_PARAMETERS = ("PROFILE", "DATA_DIR", "RUN_DIR", "SOURCE")  # set by the runner itself (--profile, ...)


def check_settings(settings: dict, declared: dict[str, set]) -> None:
    """Refuse a --set name that no notebook of the series declares (a typo would otherwise change nothing), or
    one the runner sets from its own options."""
    from xrouter_lite.errors import UsageError

    known = set().union(*declared.values()) if declared else set()
    for name in settings:
        if name in RUNNER_PARAMETERS:
            raise UsageError(f"--set {name}: the runner sets {name} itself; use its option instead")
        if name not in known:
            raise UsageError(f"--set {name}: no notebook of this series has a parameter {name}; they have: "
                             + ", ".join(sorted(known - set(RUNNER_PARAMETERS))))


def resumable(run_dir: str | os.PathLike, profile: str, source: str | None,
              settings: dict | None = None) -> tuple[Path, dict]:
    """The run directory to continue and its notebooks already "ok" ({name: NotebookResult}); a clear error when
    it is not a run of this profile and source."""
    from xrouter_lite.errors import UsageError

    run_dir = Path(run_dir).expanduser().resolve()
    records = run_dir / "notebooks.csv"
    if not (run_dir / "artifacts").is_dir() or not records.is_file():
        raise UsageError(f"--resume {run_dir}: not a run directory (no artifacts/ and notebooks.csv there)")
    summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").is_file() else {}
    was = (summary.get("profile", profile), summary.get("source", "zeroeval"))
    if was != (profile, source or "zeroeval"):
        raise UsageError(f"--resume {run_dir}: that run is profile {was[0]!r}, source {was[1]!r}; pass the same "
                         f"--profile and --source (got {profile!r}, {source or 'zeroeval'!r})")
    if summary.get("notebook_settings", {}) != (settings or {}):
        raise UsageError(f"--resume {run_dir}: that run had --set {summary.get('notebook_settings', {})}; pass the "
                         f"same (got {settings or {}})")
    with open(records, newline="") as f:
        done = {r["notebook"]: NotebookResult(r["notebook"], "ok", float(r["wall_s"] or 0), float(r["peak_mb"] or 0))
                for r in csv.DictReader(f) if r["status"] == "ok"}
    return run_dir, done


def git_commit() -> dict:
    """The checkout's commit and whether it had uncommitted changes, for a run's provenance ({} outside git)."""
    import subprocess

    from xrouter_lite.profiles import checkout_root

    root = checkout_root()
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return {}
    if head.returncode != 0:
        return {}
    return {"git_commit": head.stdout.strip(), "git_dirty": bool(dirty.stdout.strip())}


def write_run_records(run_dir: Path, profile: dict, data_dir: str, results: list[NotebookResult],
                      source: str | None = None, settings: dict | None = None) -> None:
    """Write notebooks.csv and summary.json (the contents ARCHITECTURE.md specifies)."""
    with open(run_dir / "notebooks.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["notebook", "status", "wall_s", "peak_mb", "error"])
        for r in results:
            w.writerow([r.notebook, r.status, r.wall_s, r.peak_mb, r.error])
    summary = {
        "profile": profile["name"],
        "profile_settings": profile,
        "seeds": [profile["seed"]],
        "data_dir": data_dir,
        "source": source or "zeroeval",
        "notebook_settings": dict(settings or {}),  # --set NAME=VALUE: what this run changed from the defaults
        **git_commit(),
        "python": sys.version.split()[0],
        "notebooks": {r.notebook: {"status": r.status, "wall_s": r.wall_s, "peak_mb": r.peak_mb,
                                   **({"error": r.error} if r.error else {})} for r in results},
        "routers": read_router_results(run_dir / "artifacts"),
        "grader_errors": read_grader_errors(run_dir / "artifacts"),
    }
    for name, value in read_summary_sections(run_dir / "artifacts").items():
        summary.setdefault(name, value)  # a section never replaces what the runner itself measured
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


def record_router_results(rows: list[dict], artifacts: str | os.PathLike) -> None:
    """Append evaluated routers (router, accuracy, usd_per_query, mean_reward, aiq, lambda, ...) for summary.json."""
    keep = ("router", "notebook", "split", "source", "n", "accuracy", "usd_per_query", "mean_reward", "aiq",
            "lambda", "valid_rate")
    with open(Path(artifacts) / ROUTER_RESULTS, "a") as f:
        for row in rows:
            f.write(json.dumps({k: row[k] for k in keep if k in row}, default=float) + "\n")


def record_summary(name: str, value, artifacts: str | os.PathLike) -> Path:
    """Keep `value` (JSON-ready) as the section `name` of the run's summary.json; a later call replaces it."""
    if not re.fullmatch(r"[A-Za-z0-9_]+", name):
        raise ValueError(f"a summary section name is letters, digits and _, got {name!r}")
    folder = Path(artifacts) / SUMMARY_SECTIONS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(value, indent=1, default=float) + "\n")
    return path


def read_summary_sections(artifacts: str | os.PathLike) -> dict:
    """{name: value} of every section notebooks kept with `record_summary`."""
    folder = Path(artifacts) / SUMMARY_SECTIONS
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))} if folder.is_dir() else {}


def read_router_results(artifacts: Path) -> list[dict]:
    """Every router result the notebooks of a run recorded, in order."""
    path = artifacts / ROUTER_RESULTS
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_grader_errors(artifacts: Path) -> dict[str, int]:
    """Grader failures of a run as {"task/model": n}: the tables it loaded (built with failures) plus the answers
    graded while it ran ("task/final answer" for router answers); {} when the grader never failed."""
    from xrouter_lite.pool.table import TABLE_ERRORS
    from xrouter_lite.pool.grading import ERROR_LOG

    counts: dict[str, int] = {}
    tables = artifacts / TABLE_ERRORS
    if tables.is_file():
        for per_source in json.loads(tables.read_text()).values():
            for key, n in per_source.items():
                counts[key] = counts.get(key, 0) + int(n)
    log = artifacts / ERROR_LOG
    if log.is_file():
        for line in log.read_text().splitlines():
            if line.strip():
                event = json.loads(line)
                key = f"{event['task']}/{event['who']}"
                counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def notebooks_command(args) -> int:
    """CLI: run the notebook series; exit 1 with the failure report if a notebook fails."""
    try:
        run_dir = run_notebooks(args.profile, args.notebooks, args.runs, args.data, only=args.only,
                                source=getattr(args, "source", None), resume=getattr(args, "resume", None),
                                settings=parse_settings(getattr(args, "set", None)))
    except NotebookFailed as exc:
        print(f"FAILED {exc}", file=sys.stderr)
        return 1
    print(f"all notebooks ran; results in {run_dir} (runs/latest points there)")
    print((run_dir / "notebooks.csv").read_text(), end="")
    print("open them live: .venv/bin/jupyter lab notebooks/  (an empty RUN_DIR continues this run)")
    return 0
