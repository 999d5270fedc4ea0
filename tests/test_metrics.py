"""Metrics on small hand-worked examples: every expected value is derived in a comment."""

from __future__ import annotations

import numpy as np
import pytest

from xrouter_lite.routing import metrics as M
from xrouter_lite.routing.reward import RewardConfig


# ---------------------------------------------------------------- means and reward
def test_accuracy_and_usd_are_means():
    assert M.accuracy([1, 0, 1, 1]) == pytest.approx(0.75)  # 3 of 4
    assert M.usd_per_query([0.01, 0.03]) == pytest.approx(0.02)  # (0.01 + 0.03) / 2
    assert M.usd_per_query(np.zeros(3)) == 0.0  # free calls are allowed


def test_mean_reward_is_success_gated_and_capped():
    # q1: 1*(1 - 3*0.1) = 0.7;  q2: wrong -> 0 whatever it cost;  q3: 1*(1 - min(3*0.5, 0.8)) = 0.2
    r = M.mean_reward([1, 0, 1], [0.1, 0.0, 0.5], lam=3.0)
    assert r == pytest.approx((0.7 + 0.0 + 0.2) / 3)
    # lam = 0: reward is just K * accuracy
    assert M.mean_reward([1, 0, 1, 1], [9, 9, 9, 9], lam=0.0) == pytest.approx(0.75)
    # other knobs come from the config: K = 2, cap 0.5 -> 2 - min(3*0.5, 0.5) = 1.5
    assert M.mean_reward([1], [0.5], lam=3.0, cfg=RewardConfig(K=2.0, cost_max=0.5)) == pytest.approx(1.5)


# ---------------------------------------------------------------- calls
def test_calls_and_shares_count_every_cascade_call():
    decisions = ["a", ("a", "b"), "b", ("a",)]
    # calls: 1 + 2 + 1 + 1 = 5 over 4 queries
    assert M.calls_per_query(decisions) == pytest.approx(5 / 4)
    # a is called 3 times, b twice, c never; shares of all 5 calls
    share = M.model_share(decisions, models=["a", "b", "c"])
    assert share == pytest.approx({"a": 0.6, "b": 0.4, "c": 0.0})
    assert sum(share.values()) == pytest.approx(1.0)
    assert M.calls_per_query(np.array(["x", "y"], dtype=object)) == 1.0


# ---------------------------------------------------------------- oracle
def test_oracle_picks_cheapest_correct_else_cheapest_at_zero():
    correct = np.array([[1, 1, 0],    # both 0 and 1 correct: 1 is cheaper (0.2 < 0.5)
                        [0, 0, 1],    # only model 2 is correct
                        [0, 0, 0],    # none: charged the cheapest (model 1 at 0.1), scores 0
                        [1, 1, 1]])   # tie in cost between 0 and 2: argmin takes the first
    usd = np.array([[0.5, 0.2, 0.1],
                    [0.1, 0.1, 0.9],
                    [0.3, 0.1, 0.2],
                    [0.0, 0.4, 0.0]])
    choice, score, cost = M.oracle_outcomes(correct, usd)
    assert choice.tolist() == [1, 2, 1, 0]
    assert score.tolist() == [1, 1, 0, 1]
    assert cost.tolist() == pytest.approx([0.2, 0.9, 0.1, 0.0])


def test_oracle_is_an_upper_bound_on_every_single_model():
    rng = np.random.default_rng(0)
    correct = (rng.random((200, 4)) < [0.3, 0.5, 0.6, 0.8]).astype(float)
    usd = rng.random((200, 4)) * [1, 2, 4, 8]
    _, score, _ = M.oracle_outcomes(correct, usd)
    assert score.mean() >= correct.mean(axis=0).max()
    assert score.mean() == pytest.approx(correct.max(axis=1).mean())  # correct iff any model is


