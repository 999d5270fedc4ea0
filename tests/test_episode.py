"""Episodes: every stop rule, concurrent calls, cost and reward, the record's JSON and its render."""

from __future__ import annotations

import json
import sys
import threading
import time
import types

import pytest

from xrouter_lite.pool.core import Answer, ModelSpec, Pool, PoolError, Query, tool_name
from xrouter_lite.routing.episode import Episode, read_jsonl, run_episode, run_episodes, write_jsonl
from xrouter_lite.routing.protocol import Action, render_calls
from xrouter_lite.routing.reward import RewardConfig

SPECS = [ModelSpec("cheap-1", 0.1, 0.4, tier="budget"), ModelSpec("mid.2", 0.5, 2.0),
         ModelSpec("big-3", 3.0, 12.0, tier="premium")]
Q = Query("demo/add/1", "demo", "add", "What is 2+2?", gold="4")
USD = {"cheap-1": 0.0001, "mid.2": 0.001, "big-3": 0.01}


class DictPool(Pool):
    """A replay pool backed by {(query_id, model): Answer}; counts calls, raises PoolError on a miss."""

    models = SPECS

    def __init__(self, answers: dict | None = None):
        self.answers = answers if answers is not None else {
            (Q.id, "cheap-1"): Answer("5", 20, 2, USD["cheap-1"], model="cheap-1"),
            (Q.id, "mid.2"): Answer("4", 20, 2, USD["mid.2"], cached=True, model="mid.2"),
            (Q.id, "big-3"): Answer("The answer is 4" + "!" * 10_000, 20, 300, USD["big-3"], model="big-3")}
        self.seen: list[tuple] = []

    def call(self, model, query, system_prompt=None, temperature=None):
        self.seen.append((model, system_prompt, temperature))
        try:
            return self.answers[(query.id, model)]
        except KeyError:
            raise PoolError(f"no recorded answer of {model!r} for {query.id!r}") from None


def script(*turns):
    """A router that replays fixed turns and records what it was shown."""
    seen = []

    def router(messages, tools):
        seen.append((messages, tools))
        return turns[len(seen) - 1]
    router.seen = seen
    return router


def calls(*models, prompt="Solve it.") -> str:
    return render_calls([Action("call", model=m, args={"optimized_system_prompt": prompt}) for m in models])


def select(model: str) -> str:
    return render_calls([Action("select", model=model, args={"model_call_name": tool_name(model)})])


def exact(query, text):
    return float(query.gold in text)


def play(router, mode="agent", allowed=("cheap-1", "mid.2", "big-3"), pool=None, **kw) -> Episode:
    return run_episode(router, Q, pool or DictPool(), list(allowed), mode=mode, grader=kw.pop("grader", exact), **kw)


# --- endings -----------------------------------------------------------------------------------------

def test_direct_answer_is_free_and_graded():
    ep = play(script("  4  "))
    assert (ep.ending, ep.final, ep.score, ep.reward, ep.usd, ep.turns) == ("direct", "4", 1.0, 1.0, 0.0, 1)
    assert [m["role"] for m in ep.messages] == ["system", "user", "assistant"] and ep.calls == []


def test_wrong_direct_answer_earns_nothing():
    ep = play(script("5"))
    assert (ep.ending, ep.score, ep.reward) == ("direct", 0.0, 0.0)


def test_simple_mode_call_is_final():
    pool = DictPool()
    ep = play(script(calls("mid.2")), mode="simple", pool=pool)
    assert (ep.ending, ep.final, ep.turns) == ("called", "4", 1)
    assert ep.usd == pytest.approx(0.001) and ep.reward == pytest.approx(1 - 3 * 0.001)
    assert pool.seen == [("mid.2", "Solve it.", 1.0)]
    c = ep.calls[0]
    assert (c.model, c.turn, c.in_tokens, c.out_tokens, c.cached) == ("mid.2", 1, 20, 2, True)
    assert ep.messages[-1] == {"role": "tool", "name": "call_mid_2", "content": "call_mid_2 answered:\n4"}


