"""Routers on a small built table: three models, two tasks whose questions look different.

`tiny` is cheap and good at arithmetic word problems but bad at code; `big` is good at both and
100x dearer; `mid` is in between. A query-aware router should therefore beat query-blind mixing.
"""

from __future__ import annotations

import json
import types

import numpy as np
import pandas as pd
import pytest

from synthetic import GOOD, MODELS, routing_table

from xrouter_lite.pool.core import ModelSpec, ReplayPool
from xrouter_lite.routing import metrics as M
from xrouter_lite.routing import baselines as R

P_CORRECT = {"gsm": {"tiny": 0.9, "mid": 0.6, "big": 0.95}, "crux": {"tiny": 0.05, "mid": 0.6, "big": 0.9}}


def _question(task: str, i: int, rng) -> str:
    if task == "gsm":
        a, b = rng.integers(2, 50, size=2)
        return f"Tom has {a} apples and buys {b} more at the market. How many apples does he have now? (#{i})"
    n = rng.integers(2, 9)
    return f"def f(xs):\n    return [x * {n} for x in xs if x % {n}]\nassert f([1, 2, 3]) == ??  # case {i}"


def build_table(n_per_task: int = 100, seed: int = 0) -> pd.DataFrame:
    return routing_table(P_CORRECT, _question, n_per_task=n_per_task, seed=seed, unparseable=0.7)


class RecordingPool(ReplayPool):
    """The replay pool, remembering every query id whose labels were read (to prove train-only fitting)."""

    def __init__(self, table):
        super().__init__(table, specs={m: ModelSpec(m, price_in=usd, price_out=usd) for m, usd in MODELS.items()})
        self.lookups: list[str] = []

    def outcomes(self, query_ids, models):
        self.lookups.extend(query_ids)
        return super().outcomes(query_ids, models)


@pytest.fixture(scope="module")
def table():
    return build_table()


@pytest.fixture()
def pool(table):
    return RecordingPool(table)


@pytest.fixture(scope="module", autouse=True)
def _embed_cache(tmp_path_factory):
    """Embeddings go to a temporary cache, so tests never read a stale one."""
    mp = pytest.MonkeyPatch()
    mp.setattr(R, "EMBED_CACHE", tmp_path_factory.mktemp("emb"))
    yield
    mp.undo()


def test_the_embedding_cache_follows_the_cache_directory_set_after_import(tmp_path, monkeypatch):
    monkeypatch.setattr(R, "EMBED_CACHE", None)
    monkeypatch.setenv("XROUTER_LITE_CACHE", str(tmp_path / "later"))
    assert R.embed_cache_dir() == (tmp_path / "later").resolve() / "embeddings"
    assert R.embed_cache_dir(tmp_path / "given") == tmp_path / "given"


def _split(pool):
    return pool.query_table(split="train"), pool.query_table(split="test")


def _truth(table, queries, model):
    t = table.set_index(["query_id", "model"])
    return np.mean([t.loc[(q, model), "correct"] for q in queries["query_id"]])


# ---------------------------------------------------------------- query-blind baselines
def test_single_cheapest_strongest(table, pool):
    train, test = _split(pool)
    for model in MODELS:
        res = R.evaluate(R.SingleModel(model), test, pool)
        assert res["accuracy"] == pytest.approx(_truth(table, test, model))
        assert res["usd_per_query"] == pytest.approx(MODELS[model])
        assert res["model_share"][model] == 1.0 and res["calls_per_query"] == 1.0
    assert R.Cheapest().fit(train, pool).model == "tiny"
    assert R.Strongest().fit(train, pool).model == "big"


def test_random_is_seeded_and_uses_every_model(pool):
    _, test = _split(pool)
    a, b = R.RandomRouter(0).route(test, pool), R.RandomRouter(0).route(test, pool)
    assert (a == b).all() and set(a) == set(MODELS)
    assert (a != R.RandomRouter(1).route(test, pool)).any()


def test_oracle_is_an_upper_bound(table, pool):
    train, test = _split(pool)
    oracle = R.evaluate(R.Oracle(), test, pool)
    t = table[table["split"] == "test"]
    assert oracle["accuracy"] == pytest.approx(t.groupby("query_id")["correct"].max().mean())
    for name in ["random", "cheapest", "strongest", "keywords", "length", "knn", "mlp", *MODELS]:
        res = R.evaluate(R.make_router(name, list(MODELS)).fit(train, pool), test, pool)
        assert oracle["accuracy"] >= res["accuracy"], name
    # cheapest correct: never dearer than always calling the strongest model
    assert oracle["usd_per_query"] < MODELS["big"]


