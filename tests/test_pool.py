"""The price table, tiers, sub-pools and the replay pool's lookups and cost arithmetic."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xrouter_lite.pool.core import PoolError, Query, ReplayPool, load_prices, sample_subpool, tier_of, tool_name
from xrouter_lite.pool.tokens import count_tokens

REPO = Path(__file__).resolve().parents[1]
MINI, O1 = "gpt-4o-mini-2024-07-18", "o1-mini-2024-09-12"


def _table() -> pd.DataFrame:
    """Two queries x two models, with round numbers to check the arithmetic by hand."""
    rows = [("zeroeval/gsm/1", "gsm", "What is 2+2?", "4", MINI, "4", 1.0, 100, 50, 4.5e-5, "train"),
            ("zeroeval/gsm/1", "gsm", "What is 2+2?", "4", O1, "5", 0.0, 100, 20, 1.5e-3, "train"),
            ("zeroeval/gsm/2", "gsm", "What is 3+3?", "6", MINI, "6", 1.0, 120, 40, 4.2e-5, "test"),
            ("routerbench/mbpp/7", "mbpp", "Write f", None, "gpt-4-1106-preview", "def f(): pass", 1.0, 30, 5, 9e-4,
             "test")]
    cols = ["query_id", "task", "question", "gold", "model", "response", "correct", "in_tokens", "out_tokens", "usd",
            "split"]
    t = pd.DataFrame(rows, columns=cols)
    t["source"] = t["query_id"].str.split("/").str[0]
    t["category"] = ""
    return t


@pytest.fixture()
def pool() -> ReplayPool:
    return ReplayPool(_table())


# ---------------------------------------------------------------- prices and tiers
def test_price_table_has_every_upstream_model_with_a_source():
    prices = pd.read_csv(REPO / "xrouter_lite" / "pool" / "prices.csv")
    assert prices.groupby("source")["model"].nunique().to_dict() == {"zeroeval": 12, "mmlu-pro": 8, "routerbench": 11}
    assert prices[["price_in", "price_out", "context"]].gt(0).all().all()
    assert prices["price_source"].str.startswith("https://").all() and prices["notes"].str.len().gt(0).all()
    assert pd.to_datetime(prices["price_date"]).dt.year.isin([2023, 2024]).all()
    assert prices.loc[prices["source"] == "routerbench", "price_date"].str.startswith("2023").all()


def test_load_prices_specs_tiers_and_descriptions():
    specs = load_prices()
    assert len(specs) == 29  # 31 rows: the two Llama 3.1 models appear in two sources at one price
    assert specs[MINI].price_in == 0.15 and specs[MINI].price_out == 0.60 and specs[MINI].context == 128000
    assert specs["gpt-4-1106-preview"].tier == "premium" and specs[MINI].tier == "budget"
    assert specs["Meta-Llama-3.1-70B-Instruct"].tier == "standard"
    from xrouter_lite.routing.protocol import describe

    for spec in specs.values():  # the router reads tier, context and prices from protocol.describe
        assert spec.description and f"{spec.tier} tier" in describe(spec) and "context" in describe(spec)
        assert not any(w in spec.description.lower() for w in ("accura", "score", "correct", "%"))
    rb = "mistralai/mistral-7b-chat"  # ids with "/" still make valid tool names
    assert specs[rb].tool == tool_name(rb) == "call_mistralai_mistral_7b_chat"


def test_tier_bands():
    assert tier_of(3.0, 15.0) == "premium" and tier_of(2.5, 2.5) == "premium"
    assert tier_of(0.25, 1.25) == "standard"  # blended exactly 0.50: the bottom of standard
    assert tier_of(0.15, 0.60) == "budget"


def test_load_prices_rejects_conflicting_duplicates(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("model,source,provider,family,price_in,price_out,context\n"
                    "m,a,P,F,1,2,100\nm,b,P,F,1,3,100\n")
    with pytest.raises(ValueError, match="m is listed twice"):
        load_prices(path)


# ---------------------------------------------------------------- sub-pools
def test_sample_subpool_is_seeded_and_bounded():
    ids = [f"m{i}" for i in range(8)]
    draws = [sample_subpool(ids, seed, min_size=2, max_size=5) for seed in range(50)]
    assert draws == [sample_subpool(ids, seed, min_size=2, max_size=5) for seed in range(50)]  # same seed, same pool
    assert all(2 <= len(d) <= 5 and d == [m for m in ids if m in d] for d in draws)  # pool order kept
    assert len({tuple(d) for d in draws}) > 20 and {len(d) for d in draws} == {2, 3, 4, 5}
    rng_a, rng_b = np.random.default_rng(7), np.random.default_rng(7)
    assert [sample_subpool(ids, rng_a) for _ in range(5)] == [sample_subpool(ids, rng_b) for _ in range(5)]
    assert sample_subpool(ids, 0, min_size=8) == ids
    with pytest.raises(ValueError, match="cannot draw"):
        sample_subpool(ids[:1], 0)


# ---------------------------------------------------------------- the replay pool
def test_call_returns_the_record_and_charges_the_system_prompt(pool):
    q = Query(id="zeroeval/gsm/1", source="zeroeval", task="gsm", text="What is 2+2?", gold="4")
    bare = pool.call(MINI, q, temperature=1.3)  # temperature is ignored: the record was sampled once
    assert (bare.text, bare.in_tokens, bare.out_tokens, bare.model) == ("4", 100, 50, MINI)
    assert bare.usd == pytest.approx(4.5e-5)
    system = "You are a careful maths tutor. Answer with the number only."
    extra = count_tokens(system)
    assert extra == 13
    a = pool.call(MINI, q, system_prompt=system)
    assert a.in_tokens == 100 + 13 and a.out_tokens == 50
    assert a.usd == pytest.approx(4.5e-5 + 13 * 0.15 / 1e6)  # system prompt tokens at the input price


def test_unknown_model_query_or_missing_record_raise_pool_error(pool):
    q = Query(id="zeroeval/gsm/1", source="zeroeval", task="gsm", text="What is 2+2?")
    with pytest.raises(PoolError, match="unknown model 'gpt-5'"):
        pool.call("gpt-5", q)
    with pytest.raises(PoolError, match="unknown query 'zeroeval/gsm/999'"):
        pool.call(MINI, Query(id="zeroeval/gsm/999", source="zeroeval", task="gsm", text="?"))
    with pytest.raises(PoolError, match=f"model '{O1}' has no recorded answer to query 'zeroeval/gsm/2'"):
        pool.outcomes(["zeroeval/gsm/2"], [O1])
    with pytest.raises(PoolError, match="no price for model"):
        ReplayPool(_table().assign(model="mystery-model"))


def test_outcomes_is_a_vectorised_lookup(pool):
    correct, usd = pool.outcomes(["zeroeval/gsm/1", "zeroeval/gsm/2", "zeroeval/gsm/1"], [MINI, MINI, O1])
    assert correct.tolist() == [1.0, 1.0, 0.0] and usd.tolist() == pytest.approx([4.5e-5, 4.2e-5, 1.5e-3])
    correct, _ = pool.outcomes(np.array(["zeroeval/gsm/1", "zeroeval/gsm/2"], dtype=object), MINI)  # one model for all
    assert correct.tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="2 query ids but 1 models"):
        pool.outcomes(["zeroeval/gsm/1", "zeroeval/gsm/2"], [MINI])


def test_subpool_outcomes_split_one_lookup_per_query(pool):
    (c1, u1), (c2, u2) = pool.subpool_outcomes(["zeroeval/gsm/1", "zeroeval/gsm/2"], [[MINI, O1], [MINI]])
    assert c1.tolist() == [1.0, 0.0] and u1.tolist() == pytest.approx([4.5e-5, 1.5e-3])
    assert c2.tolist() == [1.0] and u2.tolist() == pytest.approx([4.2e-5])
    assert pool.subpool_outcomes([], []) == []
    with pytest.raises(PoolError, match="no recorded answer to query 'zeroeval/gsm/2'"):
        pool.subpool_outcomes(["zeroeval/gsm/2"], [[MINI, O1]])


def test_records_queries_and_models(pool):
    assert pool.records("zeroeval/gsm/1") == {MINI: "4", O1: "5"}
    assert pool.response_scores("zeroeval/gsm/1") == {"4": 1.0, "5": 0.0}
    assert pool.model_ids == [MINI, O1, "gpt-4-1106-preview"]
    assert pool.models_for("zeroeval") == [MINI, O1] and pool.models_for("routerbench") == ["gpt-4-1106-preview"]
    test = pool.queries(split="test")
    assert [q.id for q in test] == ["zeroeval/gsm/2", "routerbench/mbpp/7"]
    assert test[0] == Query(id="zeroeval/gsm/2", source="zeroeval", task="gsm", text="What is 3+3?", gold="6")
    assert test[1].gold is None
    assert [q.id for q in pool.queries(source="zeroeval", split="train")] == ["zeroeval/gsm/1"]
    frame = pool.query_table(split="test", source="routerbench")
    assert frame["query_id"].tolist() == ["routerbench/mbpp/7"] and "question" in frame
    with pytest.raises(PoolError, match="unknown query 'nope'"):
        pool.records("nope")


def test_queries_without_split_column_get_the_standard_splits():
    pool = ReplayPool(_table().drop(columns="split"))
    assert {q.id for q in pool.queries()} == {"zeroeval/gsm/1", "zeroeval/gsm/2", "routerbench/mbpp/7"}
    assert set(pool.query_table()["split"]) <= {"train", "validation", "test"}


# ---------------------------------------------------------------- the real table
@pytest.mark.data
def test_replay_pool_on_the_full_table(real_table):
    start = time.perf_counter()
    pool = ReplayPool(real_table)
    built = time.perf_counter() - start
    assert built < 5.0, f"ReplayPool took {built:.1f}s to index {len(real_table)} rows"
    assert len(pool.models) == 29 and set(pool.models_for("mmlu-pro")) >= {"jamba-1.5-large"}
    sample = real_table.sample(500, random_state=0)
    correct, usd = pool.outcomes(sample["query_id"], sample["model"])
    assert np.array_equal(correct, sample["correct"].to_numpy()) and np.allclose(usd, sample["usd"])
    q = pool.queries(source="routerbench")[0]
    answer = pool.call(pool.models_for("routerbench")[0], q)
    assert answer.usd > 0 and answer.in_tokens > 0 and q.gold is None


def test_outcome_matrix_matches_pairwise_lookups_and_names_bad_pairs(pool):
    ids, models = ["zeroeval/gsm/1", "zeroeval/gsm/1"], [MINI, O1]
    correct, usd = pool.outcome_matrix(ids, models)
    pc, pu = pool.outcomes(["zeroeval/gsm/1"] * 4, [MINI, O1, MINI, O1])
    assert correct.shape == usd.shape == (2, 2)
    assert (correct.ravel() == pc).all() and (usd.ravel() == pu).all()
    with pytest.raises(PoolError, match="unknown query 'nope'"):
        pool.outcome_matrix(ids + ["nope"], models)
    with pytest.raises(PoolError, match="no recorded answer to query 'zeroeval/gsm/2'"):
        pool.outcome_matrix(["zeroeval/gsm/2"], models)
