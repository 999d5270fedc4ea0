"""The what-if replay behind notebook 04's explorer: every router under a cost weight, a budget and a pool.

`eval_data` looks every (query, model) outcome up once and fits the baselines; `what_if(data, lam, budget,
allowed, tasks)` then re-decides every baseline under a cost weight lambda, a per-call budget and a model pool,
and replays the LM routers' recorded episodes under the same budget and pool, from per-query arrays, in
milliseconds. The tables here feed `figures`; `figures.write_headline` writes the README's results.

    >>> data = eval_data(pool, train, test, lm_points=[lm_point(episodes, test, pool, "GRPO router", 30.0)])  # doctest: +SKIP
    >>> what_if(data, lam=30.0, budget=1e-3, allowed=["gpt-4o-mini-2024-07-18", "o1-mini-2024-09-12"]).table  # doctest: +SKIP

A λ-conditioned checkpoint (told its cost weight in its prompt) is an `LMSweep`: its recorded episodes at each swept λ
(`evaluation.lambda_sweep`). At a setting's λ the explorer replays the episodes of the nearest swept λ (on a log
scale; `WhatIf.nearest` says which), so the slider moves it like a baseline, and all its swept points make one hull:

    >>> sweep = lm_sweep(episodes_by_lambda, test, pool, "GRPO router (λ in prompt)")        # doctest: +SKIP
    >>> w = what_if(eval_data(pool, train, test, lm_sweeps=[sweep]), lam=30.0)                 # doctest: +SKIP
    >>> w.nearest                                                                             # doctest: +SKIP
    {'GRPO router (λ in prompt)': 20.0}

Why one module: each baseline's array form sits beside the others so the explorer's settings (λ, budget, pool,
tasks) are applied to all of them in one place; `tests/test_whatif_agreement.py` holds it to `routing.baselines`.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # annotations only: episodes are read, never run, here
    from xrouter_lite.routing.episode import Episode

# Every evaluated query's outcome under every model is looked up once (`eval_data`); a setting of the
# explorer's controls (lambda, per-call budget, model pool, tasks) then re-decides each baseline and
# replays each LM router's recorded episodes from those arrays, without calling a model or the router again.
KIND_ORDER = {"router": 0, "baseline": 1, "oracle": 2, "model": 3}


@dataclass
class LMPoint:
    """One LM-router checkpoint's recorded episodes on the evaluated queries, as per-query arrays.

    Calls are model columns of `EvalData.models`; `final` is the column whose answer the episode returned
    (called or selected), -1 when the router answered in its own words (direct, summarised) or ended invalid.
    """

    name: str  # e.g. "GRPO router (λ=30)"
    family: str  # checkpoints of one family share one hull, e.g. "GRPO router"
    lam: float  # the lambda it was trained at
    calls: list[tuple[int, ...]]
    call_usd: list[tuple[float, ...]]  # each call's recorded USD (the router-written prompt's tokens included)
    final: np.ndarray  # [n] int
    score: np.ndarray  # [n] the episode's grade
    valid: np.ndarray  # [n] bool
    episodes: list = field(default_factory=list, repr=False)  # the Episode records, for the trace view


@dataclass
class LMSweep:
    """One λ-conditioned checkpoint's recorded episodes at each swept cost weight (λ stated in its prompt).

    It is one router with one name and one hull (`family`, its swept points); at any λ the what-if replays the
    episodes of the nearest swept λ (`nearest`).
    """

    name: str  # e.g. "GRPO router (λ in prompt)": the run's name and its family (hull)
    points: dict[float, LMPoint]  # swept λ -> its episodes as an LMPoint

    def __post_init__(self):
        if not self.points:
            raise ValueError(f"{self.name}: a sweep needs episodes at one λ at least")
        self.points = {float(k): self.points[k] for k in sorted(self.points)}

    @property
    def family(self) -> str:
        return self.name

    @property
    def lambdas(self) -> list[float]:
        return list(self.points)

    def nearest(self, lam: float) -> float:
        """The swept λ closest to `lam` on a log scale (ties: the smaller); λ <= 0 gets the smallest swept λ."""
        lams = self.lambdas
        if lam <= 0:
            return lams[0]
        return min(lams, key=lambda s: (abs(np.log(s) - np.log(lam)) if s > 0 else np.inf, s))


@dataclass
class EvalData:
    """What the explorer knows about the evaluated queries, computed once by `eval_data`."""

    queries: pd.DataFrame  # one row per evaluated query: query_id, task, question, gold, ...
    models: list[str]  # the pool's models, in pool order (the columns below)
    correct: np.ndarray  # [n, M] recorded score of each model's answer
    usd: np.ndarray  # [n, M] recorded USD of each model's answer
    quote: np.ndarray  # [n, M] USD expected before calling: the train split's mean for (task, model)
    train_acc: np.ndarray  # [M] train-split accuracy (what query-blind rules choose by)
    train_usd: np.ndarray  # [M] train-split mean USD
    answered: np.ndarray  # [n, M] the answer parses (the cascade escalates when it does not)
    hard_keywords: np.ndarray  # [n] the keyword rule escalates
    hard_length: np.ndarray  # [n] the length rule escalates
    p_correct: dict[str, np.ndarray]  # learned router -> [n, M] predicted P(correct)
    lam_grids: dict[str, np.ndarray]  # learned router -> the lambda grid its hull is traced over
    lm: list[LMPoint] = field(default_factory=list)
    seed: int = 0  # the random router's seed (as baselines.RandomRouter)
    reward_cfg: object = None  # reward.RewardConfig whose lam the explorer replaces; None: the defaults
    sweeps: list[LMSweep] = field(default_factory=list)  # λ-conditioned checkpoints, replayed at the nearest swept λ

    @property
    def tasks(self) -> list[str]:
        return list(dict.fromkeys(self.queries["task"]))


@dataclass
class RouterRun:
    """One router's decisions and outcomes on every evaluated query under one what-if setting."""

    name: str
    kind: str  # router (an LM), baseline, oracle, model
    family: str  # routers sharing a hull
    lam: float | None  # lambda the decisions were made at (LM: trained at)
    calls: list[tuple[int, ...]]  # model columns called, in order, per query
    score: np.ndarray
    usd: np.ndarray
    valid: np.ndarray
    remapped: np.ndarray | None = None  # [n] bool: a call was answered by the fallback model (LM routers)