def test_keyword_and_length_rules(pool):
    train, test = _split(pool)
    kw = R.KeywordRule().fit(train, pool)
    d = kw.route(test, pool)
    # every crux question has `def`/`return`/`assert`, every gsm one "how many": all escalate here
    assert set(d) == {"big"}
    plain = pd.DataFrame({"query_id": ["x"], "task": ["gsm"], "question": ["Name a colour."]})
    assert kw.route(plain, pool).tolist() == ["tiny"]
    ln = R.LengthRule(quantile=0.5).fit(train, pool)
    assert ln.threshold == pytest.approx(train["question"].str.len().median())
    d = ln.route(test, pool)
    long = test["question"].str.len().to_numpy() > ln.threshold
    assert (d[long] == "big").all() and (d[~long] == "tiny").all()



def test_keyword_rule_matches_whole_words_case_blind():
    texts = ["Define a colour.", "DEF f(x): pass", "How  many apples?", "how many apples?", "Cost: 5 $", "x^2",
             "a\\b", "recoded", "Solve it", "", "solver", "équation", "la équation de_f", "prove.", "(code)"]
    hard = R.KeywordRule().hard(pd.DataFrame({"question": texts})).tolist()
    assert hard == [False, True, False, True, True, True, True, False, True, False, False, False, False, True, True]


@pytest.mark.data
def test_keyword_rule_decides_like_python_re_on_every_recorded_prompt(real_table):
    """The RE2 pass (vectorised) and CPython's `re` (one scan per prompt) agree on every recorded question."""
    import re

    prompts = real_table.drop_duplicates("query_id")[["question"]]
    hard = R.KeywordRule().hard(prompts)
    pattern = re.compile(R.HARD_KEYWORDS, re.IGNORECASE)
    expected = np.array([pattern.search(t) is not None for t in prompts["question"]])
    assert len(prompts) > 15_000 and 0.05 < expected.mean() < 0.95
    assert np.array_equal(hard, expected), prompts["question"][hard != expected].head(3).tolist()

def test_cascade_pays_for_every_call(table, pool):
    pytest.importorskip("xrouter_lite.pool.grading")
    train, test = _split(pool)
    cascade = R.Cascade().fit(train, pool)
    assert cascade.chain == ["tiny", "big"]
    d = cascade.route(test, pool)
    escalated = np.array([len(c) == 2 for c in d])
    resp = table.set_index(["query_id", "model"])["response"]
    unparseable = np.array([resp[(q, "tiny")] == "I am not sure." for q in test["query_id"]])
    assert (escalated == unparseable).all() and escalated.any()
    res = R.evaluate(cascade, test, pool)
    # cost: tiny on every query plus big on the escalated ones
    assert res["usd_per_query"] == pytest.approx(MODELS["tiny"] + escalated.mean() * MODELS["big"])
    assert res["calls_per_query"] == pytest.approx(1 + escalated.mean())


def test_invalid_decisions_score_zero_and_cost_nothing(pool):
    _, test = _split(pool)

    class Broken(R.Baseline):
        name = "broken"

        def route(self, queries, pool):
            out = R._fill(len(queries), "big")
            out[0], out[1] = "no-such-model", None
            return out

    res = R.evaluate(Broken(), test, pool)
    assert res["valid_rate"] == pytest.approx((len(test) - 2) / len(test))
    score, cost, valid = R.decision_outcomes(Broken().route(test, pool), test, pool, list(MODELS))
    assert not valid[:2].any() and (score[:2] == 0).all() and (cost[:2] == 0).all()


# ---------------------------------------------------------------- learned routers
@pytest.mark.parametrize("cls", [R.KNNRouter, R.MLPRouter])
def test_learned_router_beats_query_blind_mixing(cls, pool):
    train, test = _split(pool)
    pool.lookups.clear()
    router = cls().fit(train, pool)
    assert set(pool.lookups) <= set(train["query_id"])  # fitting read train labels only
    res = R.evaluate(router, test, pool, lam=3.0)
    assert {"points", "aiq", "valid_rate", "model_share"} <= set(res)
    singles = [(MODELS[m], _truth(pool.table, test, m)) for m in MODELS]
    zero = M.zero_router(singles)
    pts = [(c, a) for _, c, a in res["points"]]
    c_max = max(c for c, _ in pts + singles)
    assert M.aiq(pts, c_max) > M.aiq(zero, c_max)
    assert M.hull_gap(pts, zero) > 0.05  # some operating point clearly above the zero router
    # extremes of the sweep: lam = 0 buys accuracy, the largest lam buys the cheapest model
    p = router.predict(test)
    assert set(router.decide(p, router.cost_estimate(test), router.lam_grid()[-1])) == {"tiny"}
    assert (router.decide(p, router.cost_estimate(test), 0.0) != "tiny").any()


def test_knn_predicts_per_cluster(pool):
    train, test = _split(pool)
    knn = R.KNNRouter(k=10).fit(train, pool)
    p = knn.predict(test)
    gsm, j = (test["task"] == "gsm").to_numpy(), knn.models.index("tiny")
    # tiny: ~0.9 on arithmetic, ~0.05 on code; the neighbours should find that
    assert p[gsm, j].mean() > 0.7 and p[~gsm, j].mean() < 0.3


