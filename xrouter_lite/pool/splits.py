"""The train / validation / test split of a question: a hash of its normalised text, the same on every machine.

Its own module because the tidy table (`add_splits`) and the replay pool (`pool.ReplayPool.query_table`, for
a table without splits) both assign it.

    >>> from xrouter_lite.pool.splits import split_of
    >>> split_of("What is 2 + 2?") == split_of("  what is 2 +   2? ")
    True
"""

from __future__ import annotations

import hashlib

import pandas as pd

SPLIT_EDGES = (0.8, 0.9)  # train < 0.8 <= validation < 0.9 <= test on a uniform hash of the text


def _normalise(text: str) -> str:
    """Case- and whitespace-insensitive form of a question, so trivial variants share a split."""
    return " ".join(str(text).lower().split())


def split_of(question: str) -> str:
    """'train', 'validation' or 'test' from a sha1 of the normalised question text (80/10/10, stable)."""
    digest = hashlib.sha1(_normalise(question).encode("utf-8")).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    return "train" if u < SPLIT_EDGES[0] else "validation" if u < SPLIT_EDGES[1] else "test"


def add_splits(table: pd.DataFrame) -> pd.DataFrame:
    """The table with a `split` column; identical question texts always share a split."""
    # Hash each query's text once and map by the short query id (mapping by long texts is slow).
    first = table.loc[~table["query_id"].duplicated(), ["query_id", "question"]]
    splits = pd.Series([split_of(q) for q in first["question"]], index=first["query_id"].to_numpy())
    return table.assign(split=table["query_id"].map(splits).astype(str))
