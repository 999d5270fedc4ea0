"""Model pools: one interface for recorded (replay) and live model answers.

    >>> from xrouter_lite.pool.core import tool_name
    >>> tool_name("gpt-4o-mini-2024-07-18")
    'call_gpt_4o_mini_2024_07_18'
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from xrouter_lite.errors import PriceError, UserError
from xrouter_lite.pool.splits import add_splits
from xrouter_lite.pool.tokens import count_tokens


def tool_name(model_id: str) -> str:
    """The router's tool name for a model: `call_` + id with every char outside [A-Za-z0-9_] -> `_`."""
    return "call_" + re.sub(r"[^A-Za-z0-9_]", "_", model_id)


@dataclass(frozen=True)
class ModelSpec:
    """One pool model: who serves it and what it costs (USD per 1M tokens)."""

    id: str
    price_in: float
    price_out: float
    tier: str = "standard"  # premium | standard | budget | specialized (from the price band)
    context: int = 8192
    description: str = ""
    provider: str = "replay"
    base_url: str | None = None
    api_key_env: str | None = None  # name of the env var holding the key; never the key itself
    model_name: str | None = None  # the provider's name for the model, when it differs from id

    @property
    def tool(self) -> str:
        return tool_name(self.id)


@dataclass(frozen=True)
class Query:
    """A task instance: what the router sees (text) and how its final answer is graded (gold)."""

    id: str  # globally unique, "<source>/<task>/<upstream id>"
    source: str  # zeroeval | mmlu-pro | routerbench | live
    task: str
    text: str
    gold: str | None = None  # None where the source has no gold answer (RouterBench)


@dataclass(frozen=True)
class Answer:
    """One model call's result; `usd` already includes every token billed for it."""

    text: str
    in_tokens: int
    out_tokens: int
    usd: float
    cached: bool = False
    model: str = ""
    meta: dict = field(default_factory=dict, compare=False)


class PoolError(KeyError, UserError):
    """Unknown model or query; the message names which."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0]) if self.args else ""


class MissingPriceError(PoolError, ValueError):
    """Models without a price; the message names them and shows the CSV row to add through --prices."""


class Pool(ABC):
    """What the router's tools call. `models` is the full pool; episodes restrict it per sample."""

    models: list[ModelSpec]

    def spec(self, model_id: str) -> ModelSpec:
        """The spec of one model, or a PoolError naming the model and the pool."""
        for m in self.models:
            if m.id == model_id:
                return m
        raise PoolError(f"unknown model {model_id!r}; this pool has: {', '.join(m.id for m in self.models)}")

    @property
    def model_ids(self) -> list[str]:
        return [m.id for m in self.models]

    def models_for(self, source: str) -> list[str]:
        """The models that answer queries of `source`: all of them, unless the pool records sources apart."""
        return self.model_ids

    @abstractmethod
    def call(self, model: str, query: Query, system_prompt: str | None = None,
             temperature: float | None = None) -> Answer:
        """Ask `model` the query (with the router-written system prompt); return its answer and cost."""


# ---------------------------------------------------------------- the price table and tiers
PRICES_CSV = Path(__file__).with_name("prices.csv")
# Tier from the blended price (3 input : 1 output tokens, the usual chat mix), USD per 1M tokens.
# The bands give 7 premium, 13 standard and 9 budget of the 29 priced models; tiers never look at accuracy.
PREMIUM_FROM = 2.50  # blended >= this: premium (GPT-4o, Claude 3.5 Sonnet, o1-mini, GPT-4 Turbo, ...)
BUDGET_BELOW = 0.50  # blended < this: budget (GPT-4o mini, Gemini Flash, Llama 3.1 8B, ...)
TIERS = ("premium", "standard", "budget", "specialized")  # the last one only from live pool configs


def blended_price(price_in: float, price_out: float) -> float:
    """USD per 1M tokens at 3 input tokens per output token."""
    return (3 * price_in + price_out) / 4