@dataclass
class WhatIf:
    """The explorer at one setting: every router's run, the query mask, the summary table and the hulls."""

    lam: float
    budget: float | None
    allowed: list[str]
    tasks: list[str]
    mask: np.ndarray  # [n] bool: the queries of the chosen tasks
    runs: dict[str, RouterRun]
    table: pd.DataFrame  # one row per router (see `summary_row`)
    hulls: dict[str, list[tuple[float, float]]]  # family -> NDCH of its operating points
    aiq: dict[str, float]  # family -> AIQ with one shared c_max
    reference: dict  # the most accurate allowed single model on these queries: model, accuracy, usd_per_query
    nearest: dict[str, float] = field(default_factory=dict)  # λ-conditioned router -> the swept λ replayed here
    c_max: float | None = None  # the largest cost among every family's points: AIQ's window (None: no hulls)


def eval_data(pool, train: pd.DataFrame, queries: pd.DataFrame, learned: Sequence[str] = ("knn", "mlp"),
              lm_points: Sequence[LMPoint] = (), seed: int = 0, reward_cfg=None,
              lm_sweeps: Sequence[LMSweep] = ()) -> EvalData:
    """Look up every (query, model) outcome once and fit the baselines on `train` (never on `queries`).

    `lm_points`: LM checkpoints at their one operating point; `lm_sweeps`: λ-conditioned checkpoints (`lm_sweep`).
    """
    from xrouter_lite.routing import baselines as R

    queries = queries.reset_index(drop=True)
    models = R.source_models(pool, queries)
    correct, usd = R.outcome_matrix(pool, queries, models)
    stats = R.train_stats(train, pool)
    if stats.models != models:
        raise ValueError("train and evaluated queries come from different model sets: use one source")
    quote = np.array([stats.task_usd.get(t, stats.usd) for t in queries["task"]]).reshape(len(queries), len(models))
    answered = np.zeros_like(correct, dtype=bool)
    for i, (qid, task) in enumerate(zip(queries["query_id"], queries["task"])):
        records = pool.records(qid)
        answered[i] = [R.answered(task, records.get(m, "")) for m in models]
    p_correct, grids = {}, {}
    for name in learned:
        router = R.make_router(name, models).fit(train, pool)
        p_correct[name], grids[name] = router.predict(queries), router.lam_grid()
    data = EvalData(queries, models, correct, usd, quote, stats.accuracy, stats.usd, answered,
                    R.KeywordRule().fit(train, pool).hard(queries), R.LengthRule().fit(train, pool).hard(queries),
                    p_correct, grids, list(lm_points), seed, reward_cfg, list(lm_sweeps))
    for point in [*data.lm, *(p for sw in data.sweeps for p in sw.points.values())]:
        _check_point(data, point)
    names = [p.name for p in data.lm] + [sw.name for sw in data.sweeps]
    if len(set(names)) < len(names):
        raise ValueError(f"two LM routers share a name: {names}")
    return data


def _check_point(data: EvalData, point: LMPoint) -> None:
    if len(point.calls) != len(data.queries):
        raise ValueError(f"{point.name}: episodes for {len(point.calls)} queries, but {len(data.queries)} evaluated")


