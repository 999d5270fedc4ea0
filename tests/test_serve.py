"""The OpenAI-compatible router server, driven over real HTTP by the official `openai` client."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import urllib.error
import urllib.request

import openai
import pandas as pd
import pytest
from openai import OpenAI

from xrouter_lite.pool.core import ModelSpec, Pool, PoolError, ReplayPool
from xrouter_lite.pool.live import LivePool
from xrouter_lite.serve.app import BackgroundServer, create_app, text_pieces, wait_for_health
from xrouter_lite.serve.request import redact

sys.path.insert(0, str(Path(__file__).parent))
from openai_test_server import OpenAITestServer  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SPECS = {"cheap": ModelSpec("cheap", 0.1, 0.4, tier="budget"), "mid": ModelSpec("mid", 0.5, 2.0),
         "pricey": ModelSpec("pricey", 3.0, 12.0, tier="premium")}
KEY_ENV = "XR_TEST_SERVE_KEY"
FAKE_KEY = "sk-xrserve-DO-NOT-LEAK-4b1d8e07c2"  # recognisable, so responses and logs can be scanned for it


def question(i: int) -> str:
    return f"What is {i} + {i}?"


def tidy_table(n: int = 6) -> pd.DataFrame:
    """n recorded queries, each answered by every model (columns of docs/DESIGN.md)."""
    rows = [{"query_id": f"zeroeval/gsm/t{i}", "source": "zeroeval", "task": "gsm", "category": "",
             "question": question(i), "gold": str(2 * i), "model": m, "response": f"{m}: {2 * i}",
             "correct": 1.0, "in_tokens": 20, "out_tokens": 10, "usd": (20 * s.price_in + 10 * s.price_out) / 1e6}
            for i in range(n) for m, s in SPECS.items()]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def pool() -> ReplayPool:
    return ReplayPool(tidy_table(), SPECS)


def call(*models: str) -> str:
    return "".join(f'<tool_call>{{"name": "call_{m}", "arguments": {{"optimized_system_prompt": "Add."}}}}</tool_call>'
                   for m in models)


def select(model: str) -> str:
    return f'<tool_call>{{"name": "select_response", "arguments": {{"model_call_name": "call_{model}"}}}}</tool_call>'


def call_then_select(messages, tools) -> str:
    """Turn 1: ask cheap and pricey; turn 2: return pricey's answer."""
    return call("cheap", "pricey") if messages[-1]["role"] == "user" else select("pricey")


@contextmanager
def serving(router, pool, **kwargs):
    """A server in a thread and an openai client pointed at it (no client retries: every status is seen)."""
    with BackgroundServer(create_app(router, pool, **kwargs)) as server:
        yield server, OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=30)


