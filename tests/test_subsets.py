"""Cutting lists to a budget keeps every task (a prefix of a task-sorted list would not)."""

from __future__ import annotations

from collections import Counter

from xrouter_lite.pool.core import Query
from xrouter_lite.training.subsets import limit_per_task, spread

TASKS = ["gsm"] * 60 + ["math-l5"] * 30 + ["crux"] * 10  # sorted by task, as pool.queries returns them


def _queries(tasks=TASKS):
    return [Query(f"zeroeval/{t}/{i}", "zeroeval", t, f"question {i}") for i, t in enumerate(tasks)]


def test_spread_keeps_each_tasks_share_on_a_task_sorted_list():
    queries = _queries()
    assert {q.task for q in queries[:20]} == {"gsm"}  # what the old prefix cut trained on
    picked = spread(queries, 20)
    assert Counter(q.task for q in picked) == {"gsm": 12, "math-l5": 6, "crux": 2}
    assert [queries.index(q) for q in picked] == sorted(queries.index(q) for q in picked)  # original order


def test_spread_is_exact_on_odd_budgets_and_passes_everything_through():
    queries = _queries()
    for n in (1, 3, 7, 99):
        assert len(spread(queries, n)) == n
    assert spread(queries, None) == queries and spread(queries, 500) == queries and spread(queries, 0) == []


def test_spread_works_on_traces_and_rows_alike():
    traces = [{"query_id": q.id, "messages": []} for q in _queries()]
    assert Counter(t["query_id"].split("/")[1] for t in spread(traces, 10)) == {"gsm": 6, "math-l5": 3, "crux": 1}

    class Row:
        def __init__(self, q):
            self.query = q
    rows = [Row(q) for q in _queries()]
    assert {r.query.task for r in spread(rows, 3)} == {"gsm", "math-l5", "crux"}


def test_limit_per_task_caps_each_task_and_is_seeded():
    queries = _queries()
    capped = limit_per_task(queries, 5, seed=0)
    assert Counter(q.task for q in capped) == {"gsm": 5, "math-l5": 5, "crux": 5}
    assert capped == limit_per_task(queries, 5, seed=0) and limit_per_task(queries, None) == queries
