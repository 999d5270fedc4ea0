"""The tidy table (docs/DESIGN.md), one row per (query, model): each source built once by `build`, cached as parquet,
and loaded by `load_table` with the report of its build; `pool_summary` per model.

The cache key hashes the input files (name, size, mtime), the code that shapes the table and the prices, so any change
rebuilds; a failed build caches nothing. Every load, cached or not, reports model files that answer only part of their
task and grader failures (`build_notes`), and inside a notebook run records the grader failures for the run's summary
(TABLE_ERRORS). A RouterBench pickle is read only on opt-in (`readers.PICKLE_ENV`).

    >>> table = load_table("../shared/data")  # built once (~1 min), then cached   # doctest: +SKIP
    >>> pool_summary(table).head()                                               # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import pandas as pd

from xrouter_lite.errors import UsageError
from xrouter_lite.pool.build import _build, _conform
from xrouter_lite.pool.core import prices_fingerprint
from xrouter_lite.pool.costs import reprice
from xrouter_lite.pool.readers import (PARTIAL_WARN_SHARE, SOURCES, data_dir_or_default, pickle_allowed,
                                       routerbench_pickles)
from xrouter_lite.profiles import resolve_cache_dir

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- the cache
# The files whose code shapes the cached table: a change to any of them rebuilds it.
TABLE_CODE = ("readers.py", "build.py", "costs.py", "table.py", "grading.py", "tokens.py", "upstream.py", "prices.csv")


def _cache_key(data_dir: Path, source: str, allow_pickle: bool | None = None) -> str:
    """Hash of the source's input files (name, size, mtime) and of the code and prices that shape the table."""
    root = data_dir / source  # each source's files live in a folder of its name
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in {".json", ".zip", ".csv", ".pkl"})
    if source == "routerbench":  # a pickle beside the folder counts too, and whether it may be read
        files = sorted(set(files) | set(routerbench_pickles(data_dir)))
    stats = [(str(p.relative_to(data_dir)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    here = Path(__file__).parent
    code = b"".join((here / name).read_bytes() for name in TABLE_CODE if (here / name).is_file())
    extra = [prices_fingerprint(), pickle_allowed(allow_pickle) if source == "routerbench" else None]
    blob = json.dumps([source, stats, hashlib.sha1(code).hexdigest(), extra]).encode()
    return hashlib.sha1(blob).hexdigest()[:16]


BUILD_META = b"xrouter_lite.build"  # parquet metadata key: the build report (coverage, grader errors) as JSON


def _write_atomic(table: pd.DataFrame, path: Path) -> None:
    """Write parquet (with the build report in its metadata) to a temp file and rename it into place, so a crash
    never leaves half a cache and the report always travels with its table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        arrow = pa.Table.from_pandas(table, preserve_index=False)
        meta = {**(arrow.schema.metadata or {}), BUILD_META: json.dumps(table.attrs, default=str).encode()}
        meta.pop(b"PANDAS_ATTRS", None)  # pandas' own copy of attrs: ours is the one key above
        pq.write_table(arrow.replace_schema_metadata(meta), tmp, compression="zstd")  # ~40% smaller than snappy
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _read_cached(path: Path) -> pd.DataFrame:
    """A cached table with its build report back in `attrs`."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    table = _conform(pd.read_parquet(path))
    table.attrs = json.loads(meta[BUILD_META]) if BUILD_META in meta else {}
    return table


def _load_source(source: str, data_dir: Path, cache_dir, progress: bool, allow_pickle: bool | None = None):
    """One source's table: read from the cache when its key matches, else built (and cached)."""
    if not cache_dir:
        return _build(source, data_dir, progress, allow_pickle)
    path = Path(cache_dir) / f"table-{source}-{_cache_key(data_dir, source, allow_pickle)}.parquet"
    if path.is_file():
        return _read_cached(path)
    table = _build(source, data_dir, progress, allow_pickle)
    _write_atomic(table, path)
    for stale in path.parent.glob(f"table-{source}-*.parquet"):  # one cached table per source
        if stale != path:
            stale.unlink(missing_ok=True)
    return table


# ---------------------------------------------------------------- load_table and what a load reports
def build_notes(source: str, report: dict) -> list[tuple[int, str]]:
    """(logging level, message) lines about one source's build: model files short of their task, grader failures."""
    notes = []
    cov = report.get("coverage") or {}
    for f in cov.get("files", []):
        share = f["answered"] / max(f["expected"], 1)
        level = logging.WARNING if share < PARTIAL_WARN_SHARE else logging.INFO
        notes.append((level, f"{f['file']} answers {f['answered']:,} of {f['expected']:,} {f['task']} questions"))
    for task, n in (cov.get("dropped") or {}).items():
        if n:
            worst = max((lvl for lvl, _ in notes), default=logging.INFO)
            notes.append((worst, f"{source}: kept the {cov['kept'][task]:,} {task} queries answered by every "
                                 f"{source} model; {n:,} of {cov['questions'][task]:,} dropped "
                                 "(the pool's rule: no missing answers)"))
    if cov.get("revised"):
        notes.append((logging.INFO, f"{source}: {cov['revised']} more questions dropped: their text, options or "
                                    "gold differ between model files (revised upstream between runs)"))
    errors = report.get("grader_errors") or {}
    if errors.get("counts"):
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(errors.get("kinds", {}).items()))
        cells = "; ".join(f"{key}: {n} (e.g. {', '.join(errors['examples'].get(key, []))})"
                          for key, n in errors["counts"].items())
        notes.append((logging.WARNING, f"{source}: the grader failed on {sum(errors['counts'].values())} rows "
                                       f"({kinds}); each scored 0 and counted: {cells}"))
    return notes


def grader_error_counts(table: pd.DataFrame) -> dict[str, int]:
    """{"task/model": n} of grader failures while the table was built (from `load_table`'s attrs; {} when none)."""
    return dict(table.attrs.get("grader_errors", {}))


def _record_for_run(reports: dict[str, dict]) -> None:
    """Inside a notebook run, keep each loaded source's grader-error counts for the run's summary.json."""
    from xrouter_lite.profiles import RUNS_ENV

    run_dir = os.environ.get(RUNS_ENV)
    if not run_dir:
        return
    path = Path(run_dir) / "artifacts" / TABLE_ERRORS
    try:
        known = json.loads(path.read_text()) if path.is_file() else {}
        known.update({s: r.get("grader_errors", {}).get("counts", {}) for s, r in reports.items()})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(known, indent=1, sort_keys=True) + "\n")
    except (OSError, ValueError) as err:
        log.warning("could not record the table's grader errors in %s: %s", path, err)


TABLE_ERRORS = "table_grader_errors.json"  # inside a run's artifacts/: {source: {"task/model": n}}
_USE_DEFAULT_CACHE = object()


def load_table(data_dir=None, sources=None, cache_dir=_USE_DEFAULT_CACHE, reasoning_multiplier=None,
               progress: bool = True, allow_pickle: bool | None = None) -> pd.DataFrame:
    """The tidy table of the chosen sources (default: all), built once and then read from a parquet cache.

    `reasoning_multiplier` (a number or {model: x}) reprices o1-mini's hidden reasoning without a
    rebuild; `cache_dir=None` disables the cache (default: $XROUTER_LITE_CACHE, else <checkout>/.cache, looked up at
    each call, not at import). The cache key covers the input files' names, sizes and mtimes, the code (TABLE_CODE)
    and your price file, so any change rebuilds. Every load (cached or not) warns about model files that answer only
    part of their task (their task keeps the queries every model answered) and about grader failures; `table.attrs`
    keeps both:
    `attrs["grader_errors"]` = {"task/model": n}, `attrs["build"]` = {source: its full build report}.
    `allow_pickle` (default: ${PICKLE_ENV}) lets RouterBench read a routerbench_0shot.pkl: unpickling runs code.
    """
    data_dir = data_dir_or_default(data_dir)
    cache_dir = str(resolve_cache_dir()) if cache_dir is _USE_DEFAULT_CACHE else cache_dir
    chosen = list(SOURCES) if sources is None else [sources] if isinstance(sources, str) else list(sources)
    unknown = [s for s in chosen if s not in SOURCES]
    if unknown:
        raise UsageError(f"unknown source(s) {unknown}; choose from {list(SOURCES)}")
    tables = {s: _load_source(s, data_dir, cache_dir, progress, allow_pickle) for s in chosen}
    reports = {s: dict(t.attrs) for s, t in tables.items()}
    for source, report in reports.items():
        for level, note in build_notes(source, report):
            log.log(level, note)
    _record_for_run(reports)
    table = pd.concat(list(tables.values()), ignore_index=True)
    table = table if reasoning_multiplier is None else reprice(table, reasoning_multiplier)
    table.attrs = {"build": reports,
                   "grader_errors": {k: v for r in reports.values()
                                     for k, v in (r.get("grader_errors") or {}).get("counts", {}).items()}}
    return table


# ---------------------------------------------------------------- pool summary
SUMMARY_COLUMNS = ["source", "task", "model", "n", "accuracy", "in_tokens_mean", "out_tokens_mean", "usd_per_query"]


def _oracle_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Per query the cheapest correct model's row, else the cheapest model's row scored 0."""
    t = table.assign(_ok=table["correct"] > 0.5)
    # Sort so each query's first row is: a correct one if any, and the cheapest among those.
    first = t.sort_values(["query_id", "_ok", "usd"], ascending=[True, False, True]).drop_duplicates("query_id")
    return first.assign(model="oracle", correct=first["correct"].where(first["_ok"], 0.0)).drop(columns="_ok")


def pool_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (source, task, model): n, accuracy, mean tokens, USD per query; plus each task's oracle."""
    both = pd.concat([table, _oracle_rows(table)], ignore_index=True)
    summary = both.groupby(["source", "task", "model"], sort=False).agg(
        n=("query_id", "size"), accuracy=("correct", "mean"), in_tokens_mean=("in_tokens", "mean"),
        out_tokens_mean=("out_tokens", "mean"), usd_per_query=("usd", "mean")).reset_index()
    # Each (source, task) block in table order, its oracle row last.
    block = pd.Categorical(summary["source"] + "/" + summary["task"],
                           categories=pd.unique(table["source"] + "/" + table["task"]), ordered=True)
    order = summary.assign(_block=block, _oracle=summary["model"] == "oracle")
    return order.sort_values(["_block", "_oracle"], kind="stable")[SUMMARY_COLUMNS].reset_index(drop=True)
