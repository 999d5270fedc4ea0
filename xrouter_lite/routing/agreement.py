"""Do two model answers agree? The final-answer check behind agent mode's "ask two, escalate if they differ".

Calling two cheap models and paying for a strong one only when their final answers differ is the cheapest way to
spend money where it matters (on ZeroEval's test split it beats every single model and both embedding routers).
Reading two long answers and comparing their final results is a parsing job, not a routing decision, and a
2-layer CPU router cannot do it from raw text (measured: after SFT on traces that escalate exactly when answers
differ, it escalated on 25% of disagreements and on 10% of agreements). So the episode runtime does it, like a
tool-side service: when a model's answer arrives and an earlier call of the same episode gave the same final
answer, its tool message says so (`note`). The router still decides whether to trust that, select, or escalate;
a Hub router reads the same line. Only tasks with a final-answer extractor get notes (ZeroEval, MMLU-Pro);
elsewhere the line never appears, and serving a live pool without a known task never shows it.

    >>> same, other = 'reasoning... "answer": "540"\\n}', 'more reasoning... "answer": "541"\\n}'
    >>> note("gsm", same, {"call_a": same})
    'Same final answer as call_a.'
    >>> note("gsm", other, {"call_a": same})
    'No earlier call gave this final answer.'
    >>> note("gsm", other, {})
    ''
"""

from __future__ import annotations

from collections.abc import Mapping

from xrouter_lite.routing.protocol import cost_line

SAME = "Same final answer as {tool}."
DIFFERENT = "No earlier call gave this final answer."


def normalise_answer(answer) -> str | None:
    """The final answer as the check compares it: whitespace and surrounding quotes dropped; None if empty."""
    if answer is None:
        return None
    text = "".join(str(answer).split()).strip("'\"")
    return text or None


def final_answer(task: str, text: str) -> str | None:
    """The normalised final answer of a model's `text` for `task`; None where none can be read (or no extractor)."""
    from xrouter_lite.pool.grading import extract_answer

    try:
        return normalise_answer(extract_answer(task, text))
    except ValueError:  # a task without an answer extractor (RouterBench, chat): no agreement is ever read
        return None


def agree(a: str | None, b: str | None) -> bool:
    """Both final answers present and equal after normalisation."""
    return a is not None and a == b


def note(task: str, text: str, earlier: Mapping[str, str], lam: float | None = None) -> str:
    """The line a tool message carries about its answer: same as an earlier call's, different, or '' (no check).

    `earlier` maps the tool names called before in this episode to their answers' texts, in call order. `lam` (a
    λ-conditioned router's cost weight) is restated after "different": that is where the router decides whether,
    and whom, to pay to settle the disagreement, ~100 tokens after the query's cost line.
    """
    if not earlier:
        return ""
    mine = final_answer(task, text)
    if mine is None:
        return ""
    for tool, other in earlier.items():
        if agree(mine, final_answer(task, other)):
            return SAME.format(tool=tool)
    return DIFFERENT if lam is None else DIFFERENT + cost_line(lam)
