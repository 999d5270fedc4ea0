"""Verdicts with intervals: the zero router's hull with the free point, the paired bootstrap, the three outcomes."""

from __future__ import annotations

import time

import numpy as np
import pytest

from xrouter_lite.routing import metrics as M
from xrouter_lite.routing import verdicts as V

SINGLES = [(1.0, 0.6), (2.0, 0.8), (4.0, 0.9)]  # (cost, accuracy) of three single models


# ---------------------------------------------------------------- the hull with (0, 0)
def test_a_router_cheaper_than_every_model_is_judged_against_not_answering():
    cheap_and_wrong = (0.1, 0.125)  # cheaper than every model, far less accurate than any
    # AIQ's hull is 0 left of its cheapest point: a margin read there would say +0.125, a "win"
    assert M.hull_value(M.zero_router(SINGLES), 0.1) == 0.0
    # the verdict hull runs from (0, 0) to the best chord: at cost 0.1 mixing "answer nothing" with the
    # 2.0/0.8 model reaches 0.1 * 0.8 / 2.0 = 0.04; with the 1.0/0.6 one 0.06: the hull is 0.06 there
    assert M.verdict_hull(SINGLES)[0] == (0.0, 0.0)
    assert M.hull_value(M.verdict_hull(SINGLES), 0.1) == pytest.approx(0.06)
    assert M.zero_margin(cheap_and_wrong, SINGLES) == pytest.approx(0.125 - 0.06)
    # a free router that answers nothing sits exactly on the hull: no win
    assert M.zero_margin((0.0, 0.0), SINGLES) == 0.0
    # a cheap router at 5% accuracy is below the chord
    assert M.zero_margin((0.5, 0.05), SINGLES) == pytest.approx(0.05 - 0.3)


def test_failing_cheap_router_never_beats_the_hull_with_intervals():
    rng = np.random.default_rng(0)
    n = 200
    singles_correct = (rng.random((n, 3)) < [0.6, 0.8, 0.9]).astype(float)
    singles_usd = np.tile([1e-4, 2e-4, 4e-3], (n, 1)) * rng.uniform(0.8, 1.2, (n, 3))
    # A failing router: on 80% of queries its episode is invalid (free, scores 0), on the rest it calls the
    # cheapest model. It is cheaper than every model and ~12% accurate, below every model.
    called = rng.random(n) < 0.2
    router = V.Outcomes("grpo", np.where(called, singles_correct[:, 0], 0.0), np.where(called, singles_usd[:, 0], 0.0),
                        np.zeros(n))
    old_margin = router.correct.mean() - M.hull_value(M.zero_router(list(zip(singles_usd.mean(0),
                                                                             singles_correct.mean(0)))),
                                                      router.usd.mean())
    assert old_margin == router.correct.mean() > 0.1  # the old check read its whole accuracy as a win
    v = V.verdict(V.zero_margin(router, singles_correct, singles_usd))
    assert v.outcome == "not shown"  # it is a mix of the cheapest model and answering nothing: on the hull
    assert abs(v.interval.estimate) < 0.05


def test_hull_at_matches_the_metrics_hull_on_random_points():
    rng = np.random.default_rng(1)
    for _ in range(300):
        k = int(rng.integers(1, 7))
        xs, ys, c = rng.random(k), rng.random(k), float(rng.random() * 1.3)
        expected = float(M.hull_value(M.verdict_hull(list(zip(xs, ys))), c))
        assert V.hull_at([c], [xs], [ys])[0] == pytest.approx(expected, abs=1e-12)


def test_zero_margin_estimate_is_the_full_sample_margin():
    rng = np.random.default_rng(2)
    n = 120
    sc, su = (rng.random((n, 3)) < [0.5, 0.7, 0.9]).astype(float), rng.random((n, 3)) * [1, 3, 9]
    r = V.Outcomes("r", (rng.random(n) < 0.8).astype(float), rng.random(n) * 2, np.zeros(n))
    iv = V.zero_margin(r, sc, su)
    singles = list(zip(su.mean(axis=0), sc.mean(axis=0)))
    assert iv.estimate == pytest.approx(M.zero_margin((r.usd.mean(), r.correct.mean()), singles))
    assert iv.low <= iv.estimate <= iv.high and iv.n == n and iv.n_boot == V.N_BOOT


# ---------------------------------------------------------------- the bootstrap
def test_bootstrap_is_seeded_and_paired():
    rng = np.random.default_rng(3)
    base = (rng.random(300) < 0.7).astype(float)
    flip = base.copy()
    flip[rng.choice(300, 9, replace=False)] = 1 - flip[rng.choice(300, 9, replace=False)]
    a = V.paired_difference(flip, base, seed=5)
    assert a == V.paired_difference(flip, base, seed=5)  # same seed, same interval
    # paired: two routers that agree on most queries have a far narrower interval than independent samples
    other = (rng.random(300) < 0.7).astype(float)
    b = V.paired_difference(other, base, seed=5)
    assert (a.high - a.low) < 0.5 * (b.high - b.low)


def test_resample_counts_draw_n_queries_per_resample():
    counts = V.resample_counts(7, n_boot=50, seed=0)
    assert counts.shape == (50, 7) and (counts.sum(axis=1) == 7).all()
    with pytest.raises(ValueError):
        V.resample_counts(0)


def test_bootstrap_of_261_queries_is_fast():
    rng = np.random.default_rng(4)
    n, m = 261, 12  # the ZeroEval test split and pool
    sc, su = (rng.random((n, m)) < 0.7).astype(float), rng.random((n, m)) * 1e-3
    r = V.Outcomes("r", (rng.random(n) < 0.7).astype(float), rng.random(n) * 1e-4, rng.random(n))
    start = time.perf_counter()
    V.zero_margin(r, sc, su)
    V.paired_difference(r.reward, sc[:, 0])
    assert time.perf_counter() - start < 3.0  # measured ~0.15 s on one busy core