# ---------------------------------------------------------------- Pareto front and NDCH
PTS = [(0.0, 0.2), (1.0, 0.8), (2.0, 0.6), (3.0, 0.9), (3.0, 0.85), (4.0, 0.7)]


def test_pareto_front():
    # (2, 0.6) is dominated by (1, 0.8); (3, 0.85) by (3, 0.9); (4, 0.7) by (3, 0.9)
    assert M.pareto_front(PTS) == [(0.0, 0.2), (1.0, 0.8), (3.0, 0.9)]
    assert M.pareto_front([(1, 0.5)]) == [(1.0, 0.5)]
    assert M.pareto_front([(1, 0.5), (1, 0.5)]) == [(1.0, 0.5)]  # duplicates collapse
    assert M.pareto_front([]) == []


def test_ndch_drops_points_under_the_chord_and_after_the_peak():
    # (1, 0.3) lies under the chord (0, 0.2)-(2, 0.9), whose value at 1 is 0.55; (3, 0.5) falls after the peak
    assert M.ndch([(0, 0.2), (1, 0.3), (2, 0.9), (3, 0.5)]) == [(0.0, 0.2), (2.0, 0.9)]
    # a point above the chord stays: chord (0,0.2)-(3,0.9) at 1 is 0.433 < 0.8
    assert M.ndch(PTS) == [(0.0, 0.2), (1.0, 0.8), (3.0, 0.9)]


def test_ndch_edge_cases():
    assert M.ndch([(2, 0.4)]) == [(2.0, 0.4)]  # single point
    assert M.ndch([]) == []
    # collinear middle point adds nothing to the hull
    assert M.ndch([(0, 0.0), (1, 0.5), (2, 1.0)]) == [(0.0, 0.0), (2.0, 1.0)]
    # duplicate costs keep the best; equal accuracies at higher cost are dropped (not rising)
    assert M.ndch([(1, 0.5), (1, 0.7), (2, 0.7)]) == [(1.0, 0.7)]
    with pytest.raises(ValueError):
        M.ndch([(-1, 0.5)])
    with pytest.raises(ValueError):
        M.ndch([(1, float("nan"))])


def test_ndch_is_concave_and_non_decreasing_on_random_points():
    rng = np.random.default_rng(1)
    pts = list(zip(rng.random(40), rng.random(40)))
    hull = M.ndch(pts)
    xs, ys = np.array(hull).T
    assert np.all(np.diff(xs) > 0) and np.all(np.diff(ys) > 0)
    slopes = np.diff(ys) / np.diff(xs)
    assert np.all(np.diff(slopes) < 0)  # strictly concave: every kept vertex bends
    # no point lies above the hull where the hull is defined
    assert all(a <= M.hull_value(hull, c) + 1e-12 for c, a in pts if c >= xs[0])


def test_hull_value_is_zero_left_and_flat_right():
    hull = [(1.0, 0.4), (3.0, 0.8)]
    assert M.hull_value(hull, 0.5) == 0.0  # left of the cheapest point
    assert M.hull_value(hull, 2.0) == pytest.approx(0.6)  # halfway on the segment
    assert M.hull_value(hull, 10.0) == pytest.approx(0.8)  # flat right of the last point
    assert M.hull_value(hull, [1.0, 3.0]).tolist() == pytest.approx([0.4, 0.8])


def test_zero_router_is_the_hull_of_single_models():
    singles = [(0.1, 0.5), (1.0, 0.6), (2.0, 0.9), (5.0, 0.85)]
    # (1, 0.6) under chord (0.1,0.5)-(2,0.9) whose value at 1 is 0.5 + 0.4*0.9/1.9 = 0.689; (5,0.85) after the peak
    assert M.zero_router(singles) == [(0.1, 0.5), (2.0, 0.9)]