def test_select_returns_the_full_answer_and_pays_for_every_call():
    ep = play(script(calls("cheap-1", "big-3"), select("big-3")))
    assert ep.ending == "selected" and ep.final.startswith("The answer is 4") and len(ep.final) > 10_000
    assert ep.messages[4]["content"].startswith("call_big_3 answered:\n[...]!!!")  # the router read a clipped copy
    assert ep.usd == pytest.approx(0.0101) and ep.reward == pytest.approx(1 - 3 * 0.0101)
    assert [(c.model, c.turn) for c in ep.calls] == [("cheap-1", 1), ("big-3", 1)]


def test_select_picks_the_right_one_of_several():
    ep = play(script(calls("cheap-1", "mid.2"), select("cheap-1")))
    assert (ep.ending, ep.final, ep.score, ep.reward) == ("selected", "5", 0.0, 0.0)


def test_summary_after_calls():
    ep = play(script(calls("cheap-1", "mid.2"), "They disagree; 2+2 = 4."))
    assert (ep.ending, ep.final, ep.score) == ("summarised", "They disagree; 2+2 = 4.", 1.0)
    assert ep.reward == pytest.approx(1 - 3 * 0.0011)


def test_three_turns_with_calls_in_two():
    pool = DictPool()
    ep = play(script(calls("cheap-1"), calls("mid.2", prompt="Check."), select("cheap-1")), pool=pool)
    assert (ep.ending, ep.turns, ep.final) == ("selected", 3, "5")
    assert [(c.model, c.turn) for c in ep.calls] == [("cheap-1", 1), ("mid.2", 2)]
    assert [s[1] for s in pool.seen] == ["Solve it.", "Check."]


def test_calls_in_the_last_turn_are_invalid_and_not_run():
    pool = DictPool()
    ep = play(script(calls("cheap-1"), calls("mid.2"), calls("big-3")), pool=pool)
    assert ep.ending == "invalid" and "turns exhausted" in ep.invalid_reason
    assert (ep.score, ep.reward, ep.final, ep.turns) == (0.0, 0.0, None, 3)
    assert [s[0] for s in pool.seen] == ["cheap-1", "mid.2"] and ep.usd == pytest.approx(0.0011)


def test_max_turns_one_agent_cannot_call():
    ep = play(script(calls("mid.2")), max_turns=1)
    assert ep.ending == "invalid" and "turns exhausted" in ep.invalid_reason and ep.calls == []


def test_unknown_tool_ends_invalid():
    ep = play(script('<tool_call>{"name": "call_gpt_5", "arguments": {"optimized_system_prompt": "x"}}</tool_call>'))
    assert ep.ending == "invalid" and "unknown tool 'call_gpt_5'" in ep.invalid_reason and ep.turns == 1


def test_a_pool_model_outside_the_sample_is_refused_and_never_called():
    pool = DictPool()
    ep = play(script(calls("big-3")), allowed=["cheap-1", "mid.2"], pool=pool)
    assert ep.ending == "invalid" and "unknown tool 'call_big_3'" in ep.invalid_reason and pool.seen == []
    assert [t["function"]["name"] for t in ep.tools] == ["call_cheap_1", "call_mid_2", "select_response"]


def test_select_mixed_with_calls_is_invalid_and_runs_nothing():
    pool = DictPool()
    ep = play(script(calls("cheap-1"), calls("mid.2") + select("cheap-1")), pool=pool)
    assert ep.ending == "invalid" and "mixed" in ep.invalid_reason and [s[0] for s in pool.seen] == ["cheap-1"]


def test_select_of_a_model_not_called_is_invalid():
    ep = play(script(calls("cheap-1"), select("mid.2")))
    assert ep.ending == "invalid" and "not called" in ep.invalid_reason and ep.reward == 0.0


def test_select_first_turn_is_invalid():
    assert play(script(select("mid.2"))).ending == "invalid"