def lm_point(episodes: Sequence["Episode"], queries: pd.DataFrame, pool, family: str, lam: float,
             name: str | None = None) -> LMPoint:
    """An LM router's episodes (one per row of `queries`, any order) as an `LMPoint`."""
    from xrouter_lite.routing.baselines import source_models
    from xrouter_lite.routing.protocol import parse_turn

    models = source_models(pool, queries.reset_index(drop=True))
    col = {m: j for j, m in enumerate(models)}
    by_id = {ep.query_id: ep for ep in episodes}
    missing = [q for q in queries["query_id"] if q not in by_id]
    if missing:
        raise ValueError(f"no episode for {len(missing)} evaluated queries, e.g. {missing[0]!r}")
    eps = [by_id[q] for q in queries["query_id"]]
    calls, call_usd, final = [], [], np.full(len(eps), -1)
    for i, ep in enumerate(eps):
        ok = [c for c in ep.calls if not c.error and c.model in col]
        calls.append(tuple(col[c.model] for c in ok))
        call_usd.append(tuple(float(c.usd) for c in ok))
        if ep.ending == "called" and ok:
            final[i] = col[ok[-1].model]
        elif ep.ending == "selected":
            last = next(m["content"] for m in reversed(ep.messages) if m["role"] == "assistant")
            turn = parse_turn(last, ep.allowed, ep.mode)
            if turn.kind == "select" and turn.actions[0].model in col:
                final[i] = col[turn.actions[0].model]
    return LMPoint(name or f"{family} (λ={lam:g})", family, float(lam), calls, call_usd, final,
                   np.array([ep.score for ep in eps], dtype=float), np.array([not ep.invalid for ep in eps]),
                   eps)


def lm_sweep(episodes_by_lambda: dict, queries: pd.DataFrame, pool, name: str) -> LMSweep:
    """A λ-conditioned checkpoint's episodes {swept λ: episodes} (`evaluation.lambda_sweep`) as an `LMSweep`."""
    return LMSweep(name, {float(lam): lm_point(eps, queries, pool, name, float(lam), name=f"{name} at λ={lam:g}")
                          for lam, eps in episodes_by_lambda.items()})


STAGE_FAMILY = {"sft": "SFT router", "grpo": "GRPO router"}  # router.json's stage -> the family shown in figures


def router_checkpoints(artifacts) -> list[dict]:
    """Every LM router saved in a run's artifacts (a folder with router.json), SFT first, then by lambda.

    Each entry is router.json's content plus `path`, `family` (its hull) and `name` (its point's label).
    """
    found = []
    for info_path in sorted(Path(artifacts).glob("*/router.json")):
        info = json.loads(info_path.read_text())
        family = STAGE_FAMILY.get(info.get("stage", ""), f"{info.get('stage', 'LM')} router")
        lam = float(info.get("lambda") or 0.0)
        found.append(info | {"path": str(info_path.parent), "family": family, "lambda": lam,
                             "name": f"{family} (λ={lam:g})"})
    names = [f["name"] for f in found]
    for f in found:  # two checkpoints of one family at one lambda: the main folder keeps the plain name
        if names.count(f["name"]) > 1 and Path(f["path"]).name not in ("router_sft", "router_grpo"):
            f["name"] = f"{f['family']} ({Path(f['path']).name}, λ={f['lambda']:g})"
    return sorted(found, key=lambda f: (f["family"] != "SFT router", f["family"], f["lambda"], f["path"]))


# ---------------------------------------------------------------- deciding under one setting
def _columns(data: EvalData, allowed: Sequence[str] | None) -> np.ndarray:
    """Column indices of the allowed models (all when None), in pool order; at least one is required."""
    if allowed is None:
        return np.arange(len(data.models))
    unknown = [m for m in allowed if m not in data.models]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; the pool has {data.models}")
    cols = np.array([j for j, m in enumerate(data.models) if m in set(allowed)], dtype=int)
    if not len(cols):
        raise ValueError("the pool picker left no model: allow at least one")
    return cols


def _blocked(data: EvalData, cols: np.ndarray, budget: float | None) -> np.ndarray:
    """[n, M] True where a call may not go: a model outside the pool, or one quoted over the per-call budget."""
    blocked = np.ones((len(data.queries), len(data.models)), dtype=bool)
    blocked[:, cols] = False
    if budget is not None:
        blocked |= data.quote > budget
    return blocked


def _guard(blocked: np.ndarray, cols: np.ndarray, fallback: int) -> np.ndarray:
    """The guard: a call that may not go (see `_blocked`) is answered by the fallback model instead."""
    return np.where(blocked[np.arange(len(cols)), cols], fallback, cols)


def _single_run(data, name, kind, family, lam, cols, blocked, fallback) -> RouterRun:
    """A one-call-per-query router's run from its model columns, after the guard."""
    rows = np.arange(len(cols))
    cols = _guard(blocked, np.asarray(cols, dtype=int), fallback)
    return RouterRun(name, kind, family, lam, [(int(c),) for c in cols], data.correct[rows, cols],
                     data.usd[rows, cols], np.ones(len(cols), dtype=bool))


def _learned_cols(data: EvalData, name: str, lam: float, cols: np.ndarray) -> np.ndarray:
    """As baselines.LearnedRouter.decide: argmax P*K - lam*quote among the allowed columns (ties: cheaper)."""
    from xrouter_lite.routing.baselines import K_REWARD

    p, cost = data.p_correct[name][:, cols], data.quote[:, cols]
    scale = max(float(cost.max()), 1e-12) if cost.size else 1.0
    return cols[np.argmax(p * K_REWARD - lam * cost - 1e-9 * cost / scale, axis=1)]


