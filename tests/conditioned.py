"""Scripted λ-conditioned routers for the tests: they read the cost weight stated after the query."""

from __future__ import annotations

import re
from typing import Callable

from xrouter_lite.pool.core import tool_name

_COST = re.compile(r"Cost weight: ([0-9.eE+-]+) reward points per USD\.")


def stated_lambda(messages: list[dict]) -> float | None:
    """The cost weight λ the user turn states (`protocol.cost_line`), or None when it states none."""
    user = next((m["content"] for m in messages if m["role"] == "user"), "")
    m = _COST.search(user)
    return float(m.group(1)) if m else None


def call(model: str) -> str:
    return ('<tool_call>{"name": "%s", "arguments": {"optimized_system_prompt": "Solve it."}}</tool_call>'
            % tool_name(model))


def by_lambda(choose: Callable[[float | None], str]) -> Callable[[list, list], str]:
    """A simple-mode router that calls `choose(stated λ)`: the model it picks for that cost weight (None: none stated).

    In agent mode it selects the called model's answer on its second turn.
    """
    def router(messages, tools):
        if messages[-1]["role"] == "user":
            return call(choose(stated_lambda(messages)))
        called = next(m["name"] for m in reversed(messages) if m["role"] == "tool")  # already a tool name
        return '<tool_call>{"name": "select_response", "arguments": {"model_call_name": "%s"}}</tool_call>' % called
    return router


def price_ladder(cheap: str, mid: str, dear: str, low: float = 10.0, high: float = 100.0):
    """A chooser: `dear` up to λ = low (or when no λ is stated), `mid` up to `high`, `cheap` above."""
    def choose(lam: float | None) -> str:
        if lam is None or lam <= low:
            return dear
        return mid if lam <= high else cheap
    return choose
