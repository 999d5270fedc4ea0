"""The runtime's final-answer check: what an agent-mode tool message says about agreement."""

from __future__ import annotations

from xrouter_lite.pool.core import Answer
from xrouter_lite.routing.agreement import DIFFERENT, agree, final_answer, note
from xrouter_lite.routing.protocol import cost_line, format_tool_result

ANSWER = '```json\n{"reasoning": "%s", "answer": "%s"}\n```'


def test_final_answers_are_compared_after_normalising():
    assert final_answer("gsm", ANSWER % ("long reasoning " * 40, "1,200")) == final_answer("gsm", ANSWER % ("x", "1,200"))
    assert agree(final_answer("crux", ANSWER % ("r", "'abc'")), final_answer("crux", ANSWER % ("s", "abc")))
    assert not agree(None, None)  # two unreadable answers do not "agree"
    assert final_answer("arc_challenge", "B") is None  # no extractor: never compared


def test_note_names_the_earlier_call_with_the_same_answer():
    a, b, c = ANSWER % ("r", "12"), ANSWER % ("s", "13"), ANSWER % ("t", "13")
    assert note("gsm", a, {}) == ""  # the first answer of an episode has nothing to agree with
    assert note("gsm", b, {"call_x": a}) == DIFFERENT
    assert note("gsm", c, {"call_x": a, "call_y": b}) == "Same final answer as call_y."
    assert note("gsm", "I don't know", {"call_x": a}) == ""  # nothing readable: no claim either way


def test_a_disagreement_restates_the_cost_weight_where_the_router_decides_whom_to_pay():
    """A λ-conditioned router reads its λ again right where it chooses whether and whom to escalate to."""
    a, b = ANSWER % ("r", "12"), ANSWER % ("s", "13")
    assert note("gsm", b, {"call_x": a}, lam=100.0) == DIFFERENT + cost_line(100.0)
    assert note("gsm", b, {"call_x": b}, lam=100.0) == "Same final answer as call_x."  # nothing to decide: no restating
    assert note("gsm", b, {}, lam=100.0) == ""


def test_tool_results_keep_the_end_of_the_answer_and_the_note():
    text = ANSWER % ("reasoning " * 50, "42")
    shown = format_tool_result("m", Answer(text, 10, 10, 0.0), 40, note="Same final answer as call_x.")
    body = shown.split("\n", 1)[1]
    assert shown.startswith("call_m answered:\n[...]") and '"answer": "42"' in body  # the tail, not the head
    assert "```" not in body and body.endswith("\nSame final answer as call_x.")
    assert format_tool_result("m", Answer("short", 1, 1, 0.0), 40) == "call_m answered:\nshort"
