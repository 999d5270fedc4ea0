"""A local OpenAI-compatible chat server for tests and benchmarks: real HTTP, scriptable faults.

Faults are requested through the model name, query-string style, so any client (and any process)
can ask for them without extra setup. Every option takes `VALUE` (always) or `VALUExCOUNT` (only the
first COUNT requests for that model name since the last reset):

    echo                               answers "echo from echo: <user text>" with usage
    echo?fail=429x2&retry_after=1      two 429s with `Retry-After: 1`, then answers
    echo?fail=500x1                    one 500, then answers
    echo?delay=2x1                     the first answer takes 2 s (client timeouts)
    echo?malformed=1x3                 three bodies that are not JSON, then answers
    echo?error_body=1                  HTTP 200 whose body is an error object (OpenRouter does this)
    echo?usage=0                       answers without a `usage` object
    echo?fail=429x1&retry_after_date=2 the 429 carries Retry-After as an HTTP-date 2 s ahead

Requests that carry `tools` get a deterministic call of the first tool. `GET /_control/stats` and
`POST /_control/reset` inspect and reset the request log from another process.

    >>> from openai import OpenAI
    >>> server = OpenAITestServer().start()                 # or: python tests/openai_test_server.py --port 8000
    >>> client = OpenAI(base_url=server.base_url, api_key="any", max_retries=0)
    >>> client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hi"}]).choices[0].message.content
    'echo from echo: hi'
    >>> server.stop()
"""

from __future__ import annotations

import argparse
import email.utils
import hashlib
import json
import math
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl


def _tokens(text: str) -> int:
    """Token count the server reports: ~4 characters per token, like English BPE."""
    return math.ceil(len(text) / 4)


def _parse_model(name: str) -> tuple[str, dict[str, tuple[str, int | None]]]:
    """Split `base?opt=VALUExCOUNT&...` into the base name and {opt: (value, count or None)}."""
    base, _, qs = name.partition("?")
    opts = {}
    for key, raw in parse_qsl(qs):
        value, _, count = raw.partition("x")
        opts[key] = (value, int(count) if count else None)
    return base, opts


