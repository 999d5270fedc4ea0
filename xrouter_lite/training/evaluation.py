"""Evaluate an LM router through the episode runner: the same row as `baselines.evaluate`, plus format stats.

Notebooks 02-04 call one function for any trained router LM (SFT or GRPO, tiny or Hub):

    >>> from xrouter_lite.training.evaluation import evaluate_lm_router                       # doctest: +SKIP
    >>> episodes, row = evaluate_lm_router(model, tok, pool, pool.queries("validation", "zeroeval"),
    ...                                    mode="simple", lam=30.0, tool_result_chars=300)   # doctest: +SKIP
    >>> row["accuracy"], row["usd_per_query"], row["well_formed_call_rate"]       # doctest: +SKIP

The row has `baselines.evaluate`'s fields (router, n, accuracy, usd_per_query, mean_reward, calls_per_query,
model_share, valid_rate) and the router's format: the share of first turns that are a well-formed call to a
model of the sample's pool, the share of direct answers, and a count of the invalid endings' reasons.

Pass the `tool_result_chars` the router was trained with (`SFTSettings.tool_result_chars`): the episode
runner then clips each model answer the router reads exactly as the traces did (`format_tool_result`).

A λ-conditioned router (router.json `lambda_in_prompt`) reads its cost weight in its prompt, so one checkpoint has
a whole cost-accuracy curve: `lambda_sweep` evaluates it once per λ (stated in the prompt, reward at that λ), and
`sweep_aiq` turns the sweep's (cost, accuracy) points into one AIQ:

    >>> by_lam, rows = lambda_sweep(model, tok, pool, queries, SWEEP_LAMBDAS, mode="agent",
    ...                             tool_result_chars=64, answer_notes=True)             # doctest: +SKIP
    >>> [(r["lambda"], r["usd_per_query"]) for r in rows]                                 # doctest: +SKIP
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Callable, Mapping, Sequence

import numpy as np

from xrouter_lite.pool.core import Pool, Query, sample_subpool
from xrouter_lite.routing import metrics as M
from xrouter_lite.routing.episode import Episode, run_episodes
from xrouter_lite.routing.protocol import MAX_TOOL_RESULT_CHARS, cost_line, parse_turn
from xrouter_lite.routing.reward import RewardConfig


def query_frame(pool: Pool, queries: Sequence[Query]):
    """The `query_table` rows of these queries, in their order: what the table-based baselines fit and route."""
    return pool.query_table().set_index("query_id").loc[[q.id for q in queries]].reset_index()


def sampled_subpools(pool: Pool, queries: Sequence[Query], seed: int = 0, min_size: int = 2,
                     max_size: int | None = None) -> dict[str, list[str]]:
    """{query id: a random sub-pool of its source's models}, the same for a given seed (format checks)."""
    rng = np.random.default_rng(seed)
    return {q.id: sample_subpool(pool.models_for(q.source), rng, min_size=min_size, max_size=max_size)
            for q in queries}


def _reason_kind(reason: str) -> str:
    """An invalid reason without the names in it, so reasons count by kind ("unknown tool '…'")."""
    return re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", re.sub(r"\d+", "N", reason))[:80]


def format_stats(episodes: Sequence[Episode]) -> dict:
    """How well the router's first turns follow the protocol, and why episodes ended invalid."""
    first = [next((m["content"] for m in ep.messages if m["role"] == "assistant"), "") for ep in episodes]
    kinds = Counter(parse_turn(text, ep.allowed, ep.mode).kind for text, ep in zip(first, episodes))
    n = max(len(episodes), 1)
    return {"well_formed_call_rate": kinds["call"] / n,  # a call (simple: exactly one) to models of the sub-pool
            "direct_rate": kinds["answer"] / n,  # plain-text answers in the first turn (allowed, not taught by SFT)
            "first_turn": dict(kinds),
            "endings": dict(Counter(ep.ending for ep in episodes)),
            "invalid_reasons": dict(Counter(_reason_kind(ep.invalid_reason) for ep in episodes if ep.invalid))}


def episode_row(episodes: Sequence[Episode], name: str, lam: float, models: Sequence[str] | None = None,
                c_max: float | None = None) -> dict:
    """`baselines.evaluate`'s row for episodes (accuracy, USD/query, reward, calls, model share, valid rate)."""
    score = np.array([ep.score for ep in episodes], float)
    usd = np.array([ep.usd for ep in episodes], float)
    valid = np.array([not ep.invalid for ep in episodes], bool)
    decisions = [tuple(c.model for c in ep.calls) for ep, ok in zip(episodes, valid) if ok]
    row = {"router": name, "n": len(episodes), "accuracy": M.accuracy(score), "usd_per_query": M.usd_per_query(usd),
           "mean_reward": float(np.mean([ep.reward for ep in episodes])) if episodes else 0.0,
           "calls_per_query": M.calls_per_query(decisions), "model_share": M.model_share(decisions, models),
           "valid_rate": float(valid.mean()) if len(valid) else 0.0, "lambda": lam}
    if c_max is not None:
        row["aiq"] = M.aiq([(row["usd_per_query"], row["accuracy"])], c_max)
    return row


def evaluate_lm_router(model, tokenizer, pool: Pool, queries: Sequence[Query], mode: str = "simple",
                       allowed: Sequence[str] | Callable[[Query], Sequence[str]] | dict | None = None,
                       lam: float = 3.0, workers: int = 16, max_turns: int = 3, tool_result_chars: int | None = None,
                       name: str = "lm router", c_max: float | None = None, max_new_tokens: int = 128,
                       reward_cfg: RewardConfig | None = None, progress: bool = True,
                       guided: bool = True, answer_notes: bool = False,
                       state_lambda: bool = False) -> tuple[list[Episode], dict]:
    """Run the LM router (greedy) on `queries` through the episode runner; (episodes, row) as described above.

    `allowed`: None = each query's full source pool; a list = one sub-pool for all; a dict {query id: sub-pool}
    or a function of the query. `workers` episodes run at once, so `LMRouter` batches their turns.
    `guided=False` turns off guided decoding of tool names (`guided.py`): the raw model's format. Pass the
    `answer_notes` the router was trained with (router.json), like `tool_result_chars`. `state_lambda` writes `lam`
    into the router's prompt: a λ-conditioned router (router.json `lambda_in_prompt`) routes for that cost weight.
    """
    from xrouter_lite.training.lm_router import LMRouter

    router = LMRouter(model, tokenizer, max_new_tokens=max_new_tokens, max_batch=workers, guided=guided)
    if allowed is None:
        allowed = lambda q: pool.models_for(q.source)  # noqa: E731
    elif isinstance(allowed, dict):
        allowed = lambda q, sub=allowed: sub[q.id]  # noqa: E731
    # RouterBench has no gold answer: a verbatim model answer earns that record's score
    records = {q.id: pool.response_scores(q.id) for q in queries if q.gold is None and hasattr(pool, "response_scores")}
    cfg = RewardConfig(lam=lam) if reward_cfg is None else reward_cfg
    episodes = run_episodes(router, list(queries), pool, allowed=allowed, pool_records=records or None,
                            progress=progress, workers=workers, mode=mode, max_turns=max_turns, reward_cfg=cfg,
                            max_tool_chars=tool_result_chars or MAX_TOOL_RESULT_CHARS, answer_notes=answer_notes,
                            state_lambda=state_lambda)
    models = pool.models_for(queries[0].source) if queries else None
    row = episode_row(episodes, name, cfg.lam, models, c_max) | {"mode": mode, "guided": guided} | format_stats(episodes)
    return episodes, row


# The prompt's cost weights a λ-conditioned checkpoint is swept over: 1 to 1000 reward points per USD, the range
# the conditioned routers train on (1 = accuracy rules; 1000 = a $0.001 call costs a point of reward).
SWEEP_LAMBDAS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0)
SWEEP_COLUMNS = ("lambda", "n", "accuracy", "usd_per_query", "mean_reward", "valid_rate", "calls_per_query",
                 "model_share")