def tier_of(price_in: float, price_out: float) -> str:
    """'premium', 'standard' or 'budget' from the blended price band (see PREMIUM_FROM, BUDGET_BELOW)."""
    blended = blended_price(price_in, price_out)
    return "premium" if blended >= PREMIUM_FROM else "budget" if blended < BUDGET_BELOW else "standard"


def _context_words(tokens: int) -> str:
    """128000 -> '128K', 131072 -> '128K', 2097152 -> '2M'."""
    if tokens >= 1_000_000:
        return f"{tokens // 1_048_576 if tokens % 1_048_576 == 0 else round(tokens / 1e6)}M"
    return f"{tokens // 1000 if tokens % 1000 == 0 else round(tokens / 1024)}K"


PRICES_ENV = "XROUTER_LITE_PRICES"  # a CSV of your own prices, merged over the shipped table (CLI: --prices FILE)
PRICE_COLUMNS = ("model", "price_in", "price_out")  # required in a user's file; the others are optional
DEFAULT_CONTEXT = 8192  # context length of a user-priced model whose file gives none


def missing_price_message(models) -> str:
    """One line naming the unpriced models and the CSV row that adds each through --prices."""
    models = sorted(set(models))
    rows = " ".join(f'"{m},PRICE_IN,PRICE_OUT"' for m in models)
    return (f"no price for model(s) {', '.join(map(repr, models))}: write a CSV with the header "
            f'"model,price_in,price_out" and the row(s) {rows} (USD per 1M tokens), then pass it with '
            f"--prices FILE or set ${PRICES_ENV}=FILE")


def _price_rows(path: Path, required) -> list[dict]:
    """The rows of one price CSV, every field checked; a PriceError naming the file and line of the first bad one."""
    if not path.is_file():
        raise PriceError(f"{path}: no such price file (given by --prices or ${PRICES_ENV})")
    try:
        rows = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise PriceError(f"{path}: not a readable CSV ({str(err).strip()})") from None
    rows.columns = [str(c).strip() for c in rows.columns]
    missing = [c for c in required if c not in rows.columns]
    if missing:
        raise PriceError(f"{path}: missing column(s) {missing}; the header needs at least {','.join(PRICE_COLUMNS)}")
    out = []
    for i, r in enumerate(rows.to_dict(orient="records")):
        where = f"{path}: line {i + 2}"  # line 1 is the header
        model = str(r.get("model", "")).strip()
        if not model:
            raise PriceError(f"{where}: empty model id")
        row = {"model": model, "provider": str(r.get("provider") or "").strip() or "your price table",
               "family": str(r.get("family") or "").strip() or model}
        for col in ("price_in", "price_out"):
            raw = str(r[col]).strip()
            try:
                value = float(raw)
            except ValueError:
                value = float("nan")
            if not np.isfinite(value) or value < 0:
                raise PriceError(f"{where} ({model}): {col} {raw!r} is not a number >= 0 (USD per 1M tokens)")
            row[col] = value
        raw = str(r.get("context") or "").strip()
        try:
            row["context"] = int(float(raw)) if raw else DEFAULT_CONTEXT
        except ValueError:
            row["context"] = 0
        if row["context"] <= 0:
            raise PriceError(f"{where} ({model}): context {raw!r} is not a positive number of tokens")
        out.append(row)
    return out


def _specs(rows: list[dict], path: Path) -> dict[str, ModelSpec]:
    """ModelSpecs from checked rows; a model listed twice in one file must have one price."""
    specs: dict[str, ModelSpec] = {}
    for r in rows:
        tier = tier_of(r["price_in"], r["price_out"])
        spec = ModelSpec(id=r["model"], price_in=r["price_in"], price_out=r["price_out"], tier=tier,
                         context=r["context"],
                         description=f"{r['family']} by {r['provider']}")  # tier, context, prices: protocol.describe
        old = specs.get(r["model"])
        if old is not None and (old.price_in, old.price_out) != (spec.price_in, spec.price_out):
            raise PriceError(f"{path}: {r['model']} is listed twice with different prices")
        specs[r["model"]] = spec
    return specs


