"""Verdicts a reader can trust: paired bootstrap intervals over queries, and one way to say what they show.

Every claim of the form "router A beats B" is a difference measured on a few hundred queries, so it comes
with a 95% interval from a **paired bootstrap**: resample the evaluated queries with replacement (the same
resample for every router and single model, so their differences keep their pairing), recompute the
statistic, and take the 2.5th and 97.5th percentiles. `verdict` then says "beats" or "below" only when
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

        from xrouter_lite.reward import RewardConfig, reward_array

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
    """An estimate on all queries and its bootstrap percentile interval."""

    estimate: float
    low: float
    high: float
    level: float = LEVEL
    n: int = 0  # queries resampled
    n_boot: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def _interval(estimate: float, samples: np.ndarray, n: int, n_boot: int, level: float = LEVEL) -> Interval:
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
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
    sc, su = np.asarray(singles_correct, dtype=float), np.asarray(singles_usd, dtype=float)
    if sc.shape != su.shape or sc.ndim != 2 or len(sc) != len(router):
        raise ValueError(f"single-model outcomes must be [n={len(router)}, models]; got {sc.shape} and {su.shape}")
    cols = np.column_stack([router.correct, router.usd, sc, su])
    m = sc.shape[1]
    full = cols.mean(axis=0, keepdims=True)
    boot = resampled_means(cols, n_boot, seed)

    def margin(means):  # columns: router score, router USD, the models' scores, the models' USD
        return means[:, 0] - hull_at(means[:, 1], means[:, 2 + m:], means[:, 2:2 + m])

    return _interval(float(margin(full)[0]), margin(boot), len(router), n_boot)


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
        return f"{abs(self.interval.estimate - self.line) * self.scale:.{digits}f} {self.unit}"

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
    text = f"{_signed(est, digits)} {unit} ({pct} interval {_signed(lo, digits)} to {_signed(hi, digits)})"
    return Verdict(iv, outcome, text, unit, scale, line)


def sentence(subject: str, v: Verdict, comparator: str, more: str = "above", less: str = "below",
             digits: int = 1) -> str:
    """One plain sentence: "<subject> is 1.2 points below <comparator> (95% interval ...)", saying "not shown"
    when the interval crosses the line, so a tiny or noisy difference is never read as a win or a loss."""
    direction = more if v.interval.estimate >= v.line else less
    pct = f"{round(v.interval.level * 100):g}%"
    where = f"({pct} interval {v.bounds(digits)}, {v.interval.n} queries)"
    if v.outcome == "not shown":
        return f"{subject} is {v.size(digits)} {direction} {comparator} {where}: not shown either way"
    return f"{subject} is {v.size(digits)} {direction} {comparator} {where}"


def label(v: Verdict, more: str = "beats", less: str = "below") -> str:
    """A short cell for tables: 'beats', 'below' or 'not shown' (with custom words for the first two)."""
    return {"beats": more, "below": less}.get(v.outcome, "not shown")
