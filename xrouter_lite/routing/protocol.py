"""The router's protocol: system prompts, tool schemas from a (sub-)pool, and parsing of router turns.

The router writes Qwen/Hermes tool calls, several per turn if it likes:

    <tool_call>{"name": "call_gpt_4o_mini", "arguments": {"optimized_system_prompt": "Be brief."}}</tool_call>

`parse_turn` turns one router turn into `Action`s (call / select / answer / invalid) and `render_calls`
is its inverse (used to write SFT traces):

    >>> from xrouter_lite.pool.core import ModelSpec
    >>> from xrouter_lite.routing.protocol import parse_turn, render_calls, tool_schemas
    >>> models = [ModelSpec("gpt-4o-mini", 0.15, 0.60, tier="budget"), ModelSpec("gpt-4o", 2.5, 10, tier="premium")]
    >>> [t["function"]["name"] for t in tool_schemas(models)]
    ['call_gpt_4o_mini', 'call_gpt_4o', 'select_response']
    >>> text = '<tool_call>{"name": "call_gpt_4o", "arguments": {"optimized_system_prompt": "Solve it."}}</tool_call>'
    >>> turn = parse_turn(text, models)
    >>> turn.kind, turn.actions[0].model
    ('call', 'gpt-4o')
    >>> parse_turn(render_calls(turn.actions), models).actions == turn.actions
    True
    >>> parse_turn("Paris.", models).kind
    'answer'

Parsing rules (decided here, relied on by episodes and rewards):
- Surrounding whitespace is ignored. A turn with no `<tool_call>` tag is a plain-text answer.
- Prose mixed with tool calls ("Let me ask a model. <tool_call>...") counts as the calls; the prose is
  kept in `Turn.prose` for traces but never read as an answer (small models narrate before calling).
- Each block must hold one JSON object with exactly the keys `name` and `arguments` (`arguments` may be
  an object or, as in OpenAI's wire format, a string holding one). Arguments are checked strictly
  against the schema: unknown argument names, wrong types and out-of-range temperatures are invalid,
  so RL sees a clean format signal. One invalid block makes the whole turn invalid.
- The JSON is decoded from the opening tag (not cut at the first closing tag), so braces, `<tool_call>`
  or `</tool_call>` inside JSON strings are fine. NaN/Infinity literals are malformed JSON.
- A turn longer than `max_chars` is rejected by its length alone, before any scanning.
- `select_response` mixed with any other call is invalid; in simple mode `select_response` does not
  exist and exactly one call is allowed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterable, Sequence

from xrouter_lite.pool.core import TIERS, Answer, ModelSpec, _context_words, tool_name

OPEN, CLOSE = "<tool_call>", "</tool_call>"
SELECT = "select_response"
MODES = ("agent", "simple")
MAX_TURN_CHARS = 32_768  # longest router turn accepted (~8k tokens); longer output is invalid, unread
MAX_TOOL_RESULT_CHARS = 6_000  # a model answer shown to the router is cut here; select still returns it whole
DEFAULT_TEMPERATURE = 1.0
_WS = " \t\r\n"

AGENT_PROMPT = """\
You are a cost-aware router: get the user's query answered correctly at the lowest cost.
Tools call other models; each lists its tier, price (USD per 1M input/output tokens) and context length. \
Every call is charged; answering yourself is free.
You have {max_turns} turns. In each turn do one of:
- answer in plain text yourself (easy queries, or to combine the answers you got);
- call one or more models (each gets the query and the system prompt you write for it);
- call select_response to return one called model's answer as the final answer.
Calls in turn {max_turns} get no answers, so finish by then. Only correct answers earn reward; cheaper ones earn more.
Call tools like this: <tool_call>{{"name": "call_model", "arguments": {{"optimized_system_prompt": "..."}}}}</tool_call>"""

SIMPLE_PROMPT = """\
You are a cost-aware router: get the user's query answered correctly at the lowest cost.
Tools call other models; each lists its tier, price (USD per 1M input/output tokens) and context length. \
A call is charged; answering yourself is free.
Decide once: answer in plain text yourself (easy queries), or call exactly one model; its answer is final.
Only correct answers earn reward; cheaper ones earn more.
Call a tool like this: <tool_call>{"name": "call_model", "arguments": {"optimized_system_prompt": "..."}}</tool_call>"""


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of: {', '.join(MODES)}")


def system_prompt(mode: str = "agent", max_turns: int = 3) -> str:
    """The router's system prompt: multi-turn orchestration (agent) or one decision (simple)."""
    _check_mode(mode)
    if max_turns < 1:
        raise ValueError(f"max_turns must be >= 1, got {max_turns}")
    return AGENT_PROMPT.format(max_turns=max_turns) if mode == "agent" else SIMPLE_PROMPT


