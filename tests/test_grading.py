"""Graders: answer extraction and equivalence per task, robustness to bad outputs, grade_final."""

from __future__ import annotations

import json
import threading
import time

import pytest

from xrouter_lite.pool import grading as G
from xrouter_lite.pool.core import Query
from xrouter_lite.pool.grading import extract_answer, grade, grade_final


def ze(answer, reasoning: str = "worked it out") -> str:
    """A well-formed ZeroEval output: a fenced JSON block, as the prompt asks."""
    return "```json\n" + json.dumps({"reasoning": reasoning, "answer": answer}, indent=4) + "\n```"


def raw(answer_source: str) -> str:
    """A ZeroEval output with `answer_source` pasted verbatim into the JSON (models rarely escape LaTeX)."""
    return '```json\n{\n    "reasoning": "see above",\n    "answer": ' + answer_source + "\n}\n```"


# ---------------------------------------------------------------- GSM8K
@pytest.mark.parametrize("answer", ["18", "$18", "18.0", "18.00", "18 dollars", "$18.00 per day", " 18 ",
                                    "The answer is 18.", "9 * 2 = 18", "16 - 3 - 4 = 9, 9 * 2 = $18", 18, 18.0])
def test_gsm_reads_the_stated_number(answer):
    assert grade("gsm", ze(answer), "# 18") == 1


@pytest.mark.parametrize("answer,gold", [("1,234", "1234"), ("$1,234,567", "# 1,234,567"), ("14000", "# 14,000"),
                                         ("45%", "45"), ("-7", "-7"), ("0.5", "1/2"), ("\\frac{7}{2}", "3.5"),
                                         ("€77", "77"), ("2:00 pm", "2")])
def test_gsm_separators_units_fractions(answer, gold):
    assert grade("gsm", ze(answer), gold) == 1


@pytest.mark.parametrize("answer", ["17", "1.8", "180", "18 or 19", "5 hours and 18 minutes", "x + 18", "", None])
def test_gsm_wrong_or_ambiguous_answers_score_zero(answer):
    assert grade("gsm", ze(answer), "18") == 0


def test_gsm_thousands_comma_is_not_a_decimal_comma():
    assert grade("gsm", ze("1,5"), "1.5") == 0
    assert grade("gsm", ze("1,500"), "1500") == 1


# ---------------------------------------------------------------- MATH
@pytest.mark.parametrize("answer,gold", [
    ("\\frac{1}{2}", "\\frac{1}{2}"), ("0.5", "\\frac{1}{2}"), ("1/2", "\\frac{1}{2}"), ("\\dfrac{1}{2}", "\\frac12"),
    ("\\left( 1, 2 \\right)", "(1,2)"), ("90^\\circ", "90"), ("10\\text{ cm}", "10"), ("[1, 3)", "[1,3)"),
    ("\\frac{\\sqrt{2}}{2}", "\\frac{\\sqrt2}{2}"), ("x = 5", "5"), ("\\boxed{12}", "12"), ("3\\sqrt{2}", "\\sqrt{18}"),
    ("-221", "-221_3"), ("-221_{3}", "-221_3"), ("100100_b", "100100"), ("\\$18", "18")])
def test_math_equivalent_forms(answer, gold):
    assert grade("math-l5", ze(answer), gold) == 1


@pytest.mark.parametrize("answer,gold", [("\\frac{1}{3}", "\\frac{1}{2}"), ("(1,3)", "[1,3]"), ("(1, 2)", "(2, 1)"),
                                         ("-25", "-221_3"), ("-221_4", "-221_3"),
                                         ("2, 5", "2"), ("12 or 13", "12"), ("p - 2", "2")])
def test_math_different_answers_score_zero(answer, gold):
    # The last three are right under ZeroEval's first-number rule, which reads "2, 5" as 2.
    assert grade("math-l5", ze(answer), gold) == 0


@pytest.mark.parametrize("latex", ["\\frac{1}{2}", "2\\times 3", "x \\neq 1", "\\theta", "\\left(1, 2\\right)",
                                   "5\\text{ cm}", "\\beta", "a \\, b", "\\{1, 2\\}"])
