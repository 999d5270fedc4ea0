"""The recorded upstream files: where they come from (`UPSTREAM`, pinned commits and sizes), `download`, and the
readers that parse one file and fail loudly, naming it.

Below `readers` (which read these files into the tidy table's raw rows) and `profiles` (which may download when no data is
found), so neither imports the other for it.

    >>> from xrouter_lite.pool.upstream import download                       # doctest: +SKIP
    >>> download("data/upstream", sources=["routerbench"])               # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
import os
import urllib.request
import zipfile
import zlib
from pathlib import Path

from xrouter_lite.errors import DataError, UsageError

PARTIAL = ".download-incomplete"  # left in a data directory while a download runs; gone when it completed


# ---------------------------------------------------------------- reading files, failing loudly
def _json_error(path, text: str, err: json.JSONDecodeError) -> DataError:
    """A DataError naming the file; 'truncated' when the parser ran off the end."""
    # An unterminated string always runs to the end of the text, wherever it started.
    if err.pos >= len(text.rstrip()) - 1 or err.msg.startswith("Unterminated string"):
        return DataError(f"{path}: truncated JSON (ends after {len(text)} chars: {err.msg})")
    return DataError(f"{path}: invalid JSON at line {err.lineno} column {err.colno}: {err.msg}")


def _read_json(path: Path, label=None):
    """Parse a JSON file; a DataError naming it (or `label`) when it is truncated or invalid."""
    text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise _json_error(label or path, text, err) from None


def _read_zip_json(path: Path, label=None):
    """The one JSON document inside a zip; a DataError naming the zip (or `label`) when it is corrupt."""
    path, shown = Path(path), label or path
    try:
        with zipfile.ZipFile(path) as z:
            members = [n for n in z.namelist() if n.endswith(".json")]
            if len(members) != 1:
                raise DataError(f"{shown}: expected one .json inside the zip, found {members or 'none'}")
            text = z.read(members[0]).decode("utf-8")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError) as err:
        raise DataError(f"{shown}: corrupt zip ({err})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise _json_error(f"{shown}:{members[0]}", text, err) from None


def _read_csv(path: Path, label=None):
    """A CSV as a DataFrame; a DataError naming it (or `label`) when it is cut short or malformed."""
    import pandas as pd  # here, not at the top: `profiles` imports this module and stays light

    raw, shown = path.read_bytes(), label or path
    if raw and not raw.endswith(b"\n"):
        # pandas would quietly fill the cut row with NaN (which reads as a blank score): refuse instead.
        raise DataError(f"{shown}: truncated CSV (no newline at the end of the last row)")
    try:
        return pd.read_csv(io.BytesIO(raw))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"{shown}: invalid CSV ({err})") from None


# ---------------------------------------------------------------- download
# The same upstream files as shared/data, at the commits its README names, with their sizes.
UPSTREAM = {
    "zeroeval": ("https://raw.githubusercontent.com/WildEval/ZeroEval/8c1485e", "zeroeval/", {
        "result_dirs/crux.summary.json": 8111,
        "result_dirs/gsm.summary.json": 7530,
        "result_dirs/math-l5.summary.json": 6864,
        "result_dirs/crux/Meta-Llama-3.1-70B-Instruct.json": 2891142,
        "result_dirs/crux/Meta-Llama-3.1-8B-Instruct.json": 2921606,
        "result_dirs/crux/claude-3-5-haiku-20241022.json": 2323611,
        "result_dirs/crux/claude-3-5-sonnet-20241022.json": 1953211,
        "result_dirs/crux/claude-3-haiku-20240307.json": 2224857,
        "result_dirs/crux/deepseek-v2.5-0908.json": 1983582,
        "result_dirs/crux/gemini-1.5-flash.json": 1981079,
        "result_dirs/crux/gemini-1.5-pro.json": 1872813,
        "result_dirs/crux/gemma-2-2b-it.json": 2581132,
        "result_dirs/crux/gpt-4o-2024-08-06.json": 2184094,
        "result_dirs/crux/gpt-4o-mini-2024-07-18.json": 2318690,
        "result_dirs/crux/o1-mini-2024-09-12.json": 1954818,
        "result_dirs/gsm/Meta-Llama-3.1-70B-Instruct.json": 3651876,
        "result_dirs/gsm/Meta-Llama-3.1-8B-Instruct.json": 3880145,
        "result_dirs/gsm/claude-3-5-haiku-20241022.json": 2857123,
        "result_dirs/gsm/claude-3-5-sonnet-20241022.json": 2369630,
        "result_dirs/gsm/claude-3-haiku-20240307.json": 2800290,
        "result_dirs/gsm/deepseek-v2.5-0908.json": 2501381,
        "result_dirs/gsm/gemini-1.5-flash.json": 2327638,
        "result_dirs/gsm/gemini-1.5-pro.json": 2386631,
        "result_dirs/gsm/gemma-2-2b-it.json": 3338425,
        "result_dirs/gsm/gpt-4o-2024-08-06.json": 2478555,
        "result_dirs/gsm/gpt-4o-mini-2024-07-18.json": 2518569,
        "result_dirs/gsm/o1-mini-2024-09-12.json": 2323098,
        "result_dirs/math-l5/Meta-Llama-3.1-70B-Instruct.json": 3251669,
        "result_dirs/math-l5/Meta-Llama-3.1-8B-Instruct.json": 3920310,
        "result_dirs/math-l5/claude-3-5-haiku-20241022.json": 1826323,
        "result_dirs/math-l5/claude-3-5-sonnet-20241022.json": 1575059,
        "result_dirs/math-l5/claude-3-haiku-20240307.json": 1610747,
        "result_dirs/math-l5/deepseek-v2.5-0908.json": 1815662,
        "result_dirs/math-l5/gemini-1.5-flash.json": 1630679,
        "result_dirs/math-l5/gemini-1.5-pro.json": 1612901,
        "result_dirs/math-l5/gemma-2-2b-it.json": 3378569,
        "result_dirs/math-l5/gpt-4o-2024-08-06.json": 2112358,
        "result_dirs/math-l5/gpt-4o-mini-2024-07-18.json": 2135895,
        "result_dirs/math-l5/o1-mini-2024-09-12.json": 1503460}),
    "mmlu-pro": ("https://raw.githubusercontent.com/TIGER-AI-Lab/MMLU-Pro/f418b11", "mmlu-pro/", {
        "eval_results/model_outputs_Meta-Llama-3_1-70B-Instruct_5shots.zip": 3745363,
        "eval_results/model_outputs_Meta-Llama-3_1-8B-Instruct_5shots.zip": 3937818,
        "eval_results/model_outputs_Mixtral-8x7B-Instruct-v0.1_5shots.zip": 3521102,
        "eval_results/model_outputs_Phi-3-mini-4k-instruct_5shots.zip": 3696740,
        "eval_results/model_outputs_Qwen1.5-72B-Chat_5shots.zip": 4190708,
        "eval_results/model_outputs_gemini-1.5-flash-002_5shots.zip": 3926017,
        "eval_results/model_outputs_gemini-1.5-pro-002_5shots.zip": 3554333,
        "eval_results/model_outputs_jamba-1.5-large_5shots.zip": 2920361}),
    "routerbench": ("https://raw.githubusercontent.com/shuhao02/RouterDC/0e63989", "routerbench/", {
        "datasets/routerbench_zs/arc_challenge_test.csv": 1102387,
        "datasets/routerbench_zs/arc_challenge_train.csv": 2579191,
        "datasets/routerbench_zs/mbpp_test.csv": 1322291,
        "datasets/routerbench_zs/mbpp_train.csv": 3128944,
        "datasets/routerbench_zs/winograde_test.csv": 696034,
        "datasets/routerbench_zs/winograde_train.csv": 1623934}),
}


def _local_path(source: str, upstream_path: str) -> str:
    """Where an upstream file lives in the data directory (the shared/data layout)."""
    prefix = UPSTREAM[source][1]
    return prefix + upstream_path.removeprefix("datasets/")


def _check_download(path: Path, name: str, expected_size: int | None) -> None:
    """Refuse a downloaded file of the wrong size, or one that does not parse as its kind."""
    size = path.stat().st_size
    if expected_size is not None and size != expected_size:
        raise DataError(f"{name}: downloaded {size} bytes, expected {expected_size}")
    if name.endswith(".json"):
        _read_json(path, name)
    elif name.endswith(".zip"):
        _read_zip_json(path, name)
    elif name.endswith(".csv"):
        _read_csv(path, name)


def _fetch(url: str, dest: Path, name: str, expected_size: int | None, opener, bar) -> None:
    """Download one file to a temp name, verify it, then rename it into place."""
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with opener.open(url, timeout=60) as resp, tmp.open("wb") as f:
            while chunk := resp.read(1 << 16):
                f.write(chunk)
                bar.update(len(chunk))
        _check_download(tmp, name, expected_size)
        os.replace(tmp, dest)
    except OSError as err:  # urllib's HTTPError/URLError are OSErrors: name the file and the URL
        raise OSError(f"{name}: download from {url} failed ({err})") from err
    finally:
        tmp.unlink(missing_ok=True)


def download(data_dir, sources=None, base_urls: dict[str, str] | None = None, session=None,
             progress: bool = True) -> list[Path]:
    """Fetch the upstream files (README's repos and commits) into data_dir; files already there are kept.

    `base_urls` maps a source to another base URL (a mirror, or a local test server); `session` is
    anything with `.open(url, timeout=...)` such as `urllib.request.build_opener()`. Each file is
    checked (size, and that its JSON/zip/CSV parses) before it is renamed into place.
    """
    from tqdm.auto import tqdm

    data_dir = Path(data_dir)
    chosen = list(UPSTREAM) if not sources else list(sources)
    unknown = [s for s in chosen if s not in UPSTREAM]
    if unknown:
        raise UsageError(f"unknown source(s) {unknown}; choose from {list(UPSTREAM)}")
    opener = session or urllib.request.build_opener()
    todo = []
    for source in chosen:
        base = (base_urls or {}).get(source, UPSTREAM[source][0]).rstrip("/")
        for name, size in UPSTREAM[source][2].items():
            dest = data_dir / _local_path(source, name)
            if dest.is_file() and (size is None or dest.stat().st_size == size):
                continue
            todo.append((f"{base}/{name}", dest, name, size))
    total = sum(s for *_, s in todo if s) or None
    partial = data_dir / PARTIAL  # until every file is in, resolve_data_dir does not take this folder as data
    if not todo:
        return []
    url, _, name, _ = todo[0]
    try:  # one request first: offline, fail in one line before any folder or progress bar appears
        opener.open(url, timeout=20).close()
    except OSError as err:
        raise OSError(f"{name}: download from {url} failed ({err})") from err
    data_dir.mkdir(parents=True, exist_ok=True)
    partial.write_text("a download into this folder has not completed; run it again to finish\n")
    done = 0
    try:
        with tqdm(total=total, unit="B", unit_scale=True, desc="download", disable=not progress) as bar:
            for url, dest, name, size in todo:
                _fetch(url, dest, name, size, opener, bar)
                done += 1
    finally:  # complete, or nothing fetched: no marker; some files in: the marker stays until a rerun finishes
        if done in (0, len(todo)):
            partial.unlink(missing_ok=True)
    return [dest for _, dest, _, _ in todo]