def _oracle_cols(data: EvalData, blocked: np.ndarray, fallback: int) -> np.ndarray:
    """Per query the cheapest correct model among those the guard lets through (else the cheapest of them)."""
    from xrouter_lite.routing.metrics import oracle_outcomes

    ok = ~blocked
    ok[~ok.any(axis=1), fallback] = True  # nothing within budget: the fallback answers, as for every router
    correct = np.where(ok, data.correct, 0.0)
    usd = np.where(ok, data.usd, np.inf)  # never pick a model outside the pool or the budget
    choice, _, _ = oracle_outcomes(correct, usd)
    return choice


def _lm_run(data: EvalData, point: LMPoint, blocked: np.ndarray, fallback: int) -> RouterRun:
    """An LM router's recorded episodes replayed: calls to excluded or over-budget models go to the fallback."""
    n = len(point.calls)
    score, usd, remapped = point.score.copy(), np.zeros(n), np.zeros(n, dtype=bool)
    calls = []
    for i in range(n):
        new, cost = [], 0.0
        for c, paid in zip(point.calls[i], point.call_usd[i]):
            swap = blocked[i, c]
            new.append(fallback if swap else c)
            cost += data.usd[i, fallback] if swap else paid
            remapped[i] |= swap
        calls.append(tuple(new))
        usd[i] = cost
        f = point.final[i]
        if f >= 0 and point.valid[i] and blocked[i, f]:
            score[i] = data.correct[i, fallback]
    score[~point.valid] = 0.0
    return RouterRun(point.name, "router", point.family, point.lam, calls, score, usd, point.valid.copy(), remapped)


def route_all(data: EvalData, lam: float, budget: float | None = None,
              allowed: Sequence[str] | None = None) -> dict[str, RouterRun]:
    """Every router's run on every evaluated query at one (lambda, budget, pool) setting.

    Baselines are re-decided among the allowed models at `lam`; LM routers keep their recorded decisions
    (they were trained at their own lambda and saw the full pool), replayed under the same budget guard, with
    calls to excluded models answered by the fallback: the cheapest allowed model by train-split cost. A
    λ-conditioned router (`data.sweeps`) replays its episodes at the swept λ nearest to `lam` (its run's `lam`).
    """
    from xrouter_lite.routing.baselines import K_REWARD

    cols = _columns(data, allowed)
    n, names = len(data.queries), data.models
    fallback = int(cols[np.argmin(data.train_usd[cols])])
    cheapest, strongest = fallback, int(cols[np.argmax(data.train_acc[cols])])
    blocked = _blocked(data, cols, budget)
    lam_f = float(lam)
    runs: dict[str, RouterRun] = {point.name: _lm_run(data, point, blocked, fallback) for point in data.lm}
    for sweep in data.sweeps:  # a conditioned router told the setting's λ: its episodes at the nearest swept λ
        swept = sweep.nearest(lam_f)
        runs[sweep.name] = replace(_lm_run(data, sweep.points[swept], blocked, fallback), name=sweep.name,
                                   family=sweep.family)

    def single(name, kind, family, c):
        runs[name] = _single_run(data, name, kind, family, lam_f if kind == "baseline" else None,
                                 c, blocked, fallback)

    best_fixed = int(cols[np.argmax(data.train_acc[cols] * K_REWARD - lam_f * data.train_usd[cols])])
    single("best model at λ", "baseline", "best model at λ", np.full(n, best_fixed))
    single("cheapest", "baseline", "cheapest", np.full(n, cheapest))
    single("strongest", "baseline", "strongest", np.full(n, strongest))
    single("random", "baseline", "random", cols[np.random.default_rng(data.seed).integers(len(cols), size=n)])
    single("keywords", "baseline", "keywords", np.where(data.hard_keywords, strongest, cheapest))
    single("length", "baseline", "length", np.where(data.hard_length, strongest, cheapest))
    runs["cascade"] = _cascade_run(data, cheapest, strongest, blocked, fallback, lam_f)
    for name in data.p_correct:
        single(name, "baseline", name, _learned_cols(data, name, lam_f, cols))
    orc = _oracle_cols(data, blocked, fallback)
    runs["oracle"] = RouterRun("oracle", "oracle", "oracle", None, [(int(c),) for c in orc],
                               data.correct[np.arange(n), orc], data.usd[np.arange(n), orc], np.ones(n, dtype=bool))
    for c in cols:
        single(names[c], "model", "single models", np.full(n, c))
    return runs


def _cascade_run(data, cheap, strong, blocked, fallback, lam) -> RouterRun:
    """Cheapest model first; the strongest too when the first answer does not parse (both are paid)."""
    chain = list(dict.fromkeys([cheap, strong]))
    n = len(data.queries)
    calls, score, usd = [], np.zeros(n), np.zeros(n)
    for i in range(n):
        called = []
        for c in chain:
            c = fallback if blocked[i, c] else c
            called.append(c)
            usd[i] += data.usd[i, c]
            if data.answered[i, c]:
                break
        calls.append(tuple(called))
        score[i] = data.correct[i, called[-1]]
    return RouterRun("cascade", "baseline", "cascade", lam, calls, score, usd, np.ones(n, dtype=bool))


# ---------------------------------------------------------------- summaries of runs
def _reward_cfg(data: EvalData, lam: float):
    from xrouter_lite.routing.reward import RewardConfig

    return replace(data.reward_cfg or RewardConfig(), lam=float(lam))