def http(url: str, body: bytes | dict | None = None) -> tuple[int, dict, dict]:
    """(status, headers, JSON body) of a raw GET, or POST of `body`; error statuses are returned, not raised."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read())


def ask(client: OpenAI, text: str, **kwargs):
    return client.chat.completions.create(model="xrouter-lite", messages=[{"role": "user", "content": text}], **kwargs)


# ----------------------------------------------------------------------------- answers

def test_routed_answer_carries_metadata(pool):
    with serving(call_then_select, pool) as (server, client):
        assert [m.id for m in client.models.list()] == ["xrouter-lite"]
        r = ask(client, question(2))
    assert r.choices[0].message.content == "pricey: 4" and r.choices[0].finish_reason == "stop"
    meta = r.router_metadata
    assert meta["strategy"] == "selected" and meta["turns"] == 2 and meta["query_id"] == "zeroeval/gsm/t2"
    assert meta["models_called"] == ["cheap", "pricey"] and meta["fallback_model"] is None
    recorded = {m: (20 * s.price_in + 10 * s.price_out) / 1e6 for m, s in SPECS.items()}
    for c in meta["calls"]:  # the recorded cost plus the router-written system prompt ("Add." = 2 tokens)
        assert c["usd"] == pytest.approx(recorded[c["model"]] + 2 * SPECS[c["model"]].price_in / 1e6)
        assert (c["in_tokens"], c["out_tokens"]) == (22, 10)
    assert meta["total_usd"] == pytest.approx(sum(c["usd"] for c in meta["calls"]))
    assert meta["router_in_tokens"] > 0 and meta["router_out_tokens"] > 0 and meta["latency_s"] > 0
    assert r.usage.total_tokens == meta["router_in_tokens"] + meta["router_out_tokens"] + 2 * 32


def test_streamed_answer_reads_with_the_openai_client(pool):
    text = "The sum is four, because two and two make four."
    with serving(lambda m, t: text, pool) as (_, client):
        chunks = list(ask(client, question(2), stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 1  # really streamed in pieces
    last = [c for c in chunks if c.choices][-1]
    assert last.choices[0].finish_reason == "stop" and last.router_metadata["strategy"] == "direct"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


def test_text_pieces_join_back_exactly():
    for text in ("", "one", "  two  words \n\n and\tmore  ", "x " * 50):
        assert "".join(text_pieces(text)) == text


# ----------------------------------------------------------------------------- bad requests

BAD_BODIES = [
    (b"{not json", 400, "not valid JSON"),
    (b"[1, 2]", 400, "must be a JSON object"),
    ({"messages": [{"role": "user", "content": "hi"}]}, 400, "'model'"),
    ({"model": 7, "messages": [{"role": "user", "content": "hi"}]}, 400, "'model' must be a string"),
    ({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}, 404, "does not exist"),
    ({"model": "xrouter-lite"}, 400, "missing required field 'messages'"),
    ({"model": "xrouter-lite", "messages": "hi"}, 400, "must be a list"),
    ({"model": "xrouter-lite", "messages": []}, 400, "empty"),
    ({"model": "xrouter-lite", "messages": ["hi"]}, 400, "messages[0] must be an object"),
    ({"model": "xrouter-lite", "messages": [{"role": "wizard", "content": "hi"}]}, 400, "role"),
    ({"model": "xrouter-lite", "messages": [{"role": "user", "content": 5}]}, 400, "content"),
    ({"model": "xrouter-lite", "messages": [{"role": "system", "content": "be nice"}]}, 400, "no user message"),
    ({"model": "xrouter-lite", "messages": [{"role": "user", "content": "hi"}], "stream": "yes"}, 400, "'stream'"),
    ({"model": "xrouter-lite", "messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}, 400, "number"),
    ({"model": "xrouter-lite", "messages": [{"role": "user", "content": "hi"}], "n": 2}, 400, "'n' must be 1"),
]


def test_malformed_requests_get_clear_4xx_and_the_server_lives_on(pool):
    with serving(call_then_select, pool) as (server, client):
        url = f"{server.base_url}/chat/completions"
        for body, status, words in BAD_BODIES:
            got, headers, reply = http(url, body)
            assert got == status and words in reply["error"]["message"], (body, reply)
            assert headers["x-should-retry"] == "false"
        with pytest.raises(openai.NotFoundError, match="does not exist"):
            client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(openai.APIStatusError, match="accepts up to 262,144 bytes") as e:
            ask(client, "x" * 2**20)  # 1 MB prompt
        assert e.value.status_code == 413
        assert http(f"{server.url}/nowhere")[2]["error"]["code"] == "not_found"
        assert ask(client, question(1)).choices[0].message.content == "pricey: 2"  # still serving
        assert server.app.state.service.health()["requests"]["refused"] == len(BAD_BODIES) + 3


def test_query_not_in_the_recorded_data_is_a_clear_400(pool):
    with serving(call_then_select, pool) as (_, client):
        with pytest.raises(openai.BadRequestError, match="not in the recorded data") as e:
            ask(client, "What is the capital of France?")
    assert e.value.body["code"] == "query_not_recorded"


# ----------------------------------------------------------------------------- load, time and money

def test_32_concurrent_requests_are_all_answered_and_the_loop_stays_free(pool):
    lock, live, peak = threading.Lock(), [0], [0]

    def slow_router(messages, tools):
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        time.sleep(0.05)
        with lock:
            live[0] -= 1
        return call_then_select(messages, tools)

    with serving(slow_router, pool, budget_usd=1.0) as (server, client):  # the shared guard under contention
        with ThreadPoolExecutor(32) as ex:
            futures = [ex.submit(ask, client, question(i % 6)) for i in range(32)]
            time.sleep(0.02)
            start = time.perf_counter()
            assert http(f"{server.url}/health")[2]["status"] == "ok"  # answered while episodes run
            health_s = time.perf_counter() - start
            replies = [f.result() for f in futures]
        spent = http(f"{server.url}/health")[2]["budget"]["spent_usd"]
    assert [r.choices[0].message.content for r in replies] == [f"pricey: {2 * (i % 6)}" for i in range(32)]
    assert spent == pytest.approx(sum(r.router_metadata["total_usd"] for r in replies))
    assert peak[0] > 4, "episodes should run concurrently, not one by one"
    assert health_s < 1.0


def test_request_timeout_is_a_504_and_the_server_recovers(pool):
    def sometimes_slow(messages, tools):
        if question(5) in messages[1]["content"]:
            time.sleep(1.5)
        return "42"

    with serving(sometimes_slow, pool, timeout_s=0.3) as (_, client):
        with pytest.raises(openai.APIStatusError, match="no answer within 0.3 s") as e:
            ask(client, question(5))
        assert e.value.status_code == 504
        assert ask(client, question(1)).choices[0].message.content == "42"


def test_process_budget_is_never_exceeded_and_refusal_is_a_clear_429(pool):
    cap = 0.003  # a request costs ~$0.0002; the precheck wants ~$0.001 left (pricey + a 256-token system prompt)
    with serving(call_then_select, pool, budget_usd=cap) as (server, client):
        answered, refusal = 0, None
        for i in range(40):
            try:
                ask(client, question(i % 6))
                answered += 1
            except openai.RateLimitError as e:
                refusal = e
                break
        health = http(f"{server.url}/health")[2]
        with pytest.raises(openai.RateLimitError):  # and it stays refused
            ask(client, question(0))
    assert answered >= 5 and refusal is not None
    assert refusal.body["code"] == "budget_exhausted" and "server budget exhausted" in refusal.body["message"]
    assert refusal.response.headers["x-should-retry"] == "false"
    assert 0 < health["budget"]["spent_usd"] <= cap and health["budget"]["cap_usd"] == cap


def test_request_budget_hides_models_it_cannot_afford_and_refuses_below_the_cheapest(pool):
    seen = []

    def cheap_router(messages, tools):
        seen.append({t["function"]["name"] for t in tools})
        return call("cheap") if messages[-1]["role"] == "user" else select("cheap")

    # cheap costs ~$4e-6 (+ a 256-token allowance), mid ~$3e-5 + $1.3e-4, pricey ~$1.8e-4 + $7.7e-4
    with serving(cheap_router, pool, request_budget_usd=0.0002) as (_, client):
        assert ask(client, question(1)).router_metadata["models_called"] == ["cheap"]
    assert seen[0] == {"call_cheap", "call_mid", "select_response"}
    with serving(cheap_router, pool, request_budget_usd=1e-6) as (_, client):
        with pytest.raises(openai.RateLimitError, match="request budget") as e:
            ask(client, question(1))
    assert e.value.body["code"] == "request_budget_exceeded"


# ----------------------------------------------------------------------------- fallback

def test_invalid_router_output_falls_back_to_the_cheapest_model(pool):
    with serving(lambda m, t: '<tool_call>{"name": "call_cheap", "arguments": {', pool) as (_, client):
        meta = ask(client, question(3)).router_metadata
        r = ask(client, question(3))
    assert r.choices[0].message.content == "cheap: 6"
    assert meta["strategy"] == "fell back" and meta["ending"] == "invalid" and meta["fallback_model"] == "cheap"
    assert "unclosed <tool_call>" in meta["fallback_reason"]
    assert meta["calls"][-1]["fallback"] is True and meta["total_usd"] > 0


def test_a_raising_router_falls_back_to_the_configured_model(pool):
    def broken(messages, tools):
        raise RuntimeError("CUDA out of memory")

    with serving(broken, pool, fallback="mid") as (server, client):
        meta = ask(client, question(1)).router_metadata
        assert server.app.state.service.health()["requests"] == {"fell_back": 1}
    assert meta["fallback_model"] == "mid" and "router error: RuntimeError: CUDA out of memory" in meta["fallback_reason"]


# ----------------------------------------------------------------------------- live pools and secrets

def live_router(messages, tools) -> str:
    return call("echo") if messages[-1]["role"] == "user" else select("echo")


def test_live_pool_answers_and_a_failing_pool_is_a_502_without_secrets(monkeypatch, caplog, capfd):
    monkeypatch.setenv(KEY_ENV, FAKE_KEY)
    caplog.set_level(logging.DEBUG)
    spec = lambda base_url: ModelSpec("echo", 1.0, 2.0, provider="test", base_url=base_url,  # noqa: E731
                                      api_key_env=KEY_ENV, model_name="echo")
    seen: list[str] = []
    good, bad = OpenAITestServer(api_key=FAKE_KEY).start(), OpenAITestServer(api_key="sk-some-other-key").start()
    try:
        with serving(live_router, LivePool([spec(good.base_url)], max_retries=0)) as (server, client):
            r = ask(client, "Say hi")
            seen += [r.model_dump_json(), json.dumps(http(f"{server.url}/health"))]
        assert r.choices[0].message.content.endswith("echo from echo: Say hi")
        assert r.router_metadata["strategy"] == "selected" and r.router_metadata["query_id"].startswith("live/chat/")
        with serving(live_router, LivePool([spec(bad.base_url)], max_retries=0)) as (server, client):
            with pytest.raises(openai.APIStatusError, match="pool failed") as e:
                ask(client, "Say hi")
            seen.append(e.value.response.text + json.dumps(dict(e.value.response.headers)))
        assert e.value.status_code == 502 and "HTTP 401" in e.value.body["message"]
    finally:
        good.stop()
        bad.stop()
    out, err = capfd.readouterr()
    for text in [*seen, caplog.text, out, err]:
        assert FAKE_KEY not in text


class LeakyPool(Pool):
    """A pool whose errors echo the API key back, as some providers' 401 messages do."""

    models = [ModelSpec("leaky", 1.0, 1.0, api_key_env=KEY_ENV)]

    def call(self, model, query, system_prompt=None, temperature=None):
        raise PoolError(f"HTTP 401: invalid key {os.environ[KEY_ENV]} (also sk-proj-abcdefghij0123)")