COST_LINE = "\nCost weight: {lam} reward points per USD."  # the stated price of a dollar (a λ-conditioned router)


def cost_line(lam: float) -> str:
    """The line a router told its cost weight λ reads at the end of the user turn: the last thing before it decides.

    Measured: placed at the end of the system prompt (~500 tokens before the first call), a tiny 2-layer router
    ignored it (its first-call distribution moved by a total variation of 0.0003 between λ = 1 and 1000 after 2000
    SFT steps); right before the decision it moved by 0.56 after 600 steps (notebook 02 explains). The later
    decision, whom to pay when two answers differ, reads it again: `agreement.note` restates it after "No earlier
    call gave this final answer." (validation, SFT router told λ = 100 / 300: it escalated to o1-mini as at λ = 30,
    $0.0047 / $0.0044 per query, reward 0.651 / 0.633; restated there, $0.0016 / $0.0007, reward 0.717 / 0.710).
    Restated before *every* answer note instead, the λ=1000 router began to escalate too: not kept.
    """
    if not (math.isfinite(lam) and lam >= 0):
        raise ValueError(f"the cost weight must be a finite number >= 0, got {lam!r}")
    return COST_LINE.format(lam=f"{lam:g}")


def router_messages(query_text: str, mode: str = "agent", max_turns: int = 3, lam: float | None = None) -> list[dict]:
    """The router's opening conversation: the system prompt and the query (then the cost weight λ, if given).

    Only the router reads the cost line: the models it calls get the query itself (`Pool.call(model, query, ...)`).
    """
    stated = cost_line(lam) if lam is not None else ""
    return [{"role": "system", "content": system_prompt(mode, max_turns)}, {"role": "user", "content": query_text + stated}]


def describe_parts(spec: ModelSpec) -> tuple[str, str, str]:
    """A tool description in its three parts: who (capabilities, context), tier, and price (USD per 1M tokens).

    Never measured accuracies: they would leak our evaluation into the prompt. The tiny router reads the first
    two as one token each and the price as ordinary text (`sft.protocol_texts`), so a changed price is visible.
    """
    who = f"{spec.description or spec.id}, {_context_words(spec.context)} context; "
    return who, f"{spec.tier} tier; ", f"${_usd(spec.price_in)} in / ${_usd(spec.price_out)} out per 1M tokens."


def describe(spec: ModelSpec) -> str:
    """A tool description: capabilities and context, tier, prices; never measured accuracies."""
    return "".join(describe_parts(spec))


def _usd(price: float) -> str:
    """Cents as people write prices ($0.60, $10.00); sub-cent prices keep their digits ($0.075)."""
    return f"{price:.2f}" if round(price, 2) == price else f"{price:g}"


def tool_schemas(models: Sequence[ModelSpec], mode: str = "agent") -> list[dict]:
    """OpenAI-style tool schemas: one `call_<model>` per model, plus `select_response` in agent mode."""
    _check_mode(mode)
    _tool_map(models)  # fails on two models sharing one tool name
    tools = [_call_schema(m) for m in models]
    if mode == "agent":
        tools.append(_select_schema([m.tool for m in models]))
    return tools


def _call_schema(spec: ModelSpec) -> dict:
    # Terse on purpose: 12 tools are in every prompt, and a Hub router reads them as ~130 tokens each.
    return {"type": "function", "function": {
        "name": spec.tool,
        "description": describe(spec),
        "parameters": {
            "type": "object",
            "properties": {
                "optimized_system_prompt": {"type": "string",
                                            "description": "Your system prompt for this model; the query is sent as is."},
                "temperature": {"type": "number", "default": DEFAULT_TEMPERATURE, "minimum": 0, "maximum": 2},
            },
            "required": ["optimized_system_prompt"],
        }}}


def _select_schema(tools: list[str]) -> dict:
    return {"type": "function", "function": {
        "name": SELECT,
        "description": "Finish: return the answer of a model you called in an earlier turn, verbatim.",
        "parameters": {
            "type": "object",
            "properties": {"model_call_name": {"type": "string", "enum": tools,
                                               "description": "The tool name of the called model."}},
            "required": ["model_call_name"],
        }}}


