"""The HTTP side: the FastAPI app (POST /v1/chat/completions, GET /v1/models, GET /health), the response and its
server-sent events, and `BackgroundServer`, which serves an app from a thread.

In a notebook or a test the router is any `(messages, tools) -> str` callable and the server runs in a thread:

    >>> from openai import OpenAI
    >>> from xrouter_lite.pool.core import Answer, ModelSpec, Pool
    >>> class Echo(Pool):
    ...     models = [ModelSpec("small", 0.1, 0.4, tier="budget")]
    ...     def call(self, model, query, system_prompt=None, temperature=None):
    ...         return Answer(f"{model} says hi", 10, 3, 2.2e-6, model=model)
    >>> call = '<tool_call>{"name": "call_small", "arguments": {"optimized_system_prompt": "Be brief."}}</tool_call>'
    >>> router = lambda messages, tools: call if messages[-1]["role"] == "user" else "Done: small says hi"
    >>> with BackgroundServer(create_app(router, Echo())) as server:
    ...     client = OpenAI(base_url=server.base_url, api_key="unused")
    ...     r = client.chat.completions.create(model="xrouter-lite", messages=[{"role": "user", "content": "Hi?"}])
    >>> r.choices[0].message.content, r.router_metadata["strategy"], r.router_metadata["models_called"]
    ('Done: small says hi', 'summarised', ['small'])
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations (Request) at runtime.
import json
import logging
import re
import socket
import threading
import time
import traceback
import uuid
from contextlib import asynccontextmanager
from typing import Callable, Iterator

from xrouter_lite.pool.core import Pool
from xrouter_lite.routing.episode import Router
from xrouter_lite.serve.request import ServeError, parse_request, redact
from xrouter_lite.serve.service import DEFAULT_TIMEOUT_S, DEFAULT_WORKERS, ROUTER_NAME, Outcome, RouterService

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024  # larger bodies get a 413: a routed query is a question, not a document
DRAIN_BYTES = 8 * 2**20  # an oversized body is read (and dropped) up to this size, so the client sees the 413


def create_app(router: Router, pool: Pool, *, model_name: str = ROUTER_NAME, mode: str = "agent",
               max_turns: int = 3, fallback: str | None = None, budget_usd: float | None = None,
               request_budget_usd: float | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
               max_body_bytes: int = MAX_BODY_BYTES, workers: int = DEFAULT_WORKERS, cost_weight: float | None = None,
               state_lambda: bool = False, tool_result_chars: int | None = None, answer_notes: bool = False):
    """The FastAPI app: POST /v1/chat/completions, GET /v1/models, GET /health (`app.state.service` holds the logic).

    Pass what router.json says of the router (`service_options(info)` does): `cost_weight` its default λ,
    `state_lambda` its `lambda_in_prompt`, `tool_result_chars` and `answer_notes` as it was trained.
    """
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.exceptions import HTTPException

    service = RouterService(router, pool, model_name=model_name, mode=mode, max_turns=max_turns, fallback=fallback,
                            budget_usd=budget_usd, request_budget_usd=request_budget_usd, timeout_s=timeout_s,
                            workers=workers, cost_weight=cost_weight, state_lambda=state_lambda,
                            tool_result_chars=tool_result_chars, answer_notes=answer_notes)

    @asynccontextmanager
    async def lifespan(app):
        yield
        service.close()

    app = FastAPI(title="xrouter-lite", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.service = service

    @app.exception_handler(ServeError)
    async def serve_error(request: Request, e: ServeError):
        service.count("refused" if e.status < 500 else "failed")
        log.info("%s %s -> %d %s", request.method, request.url.path, e.status, e.message[:300])
        return JSONResponse(e.body(), status_code=e.status, headers={"x-should-retry": "false"})

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException):  # unknown routes and methods, in OpenAI's shape
        return await serve_error(request, ServeError(e.status_code, f"{request.method} {request.url.path}: {e.detail}",
                                                     code="not_found" if e.status_code == 404 else "bad_request"))

    @app.get("/health")
    async def health():
        return service.health()

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": service.model_name, "object": "model",
                                            "created": int(service.started), "owned_by": "xrouter-lite"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        req = parse_request(await read_body(request, max_body_bytes), service.model_name)
        try:
            out = await service.run(req.text, req.cost_weight)
        except ServeError:
            raise
        except Exception as e:  # a bug or a crashed pool: a 500 with a message, never a dead server
            log.error("request failed:\n%s", redact("".join(traceback.format_exception(e)), service.secrets))
            raise ServeError(500, f"internal error: {type(e).__name__}: {redact(str(e), service.secrets)}",
                             code="internal_error") from None
        service.count("fell_back" if out.strategy == "fell back" else "answered")
        rid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        log.info("%s %s %s $%.6f %.2fs", rid, out.query.id, out.strategy, out.usd, out.latency_s)
        headers = {"x-request-id": rid}
        if req.stream:
            return StreamingResponse(sse_events(rid, created, service.model_name, out, req.include_usage),
                                     media_type="text/event-stream", headers=headers)
        return JSONResponse(completion(rid, created, service.model_name, out), headers=headers)

    return app


async def read_body(request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body; a 413 once it passes `limit` (the rest is drained so the client can read the 413)."""
    declared = request.headers.get("content-length", "")
    too_big = declared.isdigit() and int(declared) > limit
    if too_big and int(declared) > DRAIN_BYTES:  # not worth reading: answer now, the connection closes
        raise ServeError(413, _too_large(int(declared), limit), code="request_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        elif size > DRAIN_BYTES:
            break
    if size > limit:
        raise ServeError(413, _too_large(int(declared) if too_big else size, limit), code="request_too_large")
    return b"".join(chunks)


def _too_large(size: int, limit: int) -> str:
    return f"request body is {size:,} bytes; this server accepts up to {limit:,} bytes: send a shorter prompt"


def completion(rid: str, created: int, model: str, out: Outcome) -> dict:
    """A chat.completion object for one routed answer, with `router_metadata`."""
    return {"id": rid, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": out.text},
                         "finish_reason": "stop", "logprobs": None}],
            "usage": out.usage(), "router_metadata": out.metadata()}