def sweep_row(episodes: Sequence[Episode], lam: float, models: Sequence[str] | None = None) -> dict:
    """One λ of a sweep: {lambda, n, accuracy, usd_per_query, mean_reward, valid_rate, calls_per_query, model_share}."""
    row = episode_row(episodes, "sweep", lam, models)
    return {k: row[k] for k in SWEEP_COLUMNS}


def lambda_sweep(model, tokenizer, pool: Pool, queries: Sequence[Query], lambdas: Sequence[float] = SWEEP_LAMBDAS,
                 reuse: Mapping[float, Sequence[Episode]] | None = None,
                 **evaluate_kwargs) -> tuple[dict[float, list[Episode]], list[dict]]:
    """One λ-conditioned checkpoint at every cost weight in `lambdas`: ({λ: episodes}, one row per λ, λ ascending).

    At each λ the router is told λ in its prompt (`state_lambda=True`) and its episodes are rewarded at λ; every
    other keyword goes to `evaluate_lm_router` (mode, tool_result_chars, answer_notes, workers, max_turns, ...).
    `reuse` {λ: episodes} skips the λ already evaluated on these queries (e.g. the headline λ).
    """
    lambdas = sorted({float(x) for x in lambdas})
    if not lambdas:
        raise ValueError("lambda_sweep needs at least one cost weight")
    for lam in lambdas:
        cost_line(lam)  # the same check as the prompt's: finite and >= 0, before any episode runs
    for key in ("lam", "state_lambda", "reward_cfg"):
        if key in evaluate_kwargs:
            raise TypeError(f"lambda_sweep sets {key!r} itself (one value per λ)")
    reuse = {float(k): list(v) for k, v in (reuse or {}).items()}
    ids = [q.id for q in queries]
    models = pool.models_for(queries[0].source) if queries else None
    by_lambda, rows = {}, []
    for lam in lambdas:
        episodes = reuse.get(lam)
        if episodes is None or [ep.query_id for ep in episodes] != ids:
            episodes, _ = evaluate_lm_router(model, tokenizer, pool, queries, lam=lam, state_lambda=True,
                                             **evaluate_kwargs)
        by_lambda[lam] = episodes
        rows.append(sweep_row(episodes, lam, models))
    return by_lambda, rows


