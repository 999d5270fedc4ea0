"""Cost-quality metrics for routers, on plain numpy arrays and (cost, accuracy) point lists.

Definitions follow ARCHITECTURE.md ("Metric definitions"): accuracy and USD/query are means,
reward is the project's success-gated reward, AIQ integrates the non-decreasing convex hull
(NDCH) of a router's operating points up to a common `c_max`, and the zero router is the NDCH of
the single models' points (what query-blind random mixing of models reaches). Verdicts ("is a router
above the zero router?") use `verdict_hull`, which adds the free point (0, 0) of not answering, with
intervals from `xrouter_lite.routing.verdicts`.

    >>> from xrouter_lite.routing.metrics import ndch, aiq, cost_saved_at
    >>> pts = [(0.0, 0.2), (1.0, 0.8), (2.0, 0.6), (3.0, 0.9)]
    >>> ndch(pts)
    [(0.0, 0.2), (1.0, 0.8), (3.0, 0.9)]
    >>> aiq(pts, c_max=4.0)   # (0.5 + 1.7 + 0.9) / 4: trapezoids 0-1, 1-3, then flat 3-4
    0.775
    >>> round(cost_saved_at(pts, ref_cost=3.0, ref_acc=0.84), 3)   # 0.8 >= 0.95*0.84 at cost 1
    0.667
    >>> round(zero_margin((0.5, 0.3), [(1.0, 0.8), (3.0, 0.9)]), 3)  # below the chord (0,0)-(1,0.8)
    -0.1
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Iterable, Sequence

import numpy as np

from xrouter_lite.routing.reward import RewardConfig, reward_array

Point = tuple[float, float]  # (cost in USD per query, accuracy)


# ---------------------------------------------------------------- per-query means
def accuracy(correct) -> float:
    """Mean score over the evaluated queries (scores are 0/1 or in [0, 1])."""
    return float(np.mean(np.asarray(correct, dtype=float)))


def usd_per_query(usd) -> float:
    """Mean USD spent per evaluated query (all calls of a query summed beforehand)."""
    return float(np.mean(np.asarray(usd, dtype=float)))


def mean_reward(correct, usd, lam: float = 3.0, cfg: RewardConfig | None = None) -> float:
    """Mean of the project's reward score*(K - min(lam*cost, cost_max)) at `lam` (other knobs from `cfg`)."""
    cfg = replace(cfg or RewardConfig(), lam=lam)
    return float(np.mean(reward_array(correct, usd, cfg)))


# ---------------------------------------------------------------- calls
def as_calls(decisions) -> list[tuple[str, ...]]:
    """Normalise decisions to one tuple of called models per query (a bare id: 1 call; None: no call)."""
    return [() if d is None else (d,) if isinstance(d, str) else tuple(d) for d in decisions]


def calls_per_query(decisions) -> float:
    """Mean number of model calls per query (a cascade that escalates counts every call)."""
    calls = as_calls(decisions)
    return float(np.mean([len(c) for c in calls])) if calls else 0.0


def model_share(decisions, models: Iterable[str] | None = None) -> dict[str, float]:
    """Share of all calls that went to each model (sums to 1; `models` adds zero entries)."""
    counts = Counter(m for c in as_calls(decisions) for m in c)
    total = sum(counts.values())
    names = list(models) if models is not None else sorted(counts)
    names += [m for m in sorted(counts) if m not in names]
    return {m: (counts[m] / total if total else 0.0) for m in names}


