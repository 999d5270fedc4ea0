"""Verdicts a reader can trust: paired bootstrap intervals over queries, and one way to say what they show.

Every claim of the form "router A beats B" is a difference measured on a few hundred queries, so it comes
with a 95% interval from a **paired bootstrap**: resample the evaluated queries with replacement (the same
resample for every router and single model, so their differences keep their pairing), recompute the
statistic, and reflect its 2.5th and 97.5th percentiles around the estimate (the basic bootstrap interval;
`_interval` says why). `verdict` then says "beats" or "below" only when
the interval excludes the line (0), and "not shown" otherwise.

The zero router's hull used for verdicts includes the free "answer nothing" point (0, 0): a router is
above it only if it beats every random mix of single models *and* of not answering. (AIQ keeps
ARCHITECTURE.md's hull, which is 0 left of its cheapest point; see `metrics.verdict_hull`.)

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.random(300) < 0.8, rng.random(300) < 0.6      # 0/1 scores of two routers, same queries
    >>> v = verdict(paired_difference(a, b, seed=0))
    >>> v.outcome, v.text
    ('beats', '+13.3 points (95% interval +6.0 to +20.7)')
    >>> verdict(paired_difference(a[:10], b[:10], seed=0)).outcome   # 10 queries: too few to tell
    'not shown'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

N_BOOT = 2000  # resamples; 2,000 keeps the 2.5/97.5 percentiles stable to ~0.1 point at n = 261
LEVEL = 0.95  # two-sided interval
OUTCOMES = ("beats", "below", "not shown")


# ---------------------------------------------------------------- per-query outcomes
@dataclass
class Outcomes:
    """One router's per-query score, USD and reward on a fixed query order (the unit every interval resamples)."""

    name: str
    correct: np.ndarray  # [n] score in [0, 1]
    usd: np.ndarray  # [n] USD spent on the query (all calls)
    reward: np.ndarray  # [n] the project's reward at the evaluation lambda

    def __post_init__(self):
        self.correct, self.usd, self.reward = (np.asarray(x, dtype=float)
                                               for x in (self.correct, self.usd, self.reward))
        if not (len(self.correct) == len(self.usd) == len(self.reward)):
            raise ValueError(f"{self.name}: correct, usd and reward differ in length")

    def __len__(self) -> int:
        return len(self.correct)

    @classmethod
    def from_episodes(cls, name: str, episodes, query_ids: Sequence[str] | None = None) -> "Outcomes":
        """From `Episode`s (score, usd, reward), reordered to `query_ids` when given (a KeyError names a gap)."""
        if query_ids is not None:
            by_id = {ep.query_id: ep for ep in episodes}
            missing = [q for q in query_ids if q not in by_id]
            if missing:
                raise KeyError(f"{name}: no episode for {len(missing)} queries, e.g. {missing[0]!r}")
            episodes = [by_id[q] for q in query_ids]
        return cls(name, [ep.score for ep in episodes], [ep.usd for ep in episodes], [ep.reward for ep in episodes])

    @classmethod
    def from_arrays(cls, name: str, correct, usd, lam: float, cfg=None, invalid=None) -> "Outcomes":
        """From per-query score and USD; the reward at `lam` (other knobs from `cfg`; invalid episodes earn 0)."""
        from dataclasses import replace

        from xrouter_lite.routing.reward import RewardConfig, reward_array

        cfg = replace(cfg or RewardConfig(), lam=float(lam))
        return cls(name, correct, usd, reward_array(np.asarray(correct, float), np.asarray(usd, float), cfg,
                                                    invalid=invalid))


