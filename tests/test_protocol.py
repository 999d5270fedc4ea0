"""Prompts, tool schemas, and the parser on well-formed, partial and adversarial router output."""

from __future__ import annotations

import json
import time

import pytest

from xrouter_lite.pool.core import Answer, ModelSpec
from xrouter_lite.routing.protocol import (MAX_TURN_CHARS, Action, format_tool_result, parse_turn, render_calls,
                                           router_messages, system_prompt, tool_schemas)

MODELS = [
    ModelSpec("gpt-4o-mini", 0.15, 0.60, tier="budget", context=128000, description="Fast general model."),
    ModelSpec("deepseek-r1", 3.0, 7.0, tier="premium", context=64000, description="Strong reasoning."),
    ModelSpec("qwen2.5-coder-7b", 0.05, 0.2, tier="specialized"),
]
IDS = [m.id for m in MODELS]


def block(name, arguments=None, **extra) -> str:
    obj = {"name": name, **extra}
    if arguments is not None:
        obj["arguments"] = arguments
    return f"<tool_call>{json.dumps(obj, ensure_ascii=False)}</tool_call>"


def call(tool="call_gpt_4o_mini", prompt="Answer briefly.", **args) -> str:
    return block(tool, {"optimized_system_prompt": prompt, **args})


# --- prompts and schemas -------------------------------------------------------------------------------

def test_agent_prompt_states_turns_and_finishing_moves():
    p = system_prompt("agent", max_turns=4)
    assert "4 turns" in p and "Calls in turn 4 get no answers" in p
    assert "select_response" in p and "plain text" in p
    assert len(p) < 1000  # a tiny router LM is trained on it: keep it short


def test_simple_prompt_is_one_decision():
    p = system_prompt("simple")
    assert "exactly one model" in p and "select_response" not in p


def test_prompt_rejects_bad_mode_and_turns():
    with pytest.raises(ValueError, match="mode"):
        system_prompt("chat")
    with pytest.raises(ValueError, match="max_turns"):
        system_prompt("agent", 0)


def test_router_messages():
    msgs = router_messages("2+2?", "simple")
    assert [m["role"] for m in msgs] == ["system", "user"] and msgs[1]["content"] == "2+2?"


def test_tool_schemas_one_per_model_plus_select_in_agent_mode():
    tools = tool_schemas(MODELS)
    names = [t["function"]["name"] for t in tools]
    assert names == ["call_gpt_4o_mini", "call_deepseek_r1", "call_qwen2_5_coder_7b", "select_response"]
    assert [t["function"]["name"] for t in tool_schemas(MODELS, "simple")] == names[:-1]
    select = tools[-1]["function"]["parameters"]
    assert select["required"] == ["model_call_name"]
    assert select["properties"]["model_call_name"]["enum"] == names[:-1]
    json.dumps(tools)  # serialisable as sent to an API or a chat template


def test_call_schema_arguments_and_description():
    fn = tool_schemas(MODELS)[0]["function"]
    params = fn["parameters"]
    assert params["required"] == ["optimized_system_prompt"]
    assert params["properties"]["optimized_system_prompt"]["type"] == "string"
    temperature = params["properties"]["temperature"]
    assert (temperature["type"], temperature["default"]) == ("number", 1.0)
    d = fn["description"]
    for fact in ("budget tier", "Fast general model.", "$0.15 in", "$0.60 out", "per 1M tokens", "128K context"):
        assert fact in d
    assert "accura" not in d.lower()


def test_sub_cent_prices_keep_their_digits():
    d = tool_schemas([ModelSpec("tiny", 0.075, 0.3)])[0]["function"]["description"]
    assert "$0.075 in" in d and "$0.30 out" in d


def test_colliding_tool_names_are_refused():
    with pytest.raises(ValueError, match="share the tool name"):
        tool_schemas([ModelSpec("gpt-4o", 1, 1), ModelSpec("gpt_4o", 1, 1)])


# --- well-formed output ------------------------------------------------------------------------------

def test_plain_text_is_an_answer_with_whitespace_stripped():
    t = parse_turn("\n  The answer is 4.  \n", IDS)
    assert t.kind == "answer" and t.actions == (Action("answer", text="The answer is 4."),) and not t.error


