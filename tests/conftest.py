"""Shared fixtures. Tests that need the recorded upstream data fail loudly when it is missing."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The recorded data directory ($XROUTER_LITE_DATA, else ../shared/data beside the repo)."""
    p = Path(os.environ.get("XROUTER_LITE_DATA") or REPO.parent / "shared" / "data")
    if not (p / "zeroeval").is_dir():
        pytest.fail(f"recorded data not found at {p}: set XROUTER_LITE_DATA to the data directory "
                    "(CI: ../shared/data) or run `python -m xrouter_lite download --data DIR`")
    return p


@pytest.fixture(scope="session")
def real_table(data_dir) -> pd.DataFrame:
    """The full tidy table from the recorded data: built once (~1-2 min on 2 cores), then read from the cache."""
    from xrouter_lite.pool.table import load_table
    from xrouter_lite.profiles import resolve_cache_dir

    return load_table(data_dir, cache_dir=resolve_cache_dir(), progress=False)