def test_garbage_and_empty_turns_are_invalid():
    assert "empty output" in play(script("")).invalid_reason
    assert "malformed JSON" in play(script("<tool_call>{oops}</tool_call>")).invalid_reason


def test_simple_mode_rules():
    assert "exactly one call" in play(script(calls("cheap-1", "mid.2")), mode="simple").invalid_reason
    assert "simple mode" in play(script(select("mid.2")), mode="simple").invalid_reason
    assert [t["function"]["name"] for t in play(script("4"), mode="simple").tools][-1] == "call_big_3"


def test_pool_error_is_recorded_not_raised_and_paid_calls_still_count():
    answers = DictPool().answers
    del answers[(Q.id, "mid.2")]
    ep = play(script(calls("cheap-1", "mid.2"), select("cheap-1")), pool=DictPool(answers))
    assert ep.ending == "invalid" and ep.invalid_reason.startswith("pool error from mid.2: no recorded answer")
    assert [(c.model, c.error != "") for c in ep.calls] == [("cheap-1", False), ("mid.2", True)]
    assert ep.usd == pytest.approx(USD["cheap-1"]) and ep.reward == 0.0 and ep.turns == 1
    assert ep.messages[-1]["content"].startswith("call_mid_2 failed:")


def test_other_pool_exceptions_are_bugs_and_propagate():
    class Broken(DictPool):
        def call(self, *a, **k):
            raise RuntimeError("bug")
    with pytest.raises(RuntimeError):
        play(script(calls("cheap-1")), pool=Broken())


def test_unknown_allowed_model_is_a_caller_error():
    with pytest.raises(PoolError):
        play(script("4"), allowed=["nope"])


def test_bad_mode_is_refused():
    with pytest.raises(ValueError):
        play(script("4"), mode="chat")


# --- what the router sees ----------------------------------------------------------------------------

def test_router_sees_tools_and_the_growing_conversation_but_cannot_edit_the_record():
    def router(messages, tools):
        router.n += 1
        shown.append([m["role"] for m in messages])
        messages.append({"role": "user", "content": "tampered"})
        return calls("cheap-1") if router.n == 1 else select("cheap-1")
    router.n, shown = 0, []
    ep = play(router)
    assert shown == [["system", "user"], ["system", "user", "assistant", "tool"]]
    assert all(m["content"] != "tampered" for m in ep.messages)


def test_tool_messages_come_back_in_call_order_even_when_finished_out_of_order():
    class Slow(DictPool):
        def call(self, model, query, system_prompt=None, temperature=None):
            time.sleep(0.2 if model == "cheap-1" else 0.0)
            return super().call(model, query, system_prompt, temperature)
    ep = play(script(calls("cheap-1", "mid.2", "big-3"), select("mid.2")), pool=Slow())
    assert [m["name"] for m in ep.messages if m["role"] == "tool"] == ["call_cheap_1", "call_mid_2", "call_big_3"]


def test_calls_in_one_turn_overlap():
    class Barrier(DictPool):
        """Each call waits until all three are in flight: sequential calls would break the barrier."""
        barrier = threading.Barrier(3, timeout=5)

        def call(self, *args, **kwargs):
            self.barrier.wait()
            return super().call(*args, **kwargs)
    start = time.perf_counter()
    ep = play(script(calls("cheap-1", "mid.2", "big-3"), select("mid.2")), pool=Barrier())
    assert ep.ending == "selected" and len(ep.calls) == 3 and time.perf_counter() - start < 5


def test_one_call_runs_in_the_callers_thread():
    class Where(DictPool):
        def call(self, *args, **kwargs):
            self.thread = threading.current_thread()
            return super().call(*args, **kwargs)
    pool = Where()
    play(script(calls("mid.2")), mode="simple", pool=pool)
    assert pool.thread is threading.current_thread()


def test_temperature_reaches_the_pool():
    pool = DictPool()
    text = render_calls([Action("call", model="mid.2", args={"optimized_system_prompt": "x", "temperature": 0.2})])
    play(script(text), mode="simple", pool=pool)
    assert pool.seen == [("mid.2", "x", 0.2)]


