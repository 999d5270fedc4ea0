"""Price jitter: a repriced pool shows and charges the new prices; factors are seeded and bounded."""

from __future__ import annotations

import numpy as np
import pytest

from xrouter_lite.pool.core import Answer, ModelSpec, Pool, PoolError, Query
from xrouter_lite.pool.repricing import RepricedPool, draw_factors, round_price, scaled_spec
from xrouter_lite.routing.protocol import describe


class Two(Pool):
    models = [ModelSpec("cheap", 0.15, 0.60, tier="budget"), ModelSpec("dear", 3.0, 12.0, tier="premium")]

    def call(self, model, query, system_prompt=None, temperature=None):
        return Answer("7", 1000, 100, 0.00021 if model == "cheap" else 0.0042, model=model)


def test_round_price_prints_like_a_price_list():
    assert [round_price(p) for p in (0.2055, 13.7, 0.0749, 3.0)] == [0.21, 14.0, 0.075, 3.0]


def test_repriced_pool_shows_and_charges_the_new_price():
    q = Query("q", "s", "t", "?")
    pool = RepricedPool(Two(), {"dear": 0.05})
    dear = pool.spec("dear")
    assert (dear.price_in, dear.price_out, dear.tier) == (0.15, 0.6, "budget")
    assert "$0.15 in / $0.60 out" in describe(dear) and "budget tier" in describe(dear)
    assert pool.call("dear", q).usd == pytest.approx(0.0042 * 0.05)
    assert pool.call("cheap", q).usd == 0.00021 and pool.spec("cheap") == Two.models[0]  # untouched
    with pytest.raises(PoolError):
        pool.spec("missing")


def test_scaled_spec_keeps_the_in_out_ratio():
    s = scaled_spec(ModelSpec("m", 0.5, 1.5), 2.7)
    assert s.price_in == 1.4 and s.price_out == pytest.approx(4.2)


def test_factors_are_seeded_bounded_and_off_by_default():
    models = [f"m{i}" for i in range(200)]
    f = draw_factors(models, np.random.default_rng(0), 4.0, share=0.5)
    assert f == draw_factors(models, np.random.default_rng(0), 4.0, share=0.5)
    assert 60 < len(f) < 140 and all(0.25 <= v <= 4.0 for v in f.values())
    assert draw_factors(models, np.random.default_rng(0), 1.0) == {}