def test_secrets_in_upstream_errors_are_redacted(monkeypatch, caplog):
    monkeypatch.setenv(KEY_ENV, FAKE_KEY)
    caplog.set_level(logging.DEBUG)
    with serving(lambda m, t: "invalid <tool_call>", LeakyPool()) as (_, client):
        with pytest.raises(openai.APIStatusError) as e:
            ask(client, "hi")
    assert e.value.status_code == 502 and "[redacted]" in e.value.body["message"]
    assert FAKE_KEY not in e.value.response.text + caplog.text and "sk-proj-" not in e.value.response.text
    assert redact(f"key={FAKE_KEY}", [FAKE_KEY]) == "key=[redacted]"


# ----------------------------------------------------------------------------- the command line

def test_cli_serves_a_router_checkpoint_from_a_run_dir(tmp_path):
    """The `serve` command's path (options, checkpoint lookup, router.json, a table file, LMRouter), in-process."""
    from xrouter_lite.__main__ import build_parser
    from xrouter_lite.serve.cli import app_from_args
    from xrouter_lite.training.modeling import build_tiny_router

    ckpt = tmp_path / "run" / "artifacts" / "router_sft"
    build_tiny_router([question(i) for i in range(20)] * 2, ckpt, vocab_size=300, hidden_size=32, layers=1, heads=2)
    (ckpt / "router.json").write_text(json.dumps({"mode": "simple", "max_turns": 3, "base": "tiny", "stage": "sft",
                                                  "lambda": 3.0, "lambda_in_prompt": True, "tool_result_chars": 64,
                                                  "answer_notes": True}))
    table = tmp_path / "table.parquet"  # a tidy table file (e.g. a live recording) with models of prices.csv
    priced = {"cheap": "gemma-2-2b-it", "mid": "gpt-4o-mini-2024-07-18", "pricey": "gpt-4o-2024-08-06"}
    tidy_table().replace({"model": priced}).to_parquet(table)
    args = build_parser().parse_args(["serve", "--router", str(tmp_path / "run"), "--pool", "replay",
                                      "--data", str(table), "--max-new-tokens", "4", "--device", "cpu",
                                      "--fallback", "gpt-4o-mini-2024-07-18"])
    with BackgroundServer(app_from_args(args)) as server:
        health = wait_for_health(server.url)
        client = OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=30)
        meta = ask(client, question(4), extra_body={"cost_weight": 100}).router_metadata
    assert (health["mode"], health["pool"], health["recorded_queries"]) == ("simple", "ReplayPool", 6)
    # router.json's training settings reach the server: its default λ, told in the prompt, clipping, notes
    assert (health["cost_weight"], health["cost_weight_in_prompt"], health["tool_result_chars"],
            health["answer_notes"]) == (3.0, True, 64, True)
    assert (meta["cost_weight"], meta["cost_weight_in_prompt"]) == (100.0, True)
    assert meta["mode"] == "simple" and meta["router_in_tokens"] > 0 and meta["strategy"] in (
        "direct", "called", "fell back")  # an untrained router: usually invalid, so the fallback answers