# --- tokens, cost, reward, grading -------------------------------------------------------------------

def test_router_tokens_are_counted_per_turn_with_the_injected_counter():
    t1, t2 = calls("cheap-1"), select("cheap-1")
    ep = play(script(t1, t2), count_tokens=len)
    tools_chars = len(json.dumps(ep.tools))
    sys_user = len(ep.messages[0]["content"]) + len(ep.messages[1]["content"])
    tool_msg = len(ep.messages[3]["content"])
    assert ep.router_out_tokens == len(t1) + len(t2)
    assert ep.router_in_tokens == (tools_chars + sys_user) + (tools_chars + sys_user + len(t1) + tool_msg)


def test_router_tokens_are_charged_only_when_asked():
    cfg = RewardConfig(router_price_in=10.0, router_price_out=10.0)
    free = play(script("4"), reward_cfg=cfg, count_tokens=lambda s: 1000)
    assert free.router_usd == pytest.approx((3000 + 1000) * 10 / 1e6) and free.reward == 1.0
    charged = play(script("4"), reward_cfg=RewardConfig(charge_router_tokens=True, router_price_in=10.0,
                                                        router_price_out=10.0), count_tokens=lambda s: 1000)
    assert charged.reward == pytest.approx(1 - 3 * 0.04)


def test_reward_config_is_used():
    ep = play(script(calls("big-3"), select("big-3")), reward_cfg=RewardConfig(lam=100.0, cost_max=0.5))
    assert ep.reward == pytest.approx(0.5)  # 100 * 0.01 = 1 capped at 0.5


def test_grader_sees_the_query_and_final_text():
    seen = []
    play(script("four"), grader=lambda q, text: seen.append((q.id, text)) or 1.0)
    assert seen == [(Q.id, "four")]


def test_invalid_episodes_are_not_graded():
    seen = []
    play(script(""), grader=lambda q, text: seen.append(text) or 1.0)
    assert seen == []


def test_out_of_range_grade_is_an_error():
    with pytest.raises(ValueError):
        play(script("4"), grader=lambda q, t: 2.0)


def test_default_grader_is_grade_final_with_the_records(monkeypatch):
    fake = types.ModuleType("xrouter_lite.pool.grading")
    got = []
    fake.grade_final = lambda query, text, recorded=None: got.append((query.id, text, recorded)) or 0.5
    monkeypatch.setitem(sys.modules, "xrouter_lite.pool.grading", fake)
    ep = run_episode(script("4"), Q, DictPool(), ["mid.2"], pool_records={"4": 1.0})
    assert got == [(Q.id, "4", {"4": 1.0})] and ep.score == 0.5


def test_default_token_count_uses_the_tokens_module(monkeypatch):
    fake = types.ModuleType("xrouter_lite.pool.tokens")
    fake.count_tokens = lambda text: 7
    monkeypatch.setitem(sys.modules, "xrouter_lite.pool.tokens", fake)
    assert play(script("4")).router_out_tokens == 7


def test_oversized_router_output_is_stored_clipped():
    ep = play(script("x" * 5_000_000), count_tokens=len)
    assert ep.ending == "invalid" and "too long" in ep.invalid_reason
    assert len(ep.messages[-1]["content"]) < 2_000
    assert ep.router_out_tokens == 5_000_000 // 4  # still billed, by a cheap estimate


# --- record: JSON, render, batches -------------------------------------------------------------------

def test_json_round_trip(tmp_path):
    ep = play(script(calls("cheap-1", "big-3"), "Réponse : 4 ✓"))
    line = ep.to_json()
    assert "\n" not in line and json.loads(line)["ending"] == "summarised"
    back = Episode.from_json(line)
    assert back == ep and back.calls[0].model == "cheap-1"
    bad = play(script(""))
    assert read_jsonl(write_jsonl([ep, bad], tmp_path / "eps.jsonl")) == [ep, bad]


