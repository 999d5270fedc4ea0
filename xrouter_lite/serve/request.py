"""What a client sends: the chat completion request's checks and the errors the server answers with.

`parse_request` validates a body into a `ChatRequest` (the last user message, streaming, the request's cost weight
`cost_weight`); anything malformed is a `ServeError` (400, or 404 for an unknown model) naming the field.
`ServeError` is every refused or failed request, OpenAI-shaped (`{"error": {"message", "type", "param", "code"}}`);
`redact` keeps API keys out of messages and logs.
"""

import json
import os
import re
from dataclasses import dataclass
from typing import Sequence

from xrouter_lite.pool.core import Pool
from xrouter_lite.routing.protocol import cost_line

COST_WEIGHT = "cost_weight"  # the request field: reward points per USD (λ); extra_body={"cost_weight": 100}
ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_KEY_LIKE = re.compile(r"\b(?:sk|rk|pk)-[A-Za-z0-9_\-]{8,}")  # provider keys an upstream error may echo back


# ----------------------------------------------------------------------------- errors and secrets

class ServeError(Exception):
    """A refused or failed request: HTTP status, OpenAI-style error type and code, and a message for the user."""

    def __init__(self, status: int, message: str, code: str = "invalid_request", kind: str = "",
                 param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.kind = kind or ("invalid_request_error" if status < 500 else "server_error")

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


def secret_values(pool: Pool) -> list[str]:
    """The API keys this process holds for the pool (values of the env vars its specs name), longest first."""
    names = {m.api_key_env for m in pool.models if m.api_key_env}
    values = {os.environ.get(n, "") for n in names}
    return sorted((v for v in values if len(v) >= 4), key=len, reverse=True)


def redact(text: str, secrets: Sequence[str] = ()) -> str:
    """`text` with every known key and anything shaped like a provider key replaced by [redacted]."""
    for s in secrets:
        text = text.replace(s, "[redacted]")
    return _KEY_LIKE.sub("[redacted]", text)


# ----------------------------------------------------------------------------- request parsing

@dataclass(frozen=True)
class ChatRequest:
    """The parts of a chat completion request the server uses."""

    text: str  # the last user message: the query the router routes
    stream: bool = False
    include_usage: bool = False  # stream_options.include_usage: a last chunk carries the usage
    cost_weight: float | None = None  # the request's λ (reward points per USD); None: the server's default


_MISSING = object()
# Fields the server ignores but still type-checks, so a client bug gets a 400 instead of silence.
_NUMBERS = ("temperature", "top_p", "presence_penalty", "frequency_penalty")
_INTEGERS = ("max_tokens", "max_completion_tokens", "n", "seed")


def _type_name(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)


def parse_request(body: bytes, model_name: str) -> ChatRequest:
    """Validate a chat completion body; a ServeError (400, or 404 for an unknown model) naming the problem."""
    try:
        req = json.loads(body)
    except (ValueError, RecursionError):  # bad UTF-8 is a ValueError too
        raise ServeError(400, "the request body is not valid JSON") from None
    if not isinstance(req, dict):
        raise ServeError(400, f"the request body must be a JSON object, got {_type_name(req)}")
    _check_model(req.get("model", _MISSING), model_name)
    text = _last_user_text(req.get("messages", _MISSING))
    _check_options(req)
    options = req.get("stream_options") or {}
    return ChatRequest(text, bool(req.get("stream", False)), bool(options.get("include_usage", False)),
                       _cost_weight(req.get(COST_WEIGHT)))


def _cost_weight(value) -> float | None:
    """The request's cost weight λ: a finite number >= 0 (null or absent: None, the default); else a 400."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ServeError(400, f"'{COST_WEIGHT}' must be a number (reward points per USD, >= 0), got "
                              f"{_type_name(value)}", param=COST_WEIGHT)
    try:
        cost_line(float(value))  # the prompt's own check: finite and >= 0
    except (ValueError, OverflowError):
        raise ServeError(400, f"'{COST_WEIGHT}' must be a finite number >= 0 (reward points per USD), got {value!r}",
                         param=COST_WEIGHT) from None
    return float(value)


def _check_model(model, model_name: str) -> None:
    if model is _MISSING:
        raise ServeError(400, f"missing required field 'model' (use {model_name!r})", param="model")
    if not isinstance(model, str):
        raise ServeError(400, f"'model' must be a string, got {_type_name(model)}", param="model")
    if model != model_name:
        raise ServeError(404, f"model {model[:100]!r} does not exist here; this server serves {model_name!r} "
                              "(GET /v1/models lists it)", code="model_not_found", param="model")


def _last_user_text(messages) -> str:
    """The text of the last user message, after checking every message's shape."""
    if messages is _MISSING:
        raise ServeError(400, "missing required field 'messages'", param="messages")
    if not isinstance(messages, list):
        raise ServeError(400, f"'messages' must be a list of message objects, got {_type_name(messages)}",
                         param="messages")
    if not messages:
        raise ServeError(400, "'messages' is empty: send at least one user message", param="messages")
    texts = [_message_text(m, i) for i, m in enumerate(messages)]
    users = [t for m, t in zip(messages, texts) if m["role"] == "user"]
    if not users:
        raise ServeError(400, "no user message: the router routes the last user message", param="messages")
    if not users[-1].strip():
        raise ServeError(400, "the last user message is empty", param="messages")
    return users[-1]


def _message_text(m, i: int) -> str:
    """One message's text content (string, or a list of text parts); a 400 for any other shape."""
    where = f"messages[{i}]"
    if not isinstance(m, dict):
        raise ServeError(400, f"{where} must be an object with 'role' and 'content', got {_type_name(m)}",
                         param=where)
    if m.get("role") not in ROLES:
        raise ServeError(400, f"{where}.role must be one of {', '.join(ROLES)}, got {str(m.get('role'))[:40]!r}",
                         param=f"{where}.role")
    content = m.get("content")
    if content is None and m["role"] != "user":  # assistant turns that only called tools carry no text
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text"
                                         and isinstance(p.get("text"), str) for p in content):
        return "".join(p["text"] for p in content)
    raise ServeError(400, f"{where}.content must be a string or a list of text parts "
                          f"({{'type': 'text', 'text': ...}}), got {_type_name(content)}", param=f"{where}.content")


def _check_options(req: dict) -> None:
    """Type checks of the optional fields (values are ignored: the router's own settings apply)."""
    def bad(name: str, what: str):
        return ServeError(400, f"'{name}' must be {what}, got {_type_name(req[name])}", param=name)

    if "stream" in req and not isinstance(req["stream"], bool):
        raise bad("stream", "a boolean")
    if req.get("stream_options") is not None and not isinstance(req["stream_options"], dict):
        raise bad("stream_options", "an object")
    for name in _NUMBERS:
        v = req.get(name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise bad(name, "a number")
    for name in _INTEGERS:
        v = req.get(name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise bad(name, "an integer")
    if req.get("n") not in (None, 1):
        raise ServeError(400, "'n' must be 1: one routed answer per request", param="n")