def test_one_call():
    t = parse_turn(call(temperature=0.3), IDS)
    assert t.kind == "call" and not t.error
    (a,) = t.actions
    assert (a.kind, a.model, a.args) == ("call", "gpt-4o-mini",
                                         {"optimized_system_prompt": "Answer briefly.", "temperature": 0.3})
    assert a.temperature == 0.3 and a.name == "call_gpt_4o_mini"


def test_temperature_defaults_to_one_and_is_not_filled_into_args():
    (a,) = parse_turn(call(), IDS).actions
    assert a.temperature == 1.0 and "temperature" not in a.args


def test_several_calls_in_one_turn_keep_their_order():
    t = parse_turn(call("call_deepseek_r1") + "\n" + call("call_gpt_4o_mini") + call("call_deepseek_r1", "again"), IDS)
    assert t.kind == "call" and [a.model for a in t.calls] == ["deepseek-r1", "gpt-4o-mini", "deepseek-r1"]


def test_qwen_style_newlines_inside_tags():
    text = '<tool_call>\n{"name": "call_deepseek_r1", "arguments": {"optimized_system_prompt": "Think."}}\n</tool_call>'
    assert parse_turn(text, IDS).calls[0].model == "deepseek-r1"


def test_select_by_tool_name_or_model_id():
    for target in ("call_deepseek_r1", "deepseek-r1"):
        t = parse_turn(block("select_response", {"model_call_name": target}), IDS)
        assert t.kind == "select" and t.actions[0].model == "deepseek-r1"


def test_arguments_as_a_json_string_are_accepted():
    text = block("call_gpt_4o_mini", json.dumps({"optimized_system_prompt": "x"}))
    assert parse_turn(text, IDS).calls[0].args == {"optimized_system_prompt": "x"}


def test_integer_temperature_is_a_number():
    assert parse_turn(call(temperature=1), IDS).kind == "call"


def test_prose_mixed_with_calls_counts_as_calls():
    t = parse_turn("Hard question; asking a strong model.\n" + call("call_deepseek_r1") + "\nThanks!", IDS)
    assert t.kind == "call" and t.prose == "Hard question; asking a strong model. Thanks!"


def test_models_may_be_specs_or_ids():
    assert parse_turn(call(), MODELS).actions == parse_turn(call(), IDS).actions


# --- adversarial -------------------------------------------------------------------------------------

def test_braces_and_tags_inside_json_strings():
    prompt = 'Return {"a": {"b": 1}} and never write </tool_call> or <tool_call> yourself. }}}'
    t = parse_turn(call(prompt=prompt) + call("call_deepseek_r1"), IDS)
    assert t.kind == "call" and len(t.calls) == 2 and t.calls[0].args["optimized_system_prompt"] == prompt


def test_unicode_survives():
    prompt = "Réponds en français, 简洁地 🙂 — \u2028 ok"
    t = parse_turn(call(prompt=prompt), IDS)
    assert t.calls[0].args["optimized_system_prompt"] == prompt
    assert parse_turn("日本の首都は東京です。", IDS).actions[0].text == "日本の首都は東京です。"


