"""Routing: how a router talks to the pool, what one episode is, and how routers are scored (notebooks 01-04).

    protocol    system prompts, tool schemas from a (sub-)pool, the call format, parsing of router turns
    agreement   do two answers agree (agent mode's "ask two, escalate if they differ")
    reward      the cost-aware reward: score * (K - min(lam * cost, cost_max))
    episode     one routing episode: router turns, tool calls against a pool, stop rules, cost, grade, reward
    baselines   one-shot baseline routers (rules, kNN, MLP, oracle) and their evaluation on a replay pool
    metrics     cost-accuracy metrics on numpy arrays: hulls, the zero router, AIQ
    verdicts    paired bootstrap intervals over queries and the sentences that state what they show
"""

from xrouter_lite import _lazy_exports

# name -> its module here: the names the notebooks import from this package, loaded on first use
_EXPORTS = {
    "Action": "protocol", "render_calls": "protocol", "router_messages": "protocol", "tool_schemas": "protocol",
    "reward_array": "reward", "RewardConfig": "reward",
    "read_jsonl": "episode", "write_jsonl": "episode",
    "evaluate_all": "baselines",
    "hull_value": "metrics", "oracle_outcomes": "metrics", "verdict_hull": "metrics", "zero_router": "metrics",
    "best_single_finding": "verdicts", "finding": "verdicts", "label": "verdicts", "moves": "verdicts",
    "Outcomes": "verdicts", "paired_difference": "verdicts", "ratio_saved": "verdicts", "Singles": "verdicts",
    "Verdict": "verdicts", "verdict": "verdicts", "versus": "verdicts", "zero_hull_finding": "verdicts",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS)
