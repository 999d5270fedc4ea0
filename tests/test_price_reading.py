"""What a router needs to read prices: prices it can see, and training labels that follow them.

Two models that are always right, so the expected-reward teacher picks whichever is cheaper in the trace's prompt
(`price_jitter` reprices them per trace, in the prompt and in the teacher's values). Whether a router then *learns*
to read them is what `benchmarks/price_reading.py` measures: it trains a tiny router of the cpu profile's size on these
traces and prints how far swapping two prices moves its call; the last test here runs it (a few minutes).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from synthetic import texts_in_split  # noqa: E402
from xrouter_lite.pool.core import ModelSpec, ReplayPool  # noqa: E402
from xrouter_lite.pool.repricing import RepricedPool  # noqa: E402
from xrouter_lite.profiles import SFTSettings, get_profile  # noqa: E402
from xrouter_lite.routing.protocol import router_messages, tool_schemas  # noqa: E402
from xrouter_lite.training import sft as S  # noqa: E402
from xrouter_lite.training.traces import build_traces  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SPECS = {m.id: m for m in [ModelSpec("alpha", 0.50, 2.00, tier="standard", description="Model A"),
                           ModelSpec("beta", 0.50, 2.00, tier="standard", description="Model B")]}
SETTINGS = SFTSettings(vocab_size=400, hidden_size=64, layers=2, heads=4, full_steps=400, full_lr=3e-3, lora_steps=0,
                       batch_size=8, tool_result_chars=40, max_length=2048, agent_share=0.0, full_pool_share=1.0,
                       label_temperature=0.0, lam=1000.0, price_jitter=8.0, jitter_share=1.0, agreement=False)


def make_pool() -> ReplayPool:
    """60 train queries that both models always answer right, at the same list price."""
    rows = []
    texts = texts_in_split("train", 60, lambda i: f"What is {i} plus {i % 5}?")
    for j, text in enumerate(texts):
        for model in SPECS:
            rows.append({"query_id": f"synthetic/gsm/{j}", "source": "synthetic", "task": "gsm", "category": "",
                         "question": text, "gold": "1", "model": model, "response": '{"answer": "1"}',
                         "correct": 1.0, "in_tokens": 200, "out_tokens": 100, "usd": (200 * 0.5 + 100 * 2.0) / 1e6})
    return ReplayPool(pd.DataFrame(rows), SPECS)


@pytest.fixture(scope="module")
def pool() -> ReplayPool:
    return make_pool()


def p_first_call(model, tok, pool, query, prices: dict[str, float]) -> dict[str, float]:
    """The router's probability of naming each tool first, with the models repriced by `prices` (factors)."""
    view = RepricedPool(pool, prices)
    messages = router_messages(query.text, "simple")
    ids = tok.apply_chat_template(messages, tools=tool_schemas([view.spec(m) for m in SPECS], "simple"),
                                  add_generation_prompt=True, tokenize=True, return_dict=False)
    opener = tok.encode('<tool_call>\n{"name": "', add_special_tokens=False)
    with torch.no_grad():
        logits = model(torch.tensor([ids + opener])).logits[0, -1]
    names = tok.convert_tokens_to_ids([SPECS[m].tool for m in SPECS])
    p = logits[names].softmax(-1).tolist()
    return dict(zip(SPECS, p))


def test_swapped_prices_change_the_tokens_the_router_reads(pool, tmp_path):
    profile = replace(get_profile("smoke"), sft=SETTINGS)
    train = pool.queries("train")
    _, tok = S.build_or_load_base(profile, tmp_path, pool, train, device="cpu")

    def prompt(prices):
        view = RepricedPool(pool, prices)
        ids = tok.apply_chat_template(router_messages(train[0].text, "simple"),
                                      tools=tool_schemas([view.spec(m) for m in SPECS], "simple"),
                                      add_generation_prompt=True, tokenize=True, return_dict=False)
        return tok.convert_ids_to_tokens(ids)

    a_cheap, b_cheap = prompt({"alpha": 0.2, "beta": 4.0}), prompt({"alpha": 4.0, "beta": 0.2})
    assert a_cheap != b_cheap and len(a_cheap) == len(b_cheap)  # same layout, other digits and tiers
    name = a_cheap.index(SPECS["alpha"].tool)
    tier = next(i for i in range(name, len(a_cheap)) if a_cheap[i].endswith(" tier; "))  # alpha's tier, then price
    end = next(i for i in range(tier, len(a_cheap)) if a_cheap[i].startswith('", "parameters"'))
    assert (a_cheap[tier], b_cheap[tier]) == ("budget tier; ", "premium tier; ")
    price = a_cheap[tier + 1: end]
    assert any(t.isdigit() for t in price) and price != b_cheap[tier + 1: end]  # digits it can read


def test_the_teacher_labels_follow_the_prices_in_the_prompt(pool):
    traces = build_traces(pool, pool.queries("train") * 4, seed=0, **S.trace_kwargs(SETTINGS))
    cheaper = [min(SPECS, key=lambda m: t["prices"].get(m, 1.0)) for t in traces]
    assert all(t["label"] == c for t, c in zip(traces, cheaper))
    assert {t["label"] for t in traces} == set(SPECS)  # both models are the label, depending on the prices


def test_a_tiny_router_trained_on_repriced_traces_calls_the_cheaper_model():
    # the measurement itself, at the cpu router's size: the call must follow a price swap, not the label's base rate
    import importlib.util

    spec = importlib.util.spec_from_file_location("price_reading", REPO / "benchmarks" / "price_reading.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    res = bench.measure(threads=torch.get_num_threads())
    assert res["p_alpha_when_alpha_cheap"] > 0.9 and res["p_alpha_when_beta_cheap"] < 0.1, res
    assert res["mean_p_label_on_train"] > 0.9, res