def summary_row(run: RouterRun, mask: np.ndarray, lam: float, cfg) -> dict:
    """Accuracy, USD/query, mean reward at `lam`, calls/query, valid rate of one run on the masked queries."""
    from xrouter_lite.routing.reward import reward_array

    score, usd, valid = run.score[mask], run.usd[mask], run.valid[mask]
    calls = [len(c) for c, m in zip(run.calls, mask) if m]
    n = int(mask.sum())
    return {"router": run.name, "kind": run.kind, "family": run.family,
            "lambda": float(lam) if run.lam is None or run.kind != "router" else run.lam,
            "n": n, "accuracy": float(score.mean()) if n else np.nan,
            "usd_per_query": float(usd.mean()) if n else np.nan,
            "mean_reward": float(reward_array(score, usd, cfg, invalid=~valid).mean()) if n else np.nan,
            "calls_per_query": float(np.mean(calls)) if calls else 0.0,
            "valid_rate": float(valid.mean()) if n else np.nan,
            "fallback_rate": float(run.remapped[mask].mean()) if run.remapped is not None and n else 0.0}


def family_outcomes(data: EvalData, runs: dict[str, RouterRun], budget, allowed) -> dict[str, list[tuple]]:
    """Per family, every operating point's per-query (score, USD) arrays on all evaluated queries: each run,
    learned routers over their λ grid, a λ-conditioned router at every swept λ (under the same guard and pool)."""
    fams: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for run in runs.values():
        fams.setdefault(run.family, []).append((run.score, run.usd))
    cols = _columns(data, allowed)
    fallback = int(cols[np.argmin(data.train_usd[cols])])
    blocked = _blocked(data, cols, budget)
    rows = np.arange(len(data.queries))
    for name, grid in data.lam_grids.items():
        for lam in grid:
            c = _guard(blocked, _learned_cols(data, name, float(lam), cols), fallback)
            fams[name].append((data.correct[rows, c], data.usd[rows, c]))
    for sweep in data.sweeps:
        for point in sweep.points.values():
            run = _lm_run(data, point, blocked, fallback)
            fams.setdefault(sweep.family, []).append((run.score, run.usd))
    return fams


def _family_points(data: EvalData, runs: dict[str, RouterRun], mask: np.ndarray, budget, allowed) -> dict:
    """(cost, accuracy) operating points per family on the masked queries (see `family_outcomes`)."""
    return {f: [(float(u[mask].mean()), float(s[mask].mean())) for s, u in pts]
            for f, pts in family_outcomes(data, runs, budget, allowed).items()}


def what_if(data: EvalData, lam: float = 3.0, budget: float | None = None, allowed: Sequence[str] | None = None,
            tasks: Sequence[str] | None = None, hulls: bool = True) -> WhatIf:
    """Every router under one setting of the explorer: its summary table, hulls, AIQ and cost savings.

    `budget`: USD per call (None: no guard); `allowed`: the models routers may use (None: all);
    `tasks`: the queries counted (None: all). `hulls=False` skips hulls and AIQ (for fast lambda sweeps).
    """
    from xrouter_lite.routing import metrics as M

    tasks = list(tasks) if tasks is not None else data.tasks
    mask = data.queries["task"].isin(tasks).to_numpy()
    if not mask.any():
        raise ValueError(f"no evaluated query has a task in {tasks}; tasks here: {data.tasks}")
    runs = route_all(data, lam, budget, allowed)
    cfg = _reward_cfg(data, lam)
    table = pd.DataFrame([summary_row(r, mask, lam, cfg) for r in runs.values()])
    singles = table[table["kind"] == "model"]
    # the most accurate model; among equally accurate ones the cheapest (as verdicts.Singles.most_accurate)
    top = singles.sort_values(["accuracy", "usd_per_query"], ascending=[False, True], kind="stable").iloc[0]
    reference = {"model": top["router"], "accuracy": float(top["accuracy"]), "usd_per_query": float(top["usd_per_query"])}
    table["cost_vs_best_model"] = 1.0 - table["usd_per_query"] / reference["usd_per_query"] \
        if reference["usd_per_query"] > 0 else 0.0
    hull_map, aiq, c_max = {}, {}, None
    if hulls:
        fams = _family_points(data, runs, mask, budget, allowed)
        c_max = max(c for pts in fams.values() for c, _ in pts)
        hull_map = {f: M.ndch(pts) for f, pts in fams.items()}
        aiq = {f: M.aiq(pts, c_max) for f, pts in fams.items()}
        table["aiq"] = [aiq[f] if k != "model" else M.aiq([(c, a)], c_max)
                        for f, k, c, a in zip(table["family"], table["kind"], table["usd_per_query"], table["accuracy"])]
        saved = {f: M.cost_saved_at(pts, reference["usd_per_query"], reference["accuracy"]) for f, pts in fams.items()}
        table["cost_saved_95"] = [saved[f] if k != "model" else M.cost_saved_at([(c, a)], reference["usd_per_query"],
                                                                                 reference["accuracy"])
                                  for f, k, c, a in zip(table["family"], table["kind"], table["usd_per_query"],
                                                        table["accuracy"])]
    table = table.sort_values("kind", key=lambda k: k.map(KIND_ORDER), kind="stable").reset_index(drop=True)
    nearest = {sw.name: runs[sw.name].lam for sw in data.sweeps}
    return WhatIf(float(lam), budget, [data.models[c] for c in _columns(data, allowed)], tasks, mask, runs,
                  table, hull_map, aiq, reference, nearest, c_max)