# ---------------------------------------------------------------- oracle
def oracle_outcomes(correct, usd) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per query the cheapest correct model, else the cheapest model scoring 0: (model index, score, usd).

    `correct` and `usd` are [n_queries, n_models]; a score counts as correct when it is > 0.5
    (RouterBench scores are 0/1 too). "Cheapest" is per query (that query's recorded costs).
    """
    correct, usd = np.asarray(correct, dtype=float), np.asarray(usd, dtype=float)
    ok = correct > 0.5
    # Wrong models get +inf cost so argmin picks the cheapest correct one; rows with none fall back.
    choice = np.where(ok.any(axis=1), np.argmin(np.where(ok, usd, np.inf), axis=1), np.argmin(usd, axis=1))
    rows = np.arange(len(choice))
    return choice, np.where(ok[rows, choice], correct[rows, choice], 0.0), usd[rows, choice]


# ---------------------------------------------------------------- fronts and hulls
def _clean(points: Iterable[Sequence[float]]) -> list[Point]:
    """Points as float tuples; rejects NaN and negative costs, which no hull can place."""
    pts = [(float(c), float(a)) for c, a in points]
    if any(np.isnan(c) or np.isnan(a) for c, a in pts):
        raise ValueError("a (cost, accuracy) point is NaN")
    if any(c < 0 for c, _ in pts):
        raise ValueError("a cost is negative")
    return pts


def pareto_front(points) -> list[Point]:
    """The points no other point dominates (cheaper-or-equal and at-least-as-accurate), by cost."""
    front: list[Point] = []
    # Cheapest first, most accurate first among equal costs: a point survives iff it beats every cheaper one.
    for c, a in sorted(set(_clean(points)), key=lambda p: (p[0], -p[1])):
        if not front or a > front[-1][1]:
            front.append((c, a))
    return front


def ndch(points) -> list[Point]:
    """Non-decreasing convex hull: the upper-left hull vertices, by cost, accuracy rising along it.

    Mixing two operating points at random reaches the segment between them, so the hull (not
    the raw points) is what a router can deliver; the part after the most accurate point is
    dropped because spending more for less is never chosen.
    """
    hull: list[Point] = []
    for p in pareto_front(points):  # the front is cost-ascending with accuracy strictly rising
        # Pop the last vertex while it lies on or under the chord from its predecessor to p.
        while len(hull) >= 2 and _cross(hull[-2], hull[-1], p) >= 0:
            hull.pop()
        hull.append(p)
    return hull


def _cross(o: Point, a: Point, b: Point) -> float:
    """z of (a-o) x (b-o): >= 0 when a is not strictly above the chord o->b (a left turn or straight)."""
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def hull_value(hull: Sequence[Point], cost) -> np.ndarray | float:
    """Accuracy the hull reaches at `cost`: 0 left of its cheapest point, flat right of its last."""
    xs, ys = np.array([p[0] for p in hull]), np.array([p[1] for p in hull])
    c = np.asarray(cost, dtype=float)
    out = np.where(c < xs[0], 0.0, np.interp(c, xs, ys)) if len(xs) else np.zeros_like(c)
    return float(out) if out.ndim == 0 else out


def zero_router(single_points) -> list[Point]:
    """The zero router: the NDCH of the single models' (cost, accuracy) points (what AIQ integrates)."""
    return ndch(single_points)


FREE_POINT: Point = (0.0, 0.0)  # answer nothing: costs nothing, scores nothing


def verdict_hull(single_points) -> list[Point]:
    """The zero router's hull for verdicts: the NDCH of the single models' points *and* of (0, 0).

    Not answering is free, so mixing "answer nothing" with a model reaches every point on the chord from
    (0, 0) to it. A router cheaper than every model is above this hull only if it beats that chord; with
    `zero_router`'s hull (0 left of the cheapest model) a failing router that spends almost nothing would
    "beat" it. AIQ keeps `zero_router` (ARCHITECTURE.md: a hull is 0 left of its cheapest point).
    """
    return ndch([FREE_POINT, *_clean(single_points)])


def zero_margin(point: Point, single_points) -> float:
    """Accuracy of a (cost, accuracy) point above the verdict hull at its own cost (< 0: below it)."""
    c, a = _clean([point])[0]
    return a - float(hull_value(verdict_hull(single_points), c))


def aiq(points, c_max: float | None = None) -> float:
    """AIQ = (1/c_max) * integral over [0, c_max] of the NDCH of `points` (RouterBench).

    `c_max` should be the largest cost among all routers compared (default: this router's own).
    With c_max == 0 every router costs nothing, and AIQ is the hull's accuracy at cost 0.
    """
    hull = ndch(points)
    if not hull:
        return 0.0
    c_max = max(c for c, _ in hull) if c_max is None else float(c_max)
    if c_max < 0:
        raise ValueError("c_max must be >= 0")
    if c_max == 0:
        return float(hull_value(hull, 0.0))
    if hull[0][0] >= c_max:  # the whole hull lies right of the window: it is 0 on [0, c_max]
        return 0.0
    # Exact integral of a piecewise-linear curve: trapezoids between the hull vertices inside the window.
    xs = [c for c, _ in hull if c < c_max] + [c_max]
    return float(np.trapezoid(hull_value(hull, xs), xs) / c_max)


def aiq_table(points_by_router: dict[str, Sequence[Point]]) -> dict[str, float]:
    """AIQ of every router with one shared c_max (the largest cost among all of them)."""
    costs = [float(c) for pts in points_by_router.values() for c, _ in pts]
    c_max = max(costs) if costs else 0.0
    return {name: aiq(pts, c_max) for name, pts in points_by_router.items()}


def hull_gap(points, hull: Sequence[Point]) -> float:
    """Largest accuracy margin of a point over `hull` at the same cost (> 0: beats it); -inf if none compares.

    Only points at or right of the hull's cheapest point count: cheaper ones would "beat" the
    hull's 0 there by their whole accuracy, which says nothing about routing quality.
    """
    pts = [(c, a) for c, a in _clean(points) if hull and c >= hull[0][0]]
    return max(a - hull_value(hull, c) for c, a in pts) if pts else float("-inf")


def cost_saved_at(points, ref_cost: float, ref_acc: float, frac: float = 0.95) -> float | None:
    """1 - cost/ref_cost at the cheapest point with accuracy >= frac*ref_acc; None = "not reached"."""
    ok = [c for c, a in _clean(points) if a >= frac * ref_acc]
    if not ok:
        return None
    # Rounded (and -0.0 -> 0.0): the same cost summed in another order must print as 0, not -1e-16.
    return round(1.0 - min(ok) / ref_cost, 12) + 0.0 if ref_cost > 0 else 0.0


# ---------------------------------------------------------------- two-model metrics
def pgr(acc, acc_weak: float, acc_strong: float):
    """Performance gap recovered: (acc - acc_weak) / (acc_strong - acc_weak)."""
    gap = acc_strong - acc_weak
    if gap == 0:
        raise ValueError("PGR is undefined when the strong and weak models are equally accurate")
    out = (np.asarray(acc, dtype=float) - acc_weak) / gap
    return float(out) if out.ndim == 0 else out


def _pgr_curve(strong_share, pgr_values) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (share, PGR) with the exact anchors (0, 0) all-weak and (1, 1) all-strong added when missing.

    At a repeated share the best PGR is kept: the better threshold is always available.
    """
    s, p = np.asarray(strong_share, dtype=float), np.asarray(pgr_values, dtype=float)
    if s.shape != p.shape:
        raise ValueError("strong_share and pgr_values differ in length")
    if np.any((s < 0) | (s > 1)):
        raise ValueError("strong-call shares must lie in [0, 1]")
    best: dict[float, float] = {0.0: 0.0, 1.0: 1.0}
    seen: set[float] = set()
    for x, y in zip(s.tolist(), p.tolist()):
        best[x] = y if x not in seen else max(best[x], y)
        seen.add(x)
    xs = np.array(sorted(best))
    return xs, np.array([best[x] for x in xs])


def apgr(strong_share, pgr_values) -> float:
    """Area under PGR against the strong-call share over [0, 1] (trapezoids between operating points)."""
    xs, ys = _pgr_curve(strong_share, pgr_values)
    return float(np.trapezoid(ys, xs))


def cpt(strong_share, pgr_values, x: float = 0.5) -> float | None:
    """Call-performance threshold: smallest strong-call share at which PGR reaches `x` (interpolated)."""
    xs, ys = _pgr_curve(strong_share, pgr_values)
    for i, (s, p) in enumerate(zip(xs, ys)):
        if p >= x:
            if i == 0:
                return float(s)
            s0, p0 = xs[i - 1], ys[i - 1]  # p0 < x <= p: the crossing lies on this segment
            return float(s0 + (x - p0) / (p - p0) * (s - s0))
    return None