def test_unescaped_latex_inside_json_is_read_as_written(latex):
    # json.loads alone reads "\f" as a form feed, "\t" a tab, "\n" a newline, "\r" a return, "\b" a backspace.
    assert extract_answer("math-l5", raw('"' + latex + '"')) == latex


def test_unescaped_and_escaped_latex_grade_the_same():
    assert grade("math-l5", raw('"\\frac{3}{4}"'), "0.75") == 1  # as models write it
    assert grade("math-l5", raw('"\\\\frac{3}{4}"'), "0.75") == 1  # valid JSON


@pytest.mark.parametrize("answer,gold", [("2x", "2"), ("3i", "3"), ("4n", "4"), ("x_1", "x"), ("x_{1}", "x"),
                                         ("5 m", "5"), ("2\\text{x}", "2")])
def test_math_variables_are_not_units_or_bases(answer, gold):
    # Unit words are stripped only when they are real units; a variable, an imaginary unit or a lone letter is not
    # one. A subscript is a base only on a numeral (1011_2), never on a variable (x_1).
    assert grade("math-l5", ze(answer), gold) == 0
    q = Query(id="zeroeval/math-l5/1", source="zeroeval", task="math-l5", text="?", gold=gold)
    assert grade_final(q, ze(answer)) == 0.0  # router-written answers go through the same code


@pytest.mark.parametrize("answer", ["2x", "3i", "4n"])
def test_gsm_a_number_times_a_variable_is_not_that_number(answer):
    assert grade("gsm", ze(answer), answer[0]) == 0


@pytest.mark.parametrize("answer,gold", [("10 square units", "10"), ("10\\text{ sq units}", "10"), ("5 km/h", "5"),
                                         ("6\\text{ cm}^2", "6"), ("12 inches", "12"), ("45 minutes", "45"),
                                         ("1011_2", "1011"), ("A3_{11}", "A3")])
def test_math_real_units_and_bases_still_read(answer, gold):
    assert grade("math-l5", ze(answer), gold) == 1


def test_math_falls_back_to_the_last_boxed_answer():
    text = "No JSON here. First try \\boxed{3}, then fixed: the answer is $\\boxed{\\frac{5}{2}}$."
    assert extract_answer("math-l5", text) == "\\frac{5}{2}"
    assert grade("math-l5", text, "2.5") == 1


# ---------------------------------------------------------------- reading the JSON answer
def test_several_json_blocks_take_the_last_answer():
    text = ze("41", "first attempt") + "\nWait, I made an error.\n" + ze("42", "second attempt")
    assert extract_answer("gsm", text) == "42"


def test_parsed_json_beats_answer_like_text_in_the_reasoning():
    text = '{"answer": "42", "reasoning": "my first answer: 41 was wrong"}'
    assert extract_answer("gsm", text) == "42"


def test_template_echo_before_the_answer_is_ignored():
    text = 'Format:\n```json\n{"reasoning": "___", "answer": "___"}\n```\nMine:\n' + ze("7")
    assert grade("gsm", text, "7") == 1


@pytest.mark.parametrize("text", [
    '{"reasoning": "adds up", "answer": "42",}',  # trailing comma
    '```json\n{"reasoning": "he said "hi" then", "answer": "42"}\n```',  # unescaped quotes break the JSON
    '{"reasoning": "it is\nmulti-line", "answer": 42}',  # raw newline inside a string
    "{'reasoning': 'python dict', 'answer': '42'}",  # single quotes
    '{"answer": "42", "reasoning": "truncated mid-senten',  # cut off after the answer
    'Reasoning first, no JSON at all.\nAnswer: 42',
    '"answer": 42',
])
def test_broken_json_still_yields_the_answer(text):
    assert grade("gsm", text, "42") == 1