def test_two_model_metrics(pool):
    train, test = _split(pool)
    out = R.two_model_metrics(R.KNNRouter().fit(train, pool), test, pool)
    assert out["weak"] == "tiny" and out["strong"] == "big"
    assert 0.5 < out["apgr"] <= 1.5  # better than the random diagonal (0.5)
    assert 0.0 <= out["cpt50"] <= out["cpt80"] <= 1.0


def test_two_model_curve_hand_worked():
    # benefit order: q2, q0, q1. weak right on q0 only; strong right on q1, q2.
    share, acc = R.two_model_curve([0.5, 0.1, 0.9], [1, 0, 0], [0, 1, 1])
    assert share.tolist() == pytest.approx([0, 1 / 3, 2 / 3, 1])
    # none strong: 1/3; +q2 (gain 1): 2/3; +q0 (gain -1): 1/3; +q1 (gain 1): 2/3
    assert acc.tolist() == pytest.approx([1 / 3, 2 / 3, 1 / 3, 2 / 3])


def test_embeddings_are_normalised_and_cached(monkeypatch, tmp_path):
    texts = ["What is 2 + 2?", "def f(x): return x"]
    first = R.embed(texts, cache_dir=tmp_path)
    assert first.shape == (2, 384) and np.allclose(np.linalg.norm(first, axis=1), 1, atol=1e-5)
    assert len(list(tmp_path.glob("*.npy"))) == 1
    def no_model():
        raise RuntimeError("cache miss: the model was loaded again")

    monkeypatch.setattr(R, "_minilm", no_model)
    assert np.array_equal(R.embed(texts, cache_dir=tmp_path), first)
    with pytest.raises(RuntimeError, match="cache miss"):  # other texts are another key: the model is needed
        R.embed(texts[:1], cache_dir=tmp_path)


# ---------------------------------------------------------------- the evaluation table
def test_evaluate_all_rows(pool):
    train, test = _split(pool)
    rows = R.evaluate_all(["cheapest", "big", "oracle", "knn"], train, test, pool, lam=3.0)
    by = {r.get("router", "reference"): r for r in rows}
    assert list(by) == ["cheapest", "big", "oracle", "knn", "zero", "reference"]
    assert by["reference"]["model"] == "big"
    # the shared c_max is the dearest point among routers: big, at 0.01 per query
    assert by["reference"]["c_max"] == pytest.approx(MODELS["big"])
    # a hull is 0 left of its cheapest point, so a single point at c_max has AIQ 0 ...
    assert by["big"]["aiq"] == pytest.approx(0.0, abs=1e-9)
    # ... and a single point at cost c has AIQ acc * (1 - c / c_max)
    assert by["cheapest"]["aiq"] == pytest.approx(by["cheapest"]["accuracy"] * (1 - MODELS["tiny"] / MODELS["big"]))
    assert by["knn"]["aiq"] > by["zero"]["aiq"] and by["knn"]["beats_zero_by"] > 0
    assert by["big"]["cost_saved_95"] == pytest.approx(0.0)
    json.dumps(rows)  # the CLI prints these rows as JSON


def test_answered_uses_the_grader_where_there_is_one():
    assert R.answered("gsm", GOOD % "7")
    assert not R.answered("gsm", "I am not sure.")
    # RouterBench tasks have no extractor: any non-empty response counts as an answer
    assert R.answered("mbpp", "def f(): pass") and not R.answered("winogrande", "  ")


# ---------------------------------------------------------------- the recorded data (done-when checks)
@pytest.mark.data
def test_evaluate_command_on_zeroeval_test_split(data_dir, capsys):
    """The CLI's rows; the oracle bounds every router; kNN and MLP beat query-blind mixing (the zero router)."""
    args = types.SimpleNamespace(data=str(data_dir), split="test", routers="all", lam=3.0, source="zeroeval", json=True)
    assert R.evaluate_command(args) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    ref = rows[-1]
    by = {r["router"]: r for r in rows[:-1]}
    assert {"random", "cheapest", "strongest", "oracle", "keywords", "length", "cascade", "knn", "mlp", "zero",
            ref["model"]} <= set(by)
    assert ref["accuracy"] == by[ref["model"]]["accuracy"]
    assert all(by["oracle"]["accuracy"] >= r["accuracy"] for r in by.values() if "accuracy" in r)
    for name in ("knn", "mlp"):
        assert {"points", "aiq", "valid_rate", "model_share", "mean_reward"} <= set(by[name])
        assert by[name]["aiq"] > by["zero"]["aiq"], name
        assert by[name]["beats_zero_by"] > 0, name  # some operating point above the zero router's hull