@pytest.mark.parametrize("text, reason", [
    ("", "empty output"),
    ("  \n\t ", "empty output"),
    ('<tool_call>{"name": "call_gpt_4o_mini", "arguments": {"optimized_system_prompt": "x"}', "unclosed"),
    ('<tool_call>{"name": "call_gpt_4o_mini", "argum', "unclosed"),
    ("<tool_call>{'name': 'call_gpt_4o_mini'}</tool_call>", "malformed JSON"),
    ('<tool_call>{"name": "call_gpt_4o_mini", "arguments": {"optimized_system_prompt": "x",}}</tool_call>',
     "malformed JSON"),
    ('<tool_call>{"name": "call_gpt_4o_mini", "arguments": {"optimized_system_prompt": "x", "temperature": NaN}}'
     '</tool_call>', "malformed JSON"),
    ("<tool_call></tool_call>", "malformed JSON"),
    ('<tool_call>{"name": "call_gpt_4o_mini", "arguments": {"optimized_system_prompt": "x"}} oops</tool_call>',
     "text after the JSON"),
    ('<tool_call>["call_gpt_4o_mini"]</tool_call>', "must be a JSON object"),
    ('<tool_call>{"arguments": {"optimized_system_prompt": "x"}}</tool_call>', "missing tool name"),
    ('<tool_call>{"name": 7, "arguments": {}}</tool_call>', "tool name must be a string"),
    ('<tool_call>{"name": "call_gpt_4o_mini", "arguments": {"optimized_system_prompt": "x"}, "id": 1}</tool_call>',
     "unexpected key 'id'"),
    (block("call_gpt_4o"), "unknown tool 'call_gpt_4o'"),
    (block("call_gpt_4o_mini"), "missing required argument 'optimized_system_prompt'"),
    (block("call_gpt_4o_mini", {"optimized_system_prompt": 3}), "must be a string"),
    (block("call_gpt_4o_mini", ["x"]), "arguments must be a JSON object"),
    (block("call_gpt_4o_mini", "{not json"), "arguments string is not valid JSON"),
    (call(temperature="hot"), "temperature must be a number"),
    (call(temperature=True), "temperature must be a number"),
    (call(temperature=5), "outside [0, 2]"),
    (call(top_p=0.9), "unexpected argument 'top_p'"),
    (block("select_response", {}), "needs model_call_name"),
    (block("select_response", {"model_call_name": "call_gpt_4o"}), "unknown model"),
    (block("select_response", {"model_call_name": "call_gpt_4o_mini", "why": "best"}), "unexpected argument"),
    ("The answer is 4.</tool_call>", "</tool_call> without <tool_call>"),
    (call() + "</tool_call>", "</tool_call> without <tool_call>"),
    ("<tool_call>" + "[" * 20_000 + "</tool_call>", "malformed JSON"),
])
def test_invalid_outputs_have_reasons(text, reason):
    t = parse_turn(text, IDS)
    assert t.kind == "invalid" and reason in t.error, t.error


def test_select_mixed_with_calls_is_invalid():
    t = parse_turn(call() + block("select_response", {"model_call_name": "call_gpt_4o_mini"}), IDS)
    assert t.kind == "invalid" and "mixed with other calls" in t.error


def test_two_selects_are_invalid():
    sel = block("select_response", {"model_call_name": "call_gpt_4o_mini"})
    assert "mixed" in parse_turn(sel + sel, IDS).error


def test_one_bad_block_spoils_the_turn_and_is_named():
    t = parse_turn(call() + block("call_nope", {"optimized_system_prompt": "x"}), IDS)
    assert t.kind == "invalid" and t.error == "tool call 2: unknown tool 'call_nope'"
    assert [a.kind for a in t.actions] == ["call", "invalid"]


def test_resyncs_after_a_malformed_block():
    t = parse_turn("<tool_call>{bad}</tool_call>" + call(), IDS)
    assert [a.kind for a in t.actions] == ["invalid", "call"]


def test_simple_mode_has_no_select_and_one_call_only():
    sel = block("select_response", {"model_call_name": "call_gpt_4o_mini"})
    assert "simple mode" in parse_turn(sel, IDS, mode="simple").error
    assert "exactly one call" in parse_turn(call() + call(), IDS, mode="simple").error
    assert parse_turn(call(), IDS, mode="simple").kind == "call"


def test_a_model_outside_the_sample_is_an_unknown_tool():
    assert "unknown tool" in parse_turn(call("call_deepseek_r1"), ["gpt-4o-mini"]).error


def test_non_text_output_is_invalid():
    assert "not text" in parse_turn(None, IDS).error


def test_ten_megabytes_is_rejected_fast_without_scanning():
    huge = "<tool_call>" + "x" * 10_000_000
    start = time.perf_counter()
    for _ in range(100):
        t = parse_turn(huge, IDS)
    assert (time.perf_counter() - start) / 100 < 1e-3  # a length check, not a scan
    assert t.kind == "invalid" and "too long" in t.error and len(t.actions[0].text) <= 200