def sweep_aiq(rows: Sequence[Mapping], c_max: float | None = None) -> float:
    """AIQ of a sweep's (USD per query, accuracy) points: pass the c_max of the routers it is compared with."""
    return M.aiq([(r["usd_per_query"], r["accuracy"]) for r in rows], c_max)


def cost_falls(by_lambda: Mapping[float, Sequence[Episode]], n_boot: int | None = None, seed: int = 0,
               name: str = "") -> dict:
    """Does cost fall as the prompt's λ rises? Verdicts on the sweep's episodes (the same queries at every λ).

    Returns {"steps": [per step of λ: from_lambda, to_lambda, usd_from, usd_to, se (of the paired per-query cost
    difference), rises_beyond_se, and `verdicts.Verdict.to_dict()` of the share of cost saved, with its 95% paired
    bootstrap interval], "overall": the same verdict from the smallest to the largest λ, "monotone": no step's cost
    rises by more than one standard error, "text": one sentence (about `name`'s cost, when given)}. A step's saving
    is "beats" only when its interval excludes 0 (`verdicts.verdict`).
    """
    from xrouter_lite.routing import verdicts as V

    lams = sorted(float(k) for k in by_lambda)
    if len(lams) < 2:
        raise ValueError("a sweep needs two λ at least to say whether cost falls")
    ids = [ep.query_id for ep in by_lambda[lams[0]]]
    usd = {lam: V.Outcomes.from_episodes(f"λ={lam:g}", by_lambda[lam], ids).usd for lam in lams}
    n_boot = n_boot or V.N_BOOT

    def saved(lo: float, hi: float):
        return V.verdict(V.ratio_saved(usd[hi], usd[lo], n_boot, seed), unit="%", digits=0)

    steps = []
    for lo, hi in zip(lams, lams[1:]):
        d = usd[hi] - usd[lo]
        se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0
        steps.append({"from_lambda": lo, "to_lambda": hi, "usd_from": float(usd[lo].mean()),
                      "usd_to": float(usd[hi].mean()), "se": se, "rises_beyond_se": bool(d.mean() > se + 1e-15),
                      **saved(lo, hi).to_dict()})
    overall = saved(lams[0], lams[-1])
    rising = [f"λ={s['from_lambda']:g}→{s['to_lambda']:g}" for s in steps if s["rises_beyond_se"]]
    whose = f" of {name}" if name else ""
    text = V.moves(f"From λ={lams[0]:g} to λ={lams[-1]:g} in its prompt the cost per query{whose}", overall, "falls",
                   "rises")
    text += ("; no step of λ raises it by more than one standard error" if not rising else
             f"; it rises by more than one standard error at {', '.join(rising)}")
    return {"steps": steps, "overall": overall.to_dict(), "monotone": not rising, "text": text + "."}