# ---------------------------------------------------------------- AIQ
def test_aiq_hand_worked():
    # hull (0,0.2)-(1,0.8)-(3,0.9), c_max 4: 0..1 trapezoid 0.5, 1..3 trapezoid 1.7, 3..4 flat 0.9 -> 3.1/4
    assert M.aiq(PTS, c_max=4.0) == pytest.approx(0.775)
    # default c_max = own largest hull cost (3): (0.5 + 1.7) / 3
    assert M.aiq(PTS) == pytest.approx(2.2 / 3)
    # hull starting at cost 1 is 0 on [0, 1): single point (1, 0.6), c_max 2 -> 0.6*1/2
    assert M.aiq([(1.0, 0.6)], c_max=2.0) == pytest.approx(0.3)
    # c_max inside a segment: hull (0,0)-(2,1), c_max 1 -> integral 0.25 / 1
    assert M.aiq([(0, 0.0), (2, 1.0)], c_max=1.0) == pytest.approx(0.25)
    # window entirely left of the hull
    assert M.aiq([(5.0, 0.9)], c_max=2.0) == 0.0


def test_aiq_zero_cost_edge_cases():
    # a free router has a flat hull from 0: AIQ equals its accuracy for any window
    assert M.aiq([(0.0, 0.7)], c_max=3.0) == pytest.approx(0.7)
    assert M.aiq([(0.0, 0.7)], c_max=0.0) == pytest.approx(0.7)  # every router free: the value at 0
    assert M.aiq([]) == 0.0
    with pytest.raises(ValueError):
        M.aiq([(0.0, 0.7)], c_max=-1.0)


def test_aiq_table_shares_c_max_and_more_points_never_hurt():
    table = M.aiq_table({"a": [(1.0, 0.5)], "b": [(0.5, 0.4), (2.0, 0.6)]})
    # c_max = 2 (b's largest cost). a: 0 on [0,1), 0.5 on [1,2] -> 0.5/2 = 0.25.
    # b: 0 on [0,0.5), trapezoid (0.4+0.6)/2*1.5 = 0.75 on [0.5,2] -> 0.75/2 = 0.375
    assert table == pytest.approx({"a": 0.25, "b": 0.375})
    # adding an operating point can only raise the hull, so AIQ never falls
    assert M.aiq([(1.0, 0.5), (0.2, 0.3)], 2.0) >= M.aiq([(1.0, 0.5)], 2.0)


def test_hull_gap():
    hull = [(0.0, 0.2), (2.0, 0.8)]
    # (1, 0.6) vs hull 0.5 at cost 1 -> +0.1;  (3, 0.7) vs flat 0.8 -> -0.1
    assert M.hull_gap([(1.0, 0.6), (3.0, 0.7)], hull) == pytest.approx(0.1)
    assert M.hull_gap([(3.0, 0.7)], hull) == pytest.approx(-0.1)
    # points cheaper than the hull's first point are not compared (the hull is 0 there)
    assert M.hull_gap([(0.5, 0.6)], [(1.0, 0.5)]) == float("-inf")
    assert M.hull_gap([(0.5, 0.6), (1.0, 0.55)], [(1.0, 0.5)]) == pytest.approx(0.05)


# ---------------------------------------------------------------- cost saved at 95%
def test_cost_saved_at_95():
    pts = [(0.1, 0.70), (0.3, 0.86), (0.5, 0.95)]
    # reference model: cost 1.0, acc 0.9 -> need acc >= 0.855; cheapest such point costs 0.3 -> save 70%
    assert M.cost_saved_at(pts, ref_cost=1.0, ref_acc=0.9) == pytest.approx(0.7)
    # not reached -> None
    assert M.cost_saved_at([(0.1, 0.5)], ref_cost=1.0, ref_acc=0.9) is None
    # a point exactly at 95% counts (>=): 0.95*0.8 = 0.76
    assert M.cost_saved_at([(0.25, 0.76)], ref_cost=0.5, ref_acc=0.8) == pytest.approx(0.5)
    # more expensive than the reference: negative saving
    assert M.cost_saved_at([(2.0, 0.9)], ref_cost=1.0, ref_acc=0.9) == pytest.approx(-1.0)
    # the reference itself saves exactly 0, even when its cost was summed in another order
    saved = M.cost_saved_at([(0.1 + 0.2, 0.9)], ref_cost=0.3, ref_acc=0.9)
    assert saved == 0.0 and str(saved) == "0.0"  # not -0.0 or -1e-16


