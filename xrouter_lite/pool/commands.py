"""The command line's `pool` and `download` (`python -m xrouter_lite pool|download`): `table.pool_summary` and
`upstream.download`, printed for a terminal.

Not beside `download` in `upstream`: the command's default folder comes from `profiles`, which imports `upstream`, and
the package has no import circles (tests/test_layout.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from xrouter_lite.pool.costs import REASONING_MULTIPLIER
from xrouter_lite.pool.table import load_table, pool_summary
from xrouter_lite.pool.upstream import download


def pool_command(args) -> int:
    """CLI `python -m xrouter_lite pool`: the pool summary as JSON lines (--json) or a table."""
    table = load_table(args.data, sources=getattr(args, "source", None) or None, progress=sys.stderr.isatty())
    summary = pool_summary(table)
    if getattr(args, "json", False):
        for row in summary.to_dict(orient="records"):
            print(json.dumps(row))
    else:
        with pd.option_context("display.max_rows", None, "display.width", 200):
            print(summary.to_string(index=False, float_format=lambda x: f"{x:.6g}"))
        print("tokens: xrouter_lite.pool.tokens.count_tokens estimate; usd: tokens x the tokenizer family's factor "
              "(tokens.TOKEN_FACTORS) x prices.csv "
              f"(o1-mini reasoning x{REASONING_MULTIPLIER['o1-mini-2024-09-12']:g}); RouterBench: recorded cost")
    return 0


def download_command(args) -> int:
    """CLI `python -m xrouter_lite download [--data DIR] [--sources ...]` (default DIR: the checkout's data/upstream)."""
    from xrouter_lite.profiles import default_data_dir

    args.data = args.data or str(default_data_dir())
    try:
        fetched = download(args.data, sources=getattr(args, "sources", None) or None)
    except OSError as exc:  # no network: one line naming the file and the reason, not urllib's traceback
        print(f"download failed: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    print(f"downloaded {len(fetched)} file(s) into {Path(args.data).resolve()}; the others were already there")
    return 0