# ---------------------------------------------------------------- the bootstrap
def resample_counts(n: int, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """[n_boot, n] how often each query is drawn in each resample (rows sum to n); seeded, so reproducible."""
    if n < 1:
        raise ValueError("a bootstrap needs at least one query")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(n_boot, n)) + n * np.arange(n_boot)[:, None]
    return np.bincount(draws.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(float)


def resampled_means(columns, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """[n_boot, k] means of each of the k columns of `columns` ([n, k]) under the same query resamples."""
    x = np.asarray(columns, dtype=float)
    x = x[:, None] if x.ndim == 1 else x
    counts = resample_counts(len(x), n_boot, seed)
    return counts @ x / len(x)


@dataclass(frozen=True)
class Interval:
    """An estimate on all queries and its bootstrap interval (basic bootstrap, see `_interval`)."""

    estimate: float
    low: float
    high: float
    level: float = LEVEL
    n: int = 0  # queries resampled
    n_boot: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def _interval(estimate: float, samples: np.ndarray, n: int, n_boot: int, level: float = LEVEL) -> Interval:
    """The basic (reverse-percentile) bootstrap interval [2*est - q_high, 2*est - q_low].

    Why not the plain percentiles: the zero router's hull is a maximum over noisy single-model points, so the
    hull recomputed in a resample sits higher than the true hull, and margins over it come out low. The basic
    interval reflects that bias back. Measured on simulated routers that lie exactly on the hull (a query-blind
    mix of two hull models, 261 queries, 12 models, 300 trials each): the percentile interval said "below" in
    6-9% of trials and "beats" in 0-0.3%, the basic interval 1.3-2.7% and 1.7-3% (2.5% each is nominal).
    For differences of means both intervals agree.
    """
    tail = (1 - level) / 2 * 100
    q_low, q_high = np.percentile(samples, [tail, 100 - tail])
    low, high = 2 * estimate - q_high, 2 * estimate - q_low
    return Interval(float(estimate), float(low), float(high), level, int(n), int(n_boot))


def paired_difference(a, b, n_boot: int = N_BOOT, seed: int = 0) -> Interval:
    """mean(a) - mean(b) over the same queries (e.g. two routers' rewards or scores), with its interval."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in shape: {a.shape} vs {b.shape}")
    d = a - b
    return _interval(d.mean(), resampled_means(d, n_boot, seed)[:, 0], len(d), n_boot)


def ratio_saved(usd, ref_usd, n_boot: int = N_BOOT, seed: int = 0) -> Interval:
    """1 - mean(usd)/mean(ref_usd) over the same queries: the share of the reference's cost saved."""
    m = resampled_means(np.column_stack([usd, ref_usd]), n_boot, seed)
    est = 1.0 - np.mean(usd) / np.mean(ref_usd) if np.mean(ref_usd) > 0 else 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        samples = np.where(m[:, 1] > 0, 1.0 - m[:, 0] / m[:, 1], 0.0)
    return _interval(est, samples, len(np.asarray(usd)), n_boot)


# ---------------------------------------------------------------- the zero router's hull, vectorised
def hull_at(cost, xs, ys) -> np.ndarray:
    """Accuracy of the best mix of the points (xs, ys) and of (0, 0) that spends at most `cost`, per row.

    `cost` is [B], `xs`/`ys` are [B, P] (one set of single-model points per resample). Spending at most c,
    the best random mix uses at most two points, one at or below c and one above it, so the value is the
    largest of: every point at or below c, and every chord from such a point to one above c, read at c.
    That is the non-decreasing convex hull of the points with (0, 0) added (flat right of its last point),
    exactly `metrics.hull_value(metrics.verdict_hull(points), c)` (tests check it).
    """
    c = np.atleast_1d(np.asarray(cost, dtype=float))
    xs, ys = np.atleast_2d(np.asarray(xs, dtype=float)), np.atleast_2d(np.asarray(ys, dtype=float))
    zeros = np.zeros((len(xs), 1))
    xs, ys = np.concatenate([zeros, xs], axis=1), np.concatenate([zeros, ys], axis=1)
    cc = c[:, None]
    best = np.max(np.where(xs <= cc, ys, -np.inf), axis=1)  # (0, 0) is always affordable: best >= 0
    xi, yi, xj, yj = xs[:, :, None], ys[:, :, None], xs[:, None, :], ys[:, None, :]
    chord = (xi <= cc[:, :, None]) & (xj > cc[:, :, None])
    with np.errstate(divide="ignore", invalid="ignore"):
        value = yi + (cc[:, :, None] - xi) / (xj - xi) * (yj - yi)
    return np.maximum(best, np.max(np.where(chord, value, -np.inf), axis=(1, 2)))


def zero_margin(router: Outcomes, singles_correct, singles_usd, n_boot: int = N_BOOT, seed: int = 0) -> Interval:
    """Accuracy above the zero router's hull (single models + the free point (0, 0)) at the router's own cost.

    In every resample the single models' points are recomputed on the same resampled queries, so the
    interval covers the uncertainty of the router's point and of the hull it is compared with.
    """
    return zero_margins([router], singles_correct, singles_usd, n_boot, seed)[0]


def zero_margins(routers: Sequence[Outcomes], singles_correct, singles_usd, n_boot: int = N_BOOT,
                 seed: int = 0) -> list[Interval]:
    """`zero_margin` of several routers on the same queries, from one set of resamples (as fast as one)."""
    sc, su = np.asarray(singles_correct, dtype=float), np.asarray(singles_usd, dtype=float)
    n = len(sc)
    if sc.shape != su.shape or sc.ndim != 2 or any(len(r) != n for r in routers):
        raise ValueError(f"single-model outcomes must be [n, models] with every router's n; got {sc.shape}, "
                         f"{su.shape} and routers of {[len(r) for r in routers]} queries")
    k, m = len(routers), sc.shape[1]
    # columns: the routers' scores, the routers' USD, the models' scores, the models' USD
    cols = np.column_stack([*(r.correct for r in routers), *(r.usd for r in routers), sc, su])
    full, boot = cols.mean(axis=0, keepdims=True), resampled_means(cols, n_boot, seed)

    def margin(means, i):
        return means[:, i] - hull_at(means[:, k + i], means[:, 2 * k + m:], means[:, 2 * k:2 * k + m])

    return [_interval(float(margin(full, i)[0]), margin(boot, i), n, n_boot) for i in range(k)]


def best_single_at_cost(cost: float, singles: dict[str, tuple[float, float]]) -> tuple[str, float, float] | None:
    """The most accurate single model costing at most `cost` (ties: the cheaper): (name, accuracy, usd), or None."""
    ok = [(a, -u, name) for name, (u, a) in singles.items() if u <= cost * (1 + 1e-9)]
    if not ok:
        return None
    a, neg_u, name = max(ok)
    return name, a, -neg_u


# ---------------------------------------------------------------- saying it
@dataclass(frozen=True)
class Verdict:
    """What an interval shows against a line: "beats", "below" or "not shown", and how to say it."""

    interval: Interval
    outcome: str  # one of OUTCOMES
    text: str  # e.g. "+1.2 points (95% interval -1.4 to +3.8)"
    unit: str = "points"
    scale: float = 100.0  # the interval's numbers times this are in `unit`
    line: float = 0.0

    @property
    def shown(self) -> bool:
        return self.outcome != "not shown"

    def size(self, digits: int = 1) -> str:
        """The estimate's size without sign, in the unit: '1.2 points'."""
        return f"{abs(self.interval.estimate - self.line) * self.scale:.{digits}f}{_sep(self.unit)}{self.unit}"

    def bounds(self, digits: int = 1) -> str:
        lo, hi = ((v - self.line) * self.scale for v in (self.interval.low, self.interval.high))
        return f"{_signed(lo, digits)} to {_signed(hi, digits)}"

    def to_dict(self) -> dict:
        return {**self.interval.to_dict(), "outcome": self.outcome, "text": self.text, "unit": self.unit,
                "scale": self.scale, "line": self.line}

    @classmethod
    def from_dict(cls, d: dict) -> "Verdict":
        keys = Interval.__dataclass_fields__
        return cls(Interval(**{k: d[k] for k in keys if k in d}), d["outcome"], d["text"], d.get("unit", "points"),
                   d.get("scale", 100.0), d.get("line", 0.0))


def _sep(unit: str) -> str:
    return "" if unit == "%" else " "


def _signed(x: float, digits: int) -> str:
    """+1.2 / -3.4, and +0.0 rather than -0.0."""
    s = f"{x:+.{digits}f}"
    return s if s.strip("+-0.") else s.replace("-", "+")


def verdict(iv: Interval, line: float = 0.0, unit: str = "points", scale: float = 100.0, digits: int = 1) -> Verdict:
    """"beats" when the whole interval lies above `line`, "below" when it lies below, else "not shown"."""
    outcome = "beats" if iv.low > line else "below" if iv.high < line else "not shown"
    est = (iv.estimate - line) * scale
    lo, hi = ((v - line) * scale for v in (iv.low, iv.high))
    pct = f"{round(iv.level * 100):g}%"
    text = f"{_signed(est, digits)}{_sep(unit)}{unit} ({pct} interval {_signed(lo, digits)} to {_signed(hi, digits)})"
    return Verdict(iv, outcome, text, unit, scale, line)


def sentence(subject: str, v: Verdict, comparator: str = "", more: str = "above", less: str = "below",
             digits: int = 1, extra: str = "") -> str:
    """One plain sentence: "<subject> is 1.2 points below <comparator> (95% interval ...)[, extra]", saying
    "not shown" when the interval crosses the line, so a tiny or noisy difference is never read as a win or a loss."""
    direction = more if v.interval.estimate >= v.line else less
    pct = f"{round(v.interval.level * 100):g}%"
    where = f"({pct} interval {v.bounds(digits)}, {v.interval.n} queries"
    where += "): not shown either way" if v.outcome == "not shown" else ")"
    text = " ".join(p for p in (subject, "is", v.size(digits), direction, comparator, where) if p)
    return f"{text}, {extra}" if extra else text


def label(v: Verdict, more: str = "beats", less: str = "below") -> str:
    """A short cell for tables: 'beats', 'below' or 'not shown' (with custom words for the first two)."""
    return {"beats": more, "below": less}.get(v.outcome, "not shown")


# ---------------------------------------------------------------- routers against each other, in words
@dataclass
class Singles:
    """Every single model's per-query outcomes on the evaluated queries: the zero router's raw material."""

    models: list[str]
    correct: np.ndarray  # [n, M]
    usd: np.ndarray  # [n, M]

    def __post_init__(self):
        self.correct, self.usd = np.asarray(self.correct, dtype=float), np.asarray(self.usd, dtype=float)
        if self.correct.shape != self.usd.shape or self.correct.shape[1:] != (len(self.models),):
            raise ValueError(f"single-model outcomes must be [n, {len(self.models)}]: {self.correct.shape}")

    @classmethod
    def from_pool(cls, pool, queries) -> "Singles":
        """The outcomes of every model of the queries' source (`queries`: a query table or Query objects)."""
        import pandas as pd

        from xrouter_lite.routing.baselines import outcome_matrix, source_models

        frame = queries if isinstance(queries, pd.DataFrame) else pd.DataFrame(
            {"query_id": [q.id for q in queries], "source": [q.source for q in queries]})
        models = source_models(pool, frame)
        return cls(models, *outcome_matrix(pool, frame, models))

    def points(self) -> dict[str, tuple[float, float]]:
        """{model: (USD per query, accuracy)} on these queries."""
        return {m: (float(u), float(a)) for m, u, a in zip(self.models, self.usd.mean(0), self.correct.mean(0))}

    def most_accurate(self) -> str:
        """The most accurate model (ties: the cheaper)."""
        return max(self.points().items(), key=lambda kv: (kv[1][1], -kv[1][0]))[0]

    def outcomes(self, model: str, lam: float, cfg=None) -> Outcomes:
        """One model alone as a router: its per-query score, USD and reward at `lam`."""
        j = self.models.index(model)
        return Outcomes.from_arrays(model, self.correct[:, j], self.usd[:, j], lam, cfg)


def margin_verdict(router: Outcomes, singles: Singles, n_boot: int = N_BOOT, seed: int = 0) -> Verdict:
    """The router's accuracy above the zero router's hull (with (0, 0)) at its own cost, as a verdict in points."""
    return verdict(zero_margin(router, singles.correct, singles.usd, n_boot, seed))


def _times(ratio: float) -> str:
    """A cost ratio in words: '60x', '1.4x', '0.3x'."""
    return f"{ratio:.0f}x" if ratio >= 9.5 else f"{ratio:.1f}x" if ratio >= 0.095 else f"{ratio:.2f}x"


def cost_phrase(a: Outcomes, b: Outcomes) -> str:
    """How a's spend compares with b's: 'at 60x the cost', 'at 0.4x the cost', 'at about the same cost'."""
    ua, ub = float(a.usd.mean()), float(b.usd.mean())
    if ub <= 0:
        return "and neither spends anything" if ua <= 0 else f"for ${ua:.6f} per query where the other spends nothing"
    r = ua / ub
    return "at about the same cost" if 0.95 <= r <= 1.05 else f"at {_times(r)} the cost"


def moves(subject: str, v: Verdict, more: str = "falls", less: str = "rises", digits: int = 0) -> str:
    """"<subject> falls by 45% (95% interval +30 to +60, 40 queries)", "not shown" when the interval crosses 0."""
    direction = more if v.interval.estimate >= v.line else less
    pct = f"{round(v.interval.level * 100):g}%"
    tail = "): not shown either way" if v.outcome == "not shown" else ")"
    return f"{subject} {direction} by {v.size(digits)} ({pct} interval {v.bounds(digits)}, {v.interval.n} queries{tail}"


def versus(a: Outcomes, b: Outcomes, lam: float | None = None, n_boot: int = N_BOOT, seed: int = 0,
           b_name: str | None = None) -> tuple[str, dict[str, Verdict]]:
    """a against b on the same queries: accuracy and (with `lam`) mean reward differences, in one sentence.

    E.g. "knn is 14.2 points more accurate than the GRPO router (95% interval ...) at 60x its cost; its mean
    reward at λ=10 is 3.1 points higher (95% interval ...)". Every part says "not shown" when its interval
    crosses 0.
    """
    b_name = b_name or b.name
    acc = verdict(paired_difference(a.correct, b.correct, n_boot, seed))
    text = sentence(a.name, acc, f"than {b_name}", "more accurate", "less accurate", extra=cost_phrase(a, b))
    out = {"accuracy": acc}
    if lam is not None:
        rew = verdict(paired_difference(a.reward, b.reward, n_boot, seed))
        text += "; " + sentence(f"its mean reward at λ={lam:g}", rew, "", "higher", "lower")
        out["reward"] = rew
    return text, out


def finding(kind: str, text: str, verdicts: dict[str, Verdict], **about) -> dict:
    """One generated finding: its sentence, what it compares, and the verdicts behind it (JSON-ready)."""
    return {"kind": kind, "text": text, **about, "verdicts": {k: v.to_dict() for k, v in verdicts.items()}}


def zero_hull_finding(router: Outcomes, singles: Singles, split: str, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """"<router> is X points above/below the zero router's hull at its cost ($.../query)", as a finding."""
    v = margin_verdict(router, singles, n_boot, seed)
    text = sentence(router.name, v, f"the zero router's hull at its cost of ${router.usd.mean():.6f}/query")
    return finding("zero_margin", f"On the {split} split, {text}.", {"zero_margin": v}, subject=router.name)


def best_single_finding(router: Outcomes, singles: Singles, lam: float, split: str, n_boot: int = N_BOOT,
                        seed: int = 0) -> dict:
    """The best single model at or below the router's cost against the router (the cheapest model when every
    model costs more): accuracy and reward differences with intervals, as a finding."""
    points = singles.points()
    found = best_single_at_cost(float(router.usd.mean()), points)
    if found is None:
        name = min(points, key=lambda m: (points[m][0], -points[m][1]))
        lead = (f"On the {split} split, {router.name} is cheaper than every single model "
                f"(${router.usd.mean():.6f}/query); the cheapest, {name} ({points[name][1]:.3f} at "
                f"${points[name][0]:.6f}/query), ")
    else:
        name, acc, usd = found
        lead = (f"On the {split} split, the best single model at or below the cost of {router.name} is {name} "
                f"({acc:.3f} at ${usd:.6f}/query): it ")
    model = singles.outcomes(name, lam)
    model.name = ""
    text, vs = versus(model, router, lam, n_boot, seed)
    return finding("best_single", lead + text + ".", vs, subject=name, comparator=router.name)


def cost_saved_finding(router: Outcomes, singles: Singles, split: str, frac: float = 0.95, n_boot: int = N_BOOT,
                       seed: int = 0) -> dict:
    """"Cost saved at 95%" with intervals: does the router reach `frac` of the most accurate model's accuracy
    (paired over queries), and what share of that model's cost does it save? The saving is only claimed when
    reaching the bar is shown."""
    top = singles.most_accurate()
    ref = singles.outcomes(top, lam=0.0)
    reach = verdict(paired_difference(router.correct, frac * ref.correct, n_boot, seed))
    saved = verdict(ratio_saved(router.usd, ref.usd, n_boot, seed), unit="%", digits=0)
    bar = f"{frac:.0%} of the accuracy of {top}, the most accurate single model"
    text = f"On the {split} split, " + sentence(router.name, reach, bar)
    if reach.outcome == "beats":
        text += "; " + moves(f"there its cost against {top}", saved, "is lower", "is higher")
    else:
        text += f"; no cost saved at {frac:.0%} is claimed"
    return finding("cost_saved_95", text + ".", {"reaches": reach, "cost_saved": saved}, subject=router.name,
                   comparator=top)