def sse_events(rid: str, created: int, model: str, out: Outcome, include_usage: bool = False) -> Iterator[str]:
    """The answer as OpenAI chat.completion.chunk server-sent events; the last chunk carries `router_metadata`."""
    base = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model}

    def event(choices: list, **extra) -> str:
        return f"data: {json.dumps({**base, 'choices': choices, **extra}, ensure_ascii=False)}\n\n"

    yield event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
    for piece in text_pieces(out.text):
        yield event([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
    yield event([{"index": 0, "delta": {}, "finish_reason": "stop"}], router_metadata=out.metadata())
    if include_usage:
        yield event([], usage=out.usage())
    yield "data: [DONE]\n\n"


def text_pieces(text: str, words: int = 4) -> list[str]:
    """`text` cut into chunks of a few words that join back to it exactly (the answer exists whole already)."""
    parts = re.split(r"(?<=\s)(?=\S)", text) if text else []
    return ["".join(parts[i:i + words]) for i in range(0, len(parts), words)]


class BackgroundServer:
    """Serve an app with uvicorn from a daemon thread on 127.0.0.1 (notebooks, tests, benchmarks); `with` stops it."""

    def __init__(self, app, port: int = 0, host: str = "127.0.0.1", log_level: str = "warning") -> None:
        self.app, self.host, self.port, self.log_level = app, host, port, log_level
        self.server = self.thread = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What the openai client takes as `base_url`."""
        return f"{self.url}/v1"

    def start(self, timeout_s: float = 30.0) -> "BackgroundServer":
        """Bind (port 0 = a free one), start serving, and wait until /health answers."""
        import uvicorn

        # proto=IPPROTO_TCP matters: asyncio enables TCP_NODELAY only on sockets that say so, and without it a
        # keep-alive client (the openai client) waits ~40 ms per reply for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))  # bound here, so the port is known before uvicorn starts
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level=self.log_level, timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True,
                                       name=f"uvicorn-{self.port}")
        self.thread.start()
        wait_for_health(self.url, timeout_s, alive=self.thread.is_alive)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask uvicorn to exit, and wait for its thread."""
        if self.server is None:
            return
        self.server.should_exit = True
        self.thread.join(timeout_s)
        if self.thread.is_alive():  # requests still running past the grace period
            self.server.force_exit = True
            self.thread.join(timeout_s)

    def __enter__(self) -> "BackgroundServer":
        return self.start() if self.server is None else self

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_for_health(url: str, timeout_s: float = 30.0, alive: Callable[[], bool] = lambda: True) -> dict:
    """Poll GET <url>/health until it answers 200; a RuntimeError after `timeout_s` or if `alive()` turns False."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"the server at {url} stopped before it answered /health")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                return json.loads(r.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    raise RuntimeError(f"no answer from {url}/health within {timeout_s:g} s")
