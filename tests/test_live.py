"""LivePool, BudgetGuard, pool configs and recording, through the real `openai` client and a local HTTP server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pandas as pd
import pytest

from xrouter_lite.pool.budget import BudgetExceeded, BudgetGuard
from xrouter_lite.pool.cache import ResponseCache
from xrouter_lite.pool.config import ConfigError, load_pool_config
from xrouter_lite.pool.core import ModelSpec, PoolError, Query
from xrouter_lite.pool.live import LivePool, LivePoolError, retry_after_seconds
from xrouter_lite.pool.recording import record, select_queries

sys.path.insert(0, str(Path(__file__).parent))
from openai_test_server import OpenAITestServer  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
KEY_ENV = "XR_TEST_LIVE_KEY"
FAKE_KEY = "sk-xrtest-DO-NOT-LEAK-7f3a9c21e5"  # recognisable, so artifacts can be scanned for it
FAST = {"backoff_base": 0.01, "backoff_max": 0.05}  # keep retry tests quick; Retry-After is still honoured


@pytest.fixture(scope="module")
def _server():
    old = os.environ.get(KEY_ENV)
    os.environ[KEY_ENV] = FAKE_KEY
    server = OpenAITestServer(api_key=FAKE_KEY).start()
    yield server
    server.stop()
    if old is None:
        os.environ.pop(KEY_ENV, None)
    else:
        os.environ[KEY_ENV] = old


@pytest.fixture
def server(_server):
    _server.reset()
    return _server


def spec(server, model_name="echo", id=None, price_in=1.0, price_out=2.0, **kw) -> ModelSpec:
    return ModelSpec(id or model_name.partition("?")[0], price_in, price_out, provider="test",
                     base_url=server.base_url, api_key_env=KEY_ENV, model_name=model_name, **kw)


def q(i=0, text=None, gold=None) -> Query:
    return Query(f"live/t/{i}", "live", "t", text or f"question {i}", gold)


def statuses(server, model: str | None = None) -> list[int]:
    return [e["status"] for e in server.log if model is None or e["model"] == model]


# ----------------------------------------------------------------------------- calls, usage, cost

def test_call_returns_text_usage_and_cost(server):
    pool = LivePool([spec(server)], max_tokens=64)
    a = pool.call("echo", q(text="2+2?"), system_prompt="Be brief.", temperature=0.0)
    assert a.text == "echo from echo: 2+2?" and a.model == "echo" and not a.cached
    # the server counts ceil(chars/4) + 4 per message: "Be brief.2+2?" -> 4 + 8; "echo from echo: 2+2?" -> 5
    assert (a.in_tokens, a.out_tokens) == (12, 5)
    assert a.usd == pytest.approx(12 * 1.0 / 1e6 + 5 * 2.0 / 1e6)
    assert a.meta["usage_estimated"] is False and a.meta["attempts"] == 1


def test_missing_usage_is_estimated_and_marked(server):
    a = LivePool([spec(server, "echo?usage=0")]).call("echo", q(text="hello there"))
    assert a.meta["usage_estimated"] is True
    assert a.in_tokens > 0 and a.out_tokens > 0 and a.usd > 0


def test_test_server_speaks_openai_tools_and_models(server):
    client = openai.OpenAI(base_url=server.base_url, api_key=FAKE_KEY, max_retries=0)
    tool = {"type": "function", "function": {"name": "call_small", "parameters": {
        "type": "object", "properties": {"optimized_system_prompt": {"type": "string"}}}}}
    kwargs = dict(model="echo", messages=[{"role": "user", "content": "hi"}], tools=[tool])
    first, second = (client.chat.completions.create(**kwargs) for _ in range(2))
    call = first.choices[0].message.tool_calls[0]
    assert call.function.name == "call_small" and json.loads(call.function.arguments) == {"optimized_system_prompt": "hi"}
    assert call.id == second.choices[0].message.tool_calls[0].id  # deterministic
    assert "echo" in [m.id for m in client.models.list().data]


# ----------------------------------------------------------------------------- retries

@pytest.mark.parametrize("fault", ["fail=429x2", "fail=500x2", "fail=503x1", "malformed=1x2", "error_body=1x1"])
def test_transient_faults_are_retried_then_succeed(server, fault):
    a = LivePool([spec(server, f"echo?{fault}")], **FAST).call("echo", q())
    assert a.text == "echo from echo: question 0"
    n_faults = int(fault.split("x")[-1])
    assert len(server.log) == n_faults + 1 and a.meta["attempts"] == n_faults + 1


@pytest.mark.parametrize("fault, says", [("fail=500", "HTTP 500"), ("malformed=1", "malformed JSON"),
                                         ("error_body=1", "error body: upstream provider error")])
def test_persistent_faults_fail_clearly_after_the_configured_attempts(server, fault, says):
    pool = LivePool([spec(server, f"echo?{fault}")], max_retries=2, **FAST)
    with pytest.raises(LivePoolError) as err:
        pool.call("echo", q())
    msg = str(err.value)
    assert "'echo'" in msg and server.base_url in msg and says in msg and "after 3 attempts" in msg
    assert len(server.log) == 3
    assert isinstance(err.value, PoolError)  # episodes record it as a failed call instead of crashing


def test_timeouts_are_retried(server):
    pool = LivePool([spec(server, "echo?delay=1.5x1")], timeout=0.3, **FAST)
    t0 = time.monotonic()
    a = pool.call("echo", q())
    assert a.meta["attempts"] == 2 and 0.3 <= time.monotonic() - t0 < 1.4
    with pytest.raises(LivePoolError, match="no response within timeout=0.2 s"):
        LivePool([spec(server, "echo?delay=1")], timeout=0.2, max_retries=1, **FAST).call("echo", q(1))


@pytest.mark.parametrize("header, at_least", [("retry_after=1", 1.0), ("retry_after_date=2", 1.0)])
def test_retry_after_is_honoured(server, header, at_least):
    # our own backoff would wait ~0.01 s; only Retry-After explains the wait (an HTTP-date has 1 s resolution)
    pool = LivePool([spec(server, f"echo?fail=429x1&{header}")], **FAST)
    t0 = time.monotonic()
    pool.call("echo", q())
    gap = server.log[1]["t"] - server.log[0]["t"]
    assert statuses(server) == [429, 200] and gap >= at_least - 0.05 and time.monotonic() - t0 < 4


def test_too_long_retry_after_fails_fast(server):
    pool = LivePool([spec(server, "echo?fail=429&retry_after=3600")], max_retry_after=60, **FAST)
    with pytest.raises(LivePoolError, match="retry after 3600 s"):
        pool.call("echo", q())
    assert len(server.log) == 1


def test_retry_after_header_forms():
    assert retry_after_seconds({"retry-after": "2"}) == 2.0
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 28 <= retry_after_seconds({"retry-after": date}) <= 30
    assert retry_after_seconds({"retry-after": "soon"}) is None and retry_after_seconds(None) is None


def test_wrong_key_is_not_retried_and_names_the_variable(server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-wrong")
    with pytest.raises(LivePoolError, match=rf"HTTP 401 \(check \${KEY_ENV}\)"):
        LivePool([spec(server)], **FAST).call("echo", q())
    assert statuses(server) == [401]


def test_unset_key_variable_is_a_clear_error(server, monkeypatch):
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(LivePoolError, match=f"environment variable {KEY_ENV} is unset.*needed by echo"):
        LivePool([spec(server)])


def test_concurrency_is_limited_per_endpoint(server):
    pool = LivePool([spec(server, "echo?delay=0.1")], concurrency_per_endpoint=2)
    with ThreadPoolExecutor(6) as ex:
        list(ex.map(lambda i: pool.call("echo", q(i)), range(6)))
    assert server.max_inflight == 2 and len(server.log) == 6


# ----------------------------------------------------------------------------- cache

def test_cached_replay_is_not_paid_again_but_costs_what_the_call_cost(server, tmp_path):
    pool = LivePool([spec(server)], cache=ResponseCache(tmp_path / "c.sqlite"))
    paid = pool.call("echo", q(), temperature=0.0)
    again = pool.call("echo", q(), temperature=0.0)
    assert len(server.log) == 1  # nothing was sent, nothing paid
    assert (again.text, again.in_tokens, again.out_tokens) == (paid.text, paid.in_tokens, paid.out_tokens)
    assert not paid.cached and paid.usd > 0 and paid.meta["paid_usd"] == paid.usd
    # the hit says it is cached and paid nothing, and costs what the original call cost
    assert again.cached and again.meta["paid_usd"] == 0.0 and again.usd == pytest.approx(paid.usd)
    assert again.meta["original_usd"] == pytest.approx(paid.usd)
    # another process (a new pool on the same file) replays it too; other sampling settings are a new request
    fresh = LivePool([spec(server)], cache=ResponseCache(tmp_path / "c.sqlite"))
    assert fresh.call("echo", q(), temperature=0.0).cached
    assert not fresh.call("echo", q(), temperature=0.7).cached and len(server.log) == 2
    # opting out: a hit reports $0
    free = LivePool([spec(server)], cache=ResponseCache(tmp_path / "c.sqlite"), charge_cache_hits=False)
    hit = free.call("echo", q(), temperature=0.0)
    assert hit.cached and hit.usd == 0.0 and hit.meta["original_usd"] == pytest.approx(paid.usd)


def test_episodes_on_a_cached_live_pool_are_charged_like_paid_ones(server, tmp_path):
    """Rewards and evaluations on a live pool must not get cheaper because the answers were cached."""
    from xrouter_lite.pool.core import tool_name
    from xrouter_lite.routing.episode import run_episode
    from xrouter_lite.routing.reward import RewardConfig

    def router(messages, tools):
        return ('<tool_call>{"name": "%s", "arguments": {"optimized_system_prompt": "Answer."}}</tool_call>'
                % tool_name("echo"))

    pool = LivePool([spec(server, price_in=100.0, price_out=200.0)], cache=ResponseCache(tmp_path / "c.sqlite"))
    query = q(text="What is 2+2?", gold="4")
    cfg = RewardConfig(lam=10.0)
    first = run_episode(router, query, pool, ["echo"], mode="simple", reward_cfg=cfg)
    second = run_episode(router, query, pool, ["echo"], mode="simple", reward_cfg=cfg)
    assert len(server.log) == 1  # the second episode's call came from the cache
    assert not first.calls[0].cached and second.calls[0].cached
    assert first.usd > 0 and second.usd == pytest.approx(first.usd)
    assert second.calls[0].usd == pytest.approx(first.calls[0].usd)
    assert second.reward == pytest.approx(first.reward) and second.score == first.score


def test_identical_concurrent_requests_pay_once(server, tmp_path):
    pool = LivePool([spec(server, "echo?delay=0.1")], cache=ResponseCache(tmp_path / "c.sqlite"))
    with ThreadPoolExecutor(4) as ex:
        answers = list(ex.map(lambda _: pool.call("echo", q()), range(4)))
    assert len(server.log) == 1 and sum(not a.cached for a in answers) == 1


# ----------------------------------------------------------------------------- budget

def test_budget_is_never_exceeded_by_concurrent_calls(server, tmp_path):
    # each call reserves ~ max_tokens * $0.1/token = $1.00; it really costs ~$0.5 (a short echo)
    s = spec(server, "echo?delay=0.05", price_in=0.0, price_out=100_000.0)
    budget = BudgetGuard(5.5, path=tmp_path / "budget.sqlite")
    pool = LivePool([s], budget=budget, max_tokens=10, concurrency_per_endpoint=8)
    answers, refusals = [], []

    def one(i):
        try:
            answers.append(pool.call("echo", q(i, text="x")))
        except BudgetExceeded as e:
            refusals.append(e)

    with ThreadPoolExecutor(16) as ex:
        list(ex.map(one, range(40)))
    assert refusals and answers and len(answers) + len(refusals) == 40
    assert budget.spent <= budget.cap_usd and budget.reserved == 0.0
    assert budget.spent == pytest.approx(sum(a.usd for a in answers))
    assert len(server.log) == len(answers)  # a refused call is never sent
    msg = str(refusals[0])
    assert "spent $" in msg and "reservation $1.000" in msg and "cap $5.500000" in msg
    assert budget.remaining == pytest.approx(budget.cap_usd - budget.spent)


def test_budget_is_shared_across_processes_and_dead_reservations_count(tmp_path):
    path = tmp_path / "budget.sqlite"
    script = textwrap.dedent(f"""
        import os
        from xrouter_lite.pool.budget import BudgetGuard
        g = BudgetGuard(10.0, path={str(path)!r}, run="r")
        g.settle(g.reserve(2.0, "settled"), 1.5)
        g.reserve(3.0, "in flight when killed")
        os._exit(0)  # dies holding the reservation
    """)
    subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(REPO)}, check=True, timeout=60)
    guard = BudgetGuard(10.0, path=path, run="r")
    assert guard.spent == pytest.approx(4.5)  # 1.5 settled + 3.0 the dead process may have been billed
    assert guard.reserved == 0.0 and guard.remaining == pytest.approx(5.5)
    assert BudgetGuard(10.0, path=path, run="other").spent == 0.0  # caps are per run
    with pytest.raises(BudgetExceeded, match=r"spent \$4.5"):
        guard.reserve(6.0, "too much")


# ----------------------------------------------------------------------------- pool configs

def test_example_config_loads():
    from xrouter_lite.profiles import example_pool_config

    specs = load_pool_config(example_pool_config())  # shipped inside the package
    assert len(specs) >= 6 and len({s.id for s in specs}) == len(specs)
    assert {s.provider for s in specs} >= {"openai", "openrouter", "together", "vllm", "ollama"}
    assert all(s.base_url.startswith("http") and s.price_out >= 0 for s in specs)
    from xrouter_lite.pool.core import tier_of
    assert [s.tier for s in specs] == [tier_of(s.price_in, s.price_out) for s in specs]  # tiers from price bands


def _write_config(tmp_path, entries) -> Path:
    import yaml
    path = tmp_path / "pool.yaml"
    path.write_text(yaml.safe_dump({"models": entries}))
    return path


GOOD = {"id": "m", "provider": "test", "base_url": "http://127.0.0.1:9/v1", "api_key_env": "X_KEY",
        "model_name": "m", "price_in": 0.1, "price_out": 0.2, "tier": "budget", "context": 8192}


@pytest.mark.parametrize("change, says", [
    ({"price_in": "cheap"}, "models[1] (m2): field 'price_in' must be a number >= 0"),
    ({"price_out": -1}, "models[1] (m2): field 'price_out' must be a number >= 0"),
    ({"tier": "gold"}, "field 'tier' must be one of premium, standard, budget, specialized"),
    ({"context": 0}, "field 'context' must be a positive integer"),
    ({"base_url": "api.openai.com"}, "field 'base_url' must be an http(s):// URL"),
    ({"price_input": 1}, "unknown field 'price_input'"),
    ({"id": "m"}, "models[1] (m): field 'id' duplicates models[0]"),
    ({"model_name": None}, "field 'model_name' must be a non-empty string"),
])
def test_config_errors_name_file_entry_and_field(tmp_path, change, says):
    path = _write_config(tmp_path, [GOOD, {**GOOD, "id": "m2", **change}])
    with pytest.raises(ConfigError) as err:
        load_pool_config(path)
    assert str(path) in str(err.value) and says in str(err.value)


def test_config_missing_fields_and_pasted_keys(tmp_path):
    entry = {k: v for k, v in GOOD.items() if k != "price_out"}
    path = _write_config(tmp_path, [{**entry, "api_key_env": FAKE_KEY}])
    with pytest.raises(ConfigError) as err:
        load_pool_config(path)
    msg = str(err.value)
    assert "models[0] (m): missing field 'price_out'" in msg and "2 problems" in msg
    assert "field 'api_key_env' must be the NAME of an environment variable" in msg and FAKE_KEY not in msg
    (tmp_path / "bad.yaml").write_text("models: {id: m}")
    with pytest.raises(ConfigError, match="expected a non-empty list of models"):
        load_pool_config(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="not found"):
        load_pool_config(tmp_path / "nope.yaml")


# ----------------------------------------------------------------------------- recording

def _config_for(server, tmp_path, names) -> Path:
    return _write_config(tmp_path, [{**GOOD, "id": n.partition("?")[0], "base_url": server.base_url,
                                     "api_key_env": KEY_ENV, "model_name": n} for n in names])


def _grade(task, response, gold):
    return float(gold is not None and gold in response)


def _scan_for_key(paths) -> list[str]:
    """Files under `paths` whose bytes contain the fake key."""
    hits = []
    for root in paths:
        for f in [root] if root.is_file() else root.rglob("*"):
            if f.is_file() and FAKE_KEY.encode() in f.read_bytes():
                hits.append(str(f))
    return hits


def test_record_writes_the_tidy_table_and_never_stores_the_key(server, tmp_path, caplog):
    caplog.set_level("DEBUG")  # every logger, the openai client's and httpx's included
    config = _config_for(server, tmp_path, ["alpha", "beta?fail=500x1"])
    queries = [q(i, text=f"say {i}", gold=str(i)) for i in range(3)]
    out = tmp_path / "live.csv"
    table = record(config, queries, out, budget=1.0, cache_path=tmp_path / "c.sqlite", concurrency=2,
                   grade=_grade, categories={"live/t/0": "maths"}, progress=False)
    assert list(table.columns) == ["query_id", "source", "task", "category", "question", "gold", "model",
                                   "response", "correct", "in_tokens", "out_tokens", "usd"]
    assert len(table) == 6 and set(table["source"]) == {"live"} and table["correct"].tolist() == [1.0] * 6
    assert table.loc[table.query_id == "live/t/0", "category"].tolist() == ["maths", "maths"]
    assert (table["usd"] > 0).all() and table["in_tokens"].dtype == "int64"
    reread = pd.read_csv(out, dtype={"gold": str})
    assert reread["gold"].tolist() == table["gold"].tolist()
    # a rerun asks nothing: every pair is already in the table
    n = len(server.log)
    record(config, queries, out, budget=1.0, cache_path=tmp_path / "c.sqlite", grade=_grade, progress=False)
    assert len(server.log) == n
    assert not _scan_for_key([tmp_path]) and FAKE_KEY not in caplog.text
    assert not list(tmp_path.glob("*.partial.jsonl"))


def test_record_s_default_cache_is_in_the_cache_dir_found_per_call_not_the_working_directory(server, tmp_path,
                                                                                             monkeypatch):
    from xrouter_lite.profiles import CACHE_ENV

    monkeypatch.chdir(tmp_path)  # a relative default would land here
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))  # set after import: read when the recording starts
    record([spec(server, "alpha")], [q(0, gold="0")], tmp_path / "live.parquet", budget=1.0, grade=_grade,
           progress=False)
    assert ResponseCache(tmp_path / "cache" / "responses.sqlite").requests()
    assert not (tmp_path / ".cache").exists()


def test_record_stops_at_the_budget_and_keeps_what_it_paid_for(server, tmp_path):
    specs = [spec(server, "alpha", price_in=0.0, price_out=1000.0)]
    queries = [q(i, gold=str(i)) for i in range(10)]
    out = tmp_path / "live.parquet"
    # each call reserves 1024 max_tokens * $0.001 = $1.024 and costs 7 tokens * $0.001 = $0.007, so after
    # three calls $0.021 + the next reservation crosses the cap of $1.044
    with pytest.raises(BudgetExceeded, match=r"spent \$0.021000"):
        record(specs, queries, out, budget=1.044, cache_path=tmp_path / "c.sqlite", concurrency=1,
               grade=_grade, progress=False)
    kept = pd.read_parquet(out)
    assert len(kept) == 3 == len(server.log) and kept["usd"].sum() == pytest.approx(0.021)


_RECORD_SCRIPT = """
import json, sys
from xrouter_lite.pool.recording import record
from xrouter_lite.pool.core import Query
config, out, cache = sys.argv[1:4]
queries = [Query(**d) for d in json.load(open(sys.argv[4]))]
record(config, queries, out, budget=1.0, cache_path=cache, concurrency=2,
       grade=lambda task, response, gold: float(gold in response), progress=False)
