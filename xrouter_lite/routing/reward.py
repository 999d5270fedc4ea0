"""The cost-aware reward of xRouter: reward = score * (K - min(lam * cost, cost_max)), success-gated.

A wrong answer earns 0 whatever it cost (the router cannot win by being cheap and wrong), an invalid
ending (unparsable call, unknown tool, turns exhausted, ...) earns 0, and a correct answer earns
K minus a capped price penalty, so among correct answers the cheaper one earns more:

    >>> from xrouter_lite.routing.reward import RewardConfig, reward
    >>> cfg = RewardConfig(lam=3.0, cost_max=0.8)
    >>> reward(1.0, 0.01, cfg)           # correct, one cent: 1 - 3 * 0.01
    0.97
    >>> reward(0.0, 0.0, cfg)            # wrong but free: still nothing
    0.0
    >>> reward(1.0, 0.01, cfg, invalid=True)
    0.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RewardConfig:
    """Knobs of the reward; the defaults are the public xRouter code's (K=1, lambda=3, cost_max=0.8)."""

    K: float = 1.0  # reward of a correct, free answer; keep it > cost_max so correct always beats wrong
    lam: float = 3.0  # penalty per USD; raise it to push the router to cheaper models, lower it if accuracy
    #                   drops on hard sets (the paper's 7B routers used 1, 2, 3; its README uses 2)
    cost_max: float = 0.8  # cap on the penalty, so one very expensive correct answer still earns K - cost_max
    charge_router_tokens: bool = False  # add the router's own tokens to the cost (the paper does not;
    #                                     serving reports them separately); needs the two prices below
    router_price_in: float = 0.0  # USD per 1M router prompt tokens, used only with charge_router_tokens
    router_price_out: float = 0.0  # USD per 1M router output tokens, used only with charge_router_tokens
    cost_scale: float | None = None  # divide the USD cost by this before lam, making lam unit-free
    #   (e.g. the pool's median USD per query: lam=1 then means "one typical query costs 1 point");
    #   None keeps raw USD as in the paper, where per-query costs ($0.0004-$0.05) make lam*cost small

    def __post_init__(self):
        for name in ("lam", "cost_max", "router_price_in", "router_price_out"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"RewardConfig.{name} must be a finite number >= 0, got {value!r}")
        if not math.isfinite(self.K):
            raise ValueError(f"RewardConfig.K must be finite, got {self.K!r}")
        if self.cost_scale is not None and not (math.isfinite(self.cost_scale) and self.cost_scale > 0):
            raise ValueError(f"RewardConfig.cost_scale must be None or a finite number > 0, got {self.cost_scale!r}")


def router_usd(in_tokens: int, out_tokens: int, cfg: RewardConfig) -> float:
    """USD of the router's own tokens at the config's router prices (0 unless those prices are set)."""
    return (in_tokens * cfg.router_price_in + out_tokens * cfg.router_price_out) / 1e6


def penalty(cost_usd: float, cfg: RewardConfig) -> float:
    """The capped price penalty min(lam * cost, cost_max), after the optional cost_scale."""
    if not (math.isfinite(cost_usd) and cost_usd >= 0):
        raise ValueError(f"cost must be a finite number of USD >= 0, got {cost_usd!r}")
    scaled = cost_usd / cfg.cost_scale if cfg.cost_scale else cost_usd
    return min(cfg.lam * scaled, cfg.cost_max)


def reward(score: float, cost_usd: float, cfg: RewardConfig = RewardConfig(), *, invalid: bool = False) -> float:
    """score * (K - min(lam * cost, cost_max)); 0 for a wrong answer or an invalid ending."""
    if not (0.0 <= score <= 1.0):  # also rejects NaN: a grader bug must not become a training signal
        raise ValueError(f"score must be in [0, 1], got {score!r}")
    p = penalty(cost_usd, cfg)  # validates cost even when the reward is gated to 0
    if invalid or score == 0:
        return 0.0
    return float(score * (cfg.K - p))


def reward_array(scores, costs_usd, cfg: RewardConfig = RewardConfig(), invalid=None) -> np.ndarray:
    """Vectorised `reward` over arrays of scores, USD costs and (optional) invalid flags."""
    s = np.asarray(scores, dtype=float)
    c = np.asarray(costs_usd, dtype=float)
    if not np.all((s >= 0) & (s <= 1)):
        raise ValueError("scores must be in [0, 1] (no NaN)")
    if not np.all(np.isfinite(c) & (c >= 0)):
        raise ValueError("costs must be finite numbers of USD >= 0")
    scaled = c / cfg.cost_scale if cfg.cost_scale else c
    out = s * (cfg.K - np.minimum(cfg.lam * scaled, cfg.cost_max))
    out = np.where(s == 0, 0.0, out)  # success gate, exact even when K - penalty is negative
    if invalid is not None:
        out = np.where(np.asarray(invalid, dtype=bool), 0.0, out)
    return out