def test_cli_cost_weight_sets_the_default_and_refuses_a_negative(tmp_path):
    from xrouter_lite.__main__ import build_parser
    from xrouter_lite.serve.cli import app_from_args
    from xrouter_lite.training.modeling import build_tiny_router

    ckpt = tmp_path / "router_sft"
    build_tiny_router([question(i) for i in range(20)] * 2, ckpt, vocab_size=300, hidden_size=32, layers=1, heads=2)
    (ckpt / "router.json").write_text(json.dumps({"mode": "simple", "max_turns": 3, "base": "tiny", "lambda": 3.0}))
    table = tmp_path / "table.parquet"
    tidy_table().replace({"model": {"cheap": "gemma-2-2b-it", "mid": "gpt-4o-mini-2024-07-18",
                                    "pricey": "gpt-4o-2024-08-06"}}).to_parquet(table)
    base = ["serve", "--router", str(ckpt), "--pool", "replay", "--data", str(table), "--device", "cpu"]
    with BackgroundServer(app_from_args(build_parser().parse_args(base + ["--cost-weight", "250"]))) as server:
        assert wait_for_health(server.url)["cost_weight"] == 250.0  # replaces router.json's 3.0
    with pytest.raises(ValueError, match="--cost-weight"):
        app_from_args(build_parser().parse_args(base + ["--cost-weight", "-1"]))