def sweep_lambdas(info: Mapping, at_least: int = 7) -> list[float]:
    """The cost weights to sweep a λ-conditioned checkpoint over: its router.json `lambda_grid` (what it was trained
    to read: a tiny router reads each grid value's cost line as one token, so values off the grid are unseen text)
    when the grid has `at_least` values, else `SWEEP_LAMBDAS`."""
    grid = sorted({float(x) for x in info.get("lambda_grid") or ()})
    return grid if len(grid) >= at_least else list(SWEEP_LAMBDAS)


def unseen_report(offered: Sequence[Episode], withheld: Sequence[Episode], unseen: Sequence[str],
                  name: str = "the router") -> dict:
    """What models never seen in training did to a router: `offered` are its episodes with the whole pool (unseen
    models included, with their prices), `withheld` the same queries without them.

    Returns how often an unseen model was called (share of episodes, share of calls), the accuracy of the
    episodes that called one, both runs' accuracy / USD per query / mean reward, the paired differences (offered
    minus withheld), and one sentence. A router that reads prices and tiers would use a cheap good newcomer; one
    that memorised model identities never calls it (or calls it blindly).
    """
    unseen = set(unseen)
    ids = [e.query_id for e in offered]
    if [e.query_id for e in withheld] != ids:
        raise ValueError("unseen_report: `offered` and `withheld` must be episodes of the same queries, in order")
    if not offered:
        raise ValueError("unseen_report: no episodes")
    calls = [c.model for e in offered for c in e.calls]
    hit = [any(c.model in unseen for c in e.calls) for e in offered]

    keys = ("accuracy", "usd_per_query", "mean_reward")
    rows = [episode_row(eps, name, lam=0.0) for eps in (offered, withheld)]  # one pass over each run's episodes
    with_, without = ({k: row[k] for k in keys} for row in rows)
    called = [e for e, h in zip(offered, hit) if h]
    out = {"unseen_models": sorted(unseen), "n": len(offered),
           "episodes_calling_unseen": int(sum(hit)), "episode_share": float(np.mean(hit)),
           "call_share": float(np.mean([m in unseen for m in calls])) if calls else 0.0,
           "accuracy_when_called": float(np.mean([e.score for e in called])) if called else None,
           "offered": with_, "withheld": without,
           "difference": {k: with_[k] - without[k] for k in with_}}
    models = ", ".join(out["unseen_models"])
    out["text"] = (f"Offered {models} (never in a training row), {name} called it in {out['episodes_calling_unseen']} "
                   f"of {out['n']} test episodes ({out['call_share']:.1%} of its calls); with it offered, accuracy "
                   f"{with_['accuracy']:.3f} at USD {with_['usd_per_query']:.5f} per query, without it "
                   f"{without['accuracy']:.3f} at USD {without['usd_per_query']:.5f}.")
    return out
