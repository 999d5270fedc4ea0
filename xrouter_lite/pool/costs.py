"""What a row of the tidy table costs: `reprice` (tokens x the tokenizer family's factor x list prices, o1-mini's hidden
reasoning by REASONING_MULTIPLIER), and the token estimate checked against RouterBench's recorded costs
(`token_residuals`, `fit_token_factor`: where `tokens.ROUTERBENCH_TOKEN_FACTOR` comes from).

ZeroEval and MMLU-Pro record text, not costs (PRICED_SOURCES): their USD is computed here from the token columns,
cheaply, so notebook 01 shows 1x/5x/10x reasoning without a rebuild. RouterBench (and live recordings) keep the USD
they recorded.

    >>> from xrouter_lite.pool.costs import REASONING_MULTIPLIER, reprice
    >>> REASONING_MULTIPLIER
    {'o1-mini-2024-09-12': 5.0}
    >>> reprice(table, 10)   # o1-mini's reasoning at 10x   # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from xrouter_lite.pool.core import MissingPriceError, load_prices, missing_price_message
from xrouter_lite.pool.tokens import ROUTERBENCH_TOKEN_FACTOR, token_factor

PRICED_SOURCES = ("zeroeval", "mmlu-pro")  # costed here from tokens x prices; RouterBench records its own

# Hidden reasoning tokens: o1-mini bills reasoning it never shows, and ZeroEval kept only the visible
# answer. The multiplier is billed output / visible output: one public o1 usage report (OpenAI forum,
# "How to correct compute the cost of an o1 model API call") shows 2,241 reasoning + 294 visible
# tokens, i.e. 8.6x; short GSM8K answers need less. 5x is a stated middle guess, not a measurement:
# notebook 01 shows 1x/5x/10x with `reprice`.
REASONING_MULTIPLIER: dict[str, float] = {"o1-mini-2024-09-12": 5.0}


# ---------------------------------------------------------------- the token estimate's calibration (`tokens`)
def token_residuals(routerbench: pd.DataFrame, factor: float = ROUTERBENCH_TOKEN_FACTOR,
                    split: str | None = None) -> pd.DataFrame:
    """Per RouterBench model: the estimated cost (count_tokens x list prices) against the recorded total_cost, in
    percent, before and after calibration by `factor`; with `split` (a table with splits), only those queries.

    Residual = estimate / recorded - 1 over all the model's rows; `median_abs_row_%` is the typical error of one
    query's cost after calibration.
    """
    t = routerbench[routerbench["source"] == "routerbench"]
    if split is not None:
        t = t[t["split"] == split]
    prices = load_prices()
    p_in = t["model"].map({m: s.price_in for m, s in prices.items()})
    p_out = t["model"].map({m: s.price_out for m, s in prices.items()})
    est = (t["in_tokens"] * p_in + t["out_tokens"] * p_out) / 1e6
    frame = pd.DataFrame({"model": t["model"], "est": est, "usd": t["usd"]})
    rows = []
    for model, g in frame.groupby("model", sort=False):
        rows.append({"model": model, "queries": len(g), "recorded_usd": g["usd"].sum(),
                     "residual_before_%": 100 * (g["est"].sum() / g["usd"].sum() - 1),
                     "residual_after_%": 100 * (factor * g["est"].sum() / g["usd"].sum() - 1),
                     "median_abs_row_%": 100 * float(np.median(np.abs(factor * g["est"] / g["usd"] - 1)))})
    return pd.DataFrame(rows)


def fit_token_factor(routerbench: pd.DataFrame, split: str | None = "train") -> float:
    """sum(recorded USD) / sum(estimated USD) over RouterBench rows (default: its train split): the calibration."""
    res = token_residuals(routerbench, 1.0, split)
    est = (1 + res["residual_before_%"] / 100) * res["recorded_usd"]
    return float(res["recorded_usd"].sum() / est.sum())


# ---------------------------------------------------------------- reprice
def reprice(table: pd.DataFrame, multipliers: dict[str, float] | float | None = None,
            prices: dict | None = None) -> pd.DataFrame:
    """The table with `usd` recomputed from tokens, prices, reasoning multipliers and each model's tokenizer factor
    (`token_factor`; the token columns stay the raw estimate), RouterBench's recorded USD kept.

    `multipliers` override REASONING_MULTIPLIER per model ({"o1-mini-2024-09-12": 10}); a single
    number applies to every model in REASONING_MULTIPLIER. Cheap: notebook 01 uses it for 1x/5x/10x.
    """
    mult = _multipliers(multipliers)
    prices = prices or load_prices()
    out = table.copy()
    priced = out["source"].isin(PRICED_SOURCES)  # RouterBench (and live pools) keep the USD they recorded
    models = out.loc[priced, "model"]
    unknown = sorted(set(models) - set(prices))
    if unknown:
        raise MissingPriceError(missing_price_message(unknown))
    p_in = models.map({m: s.price_in for m, s in prices.items()}).to_numpy(float)
    p_out = models.map({m: s.price_out for m, s in prices.items()}).to_numpy(float)
    factor = models.map(mult).fillna(1.0).to_numpy(float)
    calibration = models.map(token_factor).to_numpy(float)  # estimated -> billed tokens, per tokenizer family
    tokens_in, tokens_out = out.loc[priced, "in_tokens"].to_numpy(float), out.loc[priced, "out_tokens"].to_numpy(float)
    out.loc[priced, "usd"] = (tokens_in * p_in + tokens_out * factor * p_out) * calibration / 1e6
    return out


def _multipliers(multipliers) -> dict[str, float]:
    """REASONING_MULTIPLIER updated by a dict, or every reasoning model set to one number."""
    if multipliers is None:
        return dict(REASONING_MULTIPLIER)
    if isinstance(multipliers, (int, float)):
        return {m: float(multipliers) for m in REASONING_MULTIPLIER}
    return {**REASONING_MULTIPLIER, **{m: float(v) for m, v in multipliers.items()}}