def test_cli_without_a_checkpoint_exits_2_with_a_message(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "xrouter_lite.serve", "--router", str(tmp_path), "--pool", "replay"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "no router checkpoint" in proc.stderr and "router_grpo" in proc.stderr


def test_cli_defaults_are_the_servers():
    from xrouter_lite.__main__ import build_parser
    from xrouter_lite.serve.service import DEFAULT_TIMEOUT_S, ROUTER_NAME

    args = build_parser().parse_args(["serve", "--router", "run", "--pool", "replay"])
    assert (args.timeout, args.model_name) == (DEFAULT_TIMEOUT_S, ROUTER_NAME)


# ----------------------------------------------------------------------------- the cost preference per request

def _ladder_router():
    """A λ-conditioned scripted router: reads the cost weight in its system prompt (pricey up to 10, mid up to 100,
    cheap above; pricey when no λ is stated), then selects the model it called."""
    from conditioned import by_lambda, price_ladder

    return by_lambda(price_ladder("cheap", "mid", "pricey"))


def test_two_preferences_on_one_query_route_differently_and_are_reported(pool):
    with serving(_ladder_router(), pool, cost_weight=10.0, state_lambda=True) as (server, client):
        saver = ask(client, question(3), extra_body={"cost_weight": 1000})
        spender = ask(client, question(3), extra_body={"cost_weight": 1})
        middle = ask(client, question(3), extra_body={"cost_weight": 50.5})
        default = ask(client, question(3))
        health = wait_for_health(server.url)
    assert saver.router_metadata["models_called"] == ["cheap"] and saver.choices[0].message.content == "cheap: 6"
    assert spender.router_metadata["models_called"] == ["pricey"] and middle.router_metadata["models_called"] == ["mid"]
    assert saver.router_metadata["total_usd"] < spender.router_metadata["total_usd"]
    for r, lam in ((saver, 1000.0), (spender, 1.0), (middle, 50.5)):
        m = r.router_metadata
        assert (m["cost_weight"], m["cost_weight_source"], m["cost_weight_in_prompt"]) == (lam, "request", True)
    m = default.router_metadata  # no field: the router's default (router.json's lambda)
    assert (m["cost_weight"], m["cost_weight_source"], m["models_called"]) == (10.0, "default", ["pricey"])
    assert (health["cost_weight"], health["cost_weight_in_prompt"]) == (10.0, True)


def test_a_router_not_trained_with_a_stated_lambda_is_not_told_but_the_weight_is_reported(pool):
    prompts = []

    def router(messages, tools):
        prompts.append(" ".join(m["content"] for m in messages if isinstance(m.get("content"), str)))
        return _ladder_router()(messages, tools)

    with serving(router, pool, cost_weight=3.0) as (_, client):
        r = ask(client, question(2), extra_body={"cost_weight": 1000})
    m = r.router_metadata
    assert (m["cost_weight"], m["cost_weight_source"], m["cost_weight_in_prompt"]) == (1000.0, "request", False)
    assert m["models_called"] == ["pricey"] and not any("Cost weight" in p for p in prompts)


BAD_WEIGHTS = [(b'"cheap"', "a string"), (b"-1", "-1"), (b"NaN", "nan"), (b"Infinity", "inf"), (b"1e999", "inf"),
               (b"true", "a boolean"), (b"[10]", "a list"), (b"{}", "an object")]


@pytest.mark.parametrize("value,words", BAD_WEIGHTS)
def test_a_bad_cost_weight_is_a_400_naming_the_field(pool, value, words):
    body = (b'{"model": "xrouter-lite", "messages": [{"role": "user", "content": "' + question(1).encode()
            + b'"}], "cost_weight": ' + value + b"}")
    with serving(_ladder_router(), pool, state_lambda=True) as (server, client):
        status, headers, reply = http(f"{server.base_url}/chat/completions", body)
        assert ask(client, question(1), extra_body={"cost_weight": 0}).router_metadata["cost_weight"] == 0.0
    err = reply["error"]
    assert status == 400 and err["param"] == "cost_weight" and "'cost_weight' must be" in err["message"]
    assert words in err["message"] and headers["x-should-retry"] == "false"


def test_the_openai_client_sees_a_bad_cost_weight_as_a_bad_request(pool):
    with serving(_ladder_router(), pool) as (_, client):
        with pytest.raises(openai.BadRequestError, match="cost_weight") as e:
            ask(client, question(1), extra_body={"cost_weight": -5})
        assert ask(client, question(1), extra_body={"cost_weight": None}).router_metadata["cost_weight_source"] == "default"
    assert e.value.body["param"] == "cost_weight"


def test_tool_results_are_clipped_and_noted_as_the_router_was_trained():
    """router.json's tool_result_chars and answer_notes reach the episode: the router reads what it trained on."""
    reasoning = "Let me think about this carefully, step by step. " * 8
    rows = [{"query_id": "zeroeval/gsm/t1", "source": "zeroeval", "task": "gsm", "category": "", "question": question(1),
             "gold": "2", "model": m, "response": f'```json\n{{"reasoning": "{reasoning}", "answer": "2"}}\n```',
             "correct": 1.0, "in_tokens": 20, "out_tokens": 60, "usd": (20 * s.price_in + 60 * s.price_out) / 1e6}
            for m, s in SPECS.items()]
    answers_pool = ReplayPool(pd.DataFrame(rows), SPECS)
    seen = []

    def two_then_select(messages, tools):
        seen.append([m["content"] for m in messages if m["role"] == "tool"])
        return call("cheap", "mid") if messages[-1]["role"] == "user" else select("mid")

    with serving(two_then_select, answers_pool, tool_result_chars=40, answer_notes=True) as (server, client):
        r = ask(client, question(1))
        health = wait_for_health(server.url)
    cheap, mid = seen[-1]
    assert cheap.startswith("call_cheap answered:\n[...]") and len(cheap.split("\n", 1)[1]) == len("[...]") + 40
    assert mid.endswith("\nSame final answer as call_cheap.")  # the runtime's answer check, as in training
    assert r.choices[0].message.content == rows[1]["response"]  # select_response still returns it whole
    assert (health["tool_result_chars"], health["answer_notes"]) == (40, True)
    seen.clear()
    with serving(two_then_select, answers_pool) as (_, client):  # defaults: 6,000 chars, no notes
        ask(client, question(1))
    assert "[...]" not in seen[-1][0] and "Same final answer" not in seen[-1][1]


class CachedPool(Pool):
    """Every answer is a cache hit: it reports the original call's cost but paid nothing (as LivePool does)."""

    models = [SPECS["cheap"]]

    def call(self, model, query, system_prompt=None, temperature=None):
        from xrouter_lite.pool.core import Answer

        return Answer("cheap: 4", 20, 10, 0.0005, cached=True, model=model, meta={"paid_usd": 0.0})


def test_budgets_settle_what_was_paid_not_what_a_cache_hit_reports():
    with serving(lambda m, t: call("cheap") if m[-1]["role"] == "user" else select("cheap"), CachedPool(),
                 budget_usd=0.002) as (server, client):
        metas = [ask(client, "How much is 2 + 2?").router_metadata for _ in range(10)]  # reported: 10 x $0.0005
        health = wait_for_health(server.url)
    assert all(m["total_usd"] == pytest.approx(0.0005) and m["calls"][0]["cached"] for m in metas)
    assert health["budget"]["spent_usd"] == 0.0 and health["budget"]["remaining_usd"] == pytest.approx(0.002)


def test_service_options_read_router_json():
    from xrouter_lite.serve.cli import service_options
    from xrouter_lite.serve.service import DEFAULT_COST_WEIGHT

    opts = service_options({"mode": "simple", "max_turns": 2, "lambda": 30.0, "lambda_in_prompt": True,
                            "tool_result_chars": 64, "answer_notes": True})
    assert opts == {"mode": "simple", "max_turns": 2, "cost_weight": 30.0, "state_lambda": True,
                    "tool_result_chars": 64, "answer_notes": True}
    old = service_options({"mode": "agent", "lambda": None})  # an untrained placeholder, or a router from before
    assert (old["cost_weight"], old["state_lambda"], old["tool_result_chars"], old["answer_notes"]) == (
        DEFAULT_COST_WEIGHT, False, None, False)
    with pytest.raises(ValueError, match="cost weight"):
        create_app(lambda m, t: "hi", ReplayPool(tidy_table(), SPECS), cost_weight=-1.0)
