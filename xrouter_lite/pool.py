"""Model pools: one interface for recorded (replay) and live model answers.

    >>> from xrouter_lite.pool import tool_name
    >>> tool_name("gpt-4o-mini-2024-07-18")
    'call_gpt_4o_mini_2024_07_18'
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field


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


class PoolError(KeyError):
    """Unknown model or query; the message names which."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0]) if self.args else ""


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

    @abstractmethod
    def call(self, model: str, query: Query, system_prompt: str | None = None,
             temperature: float | None = None) -> Answer:
        """Ask `model` the query (with the router-written system prompt); return its answer and cost."""
