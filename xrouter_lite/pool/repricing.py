"""Price jitter: the same pool with some models' prices scaled, so that a router learns to read prices.

A router trained on one price table can learn "gemini-flash is cheap" from the model's name alone and never look
at the price its prompt states: then a price change, or a new model, means nothing to it. Training rows that
scale a model's price by a random factor, *both* in the tool description the router reads and in what the
episode is charged, make the stated price the only reliable cue, which is what xRouter's priced tool
descriptions are for. Evaluation and serving use the real prices.

    >>> from xrouter_lite.pool.core import Answer, ModelSpec, Pool, Query
    >>> class Two(Pool):
    ...     models = [ModelSpec("a", 0.15, 0.60), ModelSpec("b", 3.0, 12.0)]
    ...     def call(self, model, query, system_prompt=None, temperature=None):
    ...         return Answer("42", 1000, 100, 0.00021 if model == "a" else 0.0042, model=model)
    >>> cheap_b = RepricedPool(Two(), {"b": 0.05})
    >>> cheap_b.spec("b").price_in, cheap_b.spec("b").price_out, cheap_b.spec("b").tier
    (0.15, 0.6, 'budget')
    >>> round(cheap_b.call("b", Query("q", "s", "t", "?")).usd, 6)
    0.00021
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from xrouter_lite.pool.core import Answer, ModelSpec, Pool, Query, tier_of


def round_price(price: float) -> float:
    """A price as a price list would print it: two significant digits ($0.2055 -> $0.21, $13.7 -> $14)."""
    if price <= 0:
        return 0.0
    digits = 1 - int(math.floor(math.log10(price)))
    return round(price, digits)


def scaled_spec(spec: ModelSpec, factor: float) -> ModelSpec:
    """`spec` with both prices scaled by (about) `factor`, rounded like a price list, and its tier re-derived."""
    if factor == 1.0:
        return spec
    price_in = round_price(spec.price_in * factor)
    exact = price_in / spec.price_in if spec.price_in else factor  # keep the in:out ratio, so cost scales by one number
    price_out = round(spec.price_out * exact, 6)
    return replace(spec, price_in=price_in, price_out=price_out, tier=tier_of(price_in, price_out))


def charge_factor(spec: ModelSpec, scaled: ModelSpec) -> float:
    """What a call costs at `scaled` prices, as a multiple of its cost at `spec`'s."""
    if spec.price_in:
        return scaled.price_in / spec.price_in
    return scaled.price_out / spec.price_out if spec.price_out else 1.0


class RepricedPool(Pool):
    """`base` with the models in `factors` repriced: their specs show the new prices, their calls charge them."""

    def __init__(self, base: Pool, factors: Mapping[str, float]):
        self.base = base
        self.factors = {m: float(f) for m, f in factors.items() if f != 1.0}
        self.models = [scaled_spec(s, self.factors.get(s.id, 1.0)) for s in base.models]
        self._specs = {s.id: s for s in self.models}
        self._charge = {s.id: charge_factor(base.spec(s.id), s) for s in self.models if s.id in self.factors}

    def spec(self, model_id: str) -> ModelSpec:
        if model_id not in self._specs:
            return self.base.spec(model_id)  # raises the PoolError naming the model
        return self._specs[model_id]

    def models_for(self, source: str) -> list[str]:
        return self.base.models_for(source)

    def call(self, model: str, query: Query, system_prompt: str | None = None,
             temperature: float | None = None) -> Answer:
        answer = self.base.call(model, query, system_prompt, temperature)
        factor = self._charge.get(model, 1.0)
        return answer if factor == 1.0 else replace(answer, usd=answer.usd * factor,
                                                    meta={**answer.meta, "price_factor": factor})


def draw_factors(models: Sequence[str], rng: np.random.Generator, max_factor: float, share: float = 0.5) -> dict[str, float]:
    """Random price factors for some of `models`: each is repriced with probability `share`, by a factor
    log-uniform in [1/max_factor, max_factor]; {} when max_factor <= 1 (no jitter)."""
    if max_factor <= 1.0:
        return {}
    span = math.log(max_factor)
    return {m: float(math.exp(rng.uniform(-span, span))) for m in models if rng.random() < share}
