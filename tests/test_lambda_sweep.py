"""One λ-conditioned checkpoint, a whole curve: `evaluation.lambda_sweep`, its AIQ and the cost-falls verdicts.

The LM is replaced by a scripted router that reads the cost weight from its system prompt (what a λ-conditioned
router does), so these tests check the sweep's plumbing: λ stated in the prompt, the reward at that λ, the rows.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from conditioned import by_lambda, price_ladder, stated_lambda
from test_explore import build_table, make_pool
from xrouter_lite.routing import metrics as M
from xrouter_lite.training import evaluation as E


class ScriptedLM:
    """Stands in for `lm_router.LMRouter` (same constructor): routes by the λ its prompt states, records prompts."""

    prompts: list = []

    def __init__(self, model, tokenizer, **kwargs):
        self.route = by_lambda(price_ladder("tiny", "mid", "big"))

    def __call__(self, messages, tools):
        ScriptedLM.prompts.append(messages)
        return self.route(messages, tools)


@pytest.fixture()
def scripted(monkeypatch):
    import xrouter_lite.training.lm_router as L

    ScriptedLM.prompts = []
    monkeypatch.setattr(L, "LMRouter", ScriptedLM)
    return ScriptedLM


@pytest.fixture(scope="module")
def pool():
    return make_pool(build_table(n_per_task=20))


def test_sweep_states_each_lambda_and_rewards_at_it(scripted, pool):
    qs = pool.queries(split="test")
    by_lam, rows = E.lambda_sweep(None, None, pool, qs, (1000, 1, 10, 100), mode="simple", progress=False)
    assert [r["lambda"] for r in rows] == [1.0, 10.0, 100.0, 1000.0] and list(by_lam) == [1.0, 10.0, 100.0, 1000.0]
    assert {stated_lambda(m) for m in scripted.prompts} == {1.0, 10.0, 100.0, 1000.0}
    for r in rows:
        eps = by_lam[r["lambda"]]
        assert set(r) == set(E.SWEEP_COLUMNS) and r["n"] == len(qs) == len(eps)
        assert r["accuracy"] == pytest.approx(np.mean([e.score for e in eps]))
        assert r["usd_per_query"] == pytest.approx(np.mean([e.usd for e in eps]))
        # the reward is priced at the λ the router was told
        assert r["mean_reward"] == pytest.approx(np.mean([e.score * (1 - min(r["lambda"] * e.usd, 0.8)) for e in eps]))
        assert r["valid_rate"] == 1.0 and math.isclose(sum(r["model_share"].values()), 1.0)
    assert rows[0]["model_share"]["big"] == 1.0 and rows[-1]["model_share"]["tiny"] == 1.0
    usd = [r["usd_per_query"] for r in rows]
    assert usd[0] >= usd[1] > usd[2] > usd[3]  # λ=1 and λ=10 both call big
    # its AIQ is the metric's over the sweep's points, with the c_max it is given
    assert E.sweep_aiq(rows, 0.02) == pytest.approx(M.aiq([(r["usd_per_query"], r["accuracy"]) for r in rows], 0.02))


def test_sweep_reuses_episodes_it_is_given_and_checks_its_arguments(scripted, pool):
    qs = pool.queries(split="test")
    first, _ = E.lambda_sweep(None, None, pool, qs, (10.0,), mode="simple", progress=False)
    scripted.prompts = []
    by_lam, rows = E.lambda_sweep(None, None, pool, qs, (10.0, 100.0), reuse=first, mode="simple", progress=False)
    assert by_lam[10.0] == first[10.0]
    assert {stated_lambda(m) for m in scripted.prompts} == {100.0}  # 10 not rerun
    _, again = E.lambda_sweep(None, None, pool, qs[:3], (10.0,), reuse=first, mode="simple", progress=False)
    assert again[0]["n"] == 3  # episodes on other queries are not reused
    with pytest.raises(TypeError, match="lam"):
        E.lambda_sweep(None, None, pool, qs, (1.0,), lam=3.0)
    with pytest.raises(ValueError, match="cost weight"):
        E.lambda_sweep(None, None, pool, qs, (1.0, -5.0))
    with pytest.raises(ValueError, match="at least one"):
        E.lambda_sweep(None, None, pool, qs, ())
    assert len(E.SWEEP_LAMBDAS) >= 7 and min(E.SWEEP_LAMBDAS) == 1 and max(E.SWEEP_LAMBDAS) == 1000


def test_cost_falls_says_which_steps_are_shown(scripted, pool):
    qs = pool.queries(split="test")
    by_lam, rows = E.lambda_sweep(None, None, pool, qs, (1, 10, 100, 1000), mode="simple", progress=False)
    out = E.cost_falls(by_lam, n_boot=400)
    steps = {(s["from_lambda"], s["to_lambda"]): s for s in out["steps"]}
    assert steps[(1.0, 10.0)]["outcome"] == "not shown"  # both call big: nothing saved
    assert steps[(10.0, 100.0)]["outcome"] == "beats" and steps[(100.0, 1000.0)]["outcome"] == "beats"
    assert steps[(10.0, 100.0)]["estimate"] == pytest.approx(1 - rows[2]["usd_per_query"] / rows[1]["usd_per_query"])
    assert out["monotone"] and out["overall"]["outcome"] == "beats"
    assert out["text"].startswith("From λ=1 to λ=1000 in its prompt the cost per query falls by") and "one standard error" in out["text"]
    # a sweep whose cost rises beyond noise is not monotone, and the sentence names the step
    flipped = {1.0: by_lam[1000.0], 10.0: by_lam[10.0]}
    bad = E.cost_falls(flipped, n_boot=200, name="the router")
    assert bad["text"].startswith("From λ=1 to λ=10 in its prompt the cost per query of the router rises by")
    assert not bad["monotone"] and bad["steps"][0]["outcome"] == "below" and "λ=1→10" in bad["text"]
    with pytest.raises(ValueError, match="two λ"):
        E.cost_falls({1.0: by_lam[1.0]})


def test_sweep_runs_a_real_checkpoint_told_each_lambda(pool, tmp_path):
    """The real LMRouter path (an untrained tiny checkpoint): every episode's system prompt states its λ."""
    import torch

    from xrouter_lite.training.modeling import build_tiny_router, load_saved_router

    torch.set_num_threads(1)
    qs = pool.queries(split="test")[:3]
    build_tiny_router([q.text for q in qs] * 4, tmp_path / "r", vocab_size=300, hidden_size=32, layers=1, heads=2)
    model, tok = load_saved_router(tmp_path / "r", device="cpu")
    by_lam, rows = E.lambda_sweep(model, tok, pool, qs, (5.0, 500.0), mode="simple", max_new_tokens=8,
                                  progress=False, tool_result_chars=64, answer_notes=True)
    for lam, eps in by_lam.items():
        assert all(e.messages[1]["content"].endswith(f"\nCost weight: {lam:g} reward points per USD.") for e in eps)
    assert [r["n"] for r in rows] == [3, 3]


def test_sweep_lambdas_follow_the_trained_grid():
    grid = [1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0]
    assert E.sweep_lambdas({"lambda_grid": grid[::-1]}) == grid  # what it was trained to read
    assert E.sweep_lambdas({"lambda_grid": [1.0, 10.0, 100.0, 1000.0]}) == list(E.SWEEP_LAMBDAS)  # too few points
    assert E.sweep_lambdas({}) == list(E.SWEEP_LAMBDAS)