def test_limit_is_configurable():
    assert parse_turn("x" * (MAX_TURN_CHARS + 1), IDS).kind == "invalid"
    assert parse_turn("x" * 50, IDS, max_chars=10).kind == "invalid"
    assert parse_turn("x" * 50, IDS, max_chars=50).kind == "answer"


# --- render is the inverse of parse ------------------------------------------------------------------

@pytest.mark.parametrize("actions", [
    (Action("call", model="gpt-4o-mini", args={"optimized_system_prompt": "Be brief."}),),
    (Action("call", model="deepseek-r1", args={"optimized_system_prompt": 'Use {"json"} </tool_call> 🙂',
                                               "temperature": 0.2}),
     Action("call", model="qwen2.5-coder-7b", args={"optimized_system_prompt": "", "temperature": 0})),
    (Action("select", model="deepseek-r1", args={"model_call_name": "call_deepseek_r1"}),),
])
def test_parse_of_render_is_identity(actions):
    text = render_calls(actions)
    assert parse_turn(text, IDS).actions == actions
    assert text.startswith("<tool_call>\n{") and text.endswith("}\n</tool_call>")


def test_render_refuses_answers_and_nothing():
    with pytest.raises(ValueError):
        render_calls([Action("answer", text="4")])
    with pytest.raises(ValueError):
        render_calls([])


# --- tool results ------------------------------------------------------------------------------------

def test_tool_result_names_the_tool_and_clips_long_answers():
    short = format_tool_result("gpt-4o-mini", Answer("42", 10, 1, 0.0))
    assert short == "call_gpt_4o_mini answered:\n42"
    long = format_tool_result("gpt-4o-mini", Answer("x" * 90 + "y" * 10, 10, 1, 0.0), max_chars=10)
    assert long == "call_gpt_4o_mini answered:\n[...]" + "y" * 10  # the end, where final answers are


# ---------------------------------------------------------------- the fixed texts, as data (one owner: protocol)
def test_call_fragments_are_exactly_what_render_calls_writes():
    """The fragments the tiny tokenizer, guided decoding and GRPO key on are the text of a rendered call, byte for byte."""
    from xrouter_lite.routing.protocol import CALL_ARGS, CALL_CLOSE, CALL_OPENER, SELECT, SELECT_ARGS

    call = render_calls([Action("call", model="gpt-4o", args={"optimized_system_prompt": 'Say "hi".'})])
    assert call == CALL_OPENER + "call_gpt_4o" + CALL_ARGS + 'Say \\"hi\\".' + CALL_CLOSE
    select = render_calls([Action("select", model="gpt-4o", args={"model_call_name": "call_gpt_4o"})])
    assert select == CALL_OPENER + SELECT + SELECT_ARGS + "call_gpt_4o" + CALL_CLOSE
    both = render_calls([Action("call", model="gpt-4o", args={"optimized_system_prompt": "P"}),
                         Action("call", model="gpt-4o-mini", args={"optimized_system_prompt": "Q"})])
    assert both == "\n".join([CALL_OPENER + "call_gpt_4o" + CALL_ARGS + "P" + CALL_CLOSE,
                              CALL_OPENER + "call_gpt_4o_mini" + CALL_ARGS + "Q" + CALL_CLOSE])


def test_every_tool_schema_is_its_opening_name_description_and_the_shared_tail():
    from xrouter_lite.routing.protocol import SCHEMA_DESCRIPTION, SCHEMA_OPENING, describe, fixed_texts, schema_tail

    for mode in ("agent", "simple"):
        for spec, schema in zip(MODELS, tool_schemas(MODELS, mode)):
            line = json.dumps(schema, ensure_ascii=False)
            assert line == SCHEMA_OPENING + spec.tool + SCHEMA_DESCRIPTION + describe(spec) + schema_tail(mode)
    texts = fixed_texts(3, lambdas=(10.0,))
    assert texts["prompts"] == [system_prompt("agent", 3), system_prompt("simple")]
    assert "\nCost weight: 10 reward points per USD." in texts["cost"] and "budget tier; " in texts["schema"]
    assert all(t for group in texts.values() for t in group)  # no empty text would become a token