def test_render_is_a_readable_trace():
    ep = play(script(calls("cheap-1", "big-3"), select("big-3")))
    text = ep.render(max_chars=80)
    lines = text.splitlines()
    assert lines[0] == "episode demo/add/1 · agent · pool: cheap-1, mid.2, big-3"
    assert lines[1] == "[user] What is 2+2?"
    assert lines[2].startswith("[router 1] <tool_call>") and "[call_big_3] [...]!!" in text
    assert "(+" in text  # long messages clipped
    assert lines[-1].startswith("=> selected · score 1 · $0.010100 over 2 call(s) · reward 0.9697")
    assert "cost-aware router" not in text and "cost-aware router" in ep.render(system=True)


def test_render_names_the_invalid_reason():
    assert "=> invalid (empty output)" in play(script("")).render()


def test_run_episodes_with_per_query_pools_and_records():
    queries = [Q, Query("demo/add/2", "demo", "add", "3+3?", gold="6")]
    pool = DictPool({**DictPool().answers, ("demo/add/2", "cheap-1"): Answer("6", 5, 1, 0.0001)})
    eps = run_episodes(lambda m, t: calls("cheap-1"), queries, pool, mode="simple", progress=False,
                       allowed=lambda q: ["cheap-1"] if q.id.endswith("2") else ["cheap-1", "mid.2"],
                       pool_records={Q.id: {"5": 1.0}},
                       grader=lambda q, text: float(text in ("5", "6")))
    assert [e.allowed for e in eps] == [["cheap-1", "mid.2"], ["cheap-1"]]
    assert [(e.ending, e.score) for e in eps] == [("called", 1.0), ("called", 1.0)]
    assert run_episodes(script("4"), [Q], pool, progress=False, grader=exact)[0].allowed == pool.model_ids


# --- the per-turn stepper (what GRPO's token-level rollout drives) -------------------------------------

def test_stepper_plays_turn_by_turn_like_run_episode():
    from xrouter_lite.routing.episode import EpisodeStepper

    stepper = EpisodeStepper(Q, DictPool(), ["cheap-1", "mid.2", "big-3"], grader=exact)
    assert stepper.tools == play(script("4")).tools and stepper.messages[-1] == {"role": "user", "content": Q.text}
    tool_msgs = stepper.step(calls("cheap-1", "mid.2"))
    assert [m["name"] for m in tool_msgs] == ["call_cheap_1", "call_mid_2"] and not stepper.done
    assert stepper.messages[-2:] == tool_msgs  # the returned messages are the record's newest
    assert stepper.step(select("mid.2")) == [] and stepper.done
    same = play(script(calls("cheap-1", "mid.2"), select("mid.2")))
    assert stepper.episode == same
    with pytest.raises(RuntimeError, match="already ended"):
        stepper.step("4")


def test_stepper_stop_ends_invalid_and_scores_zero():
    from xrouter_lite.routing.episode import EpisodeStepper

    stepper = EpisodeStepper(Q, DictPool(), ["cheap-1", "mid.2"], grader=exact)
    stepper.step(calls("mid.2"))
    ep = stepper.stop("turn cut after 64 tokens")
    assert (ep.ending, ep.invalid_reason, ep.reward, ep.score) == ("invalid", "turn cut after 64 tokens", 0.0, 0.0)
    assert ep.usd == pytest.approx(0.001) and stepper.done  # the call it made was still paid
    assert stepper.stop("again") is ep and ep.invalid_reason == "turn cut after 64 tokens"


def test_max_tool_chars_clips_what_the_router_reads_not_what_select_returns():
    ep = play(script(calls("big-3"), select("big-3")), max_tool_chars=20)
    shown = ep.messages[3]["content"]
    assert shown == "call_big_3 answered:\n[...]" + "!" * 20  # the answer's last 20 characters
    assert len(ep.final) > 10_000  # select still returns the whole answer
    eps = run_episodes(script(calls("big-3"), select("big-3")), [Q], DictPool(), progress=False, grader=exact,
                       max_tool_chars=20)
    assert eps[0].messages[3]["content"] == shown