def _ids(models: Iterable[ModelSpec | str]) -> list[str]:
    return [m if isinstance(m, str) else m.id for m in models]


def _tool_map(models: Iterable[ModelSpec | str]) -> dict[str, str]:
    """tool name -> model id (read-only, cached: every turn of every episode parses against one)."""
    return _tool_map_of(tuple(_ids(models)))


@lru_cache(maxsize=1024)
def _tool_map_of(ids: tuple[str, ...]) -> dict[str, str]:
    """tool name -> model id; two ids that sanitise to one tool name would make calls ambiguous."""
    out: dict[str, str] = {}
    for mid in ids:
        tool = tool_name(mid)
        if out.get(tool, mid) != mid:
            raise ValueError(f"models {out[tool]!r} and {mid!r} share the tool name {tool!r}")
        out[tool] = mid
    return out


@dataclass(frozen=True)
class Action:
    """One parsed unit of a router turn: a model call, a select, a plain-text answer, or an invalid block."""

    kind: str  # "call" | "select" | "answer" | "invalid"
    model: str | None = None  # call: the model called; select: the model whose answer is returned
    args: dict = field(default_factory=dict)  # the tool arguments exactly as written (no defaults filled in)
    text: str = ""  # answer: the answer text; invalid: the offending block (clipped)
    reason: str = ""  # invalid: why

    @property
    def name(self) -> str:
        """The tool name this action stands for ('' for answers and nameless invalid blocks)."""
        if self.kind == "call":
            return tool_name(self.model)
        return SELECT if self.kind == "select" else ""

    @property
    def temperature(self) -> float:
        """The call's temperature, with the schema default."""
        return float(self.args.get("temperature", DEFAULT_TEMPERATURE))


@dataclass(frozen=True)
class Turn:
    """One parsed router turn: its actions in order, the prose around tool calls, and a turn-level error."""

    actions: tuple[Action, ...]
    prose: str = ""  # text outside tool-call blocks, stripped (kept for traces, never an answer)
    error: str = ""  # non-empty = the turn is invalid, and says why

    @property
    def kind(self) -> str:
        """"invalid", "select", "call" or "answer": what the episode does with this turn."""
        if self.error:
            return "invalid"
        return self.actions[0].kind  # a valid turn holds one answer, one select, or only calls

    @property
    def calls(self) -> list[Action]:
        """The model calls of the turn, in the order written."""
        return [a for a in self.actions if a.kind == "call"]


def _invalid_turn(reason: str, text: str = "") -> Turn:
    return Turn((Action("invalid", text=text[:200], reason=reason),), error=reason)


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WS:
        i += 1
    return i


def parse_turn(text, models: Iterable[ModelSpec | str], mode: str = "agent",
               max_chars: int = MAX_TURN_CHARS) -> Turn:
    """Parse one router turn against the sample's models (specs or ids) into a `Turn`."""
    _check_mode(mode)
    if not isinstance(text, str):
        return _invalid_turn(f"router output is {type(text).__name__}, not text")
    if len(text) > max_chars:  # checked first: a runaway generation is never scanned
        return _invalid_turn(f"output too long ({len(text)} chars > {max_chars})")
    stripped = text.strip()
    if not stripped:
        return _invalid_turn("empty output")
    if OPEN not in text and CLOSE not in text:
        return Turn((Action("answer", text=stripped),))
    tools = _tool_map(models)
    actions, prose = _scan_blocks(text, tools, mode)
    return Turn(tuple(actions), prose, _turn_error(actions, mode))


def _scan_blocks(text: str, tools: dict[str, str], mode: str) -> tuple[list[Action], str]:
    """Walk the `<tool_call>` blocks left to right; each becomes an Action, the rest is prose."""
    actions, prose, pos = [], [], 0
    while True:
        start = text.find(OPEN, pos)
        outside = text[pos:] if start < 0 else text[pos:start]
        prose.append(outside)
        if CLOSE in outside:
            actions.append(Action("invalid", text=outside[:200], reason=f"{CLOSE} without {OPEN}"))
        if start < 0:
            break
        action, pos = _parse_block(text, start, tools, mode)
        actions.append(action)
        if pos < 0:  # unclosed block: nothing after it can be trusted
            break
    return actions, " ".join(p.strip() for p in prose if p.strip())