def per_task_table(data: EvalData, w: WhatIf, routers: Sequence[str] | None = None) -> pd.DataFrame:
    """Accuracy and USD per query per (router, task), in the layout `per_task_figure` reads (router as `model`)."""
    names = list(routers) if routers is not None else default_routers(w)
    cfg = _reward_cfg(data, w.lam)
    rows = []
    for name in names:
        for task in w.tasks:
            m = w.mask & (data.queries["task"] == task).to_numpy()
            rows.append({"task": task, "model": name, **{k: v for k, v in summary_row(w.runs[name], m, w.lam, cfg).items()
                                                         if k in ("n", "accuracy", "usd_per_query", "mean_reward")}})
    return pd.DataFrame(rows)


def share_table(data: EvalData, w: WhatIf, routers: Sequence[str] | None = None) -> pd.DataFrame:
    """Share of calls per model for each (router, task): columns group, router, task, model, share."""
    names = list(routers) if routers is not None else default_routers(w)
    tasks = data.queries["task"].to_numpy()
    rows = []
    for name in names:
        run = w.runs[name]
        for task in w.tasks:
            picked = [c for calls, t, m in zip(run.calls, tasks, w.mask) if m and t == task for c in calls]
            total = len(picked)
            counts = pd.Series(picked, dtype=int).value_counts().sort_index()  # models in pool order
            for c, k in counts.items():
                rows.append({"group": f"{name} · {task}", "router": name, "task": task,
                             "model": data.models[int(c)], "share": k / total})
    return pd.DataFrame(rows, columns=["group", "router", "task", "model", "share"])


def default_routers(w: WhatIf, baselines: Sequence[str] = ("knn", "mlp", "best model at λ", "strongest")) -> list[str]:
    """The routers worth a bar in crowded figures: every LM router, a few baselines, the oracle."""
    lm = [n for n, r in w.runs.items() if r.kind == "router"]
    return lm + [b for b in baselines if b in w.runs] + ["oracle"]