class _State:
    """Request log and per-model counters, shared by all handler threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.log: list[dict] = []  # one entry per chat request: model, user text, status
            self.per_model: Counter = Counter()
            self.generation = getattr(self, "generation", 0) + 1  # replies to older requests are not logged
            self.inflight = 0  # chat requests being answered now, and the most at once (concurrency tests)
            self.max_inflight = 0

    def enter(self) -> int:
        """Count a request in flight; returns the generation to hand back to `leave`."""
        with self.lock:
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
            return self.generation

    def leave(self, generation: int) -> None:
        with self.lock:
            if generation == self.generation:  # a request from before a reset is no longer counted
                self.inflight -= 1

    def next_index(self, model: str) -> int:
        """How many requests this model name had before this one (the fault counters)."""
        with self.lock:
            n = self.per_model[model]
            self.per_model[model] += 1
            return n


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real endpoints do; every reply sets Content-Length
    disable_nagle_algorithm = True  # headers and body go out as separate writes: without this, +40 ms per reply
    server: "OpenAITestServer"

    def log_message(self, *args) -> None:  # quiet: pytest output stays readable
        pass

    def _send(self, status: int, body: bytes, headers: dict | None = None,
              content_type: str = "application/json") -> None:
        entry, self._entry = getattr(self, "_entry", None), None
        st = self.server.state
        with st.lock:  # log before replying, so a client that got the reply always finds its entry
            if entry is not None and entry.pop("generation") == st.generation:
                st.log.append({**entry, "status": status, "t": time.time()})
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out and left: expected in the timeout tests

    def _json(self, status: int, obj: dict, headers: dict | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers)

    def _error(self, status: int, message: str, headers: dict | None = None) -> None:
        kind = "rate_limit_error" if status == 429 else "server_error" if status >= 500 else "invalid_request_error"
        self._json(status, {"error": {"message": message, "type": kind, "code": status}}, headers)

    def do_GET(self) -> None:
        st = self.server.state
        if self.path.rstrip("/") == "/v1/models":
            with st.lock:
                names = sorted({"echo", *st.per_model})
            self._json(200, {"object": "list", "data": [
                {"id": n, "object": "model", "created": 0, "owned_by": "test"} for n in names]})
        elif self.path == "/_control/stats":
            with st.lock:
                stats = {"requests": len(st.log), "max_inflight": st.max_inflight, "log": list(st.log)}
            self._json(200, stats)
        else:
            self._error(404, f"no route {self.path}")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path == "/_control/reset":
            self.server.state.reset()
            return self._json(200, {"ok": True})
        if self.path.rstrip("/") != "/v1/chat/completions":
            return self._error(404, f"no route {self.path}")
        try:
            req = json.loads(raw)
        except json.JSONDecodeError:
            return self._error(400, "request body is not JSON")
        model = str(req.get("model", ""))
        user = next((m.get("content") or "" for m in reversed(req.get("messages", [])) if m.get("role") == "user"), "")
        self._entry = {"model": model, "user": user, "generation": self.server.state.generation}  # logged on reply
        if self.server.api_key and self.headers.get("Authorization") != f"Bearer {self.server.api_key}":
            return self._error(401, "invalid API key")
        base, opts = _parse_model(model)
        n = self.server.state.next_index(model)
        active = {k: v for k, (v, count) in opts.items() if count is None or n < count}
        generation = self.server.state.enter()
        try:
            self._respond(req, base, active, user)
        finally:
            self.server.state.leave(generation)

    def _respond(self, req: dict, base: str, active: dict, user: str) -> None:
        """Write one reply: a fault if one is active, else a completion."""
        if "delay" in active:
            time.sleep(float(active["delay"]))
        if "fail" in active:
            status = int(active["fail"])
            headers = {}
            if "retry_after" in active:
                headers["Retry-After"] = active["retry_after"]
            if "retry_after_date" in active:
                headers["Retry-After"] = email.utils.formatdate(time.time() + float(active["retry_after_date"]), usegmt=True)
            return self._error(status, f"injected {status}", headers)
        if "malformed" in active:
            return self._send(200, b'{"id": "chatcmpl-broken", "choices": [{"mess')
        if "error_body" in active:
            return self._json(200, {"error": {"message": "upstream provider error", "code": 502}})
        self._json(200, self._completion(req, base, active, user))

    def _completion(self, req: dict, base: str, active: dict, user: str) -> dict:
        """A deterministic chat completion: an echo, or a call of the first tool when tools are given."""
        prompt = "".join(str(m.get("content") or "") for m in req.get("messages", []))
        max_tokens = req.get("max_tokens") or req.get("max_completion_tokens") or 1024
        digest = hashlib.sha256(json.dumps(req, sort_keys=True).encode()).hexdigest()
        message: dict = {"role": "assistant", "content": None}
        tools = req.get("tools") or []
        if tools:
            fn = tools[0].get("function", {})
            args = {p: user for p in fn.get("parameters", {}).get("properties", {})}
            message["tool_calls"] = [{"id": "call_" + digest[:12], "type": "function",
                                      "function": {"name": fn.get("name", ""), "arguments": json.dumps(args)}}]
            finish, out = "tool_calls", _tokens(json.dumps(args))
        else:
            text = f"echo from {base}: {user}"
            finish = "stop" if _tokens(text) <= max_tokens else "length"
            message["content"] = text[: 4 * max_tokens]  # never more tokens than max_tokens, like a real server
            out = _tokens(message["content"])
        body = {"id": "chatcmpl-" + digest[:16], "object": "chat.completion", "created": int(time.time()),
                "model": req.get("model"), "choices": [{"index": 0, "message": message, "finish_reason": finish}]}
        if active.get("usage") != "0":
            n_in = _tokens(prompt) + 4 * len(req.get("messages", []))  # role/format overhead per message
            body["usage"] = {"prompt_tokens": n_in, "completion_tokens": out, "total_tokens": n_in + out}
        return body


class OpenAITestServer(ThreadingHTTPServer):
    """The server, bound to 127.0.0.1 on a free port; `start()` serves from a daemon thread."""

    daemon_threads = True
    block_on_close = False  # do not wait for handlers still sleeping in a `delay` fault

    def __init__(self, port: int = 0, api_key: str | None = None) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.api_key = api_key  # when set, requests must carry `Authorization: Bearer <api_key>`
        self.state = _State()
        self._thread: threading.Thread | None = None

    def handle_error(self, request, client_address) -> None:
        """Stay quiet about clients that hang up (timeout tests do it on purpose); report anything else."""
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    @property
    def log(self) -> list[dict]:
        with self.state.lock:
            return list(self.state.log)

    @property
    def max_inflight(self) -> int:
        return self.state.max_inflight

    def reset(self) -> None:
        """Forget the request log and the fault counters."""
        self.state.reset()

    def start(self) -> "OpenAITestServer":
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def main() -> None:
    """Serve until interrupted; print the base URL first so a parent process can read it."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ap.add_argument("--api-key", default=None, help="require this bearer token")
    args = ap.parse_args()
    server = OpenAITestServer(args.port, args.api_key)
    print(server.base_url, flush=True)
    try:
        server.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
