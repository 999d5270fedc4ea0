"""Helpers that make small synthetic inputs for the tests."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from xrouter_lite.pool.splits import split_of


def texts_in_split(split: str, n: int, make: Callable[[int], str]) -> list[str]:
    """The first `n` texts `make(0), make(1), ...` that the hash split puts in `split` (splits come from text alone)."""
    out, i = [], 0
    while len(out) < n:
        text = make(i)
        if split_of(text) == split:
            out.append(text)
        i += 1
    return out


# ---------------------------------------------------------------- a small priced pool for the router tests
MODELS = {"tiny": 0.0001, "mid": 0.001, "big": 0.01}  # model -> USD per call
GOOD = '```json\n{"reasoning": "done", "answer": "%s"}\n```'  # a ZeroEval-style answer block


def routing_table(p_correct: dict, question: Callable, *, n_per_task: int, seed: int = 0,
                  unparseable: float = 0.5, usd_jitter: float = 0.0) -> pd.DataFrame:
    """A tidy table (DESIGN.md columns) with a `split` column: the first 70% of each task train, the rest test.

    Each of MODELS is right with `p_correct[task][model]`; `question(task, i, rng)` writes query i. On code
    (crux) `tiny` gives no parseable answer on a share `unparseable` of its wrong answers: what the cascade
    escalates on. `usd_jitter` varies a call's cost by query (+0, +j, +2j of its price).
    """
    rng = np.random.default_rng(seed)
    rows = []
    for task in ("gsm", "crux"):
        for i in range(n_per_task):
            q = question(task, i, rng)
            split = "train" if i < 0.7 * n_per_task else "test"
            for model, usd in MODELS.items():
                ok = float(rng.random() < p_correct[task][model])
                rambles = model == "tiny" and task == "crux" and not ok and rng.random() < unparseable
                rows.append(dict(query_id=f"zeroeval/{task}/{i}", source="zeroeval", task=task, category="",
                                 question=q, gold="7", model=model,
                                 response="I am not sure." if rambles else GOOD % ("7" if ok else "8"),
                                 correct=ok, in_tokens=len(q) // 4, out_tokens=20,
                                 usd=usd * (1 + usd_jitter * (i % 3)), split=split))
    return pd.DataFrame(rows)
