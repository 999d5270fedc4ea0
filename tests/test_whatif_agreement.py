"""`whatif` re-implements every baseline as array operations for the explorer; `baselines` is the reference. They
must agree on every decision under every setting the explorer offers: λ, a per-call budget, a smaller model pool
and a task filter, on the real ZeroEval test split."""

from __future__ import annotations

import itertools

import pytest

from xrouter_lite.explore.whatif import eval_data, route_all, what_if
from xrouter_lite.pool.core import ReplayPool
from xrouter_lite.pool.splits import add_splits
from xrouter_lite.routing import baselines as R

pytestmark = pytest.mark.data

RULES = ("cheapest", "strongest", "random", "oracle", "keywords", "length", "cascade")
LAMBDAS = (0.0, 3.0, 30.0, 1000.0)
POOLS = (None, ("gpt-4o-mini-2024-07-18", "gemini-1.5-pro", "Meta-Llama-3.1-8B-Instruct", "claude-3-haiku-20240307"))
TASKS = (None, ("gsm",), ("math-l5", "crux"))


@pytest.fixture(scope="module")
def zeroeval(real_table):
    table = add_splits(real_table[real_table["source"] == "zeroeval"])
    pool = ReplayPool(table)
    train, test = pool.query_table("train", "zeroeval"), pool.query_table("test", "zeroeval")
    return pool, train, test, eval_data(pool, train, test, learned=())


def _sub(pool: ReplayPool, allowed) -> ReplayPool:
    """The replay pool of `allowed` models only: what `baselines` sees when the explorer narrows the pool."""
    return pool if allowed is None else ReplayPool(pool.table[pool.table["model"].isin(allowed)])


def _decisions(name, pool, train, queries) -> list[tuple[str, ...]]:
    router = R.make_router(name, R.source_models(pool, train)).fit(train, pool)
    return [tuple(d) if isinstance(d, (list, tuple)) else (d,) for d in router.route(queries, pool)]


@pytest.mark.parametrize("allowed", POOLS, ids=["all models", "four models"])
def test_every_rule_baseline_makes_the_routers_decisions_at_every_lambda_and_task_filter(zeroeval, allowed):
    pool, train, test, data = zeroeval
    sub = _sub(pool, allowed)
    for lam, tasks in itertools.product(LAMBDAS, TASKS):
        runs = route_all(data, lam, allowed=list(allowed) if allowed else None)
        mask = test["task"].isin(tasks or data.tasks).to_numpy()
        queries = test[mask].reset_index(drop=True)
        for name in RULES + tuple(R.source_models(sub, train)):
            got = [tuple(data.models[c] for c in calls) for calls, m in zip(runs[name].calls, mask) if m]
            if name == "random" and tasks is not None:  # a random router draws per position: compare the subset
                want = [d for d, m in zip(_decisions(name, sub, train, test), mask) if m]
            else:
                want = _decisions(name, sub, train, queries)
            assert got == want, (name, lam, allowed, tasks)


@pytest.mark.parametrize("allowed", POOLS, ids=["all models", "four models"])
def test_summary_rows_match_routers_evaluate_under_lambda_pool_and_tasks(zeroeval, allowed):
    pool, train, test, data = zeroeval
    sub = _sub(pool, allowed)
    for lam, tasks in itertools.product((3.0, 30.0), TASKS):
        table = what_if(data, lam, allowed=list(allowed) if allowed else None, tasks=tasks, hulls=False).table
        table = table.set_index("router")
        queries = test[test["task"].isin(tasks or data.tasks)].reset_index(drop=True)
        for name in ("cheapest", "strongest", "oracle", "keywords", "length", "cascade"):
            row = R.evaluate(R.make_router(name, R.source_models(sub, train)).fit(train, sub), queries, sub, lam=lam)
            for key in ("accuracy", "usd_per_query", "mean_reward"):
                assert table.loc[name, key] == pytest.approx(row[key]), (name, key, lam, allowed, tasks)


@pytest.mark.parametrize("budget", (1e-4, 1e-3))
def test_a_budget_sends_exactly_the_calls_quoted_over_it_to_the_cheapest_allowed_model(zeroeval, budget):
    """`baselines` has no budget: the explorer's guard is defined on top of its decisions, and only there."""
    pool, train, test, data = zeroeval
    for allowed in POOLS:
        sub = _sub(pool, allowed)
        cheapest = R.make_router("cheapest", R.source_models(sub, train)).fit(train, sub).model
        runs = route_all(data, 30.0, budget=budget, allowed=list(allowed) if allowed else None)
        for name in ("strongest", "keywords", "length", *R.source_models(sub, train)):
            want = _decisions(name, sub, train, test)
            quoted = [data.quote[i, data.models.index(d[0])] for i, d in enumerate(want)]
            guarded = [d if q <= budget else (cheapest,) for d, q in zip(want, quoted)]
            got = [tuple(data.models[c] for c in calls) for calls in runs[name].calls]
            assert got == guarded, (name, budget, allowed)
            if name == "strongest" and allowed is None:
                assert guarded != want  # the budget binds somewhere: the guard is exercised