"""


def test_killed_recording_resumes_without_repeating_a_completed_call(server, tmp_path):
    config = _config_for(server, tmp_path, ["alpha?delay=0.05", "beta?delay=0.05"])
    queries = [{"id": f"live/t/{i}", "source": "live", "task": "t", "text": f"q{i}", "gold": str(i)} for i in range(12)]
    (tmp_path / "queries.json").write_text(json.dumps(queries))
    (tmp_path / "run.py").write_text(_RECORD_SCRIPT)
    out, cache_path = tmp_path / "live.parquet", tmp_path / "c.sqlite"
    argv = [sys.executable, str(tmp_path / "run.py"), str(config), str(out), str(cache_path), str(tmp_path / "queries.json")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def run(log_name):
        return subprocess.Popen(argv, env=env, stdout=open(tmp_path / f"{log_name}.out", "w"), stderr=subprocess.STDOUT)

    proc = run("first")
    deadline = time.monotonic() + 30
    while statuses(server).count(200) < 6 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.kill()
    proc.wait(timeout=10)
    assert proc.returncode != 0, "the recording finished before it could be killed"
    time.sleep(0.2)  # let requests in flight at the kill reach the server log
    completed = {(r["model"].split("@")[0], r["messages"][-1]["content"]) for r in ResponseCache(cache_path).requests()}
    before = len(server.log)
    assert 1 <= len(completed) < 24  # the server logs a reply just before the client stores it

    proc = run("second")
    assert proc.wait(timeout=60) == 0, (tmp_path / "second.out").read_text()
    asked_after = {(e["model"], e["user"]) for e in server.log[before:]}
    assert not asked_after & completed  # nothing answered before the kill was paid for again
    table = pd.read_parquet(out)
    assert len(table) == 24 and not table.duplicated(["query_id", "model"]).any()
    assert statuses(server).count(200) <= 24 + 2  # at most the calls in flight at the kill were repeated
    assert not _scan_for_key([tmp_path])  # cache DB, WAL, table, journal and the processes' output


def test_select_queries_is_seeded_and_split_aware():
    rows = [{"query_id": f"zeroeval/gsm/{i}", "source": "zeroeval", "task": "gsm", "question": f"q{i}",
             "gold": str(i), "model": m, "split": "train" if i < 8 else "test"} for i in range(10) for m in "ab"]
    table = pd.DataFrame(rows)
    picked = select_queries(table, ["gsm"], 5, seed=1)
    assert len(picked) == 5 and len({p.id for p in picked}) == 5
    assert all(int(p.id.split("/")[-1]) < 8 for p in picked) and picked == select_queries(table, ["gsm"], 5, seed=1)
    with pytest.raises(ValueError, match="no train queries for task 'crux'"):
        select_queries(table, ["crux"], 5)


def test_record_command_runs_from_the_command_line_arguments(server, tmp_path, monkeypatch):
    import xrouter_lite.pool.recording
    import xrouter_lite.pool.table
    from xrouter_lite.__main__ import build_parser
    from xrouter_lite.pool.recording import record_command

    rows = [{"query_id": f"zeroeval/gsm/{i}", "source": "zeroeval", "task": "gsm", "category": "",
             "question": f"What is {i}?", "gold": str(i), "model": "recorded-model"} for i in range(40)]
    monkeypatch.setattr(xrouter_lite.pool.table, "load_table", lambda data_dir, sources=None: pd.DataFrame(rows))
    monkeypatch.setattr(xrouter_lite.pool.recording, "_default_grade", lambda: _grade)
    config, out = _config_for(server, tmp_path, ["alpha"]), tmp_path / "live.parquet"
    args = build_parser().parse_args(["record", "--pool", str(config), "--tasks", "gsm", "--n", "3", "--budget", "1",
                                      "--out", str(out), "--cache", str(tmp_path / "c.sqlite"), "--data", str(tmp_path)])
    assert record_command(args) == 0
    table = pd.read_parquet(out)
    assert len(table) == 3 and set(table["source"]) == {"live"} and table["correct"].tolist() == [1.0] * 3
    assert table["query_id"].str.startswith("zeroeval/gsm/").all()  # ids link back to the recorded rows
    from xrouter_lite.pool.splits import split_of
    assert all(split_of(t) == "train" for t in table["question"])
