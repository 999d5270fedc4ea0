"""Cutting a list of queries, traces or training rows to a budget without losing a task.

Pool query lists come grouped by task (all GSM8K, then all MATH, ...), and traces and GRPO rows inherit that
order, so a prefix `items[:n]` is one task only: a router trained or evaluated on it has never seen the others.
Every cut in the package goes through `spread`, which keeps each task's share:

    >>> from xrouter_lite.pool.core import Query
    >>> qs = [Query(f"z/{t}/{i}", "z", t, "?") for t in ("gsm", "math") for i in range(4)]
    >>> [q.task for q in qs[:4]]
    ['gsm', 'gsm', 'gsm', 'gsm']
    >>> [q.task for q in spread(qs, 4)]
    ['gsm', 'gsm', 'math', 'math']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def task_of(item) -> str:
    """The task of a Query, an SFT trace (dict with "task" or "query_id"), or a GRPO row (`.query`)."""
    if isinstance(item, dict):
        return item.get("task") or item["query_id"].split("/")[1]
    query = getattr(item, "query", item)
    return query.task


def spread(items: Sequence[T], n: int | None, key: Callable[[T], str] = task_of) -> list[T]:
    """`n` of `items` (all when n is None or >= len), each task keeping its share, in the original order.

    Every task gets one item when `n` allows it, the rest goes in proportion to each task's count (largest
    remainders get the odd items); inside a task the picks are evenly spaced.
    """
    items = list(items)
    if n is None or n >= len(items):
        return items
    if n <= 0:
        return []
    groups: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(key(item), []).append(i)
    sizes = np.array([len(g) for g in groups.values()], dtype=float)
    quota = sizes * n / len(items)
    take = np.floor(quota).astype(int)
    if n >= len(sizes):
        take = np.maximum(take, 1)  # every task at least once
    while take.sum() > n:  # the floor of 1 overspent: take back where a task got most above its share
        take[int(np.argmax(np.where(take > 1, take - quota, -np.inf)))] -= 1
    for j in np.argsort(-(quota - take), kind="stable")[: n - int(take.sum())]:
        take[j] += 1
    keep: list[int] = []
    for idx, k in zip(groups.values(), take):
        if k:
            keep.extend(idx[i] for i in np.linspace(0, len(idx) - 1, k).round().astype(int))
    return [items[i] for i in sorted(keep)]


def limit_per_task(items: Sequence[T], n: int | None, seed: int = 0, key: Callable[[T], str] = task_of) -> list[T]:
    """At most `n` items per task (a seeded random choice), kept in the original order; None = all."""
    if n is None:
        return list(items)
    rng = np.random.default_rng(seed)
    by_task: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        by_task.setdefault(key(item), []).append(i)
    keep = {i for idx in by_task.values() for i in (idx if len(idx) <= n else rng.choice(idx, n, replace=False))}
    return [item for i, item in enumerate(items) if i in keep]