def reward_lambda_table(data: EvalData, lams: Sequence[float], budget: float | None = None,
                        allowed: Sequence[str] | None = None, tasks: Sequence[str] | None = None,
                        routers: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean reward per router at each lambda (baselines re-decided at each; LM routers' decisions fixed, except a
    λ-conditioned router's: at each lambda it routes as it did told the nearest swept λ)."""
    frames = []
    for lam in lams:
        t = what_if(data, lam, budget, allowed, tasks, hulls=False).table
        frames.append(t.assign(eval_lambda=float(lam)))
    out = pd.concat(frames, ignore_index=True)
    if routers is not None:
        out = out[out["router"].isin(routers)]
    return out.assign(**{"lambda": out["eval_lambda"]}).drop(columns="eval_lambda").reset_index(drop=True)


def sweep_table(data: EvalData, lams: Sequence[float], budget: float | None = None,
                allowed: Sequence[str] | None = None, tasks: Sequence[str] | None = None) -> pd.DataFrame:
    """The tidy results table: every router at every evaluation lambda (column eval_lambda), with AIQ."""
    frames = [what_if(data, lam, budget, allowed, tasks).table.assign(eval_lambda=float(lam)) for lam in lams]
    return pd.concat(frames, ignore_index=True)


def trace_html(data: EvalData, w: WhatIf, index: int, routers: Sequence[str] | None = None,
               max_chars: int = 300) -> str:
    """One query's trace as HTML: the question, what each router called, its answer's grade and cost,
    and every LM router's episode (messages, calls, answers) as `Episode.render` writes it."""
    q = data.queries.iloc[int(index)]
    names = list(routers) if routers is not None else default_routers(w)
    rows = []
    for name in names:
        run = w.runs[name]
        called = " → ".join(data.models[c] for c in run.calls[index]) or "(no call)"
        flag = " (fallback)" if run.remapped is not None and run.remapped[index] else ""
        rows.append(f"<tr><td>{html.escape(name)}</td><td>{html.escape(called)}{flag}</td>"
                    f"<td>{'✔' if run.score[index] > 0.5 else '✘'}</td><td>${run.usd[index]:.6f}</td></tr>")
    parts = [f"<div style='font-family:sans-serif;font-size:13px'>"
             f"<b>{html.escape(str(q['query_id']))}</b> · task {html.escape(str(q['task']))}"
             f" · gold: <code>{html.escape(str(q.get('gold', '')))[:200]}</code>",
             f"<pre style='white-space:pre-wrap;max-height:10em;overflow:auto'>"
             f"{html.escape(str(q['question'])[:1500])}</pre>",
             "<table><tr><th align=left>router</th><th align=left>calls</th><th>correct</th>"
             "<th align=left>USD</th></tr>" + "".join(rows) + "</table>"]
    recorded = [(p.name, p, "recorded episode") for p in data.lm]
    recorded += [(sw.name, sw.points[w.nearest[sw.name]], f"recorded episode told λ={w.nearest[sw.name]:g} "
                  f"(the swept λ nearest to {w.lam:g})") for sw in data.sweeps if sw.name in w.nearest]
    for name, point, what in recorded:
        if point.episodes and name in names:
            parts.append(f"<details open><summary><b>{html.escape(name)}</b>: {html.escape(what)}</summary>"
                         f"<pre style='white-space:pre-wrap'>{html.escape(point.episodes[index].render(max_chars))}"
                         f"</pre></details>")
    return "\n".join(parts) + "</div>"


# ---------------------------------------------------------------- AIQ with an interval
def aiq_difference(data: EvalData, w: WhatIf, a: str, b: str, n_boot: int | None = None, seed: int = 0):
    """AIQ(family a) − AIQ(family b) at the setting `w`, with a 95% paired-bootstrap interval (`verdicts.Interval`).

    Each resample draws the setting's queries with replacement, recomputes every operating point of both families
    on it (the same draw for both: paired), and both AIQs over the setting's window [0, w.c_max] (fixed, so the
    difference is in accuracy units). E.g. a λ-conditioned router's sweep against the MLP's λ grid.
    """
    from xrouter_lite.routing import metrics as M
    from xrouter_lite.routing import verdicts as V

    if w.c_max is None:
        raise ValueError("aiq_difference needs a setting with hulls (what_if(..., hulls=True))")
    fams = family_outcomes(data, w.runs, w.budget, w.allowed)
    for f in (a, b):
        if f not in fams:
            raise KeyError(f"no family {f!r} at this setting; families: {sorted(fams)}")
    m = w.mask
    cols = [x[m] for f in (a, b) for s, u in fams[f] for x in (u, s)]  # usd, score of each point, a's then b's
    k = len(fams[a])
    n_boot = n_boot or V.N_BOOT
    means = V.resampled_means(np.column_stack(cols), n_boot, seed)  # [n_boot, 2 * (points of a + b)]

    def aiq_of(row: np.ndarray, lo: int, hi: int) -> float:
        return M.aiq(list(zip(row[2 * lo:2 * hi:2], row[2 * lo + 1:2 * hi:2])), w.c_max)

    full = np.array([x.mean() for x in cols])
    total = len(cols) // 2
    estimate = aiq_of(full, 0, k) - aiq_of(full, k, total)
    samples = np.array([aiq_of(r, 0, k) - aiq_of(r, k, total) for r in means])
    return V._interval(estimate, samples, int(m.sum()), n_boot)


# ---------------------------------------------------------------- the headline table
def run_outcomes(w: WhatIf, name: str, cfg=None):
    """One router's per-query outcomes on the setting's queries (`verdicts.Outcomes`; reward at the setting's λ)."""
    from xrouter_lite.routing.verdicts import Outcomes

    run = w.runs[name]
    m = w.mask
    return Outcomes.from_arrays(name, run.score[m], run.usd[m], w.lam, cfg, invalid=~run.valid[m])


def singles_of(w: WhatIf):
    """Every allowed single model's per-query outcomes on the setting's queries (`verdicts.Singles`)."""
    from xrouter_lite.routing.verdicts import Singles

    names = [n for n, r in w.runs.items() if r.kind == "model"]
    m = w.mask
    return Singles(names, np.column_stack([w.runs[n].score[m] for n in names]),
                   np.column_stack([w.runs[n].usd[m] for n in names]))


def headline_rows(w: WhatIf, cfg=None, n_boot: int | None = None, seed: int = 0) -> list[dict]:
    """Every router's headline numbers with, per router, the best single model at or below its cost and its
    margin over the zero router's hull (single models and answering nothing) with a 95% paired-bootstrap interval."""
    from xrouter_lite.routing import verdicts as V

    singles = singles_of(w)
    points = singles.points()
    names = list(w.table["router"])
    margins = V.zero_margins([run_outcomes(w, n, cfg) for n in names], singles.correct, singles.usd,
                             n_boot or V.N_BOOT, seed)
    rows = []
    for row, iv in zip(w.table.to_dict("records"), margins):
        if _one_model(w.runs[row["router"]]):  # a single model is part of the hull: never above it
            iv = V.Interval(iv.estimate, min(iv.low, 0.0), min(iv.high, 0.0), iv.level, iv.n, iv.n_boot)
        best = V.best_single_at_cost(row["usd_per_query"], points)
        rows.append(row | {"best_model_at_cost": best[0] if best else None,
                           "best_model_accuracy": best[1] if best else None,
                           "best_model_usd": best[2] if best else None,
                           "zero_margin": V.verdict(iv).to_dict()})
    return rows


def _one_model(run: RouterRun) -> bool:
    """The run called one and the same model on every query (a single model, or a baseline that picked one)."""
    return bool(run.calls) and all(len(c) == 1 for c in run.calls) and len({c[0] for c in run.calls}) == 1


def headline_models(w: WhatIf, rows: list[dict] | None = None) -> list[str]:
    """The single models worth a headline row, in pool order: those on the zero router's hull (with (0, 0)), the
    most accurate, the cheapest, and every model that `rows` name as the best one at or below a router's cost."""
    from xrouter_lite.routing.metrics import verdict_hull

    models = w.table[w.table["kind"] == "model"]
    pts = {r: (c, a) for r, c, a in zip(models["router"], models["usd_per_query"], models["accuracy"])}
    on_hull = set(verdict_hull(pts.values()))
    keep = {m for m, p in pts.items() if p in on_hull}
    keep |= {w.reference["model"], models.loc[models["usd_per_query"].idxmin(), "router"]}
    keep |= {r["best_model_at_cost"] for r in rows or [] if r["kind"] != "model" and r.get("best_model_at_cost")}
    return [m for m in pts if m in keep]


HEADLINE_COLUMNS = {"router": "router", "kind": "kind", "lambda": "λ", "accuracy": "accuracy",
                    "usd_per_query": "USD/query", "best_model_at_cost": "best model at ≤ its cost",
                    "best_model_accuracy": "that model's accuracy", "margin": "vs zero hull (points)",
                    "interval": "95% interval", "verdict": "verdict vs zero hull"}
TEXT_COLUMNS = {"router", "kind", "best model at ≤ its cost", "95% interval", "verdict vs zero hull"}


def headline_table(w: WhatIf, singles: Sequence[str] | None = None, rows: list[dict] | None = None,
                   cfg=None) -> pd.DataFrame:
    """Per router: accuracy, USD per query, the best single model at or below its cost (name, accuracy), its margin
    over the zero router's hull with a 95% interval and verdict, cost saved against the most accurate single model,
    AIQ, reward.

    Rows: LM routers, baselines, the oracle (an upper bound: it reads the answers), then `singles` (default:
    `headline_models`: the single models on the zero router's hull, the most accurate, the cheapest and each
    router's best model at or below its cost). `rows`: the `headline_rows` already computed for `w` (they carry
    the intervals; computed here when None).
    """
    from xrouter_lite.routing.verdicts import label

    rows = rows if rows is not None else headline_rows(w, cfg)
    singles = headline_models(w, rows) if singles is None else list(singles)
    keep = pd.DataFrame([r for r in rows if r["kind"] != "model" or r["router"] in singles])
    keep.loc[keep["kind"] == "oracle", "router"] = "oracle (upper bound)"
    keep["best_model_at_cost"] = keep["best_model_at_cost"].fillna("none (every model costs more)")
    keep["margin"] = [100 * z["estimate"] for z in keep["zero_margin"]]
    keep["interval"] = [f"{100 * z['low']:+.1f} to {100 * z['high']:+.1f}" for z in keep["zero_margin"]]
    keep["verdict"] = [label(_verdict(z), "above", "below") for z in keep["zero_margin"]]
    cols = HEADLINE_COLUMNS | {"cost_vs_best_model": f"cost saved vs {w.reference['model']}",
                               "cost_saved_95": "cost saved at ≥95% of its accuracy", "aiq": "AIQ",
                               "mean_reward": f"reward at λ={w.lam:g}"}
    return keep[[c for c in cols if c in keep]].rename(columns=cols).reset_index(drop=True)


def _verdict(d: dict):
    from xrouter_lite.routing.verdicts import Verdict

    return Verdict.from_dict(d)


def column_format(col: str, digits: int = 3) -> str:
    """How the headline table prints a column: USD to 6 decimals, savings in percent, λ as it is, margins in
    signed points, text as it is."""
    if col in TEXT_COLUMNS:
        return "{}"
    if col == "vs zero hull (points)":
        return "{:+.1f}"
    return "{:.6f}" if "USD" in col else "{:.0%}" if "saved" in col else "{:g}" if col == "λ" else f"{{:.{digits}f}}"


def markdown_table(df: pd.DataFrame, digits: int = 3) -> str:
    """A pandas frame as a GitHub markdown table (no extra dependency); None/NaN print as 'not reached'/''."""
    def cell(col, v):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return "not reached" if "saved at" in col else ""
        if isinstance(v, float):
            return column_format(col, digits).format(v)
        return str(v).replace("|", "\\|")

    head = "| " + " | ".join(df.columns) + " |\n|" + "|".join("---" for _ in df.columns) + "|\n"
    return head + "".join("| " + " | ".join(cell(c, v) for c, v in zip(df.columns, row)) + " |\n"
                          for row in df.itertuples(index=False))


def headline_details(w: WhatIf, rows: list[dict], queries: pd.DataFrame | None = None, **about) -> dict:
    """What `figures.write_headline` keeps as headline.json: the setting, the reference model and the headline's rows (every
    router, the `headline_models`) with their intervals."""
    counts = queries.loc[w.mask, "task"].value_counts(sort=False).to_dict() if queries is not None else {}
    shown = set(headline_models(w, rows))
    clean = [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()} for r in rows
             if r["kind"] != "model" or r["router"] in shown]
    return {"lambda": w.lam, "budget": w.budget, "n": int(w.mask.sum()), "tasks": counts, "models": w.allowed,
            "reference": w.reference, "c_max": float(w.table["usd_per_query"].max()), **about, "rows": clean}