def user_prices_path() -> Path | None:
    """The user's price file from ${PRICES_ENV} (set by --prices), or None."""
    chosen = os.environ.get(PRICES_ENV, "").strip()
    return Path(chosen).expanduser() if chosen else None


def load_prices(path: str | Path | None = None, extra: str | Path | None = None) -> dict[str, ModelSpec]:
    """Every priced model as a ModelSpec (tier from its price band; description never mentions accuracy).

    `path` is the base table (default: the shipped prices.csv). `extra` (default: ${PRICES_ENV} when `path` is
    the default) is your own CSV, same columns, at least model,price_in,price_out: its rows replace or add
    models. Every row is checked; a bad one raises a PriceError naming its file and line.
    """
    base = Path(path) if path is not None else PRICES_CSV
    specs = _specs(_price_rows(base, ("model", "price_in", "price_out", "context", "provider", "family")), base)
    extra = Path(extra) if extra is not None else user_prices_path() if path is None else None
    if extra is not None:
        specs.update(_specs(_price_rows(extra, PRICE_COLUMNS), extra))
    return specs


def prices_fingerprint() -> str:
    """The user price file's path and contents (empty without one): part of every cache key that prices shape."""
    extra = user_prices_path()
    if extra is None:
        return ""
    try:
        return f"{extra.resolve()}\n{extra.read_text(encoding='utf-8', errors='replace')}"
    except OSError:
        return str(extra)  # unreadable: load_prices will say so


def sample_subpool(model_ids, rng, min_size: int = 2, max_size: int | None = None) -> list[str]:
    """A random sub-pool (size uniform in [min_size, max_size]), in the given order; same rng state, same pool."""
    ids = list(model_ids)
    max_size = len(ids) if max_size is None else min(max_size, len(ids))
    if not 1 <= min_size <= max_size:
        raise ValueError(f"cannot draw {min_size}..{max_size} models from a pool of {len(ids)}")
    rng = np.random.default_rng(rng)  # a Generator passes through; an int seeds one
    size = int(rng.integers(min_size, max_size + 1))
    keep = set(rng.choice(len(ids), size=size, replace=False).tolist())
    return [m for i, m in enumerate(ids) if i in keep]


