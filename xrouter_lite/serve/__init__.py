"""Serve a trained router behind an OpenAI-compatible endpoint (FastAPI + uvicorn, localhost only; notebook 05).

Every request runs one routing episode against the pool (replay or live) and returns a normal chat
completion plus `router_metadata`: the models called with their tokens and USD, the router's tokens,
total USD, turns, the strategy (direct / called / selected / summarised / fell back) and latencies.

    python -m xrouter_lite serve --router runs/cpu-20250101-120000 --pool replay --data ../shared/data --port 8000

    from openai import OpenAI
    client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="unused")
    r = client.chat.completions.create(model="xrouter-lite", messages=[{"role": "user", "content": question}])
    r.choices[0].message.content, r.router_metadata["strategy"], r.router_metadata["total_usd"]

In a notebook or a test the router is any `(messages, tools) -> str` callable and the server runs in a thread
(`BackgroundServer`; the example is in `app`'s docstring).

The cost preference travels with each request: `cost_weight` (reward points one USD costs the router, λ; a number
>= 0) in the request body, sent with the openai client as `extra_body={"cost_weight": 100}`. Higher means cheaper
routing. A λ-conditioned router (router.json `lambda_in_prompt`) is told it in its prompt, exactly as it was trained
(`protocol.cost_line`); any other router ignores it. Without the field the router's default applies (router.json's
`lambda`). `router_metadata` reports `cost_weight`, where it came from (`cost_weight_source`: request or default)
and whether the router was told it (`cost_weight_in_prompt`). A non-number, NaN, an infinity or a negative value is
a 400 naming `cost_weight`. The episode clips the model answers the router reads and adds the runtime's answer notes
as the router was trained (router.json `tool_result_chars`, `answer_notes`).

What the server does with a request: the router routes the LAST user message (it was trained on single
queries; earlier turns and client system prompts are not forwarded). With a replay pool that text must be
a recorded question, exactly; the router's tools are the models recorded for it. `temperature`,
`max_tokens`, `tools` and the like are accepted and ignored: the router's own settings apply. An invalid
router episode (or a router that raises) falls back to `fallback` (default: the cheapest available model).
Budgets: before an episode, the server's remaining USD must cover the most expensive plausible call of the
query; during it, every call is held against the per-request and per-process caps and settled at its
actual cost: what was paid (a live pool's cache hit reports the original call's cost but pays nothing,
`meta["paid_usd"]`). Errors are OpenAI-shaped JSON (`{"error": {"message", "type", "param", "code"}}`) with
`x-should-retry: false`, since retrying a refused or failed episode would only spend again.

    request     what a client sends: `ChatRequest`, `parse_request` (400s naming the field), `ServeError`, `redact`
    service     the server without HTTP: `RouterService` (one request, end to end), `MeteredPool` (the USD caps),
                `call_bounds`, `Outcome` (the answer and its `router_metadata`)
    app         HTTP: `create_app` (FastAPI), the completion and its server-sent events, `BackgroundServer`
    cli         the `serve` command: `find_router`, `read_router_info`, `service_options` (router.json -> `create_app`
                keywords), `build_placeholder_router`, `open_pool`, `serve_command`
    __main__    `python -m xrouter_lite.serve ...`, the same as `python -m xrouter_lite serve ...`

Notebooks and benchmarks import from here (`from xrouter_lite.serve import BackgroundServer, create_app`); the modules
import each other by their full names.
"""

from xrouter_lite import _lazy_exports

# name -> its module here: every public name of the former serve.py, loaded on first use
_EXPORTS = {
    "COST_WEIGHT": "request", "ROLES": "request", "ServeError": "request", "secret_values": "request",
    "redact": "request", "ChatRequest": "request", "parse_request": "request",
    "ROUTER_NAME": "service", "DEFAULT_TIMEOUT_S": "service", "DEFAULT_WORKERS": "service",
    "SYSTEM_PROMPT_ALLOWANCE": "service", "DEFAULT_MAX_TOKENS": "service", "DEFAULT_COST_WEIGHT": "service",
    "BudgetRefused": "service", "call_bounds": "service", "paid_usd": "service", "MeteredPool": "service",
    "Outcome": "service", "RouterService": "service", "replay_index": "service",
    "MAX_BODY_BYTES": "app", "DRAIN_BYTES": "app", "create_app": "app", "read_body": "app", "completion": "app",
    "sse_events": "app", "text_pieces": "app", "BackgroundServer": "app", "wait_for_health": "app",
    "ROUTER_DIRS": "cli", "find_router": "cli", "read_router_info": "cli", "service_options": "cli",
    "build_placeholder_router": "cli", "load_replay_table": "cli", "open_pool": "cli", "app_from_args": "cli",
    "serve_command": "cli", "main": "cli",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS)