# ---------------------------------------------------------------- PGR, APGR, CPT
def test_pgr():
    # weak 0.5, strong 0.9: acc 0.7 recovers half the gap
    assert M.pgr(0.7, 0.5, 0.9) == pytest.approx(0.5)
    assert M.pgr([0.5, 0.9, 1.0], 0.5, 0.9).tolist() == pytest.approx([0.0, 1.0, 1.25])
    with pytest.raises(ValueError):
        M.pgr(0.7, 0.6, 0.6)


def test_apgr_hand_worked():
    # a random two-model router recovers PGR = share: the diagonal, area 0.5
    assert M.apgr([0.0, 0.5, 1.0], [0.0, 0.5, 1.0]) == pytest.approx(0.5)
    # one point (0.5, 0.8) + anchors (0,0), (1,1): 0.5*0.8/2 + 0.5*(0.8+1)/2 = 0.2 + 0.45
    assert M.apgr([0.5], [0.8]) == pytest.approx(0.65)
    # repeated share keeps the better PGR: same as above
    assert M.apgr([0.5, 0.5], [0.3, 0.8]) == pytest.approx(0.65)
    # order of points does not matter
    assert M.apgr([1.0, 0.25, 0.0], [1.0, 0.5, 0.0]) == pytest.approx(0.25 * 0.5 / 2 + 0.75 * 1.5 / 2)
    with pytest.raises(ValueError):
        M.apgr([1.5], [0.3])


def test_cpt_interpolates_the_first_crossing():
    share, p = [0.0, 0.2, 0.6, 1.0], [0.0, 0.4, 0.8, 1.0]
    # 50% lies between (0.2, 0.4) and (0.6, 0.8): 0.2 + (0.5-0.4)/(0.4)*0.4 = 0.3
    assert M.cpt(share, p, 0.5) == pytest.approx(0.3)
    assert M.cpt(share, p, 0.8) == pytest.approx(0.6)  # reached exactly at a point
    assert M.cpt(share, p, 0.0) == 0.0
    # PGR above 1 at a small share (router beats the strong model): reached there
    assert M.cpt([0.3], [1.2], 0.95) == pytest.approx(0.3 * 0.95 / 1.2)
    # beyond the all-strong anchor and never reached otherwise
    assert M.cpt([0.5], [0.6], 1.1) is None


# ---------------------------------------------------------------- the verdict hull: single models and (0, 0)
def test_verdict_hull_adds_the_free_point_and_aiq_keeps_its_hull():
    singles = [(1.0, 0.5), (2.0, 0.9)]
    # the chord (0, 0)-(2, 0.9) reads 0.45 at cost 1, under (1, 0.5): that model stays a vertex
    assert M.verdict_hull(singles) == [(0.0, 0.0), (1.0, 0.5), (2.0, 0.9)]
    # a model under the chord from (0, 0) drops out: (1, 0.4) < 0.45
    assert M.verdict_hull([(1.0, 0.4), (2.0, 0.9)]) == [(0.0, 0.0), (2.0, 0.9)]
    # cheaper than every model: judged against the chord, not against 0
    assert M.zero_margin((0.5, 0.2), singles) == pytest.approx(0.2 - 0.25)
    assert M.hull_gap([(0.5, 0.2)], M.zero_router(singles)) == float("-inf")  # the AIQ hull cannot judge it
    # AIQ is unchanged: the zero router's AIQ still integrates a hull that is 0 left of (1, 0.5)
    assert M.aiq(M.zero_router(singles), c_max=2.0) == pytest.approx((0.7 * 1.0) / 2.0)