def test_truncated_before_the_answer_is_no_answer():
    assert extract_answer("gsm", '```json\n{"reasoning": "16 - 3 = 13, then 13') is None
    assert grade("gsm", '```json\n{"reasoning": "16 - 3 = 13, then 13', "13") == 0


# ---------------------------------------------------------------- CRUXEval-O
@pytest.mark.parametrize("answer,gold", [
    ("[1,2,3]", "[1, 2, 3]"), ("{'b': 2, 'a': 1}", "{'a': 1, 'b': 2}"), ('{"a": 1}', "{'a': 1}"),
    ("(1, 'x')", "(1, 'x')"), ("{3, 1, 2}", "{1, 2, 3}"), ("'it\\'s'", '"it\'s"'), ('"say \\"hi\\""', "'say \"hi\"'"),
    ("abc", "'abc'"), ("  ab ", "'  ab '"), ("'a\\nb'", "'a\\nb'"), ("a\\nb", "'a\\nb'"), ("123", "'123'"),
    ("f('ab') == 'ba'", "'ba'"), ("assert f([1]) == [1, 1]", "[1, 1]"), ("8.50", "8.5"), ("True", "True"),
    ("None", "None"), ("[(1, 'a'), {'k': [None]}]", "[(1, 'a'), {'k': [None]}]"), ("'148: b'148''", "\"148: b'148'\"")])
def test_crux_same_python_value(answer, gold):
    assert grade("crux", ze(answer), gold) == 1


@pytest.mark.parametrize("answer,gold", [
    ("[1, 2]", "(1, 2)"), ("'1'", "1"), ("[1, 2]", "[2, 1]"), ("'abc '", "'abc'"), ("ABC", "'abc'"),
    ("{'a': 1}", "{'a': 1, 'b': 2}"), ("'iq!!!!''", "'iq!!!!'")])
def test_crux_different_values_score_zero(answer, gold):
    assert grade("crux", ze(answer), gold) == 0


def test_crux_json_values_are_values_not_source():
    assert grade("crux", raw("[1, 2]"), "[1, 2]") == 1
    assert grade("crux", raw("3"), "3") == 1
    assert grade("crux", raw("3"), "'3'") == 0  # a JSON number is an int, not the string '3'
    assert grade("crux", raw("true"), "True") == 1


def test_crux_never_evaluates_code(tmp_path):
    marker = tmp_path / "pwned"
    attack = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    assert grade("crux", ze(attack), "None") == 0
    assert grade("crux", ze(f"f(x) == {attack}"), "None") == 0
    assert not marker.exists()


def test_crux_deeply_nested_literal_is_wrong_not_a_crash():
    assert grade("crux", ze("[" * 100_000 + "]" * 100_000), "[]") == 0
    assert grade("crux", ze("1"), "[" * 5000) == 0  # an unreadable gold never matches


# ---------------------------------------------------------------- MMLU-Pro
@pytest.mark.parametrize("text,letter", [
    ("Step by step... The answer is (C).", "C"), ("so the answer is C", "C"), ("The Answer is: **(D)**", "D"),
    ("Reasoning.\nAnswer: E", "E"), ("Final Answer: F. 30 mi/hr", "F"), ("The best choice is **G**.", "G"),
    ("The answer is (B).\n\nQuestion: next one...\nThe answer is (H).", "B"),  # runaway 5-shot continuation
    ("None fit exactly, but the closest option is (E).", "E"), ("This corresponds to option J.", "J"),
    ("The statement that is false is G. -5 > -3.", "G"), ("The most likely diagnosis is:\n\nD. Aortic dissection", "D"),
    ("A. Group dynamics.", "A"), ("After all that:\n(B)", "B"), ("Working...\n\nI\n", "I"),
    ("The best answer is Babylonia.\n\nThe answer is (A)", "A")])  # upstream read "answer is B(abylonia)"
def test_mmlu_letter_patterns(text, letter):
    assert extract_answer("mmlu-pro", text) == letter
    assert grade("mmlu-pro", text, letter) == 1