# ---------------------------------------------------------------- the replay pool
class ReplayPool(Pool):
    """Answers every call from the recorded table: same query and model, same recorded answer.

    Temperature is ignored: each record is one recorded sample (ZeroEval and MMLU-Pro ran greedy).
    The router-written system prompt is counted with `tokens.count_tokens` and charged at the model's
    input price on top of the recorded call's cost. `outcomes` is the vectorised lookup for evaluation.

        >>> from xrouter_lite.pool import load_table, add_splits        # doctest: +SKIP
        >>> pool = ReplayPool(add_splits(load_table()))             # doctest: +SKIP
        >>> q = pool.queries(split="test", source="zeroeval")[0]    # doctest: +SKIP
        >>> pool.call("gpt-4o-mini-2024-07-18", q).usd              # doctest: +SKIP
    """

    def __init__(self, table, specs: dict[str, ModelSpec] | None = None):
        self.table = table.reset_index(drop=True)
        specs = specs if specs is not None else load_prices()
        model_ids = list(pd.unique(self.table["model"]))
        unpriced = [m for m in model_ids if m not in specs]
        if unpriced:
            raise MissingPriceError(missing_price_message(unpriced))
        self.models = [specs[m] for m in model_ids]
        self._specs = {m.id: m for m in self.models}
        # object dtype: hashing Python strings beats pyarrow's compute path ~10x for the small lookups routing does
        self._query_index = pd.Index(pd.unique(self.table["query_id"]), dtype=object)
        self._model_index = pd.Index(model_ids, dtype=object)
        self._models_by_source: dict[str, list[str]] = {}  # models_for's answers: the table never changes
        q = self._query_index.get_indexer(self.table["query_id"])
        m = self._model_index.get_indexer(self.table["model"])
        # Dense [query, model] -> row number (-1: no record); ~18k x 31 int32 is ~2 MB for the full table.
        self._row = np.full((len(self._query_index), len(model_ids)), -1, dtype=np.int32)
        self._row[q, m] = np.arange(len(self.table), dtype=np.int32)
        self._correct = self.table["correct"].to_numpy(float)
        self._usd = self.table["usd"].to_numpy(float)
        # One call reads one row: dict positions and plain arrays take microseconds where pandas row indexing
        # took ~1.5 ms. Responses stay in the table's own (Arrow) array: a copy as Python strings costs ~250 MB.
        self._query_pos = {qid: i for i, qid in enumerate(self._query_index)}
        self._model_pos = {mid: j for j, mid in enumerate(model_ids)}
        self._response = self.table["response"].array
        self._in_tokens = self.table["in_tokens"].to_numpy(np.int64)
        self._out_tokens = self.table["out_tokens"].to_numpy(np.int64)
        self._queries = None

    def spec(self, model_id: str) -> ModelSpec:
        """The spec of one model, or a PoolError naming the model and the pool."""
        if model_id not in self._specs:
            return super().spec(model_id)  # raises the PoolError listing the pool
        return self._specs[model_id]

    def _rows(self, query_ids, models):
        """Row numbers of (query, model) pairs; a PoolError naming the first unknown or unrecorded pair."""
        q = self._query_index.get_indexer(np.asarray(query_ids, dtype=object))
        m = self._model_index.get_indexer(np.asarray(models, dtype=object))
        if (q < 0).any():
            bad = np.asarray(query_ids, dtype=object)[np.argmax(q < 0)]
            raise PoolError(f"unknown query {bad!r}: it is not in this replay pool's table")
        if (m < 0).any():
            self.spec(np.asarray(models, dtype=object)[np.argmax(m < 0)])
        rows = self._row[q, m]
        if (rows < 0).any():
            i = int(np.argmax(rows < 0))
            raise PoolError(f"model {np.asarray(models, dtype=object)[i]!r} has no recorded answer "
                            f"to query {np.asarray(query_ids, dtype=object)[i]!r}")
        return rows

    def call(self, model: str, query: Query, system_prompt: str | None = None,
             temperature: float | None = None) -> Answer:
        """The recorded answer of `model` to `query` (temperature ignored), costed with the system prompt."""
        spec = self.spec(model)
        q, m = self._query_pos.get(query.id, -1), self._model_pos[model]
        row = int(self._row[q, m]) if q >= 0 else -1
        if row < 0:
            row = int(self._rows([query.id], [model])[0])  # raises the PoolError that names the query or pair
        extra = count_tokens(system_prompt) if system_prompt else 0
        return Answer(text=self._response[row], in_tokens=int(self._in_tokens[row]) + extra,
                      out_tokens=int(self._out_tokens[row]), usd=float(self._usd[row]) + extra * spec.price_in / 1e6,
                      model=model, meta={"replay": True, "system_prompt_tokens": extra})

    def outcomes(self, query_ids, models):
        """(correct, usd) arrays for aligned query ids and models (a single model id applies to all)."""
        ids = np.asarray(query_ids, dtype=object)
        if isinstance(models, str):
            models = np.full(len(ids), models, dtype=object)
        models = np.asarray(models, dtype=object)
        if len(models) != len(ids):
            raise ValueError(f"{len(ids)} query ids but {len(models)} models")
        rows = self._rows(ids, models)
        return self._correct[rows], self._usd[rows]

    def subpool_outcomes(self, query_ids, subpools) -> list[tuple[np.ndarray, np.ndarray]]:
        """(correct, usd) of each query's own sub-pool, in its order: one vectorised lookup for every pair."""
        sizes = [len(s) for s in subpools]
        if not sizes:
            return []
        correct, usd = self.outcomes(np.repeat(np.asarray(query_ids, dtype=object), sizes),
                                     [m for s in subpools for m in s])
        cuts = np.cumsum(sizes)[:-1]
        return list(zip(np.split(correct, cuts), np.split(usd, cuts)))

    def outcome_matrix(self, query_ids, models) -> tuple[np.ndarray, np.ndarray]:
        """(correct, usd), each [n_queries, n_models]: one index lookup per query and per model, not per pair."""
        ids, models = np.asarray(query_ids, dtype=object), np.asarray(models, dtype=object)
        q, m = self._query_index.get_indexer(ids), self._model_index.get_indexer(models)
        rows = self._row[q[:, None], m[None, :]] if len(ids) and len(models) else np.zeros((len(ids), len(models)), int)
        if (q < 0).any() or (m < 0).any() or (rows < 0).any():  # the pairwise path names the bad pair
            pairs = self.outcomes(np.repeat(ids, len(models)), np.tile(models, len(ids)))
            return tuple(a.reshape(len(ids), len(models)) for a in pairs)
        return self._correct[rows], self._usd[rows]

    def records(self, query_id: str) -> dict[str, str]:
        """Every model's recorded response to one query: {model: response}."""
        return {m: self.table.at[int(r), "response"] for m, r in self._recorded(query_id)}

    def response_scores(self, query_id: str) -> dict[str, float]:
        """{response text: recorded score} of one query: what RouterBench-style grading of a verbatim answer needs."""
        scores: dict[str, float] = {}
        for _, r in self._recorded(query_id):
            text = self.table.at[int(r), "response"]
            scores[text] = max(scores.get(text, 0.0), float(self._correct[r]))  # same text, best record
        return scores

    def _recorded(self, query_id: str) -> list[tuple[str, int]]:
        """(model, row) for every model with a record of the query; a PoolError for an unknown query."""
        q = self._query_index.get_indexer([query_id])[0]
        if q < 0:
            raise PoolError(f"unknown query {query_id!r}: it is not in this replay pool's table")
        return [(self._model_index[j], int(r)) for j, r in enumerate(self._row[q]) if r >= 0]

    def models_for(self, source: str) -> list[str]:
        """The models with records in one source, in table order (computed once per source: the table is fixed)."""
        if source not in self._models_by_source:
            rows = self.table["source"] == source
            self._models_by_source[source] = list(pd.unique(self.table.loc[rows, "model"]))
        return list(self._models_by_source[source])

    def query_table(self, split: str | None = None, source: str | None = None):
        """One row per query (query_id, source, task, category, question, gold[, split]), optionally filtered."""
        if self._queries is None:
            cols = [c for c in ("query_id", "source", "task", "category", "question", "gold", "split")
                    if c in self.table]
            self._queries = self.table.loc[~self.table["query_id"].duplicated(), cols].reset_index(drop=True)
            if "split" not in self._queries:  # a table without splits gets the standard ones
                self._queries = add_splits(self._queries)
        q = self._queries
        if source is not None:
            q = q[q["source"] == source]
        if split is not None:
            q = q[q["split"] == split]
        return q.reset_index(drop=True)

    def queries(self, split: str | None = None, source: str | None = None) -> list[Query]:
        """The pool's queries as Query objects (gold included, for grading), optionally one split/source."""
        q = self.query_table(split, source)
        golds = [None if pd.isna(g) else str(g) for g in q["gold"]]  # RouterBench has none
        return [Query(id=i, source=s, task=t, text=x, gold=g)
                for i, s, t, x, g in zip(q["query_id"], q["source"], q["task"], q["question"], golds)]