def test_ratio_saved():
    usd, ref = np.full(50, 1.0), np.full(50, 4.0)
    iv = V.ratio_saved(usd, ref)
    assert iv.estimate == pytest.approx(0.75) and iv.low == pytest.approx(0.75) and iv.high == pytest.approx(0.75)


# ---------------------------------------------------------------- the verdict helper
@pytest.mark.parametrize("iv, outcome", [
    (V.Interval(0.03, 0.01, 0.05), "beats"),  # the whole interval above the line
    (V.Interval(-0.03, -0.05, -0.01), "below"),  # the whole interval below it
    (V.Interval(0.012, -0.014, 0.038), "not shown"),  # it crosses the line
    (V.Interval(0.02, 0.0, 0.04), "not shown"),  # touching the line does not exclude it
])
def test_verdict_has_three_outcomes(iv, outcome):
    v = V.verdict(iv)
    assert v.outcome == outcome and v.shown == (outcome != "not shown")


def test_verdict_text_and_sentences():
    v = V.verdict(V.Interval(0.012, -0.014, 0.038, n=261, n_boot=2000))
    assert v.text == "+1.2 points (95% interval -1.4 to +3.8)"
    s = V.sentence("the GRPO router", v, "the zero router's hull")
    assert s.startswith("the GRPO router is 1.2 points above the zero router's hull") and "not shown" in s
    below = V.verdict(V.Interval(-0.081, -0.12, -0.04, n=261))
    assert V.sentence("SFT", below, "the hull").startswith("SFT is 8.1 points below the hull (95% interval -12.0 to -4.0")
    assert "not shown" not in V.sentence("SFT", below, "the hull")
    assert V.Verdict.from_dict(below.to_dict()) == below
    # another line and unit: cost saved in percent against 0
    saved = V.verdict(V.Interval(0.46, 0.40, 0.52), unit="%", digits=0)
    assert saved.outcome == "beats" and saved.text == "+46% (95% interval +40 to +52)"
    assert V.label(below, more="above") == "below" and V.label(v) == "not shown"


def test_outcomes_from_episodes_reorders_and_names_a_gap():
    from xrouter_lite.routing.episode import Episode

    eps = [Episode(query_id=q, task="t", source="s", allowed=["a"], mode="simple") for q in ("q2", "q1")]
    eps[0].score, eps[0].usd, eps[0].reward = 1.0, 0.5, 0.9
    o = V.Outcomes.from_episodes("r", eps, ["q1", "q2"])
    assert o.correct.tolist() == [0.0, 1.0] and o.usd.tolist() == [0.0, 0.5]
    with pytest.raises(KeyError, match="q3"):
        V.Outcomes.from_episodes("r", eps, ["q3"])


def test_best_single_at_cost():
    singles = {"a": (1.0, 0.6), "b": (2.0, 0.8), "c": (4.0, 0.9), "d": (1.5, 0.5)}
    assert V.best_single_at_cost(2.5, singles) == ("b", 0.8, 2.0)
    assert V.best_single_at_cost(0.5, singles) is None
    assert V.best_single_at_cost(4.0, singles)[0] == "c"  # at its own cost counts


def test_gains_over_sft_are_interval_verdicts():
    from xrouter_lite.training.grpo import gains_over_sft

    rng = np.random.default_rng(6)
    n = 150
    singles = V.Singles(["cheap", "best"], (rng.random((n, 2)) < [0.5, 0.9]).astype(float),
                        np.tile([1e-4, 1e-2], (n, 1)))
    sft = V.Outcomes.from_arrays("sft", singles.correct[:, 0], singles.usd[:, 0], lam=10)  # calls cheap always
    same = gains_over_sft(sft, sft, singles)
    assert same["reward_vs_sft"].outcome == "not shown"  # identical routers: the interval is exactly 0
    assert same["above_zero_hull"].outcome == "not shown"  # a single model lies on the hull
    assert same["cheaper_than_most_accurate"].outcome == "beats"  # 99% cheaper than "best", always
    better = V.Outcomes.from_arrays("grpo", singles.correct.max(axis=1), singles.usd[:, 0] * 2, lam=10)
    g = gains_over_sft(better, sft, singles)
    assert g["reward_vs_sft"].outcome == "beats" and g["above_zero_hull"].outcome == "beats"
    assert "points" in g["reward_vs_sft"].text and "%" in g["cheaper_than_most_accurate"].text


def test_interval_is_calibrated_for_a_router_exactly_on_the_hull():
    """A query-blind mix of two hull models lies on the zero router's hull: "beats" or "below" must be rare."""
    rng = np.random.default_rng(7)
    n, m, trials = 150, 6, 80
    accs, costs = np.array([0.3, 0.5, 0.62, 0.7, 0.8, 0.9]), np.geomspace(1e-4, 1e-2, m)
    hull = M.verdict_hull(list(zip(costs, accs)))
    i, j = (int(np.argmin(abs(costs - c))) for c, _ in hull[1:3])  # two adjacent vertices after (0, 0)
    outcomes = []
    for t in range(trials):
        sc, su = (rng.random((n, m)) < accs).astype(float), np.tile(costs, (n, 1)) * rng.uniform(0.7, 1.3, (n, m))
        pick = np.where(rng.random(n) < 0.5, i, j)
        r = V.Outcomes("mix", sc[np.arange(n), pick], su[np.arange(n), pick], np.zeros(n))
        outcomes.append(V.verdict(V.zero_margin(r, sc, su, n_boot=500, seed=t)).outcome)
    assert outcomes.count("beats") <= 0.08 * trials and outcomes.count("below") <= 0.08 * trials