@pytest.mark.parametrize("text", [
    "Therefore, I cannot answer the last question.", "the answer is a combination of both",
    "H(p) goes to 0 as p goes to 0, so the capacity", "The answer is (None of the provided options).",
    "The answer is A1's share: $3,800.", "Plaques on the lawn of E. coli strain B", "1 mole of C. Then 12 g.",
    "Check the options:\nA. 3.70\nB. 3.33", "", "No letter here at all."])
def test_mmlu_no_answer_letter_is_wrong(text):
    assert extract_answer("mmlu-pro", text) is None
    for gold in "ABCDEFGHIJ":
        assert grade("mmlu-pro", text, gold) == 0


# ---------------------------------------------------------------- never raises, stays fast
GARBAGE = [None, "", "   ", b"\xff\xfe bytes", 12345, 3.5, ["a list"], {"answer": "1"}, "\x00\x01\x02",
           "{" * 1000, "}" * 1000, '{"answer": ' * 500, "```json\n{", "\\" * 1001, "\\boxed{" * 200,
           "answer is (" * 300, "🙂" * 1000, '{"answer": "' + "\\frac{" * 120 + '"}']


@pytest.mark.parametrize("task", G.TASKS)
@pytest.mark.parametrize("response", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_scores_zero_and_never_raises(task, response):
    # Garbage is a wrong answer, not a grader failure: even on_error="raise" raises nothing.
    assert grade(task, response, "1", on_error="raise") in (0, 1)
    extract_answer(task, response)  # no exception


@pytest.mark.parametrize("task", G.TASKS)
def test_none_or_empty_gold_scores_zero(task):
    assert grade(task, ze("1"), None) == 0
    assert grade(task, ze("1"), "") == 0


@pytest.mark.parametrize("task", G.TASKS)
@pytest.mark.parametrize("filler", ["x", "{", "\\frac{", "answer is 7 = ", '"answer": {'], ids=range(5))
def test_ten_megabyte_output_returns_fast(task, filler):
    big = filler * (10_000_000 // len(filler)) + ze("7") + "The answer is (C)."
    start = time.perf_counter()
    grade(task, big, "7")
    assert time.perf_counter() - start < 3.0


def test_pathological_latex_answer_returns_fast():
    answer = "\\sqrt{" * 40 + "2" + "}" * 40 + "+" + "\\frac{1}{" * 20 + "3" + "}" * 20
    start = time.perf_counter()
    assert grade("math-l5", ze(answer), "7") == 0
    assert time.perf_counter() - start < 5.0


def test_grading_works_off_the_main_thread():
    # math-verify's timeout uses SIGALRM, which only the main thread may set; graders must cope.
    results = []
    thread = threading.Thread(target=lambda: results.append(grade("math-l5", ze("\\sqrt{18}"), "3\\sqrt{2}")))
    thread.start()
    thread.join(60)
    assert results == [1]


@pytest.fixture()
def no_run_dir(monkeypatch):
    """A clean grader-error counter, outside any notebook run."""
    from xrouter_lite.profiles import RUNS_ENV

    monkeypatch.delenv(RUNS_ENV, raising=False)
    G.reset_grader_errors()
    yield
    G.reset_grader_errors()


def test_a_runaway_expression_times_out_in_a_worker_thread_and_is_counted(no_run_dir):
    # 9^{9^{8}} is a 41-million-digit integer: math-verify alone ran > 60 s in a thread (no SIGALRM there).
    assert grade("math-l5", ze("\\sqrt{8}"), "2\\sqrt{2}") == 1  # starts the math-verify worker: not timed
    answer = ze("9^{9^{8}}")
    results = []

    def run():
        start = time.perf_counter()
        results.append((grade("math-l5", answer, "3"), time.perf_counter() - start))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    assert not thread.is_alive()
    score, wall = results[0]
    assert score == 0 and wall < min(10.0, G.MATH_VERIFY_TIMEOUT_S + 3)
    assert G.grader_errors() == {"math-l5/grade": 1}
    with pytest.raises(G.GraderError, match="timeout") as err:  # cached: the same answer costs no second deadline
        grade("math-l5", answer, "3", on_error="raise")
    assert err.value.kind == "timeout"
    assert grade("math-l5", ze("\\sqrt{18}"), "3\\sqrt{2}") == 1  # a fresh worker answers the next call


def test_grader_exceptions_are_counted_not_silent(no_run_dir, monkeypatch):
    def broken(response, gold):
        raise RuntimeError("bug in a grader")

    monkeypatch.setitem(G._GRADERS, "crux", broken)
    assert grade("crux", ze("1"), "1") == 0
    with pytest.raises(G.GraderError, match="RuntimeError: bug in a grader"):
        grade("crux", ze("1"), "1", on_error="raise")
    q = Query(id="zeroeval/crux/7", source="zeroeval", task="crux", text="?", gold="1")
    assert grade_final(q, ze("1")) == 0.0  # never raises during training or evaluation
    assert G.grader_errors() == {"crux/final answer": 1, "crux/grade": 1}
    assert G.grader_error_examples()["crux/final answer"] == ["zeroeval/crux/7"]


def test_grader_errors_inside_a_run_are_written_for_its_summary(no_run_dir, monkeypatch, tmp_path):
    from xrouter_lite.profiles import RUNS_ENV

    monkeypatch.setenv(RUNS_ENV, str(tmp_path))
    monkeypatch.setitem(G._GRADERS, "gsm", lambda response, gold: 1 / 0)
    q = Query(id="zeroeval/gsm/3", source="zeroeval", task="gsm", text="?", gold="3")
    assert grade_final(q, ze("3")) == 0.0
    lines = (tmp_path / "artifacts" / G.ERROR_LOG).read_text().splitlines()
    assert [json.loads(x)["example"] for x in lines] == ["zeroeval/gsm/3"]
    assert json.loads(lines[0])["kind"] == "exception" and json.loads(lines[0])["who"] == "final answer"


def test_unknown_task_is_a_usage_error():
    with pytest.raises(ValueError, match="unknown task"):
        grade("gsm8k", "18", "18")
    with pytest.raises(ValueError, match="unknown task"):
        extract_answer("mmlu", "The answer is (A).")


# ---------------------------------------------------------------- grade_final
def test_grade_final_uses_the_gold_answer_where_there_is_one():
    q = Query(id="zeroeval/gsm/1", source="zeroeval", task="gsm", text="Janet's eggs?", gold="# 18")
    assert grade_final(q, ze("$18")) == 1.0
    assert grade_final(q, ze("17")) == 0.0
    q = Query(id="mmlu-pro/mmlu-pro/7", source="mmlu-pro", task="mmlu-pro", text="?", gold="C")
    assert grade_final(q, "The answer is (C).") == 1.0


def test_grade_final_routerbench_scores_verbatim_recorded_responses_only():
    q = Query(id="routerbench/mbpp/3", source="routerbench", task="mbpp", text="Write a function...")
    recorded = {"def f(x):\n    return x + 1\n": 1.0, "def f(x): return x": 0.0, "A": 0.6}
    assert grade_final(q, "def f(x):\n    return x + 1", recorded) == 1.0  # surrounding whitespace ignored
    assert grade_final(q, "  A \n", recorded) == 0.6  # partial scores pass through
    assert grade_final(q, "def f(x): return x", recorded) == 0.0
    assert grade_final(q, "def f(x):\n    return x+1\n", recorded) == 0.0  # a paraphrase is a direct answer
    assert grade_final(q, "my own answer", recorded) == 0.0
    assert grade_final(q, "A", None) == 0.0  # no records: nothing to match


def test_grade_final_routerbench_blank_or_nan_scores_count_as_zero():
    q = Query(id="routerbench/arc_challenge/1", source="routerbench", task="arc_challenge", text="?")
    assert grade_final(q, "B", {"B": float("nan")}) == 0.0
    assert grade_final(q, "B", {"B": None}) == 0.0
    assert grade_final(q, None, {"B": 1.0}) == 0.0  # a missing final answer scores 0, never raises
