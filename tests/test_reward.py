"""The cost-aware reward against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from xrouter_lite.routing.reward import RewardConfig, penalty, reward, reward_array, router_usd

PAPER = RewardConfig()  # K=1, lam=3, cost_max=0.8


def test_defaults_are_the_public_code_s():
    assert (PAPER.K, PAPER.lam, PAPER.cost_max) == (1.0, 3.0, 0.8)
    assert (PAPER.charge_router_tokens, PAPER.cost_scale) == (False, None)


@pytest.mark.parametrize("score, cost, expected", [
    (1.0, 0.0, 1.0),          # correct and free: K
    (1.0, 0.01, 0.97),        # 1 - 3 * 0.01
    (1.0, 0.0496, 0.8512),    # GPT-5 on LiveCodeBench: 1 - 3 * 0.0496
    (1.0, 0.2, 0.4),          # 1 - 0.6
    (1.0, 0.5, 0.2),          # 3 * 0.5 = 1.5 capped at 0.8
    (1.0, 1000.0, 0.2),       # the cap holds for any cost
    (0.5, 0.1, 0.35),         # partial credit scales: 0.5 * (1 - 0.3)
    (0.0, 0.0, 0.0),          # wrong and free: nothing
    (0.0, 0.3, 0.0),          # wrong and expensive: still 0, never negative
])
def test_reward_hand_computed(score, cost, expected):
    assert reward(score, cost, PAPER) == pytest.approx(expected, abs=1e-12)


def test_cheaper_correct_answer_earns_more():
    assert reward(1.0, 0.001, PAPER) > reward(1.0, 0.002, PAPER) > reward(0.0, 0.0, PAPER)


def test_invalid_ending_earns_zero_even_when_correct_and_free():
    assert reward(1.0, 0.0, PAPER, invalid=True) == 0.0


def test_readme_config_lambda_2_cap_0_6():
    cfg = RewardConfig(lam=2.0, cost_max=0.6)
    assert reward(1.0, 0.1, cfg) == pytest.approx(0.8)
    assert reward(1.0, 0.4, cfg) == pytest.approx(0.4)  # 0.8 capped at 0.6


def test_cost_scale_divides_cost_before_lambda():
    cfg = RewardConfig(lam=1.0, cost_scale=0.01)  # one 'typical query' of $0.01 costs 1 point, capped at 0.8
    assert penalty(0.002, cfg) == pytest.approx(0.2)
    assert reward(1.0, 0.002, cfg) == pytest.approx(0.8)
    assert reward(1.0, 0.05, cfg) == pytest.approx(0.2)


def test_router_usd_uses_router_prices():
    cfg = RewardConfig(charge_router_tokens=True, router_price_in=0.5, router_price_out=2.0)
    assert router_usd(1_000_000, 500_000, cfg) == pytest.approx(0.5 + 1.0)
    assert router_usd(1_000, 1_000, PAPER) == 0.0


@pytest.mark.parametrize("score", [-0.1, 1.5, math.nan])
def test_bad_scores_raise(score):
    with pytest.raises(ValueError, match="score"):
        reward(score, 0.0, PAPER)


@pytest.mark.parametrize("cost", [-0.01, math.inf, math.nan])
def test_bad_costs_raise_even_when_gated(cost):
    with pytest.raises(ValueError, match="cost"):
        reward(0.0, cost, PAPER)


@pytest.mark.parametrize("kwargs", [{"lam": -1.0}, {"cost_max": math.nan}, {"cost_scale": 0.0}, {"K": math.inf}])
def test_bad_config_raises(kwargs):
    with pytest.raises(ValueError):
        RewardConfig(**kwargs)


def test_config_is_frozen():
    with pytest.raises(AttributeError):
        PAPER.lam = 1.0


def test_reward_array_matches_scalar():
    scores = [1.0, 1.0, 0.0, 0.5, 1.0, 1.0]
    costs = [0.0, 0.01, 0.3, 0.1, 0.5, 0.02]
    invalid = [False, False, False, False, False, True]
    got = reward_array(scores, costs, PAPER, invalid)
    want = [reward(s, c, PAPER, invalid=i) for s, c, i in zip(scores, costs, invalid)]
    np.testing.assert_allclose(got, want)
    np.testing.assert_allclose(got, [1.0, 0.97, 0.0, 0.35, 0.2, 0.0])


def test_reward_array_gate_is_exact_when_k_minus_penalty_is_negative():
    cfg = RewardConfig(K=0.5, cost_max=0.8)  # a correct expensive answer goes negative; a wrong one stays 0
    np.testing.assert_allclose(reward_array([0.0, 1.0], [1.0, 1.0], cfg), [0.0, -0.3])


def test_reward_array_rejects_bad_inputs():
    with pytest.raises(ValueError):
        reward_array([np.nan], [0.0], PAPER)
    with pytest.raises(ValueError):
        reward_array([1.0], [-1.0], PAPER)