def _parse_block(text: str, start: int, tools: dict[str, str], mode: str) -> tuple[Action, int]:
    """Decode the JSON after an opening tag; return its Action and where scanning resumes (-1: stop)."""
    i = _skip_ws(text, start + len(OPEN))
    try:
        obj, end = _DECODER.raw_decode(text, i)
    except (ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError; deep nesting recurses
        close = text.find(CLOSE, i)
        if close < 0:
            return Action("invalid", text=text[start:start + 200], reason=f"unclosed {OPEN}"), -1
        msg = getattr(e, "msg", None) or type(e).__name__
        return Action("invalid", text=text[start:close + len(CLOSE)][:200], reason=f"malformed JSON: {msg}"), \
            close + len(CLOSE)
    j = _skip_ws(text, end)
    if text.startswith(CLOSE, j):
        return _action_from(obj, tools, mode), j + len(CLOSE)
    close = text.find(CLOSE, end)
    if close < 0:
        return Action("invalid", text=text[start:start + 200], reason=f"unclosed {OPEN}"), -1
    return Action("invalid", text=text[start:close + len(CLOSE)][:200],
                  reason="text after the JSON object inside the tool call"), close + len(CLOSE)


def _action_from(obj, tools: dict[str, str], mode: str) -> Action:
    """Check one decoded tool call against the tools; a call/select Action, or invalid with a reason."""
    def bad(reason: str) -> Action:
        return Action("invalid", text=json.dumps(obj, ensure_ascii=False)[:200], reason=reason)

    if not isinstance(obj, dict):
        return bad("a tool call must be a JSON object")
    extra = set(obj) - {"name", "arguments"}
    if extra:
        return bad(f"unexpected key {sorted(extra)[0]!r} in tool call (only name, arguments)")
    name, args = obj.get("name"), obj.get("arguments", {})
    if name is None:
        return bad("missing tool name")
    if not isinstance(name, str):
        return bad("tool name must be a string")
    if isinstance(args, str):  # OpenAI's wire format sends arguments as a JSON string
        try:
            args = _DECODER.decode(args)
        except (ValueError, RecursionError):
            return bad("arguments string is not valid JSON")
    if not isinstance(args, dict):
        return bad("arguments must be a JSON object")
    if name == SELECT and mode == "agent":
        return _select_action(args, tools, bad)
    if name in tools:
        reason = _check_call_args(args)
        return bad(reason) if reason else Action("call", model=tools[name], args=args)
    if name == SELECT:
        return bad(f"{SELECT} does not exist in simple mode")
    return bad(f"unknown tool {name!r}")


def _select_action(args: dict, tools: dict[str, str], bad) -> Action:
    extra = set(args) - {"model_call_name"}
    if extra:
        return bad(f"unexpected argument {sorted(extra)[0]!r} for {SELECT}")
    target = args.get("model_call_name")
    if not isinstance(target, str):
        return bad(f"{SELECT} needs model_call_name (a string)")
    # The schema asks for the tool name; a bare model id is accepted too, since it is unambiguous.
    model = tools.get(target) or (target if target in tools.values() else None)
    if model is None:
        return bad(f"{SELECT} names unknown model {target!r}")
    return Action("select", model=model, args=args)


def _check_call_args(args: dict) -> str:
    """'' when the arguments fit the call schema, else the reason they don't."""
    extra = set(args) - {"optimized_system_prompt", "temperature"}
    if extra:
        return f"unexpected argument {sorted(extra)[0]!r}"
    if "optimized_system_prompt" not in args:
        return "missing required argument 'optimized_system_prompt'"
    if not isinstance(args["optimized_system_prompt"], str):
        return "optimized_system_prompt must be a string"
    if "temperature" in args:
        t = args["temperature"]
        if isinstance(t, bool) or not isinstance(t, (int, float)):  # bool is an int in Python
            return "temperature must be a number"
        if not (math.isfinite(t) and 0 <= t <= 2):
            return f"temperature {t} outside [0, 2]"
    return ""


def _turn_error(actions: list[Action], mode: str) -> str:
    """The turn-level rules: one invalid block spoils the turn; select stands alone; simple = one call."""
    for i, a in enumerate(actions):
        if a.kind == "invalid":
            return a.reason if len(actions) == 1 else f"tool call {i + 1}: {a.reason}"
    if not actions:
        return "no tool call found"
    if any(a.kind == "select" for a in actions) and len(actions) > 1:
        return f"{SELECT} mixed with other calls"
    if mode == "simple" and len(actions) > 1:
        return f"simple mode allows exactly one call, got {len(actions)}"
    return ""


# The fixed text of a call block as `render_calls` writes it (json.dumps' default separators); the one owner of
# these strings. The tiny tokenizer makes each one token (`sft.protocol_texts`), guided decoding keys on them
# (`guided.GuidedIds`), and the tiny base records their hash (`sft.protocol_hash`): change one and the base is rebuilt.
#   CALL_OPENER + "call_<model>" + CALL_ARGS + <the system prompt, JSON-escaped> + CALL_CLOSE
#   CALL_OPENER + "select_response" + SELECT_ARGS + "call_<model>" + CALL_CLOSE
CALL_OPENER = OPEN + '\n{"name": "'
CALL_ARGS = '", "arguments": {"optimized_system_prompt": "'
SELECT_ARGS = '", "arguments": {"model_call_name": "'
CALL_CLOSE = '"}}\n' + CLOSE
SCHEMA_OPENING = '{"type": "function", "function": {"name": "'  # how every tool schema's JSON starts, before its name
SCHEMA_DESCRIPTION = '", "description": "'  # between a tool's name and its description


def schema_tail(mode: str = "agent") -> str:
    """The JSON after a call tool's description (its argument schema): the same text for every tool."""
    spec = ModelSpec("m", 1.0, 1.0, tier="budget")
    line = json.dumps(tool_schemas([spec], mode)[0], ensure_ascii=False)
    head = SCHEMA_OPENING + spec.tool + SCHEMA_DESCRIPTION + describe(spec)
    if not line.startswith(head):  # the layout the tiny tokenizer's protocol tokens rely on
        raise AssertionError(f"tool schema JSON no longer starts with {head!r}: {line[:120]!r}")
    return line[len(head):]


def fixed_texts(max_turns: int = 3, lambdas: Sequence[float] = ()) -> dict[str, list[str]]:
    """Every fixed text of the protocol, by group, each in a stable order: "prompts" (the two system prompts),
    "schema" (a tool schema's opening, each tier, its argument schema), "cost" (the cost-weight line's two halves and
    the whole line for each of `lambdas`) and "calls" (the call fragments). `sft.protocol_texts` makes each one
    token of the tiny tokenizer; `protocol_hash` fingerprints them."""
    return {"prompts": [system_prompt("agent", max_turns), system_prompt("simple")],
            "schema": [SCHEMA_OPENING, *[f"{t} tier; " for t in TIERS], schema_tail("simple")],
            "cost": [*COST_LINE.split("{lam}"), *[cost_line(lam) for lam in lambdas]],
            "calls": [CALL_OPENER, CALL_ARGS, SELECT_ARGS, CALL_CLOSE]}


def render_calls(actions: Iterable[Action]) -> str:
    """The assistant text for call/select actions (the inverse of `parse_turn`, for SFT traces)."""
    blocks = []
    for a in actions:
        if a.kind not in ("call", "select"):
            raise ValueError(f"render_calls renders call/select actions, got {a.kind!r}")
        blocks.append(f'{OPEN}\n{json.dumps({"name": a.name, "arguments": a.args}, ensure_ascii=False)}\n{CLOSE}')
    if not blocks:
        raise ValueError("render_calls needs at least one action")
    return "\n".join(blocks)


def format_tool_result(model: str, answer: Answer, max_chars: int = MAX_TOOL_RESULT_CHARS, note: str = "") -> str:
    """The tool message content the router reads: the tool name (templates may drop it) and the answer's end.

    Answers put their final result last (a reasoning chain, then `"answer": ...`), so a clipped answer keeps its
    *last* `max_chars` characters, behind a fixed "[...]" marker; a closing code fence is dropped first.
    `select_response` still returns the whole answer. `note` (`agreement.note`) is a last line from the runtime:
    whether an earlier call of the episode gave the same final answer.
    """
    text = answer.text.rstrip()
    text = text.removesuffix("```").rstrip() if text.endswith("```") else text
    if len(text) > max_chars:  # keeps the router's context small and its final answer in view
        text = f"[...]{text[-max_chars:]}" if max_chars > 0 else "[...]"
    return f"{tool_name(model)} answered:\n{text}" + (f"\n{note}" if note else "")


def tool_message(model: str, content: str) -> dict:
    """A tool message for the router's conversation."""
    return {"role": "tool", "name": tool_name(model), "content": content}
