"""Graders: score a model's answer against a gold answer, 0 or 1, never raising on bad outputs.

Tasks: `gsm` (GSM8K), `math-l5` (MATH level 5), `crux` (CRUXEval-O) answer in a fenced
```json {"reasoning": ..., "answer": ...}``` block (the ZeroEval prompt); `mmlu-pro` answers with a
letter A-J in free text. Outputs can be empty, None, truncated, broken JSON or megabytes of
runaway text: graders only search a bounded part of the text and math-verify runs on the
extracted answer alone, under a timeout.

    >>> from xrouter_lite.pool.grading import grade, extract_answer
    >>> grade("gsm", '```json\\n{"reasoning": "3 + 4", "answer": "$7"}\\n```', "#### 7")
    1
    >>> grade("math-l5", '{"reasoning": "half", "answer": "\\\\frac{1}{2}"}', "0.5")
    1
    >>> grade("crux", '{"reasoning": "...", "answer": "[1,2]"}', "[1, 2]")
    1
    >>> extract_answer("mmlu-pro", "Seven is prime. The answer is (C).")
    'C'
    >>> grade("mmlu-pro", "I am not sure.", "C")
    0

A wrong or unreadable answer scores 0. A failure of the grader itself (an exception in its code, or
math-verify running past MATH_VERIFY_TIMEOUT_S) also scores 0 but is *counted*, never silent:
`grade(..., on_error="raise")` raises a `GraderError` instead, `grader_errors()` returns the counts
of this process, and inside a run (`$XROUTER_LITE_RUN_DIR`) each one is appended to
`artifacts/grader_errors.jsonl`, which the runner sums into `summary.json`.

Why one module: every grader answers one question (is this answer right?) and shares the bounded-search and
timeout machinery; split per task, each file would repeat it.
"""

from __future__ import annotations

import ast
import atexit
import functools
import json
import logging
import math
import os
import queue
import re
import subprocess
import sys
import threading
import warnings
from collections import Counter
from fractions import Fraction
from pathlib import Path

TASKS = ("gsm", "math-l5", "crux", "mmlu-pro")
TAIL_CHARS = 64_000  # ZeroEval answers sit at the end; the longest recorded output is ~22k chars
HEAD_CHARS = 100_000  # MMLU-Pro answers come first ("The answer is (X)"); runaway text follows
MAX_ANSWER_CHARS = 2_000  # longer extracted answers are garbage; ast is superlinear in nesting
MAX_MATH_CHARS = 300  # longest answer math-verify sees: its LaTeX parser takes ~0.1 s per short answer
MAX_JSON_STARTS = 50  # JSON objects tried per output, last first; bounds adversarial input
# Wall seconds for one math-verify comparison (parse both sides + verify). It runs in a worker process that is
# killed at the deadline, so the limit holds in any thread and even inside one long C call (`9^{9^{8}}` builds a
# 41-million-digit integer). Legit answers take ~0.01-0.3 s; raise it only if a loaded machine counts timeouts.
MATH_VERIFY_TIMEOUT_S = 4.0
MATH_VERIFY_WORKERS = 2  # worker processes shared by this process's threads (~100 MB each: sympy)
WORKER_START_TIMEOUT_S = 120.0  # importing sympy in a fresh process; generous for a loaded 2-core machine

log = logging.getLogger(__name__)
logging.getLogger("math_verify").setLevel(logging.ERROR)  # it warns on every timeout


# ------------------------------------------------------------------ grader failures, counted
class GraderError(Exception):
    """The grader itself failed on an answer (`kind`: 'timeout' or 'exception'); not the same as a wrong answer."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"grader {kind}: {detail}")
        self.kind, self.detail = kind, detail


ERROR_LOG = "grader_errors.jsonl"  # inside a run's artifacts/: one JSON object per grader failure
_errors: Counter = Counter()  # (task, who) -> failures in this process
_error_examples: dict[tuple[str, str], list[str]] = {}
_errors_lock = threading.Lock()


def count_grader_error(task: str, who: str, err: GraderError, example: str = "") -> None:
    """Count one grader failure of `task` for `who` (a model id, or 'final answer'); thread-safe.

    The first failure per (task, who) is logged as a warning. Inside a notebook run ($XROUTER_LITE_RUN_DIR)
    the failure is also appended to `artifacts/grader_errors.jsonl`, so the runner can put it in summary.json.
    """
    from xrouter_lite.profiles import RUNS_ENV

    key = (task, who)
    with _errors_lock:
        first = key not in _errors
        _errors[key] += 1
        examples = _error_examples.setdefault(key, [])
        if example and len(examples) < 3:
            examples.append(example)
        run_dir = os.environ.get(RUNS_ENV)
        if run_dir:
            try:
                artifacts = Path(run_dir) / "artifacts"
                artifacts.mkdir(parents=True, exist_ok=True)
                with open(artifacts / ERROR_LOG, "a") as f:
                    f.write(json.dumps({"task": task, "who": who, "kind": err.kind, "example": example,
                                        "detail": err.detail[:200]}) + "\n")
            except OSError as exc:  # the count in memory stays; say why the run will not see it
                log.warning("could not record a grader error in %s: %s", run_dir, exc)
    if first:
        log.warning("grader %s on %s for %s%s (scored 0 and counted; see grading.grader_errors()): %s",
                    err.kind, task, who, f" (e.g. {example})" if example else "", err.detail[:200])


def grader_errors() -> dict[str, int]:
    """Grader failures counted in this process so far, as {"task/who": count} (empty when none)."""
    with _errors_lock:
        return {f"{task}/{who}": n for (task, who), n in sorted(_errors.items())}


def grader_error_examples() -> dict[str, list[str]]:
    """Up to three example ids (queries) per counted "task/who", in the order they failed."""
    with _errors_lock:
        return {f"{task}/{who}": list(ex) for (task, who), ex in sorted(_error_examples.items())}


def reset_grader_errors() -> None:
    """Forget the counts (tests; a long-lived process that reports per batch)."""
    with _errors_lock:
        _errors.clear()
        _error_examples.clear()


# --------------------------------------------------------------------------- text helpers
def _as_text(response) -> str:
    """Any response (None, bytes, numbers) as a str; never raises."""
    if response is None:
        return ""
    if isinstance(response, bytes):
        return response.decode("utf-8", "replace")
    try:
        return response if isinstance(response, str) else str(response)
    except Exception:
        return ""


# A backslash sequence: an escaped backslash, a \uXXXX escape, a LaTeX command, or any other char.
_BACKSLASH = re.compile(r"\\(\\|u[0-9a-fA-F]{4}|[A-Za-z]+|.|$)", re.DOTALL)
_UNICODE_ESCAPE = re.compile(r"u[0-9a-fA-F]{4}")


def _escape_latex(s: str) -> str:
    r"""Double the backslashes of LaTeX inside JSON strings: models write "\frac" where JSON wants "\\frac".

    Without this, json.loads turns "\frac" into a form feed + "rac" and "\times" into a tab.
    JSON escapes that are not LaTeX (\n, \", \\, \u00b0) are kept.
    """

    def fix(m: re.Match) -> str:
        tok = m.group(1)
        if tok in ("\\", '"', "/") or _UNICODE_ESCAPE.fullmatch(tok) or tok in ("b", "f", "n", "r", "t"):
            return m.group(0)
        return "\\\\" + tok

    return _BACKSLASH.sub(fix, s)


_OBJECT_START = re.compile(r'\{\s*["\']')
_ANSWER_KEY = re.compile(r'["\']?answer["\']?\s*:\s*', re.IGNORECASE)
_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")


def _json_objects_last_first(text: str):
    """Dicts parsed from `text` by json, the last-starting first (at most MAX_JSON_STARTS tries)."""
    dec = json.JSONDecoder(strict=False)
    starts = [m.start() for m in _OBJECT_START.finditer(text)][-MAX_JSON_STARTS:]
    for i in reversed(starts):
        try:
            obj, _ = dec.raw_decode(text, i)
        except Exception:  # ValueError, RecursionError on deep nesting
            continue
        if isinstance(obj, dict):
            yield obj


def _value_after_key(text: str, pos: int):
    """The JSON-ish value starting at `pos`: a JSON value, else a quoted or bare string; None if absent."""
    rest = text[pos:pos + MAX_ANSWER_CHARS * 2]
    try:
        return json.JSONDecoder(strict=False).raw_decode(rest)[0]
    except Exception:
        pass
    if rest[:1] in "\"'":  # unterminated or badly escaped string: up to the closing quote
        m = re.match(r"""(["'])((?:\\.|(?!\1).)*?)\1""", rest, re.DOTALL)
        return m.group(2) if m else None
    m = re.match(r"[^\n,}]+", rest)  # bare value: up to the end of the line or the object
    return m.group(0).strip() if m and m.group(0).strip() else None


def json_answer(response, latex: bool = False):
    """The `answer` of the last JSON object holding one, else of the last `"answer": value` text; or None.

    `latex=True` repairs unescaped LaTeX backslashes first (maths answers), so `"\\frac{1}{2}"`
    survives as written.
    """
    text = _as_text(response)[-TAIL_CHARS:]
    if latex:
        text = _escape_latex(text)
    for obj in _json_objects_last_first(text):
        for key in obj:  # the prompt says "answer"; accept "Answer" too
            if isinstance(key, str) and key.strip().lower() == "answer":
                return obj[key]
    # Broken JSON (trailing comma, truncated reasoning, single quotes): read the last `answer:` value.
    for m in reversed(list(_ANSWER_KEY.finditer(text))):
        value = _value_after_key(text, m.end())
        if value is not None:
            return value
    return None


def _answer_text(value) -> str | None:
    """A JSON answer value as text: strings as they are, numbers and lists as Python writes them."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value)


def _last_boxed(text: str) -> str | None:
    r"""The content of the last \boxed{...} (or \fbox{...}) in `text`, braces balanced; None if absent."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0 or i - start > 8:
        return None
    depth = 0
    for j in range(i, min(len(text), i + MAX_ANSWER_CHARS)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1:j].strip()
    return None


# ------------------------------------------------------------------------------- numbers
_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?")
_CURRENCY = re.compile(r"\\?[$€£¥₹]")  # $, \$ (LaTeX), €, £, ¥, ₹
# Unit words a stated number may carry ("18 dollars", "5 km/h", "10 square units", "90 degrees"). Only real
# units, never a lone letter: "2x", "3i" and "4n" are expressions, not 2, 3 and 4 (MATH answers), and "5 m"
# stays unread too. Spaces are optional because MATH answers are compared with whitespace removed ("10cm").
UNIT_WORDS = (
    "dollars?", "cents?", "euros?", "pounds?", "rupees?", "yuan", "yen", "percent", "per ?cent",
    "mm", "cm", "km", "millimet(?:er|re)s?", "centimet(?:er|re)s?", "kilomet(?:er|re)s?", "met(?:er|re)s?",
    "inch(?:es)?", "feet", "foot", "ft", "yards?", "yds?", "miles?", "mph", "kph",
    "units?",  # and "square units", "sq units", "cubic units", "cm^2": see the prefix and power in _UNIT_SUFFIX
    "seconds?", "secs?", "minutes?", "mins?", "hours?", "hrs?", "days?", "weeks?", "months?", "years?",
    "degrees?", "radians?", "grams?", "kg", "kilograms?", "lbs?", "ounces?", "oz", "tons?",
    "lit(?:er|re)s?", "ml", "gallons?", "quarts?", "pints?", "cups?")
_UNIT = "(?:" + "|".join(UNIT_WORDS) + ")"
_UNIT_SUFFIX = re.compile(
    rf"(?<=[\d.])\s*(?:(?:square|sq\.?|cubic|cu\.?)\s*)?{_UNIT}(?:\^\{{?[23]\}}?|[²³])?"
    rf"(?:\s*(?:/|per)\s*(?:{_UNIT}|h|s))?\.?$", re.IGNORECASE)  # after "/" a lone h or s is a unit (km/h, m/s)


def _to_number(s: str) -> Fraction | None:
    """A plain number (`$1,234.50`, `-7`, `45%`, `3/4`, `12 dollars`) as an exact Fraction, else None (`2x`, `3i`)."""
    s = _CURRENCY.sub("", s.strip()).strip()
    s = re.sub(r"\\[,!; ]|\\text\{\s*\}", "", s)  # LaTeX spaces
    s = re.sub(r"^\\text\{(.*)\}$", r"\1", s)
    s = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", s)  # thousands separators only
    s = re.sub(r"(?<=\d)\{,\}(?=\d{3})", "", s)  # LaTeX 1{,}000
    s = s.replace("\\%", "%").rstrip(".").strip()
    s = re.sub(r"\s*%$", "", s)  # 45% -> 45: GSM8K golds drop the percent sign
    s = re.sub(r"\\(?:text|mbox|mathrm)\{([^{}]*)\}$", r" \1", s).strip()  # 18\text{ dollars}: a unit, if any
    s = _UNIT_SUFFIX.sub("", s).strip()
    s = s.replace("\u2212", "-")
    if _NUMBER.fullmatch(s):
        return Fraction(s)
    m = re.fullmatch(r"(-?\d+)\s*/\s*(\d+)", s) or re.fullmatch(r"(-?)\\[dt]?frac\{?(\d+)\}?\{?(\d+)\}?", s)
    if m:
        parts = m.groups()
        if len(parts) == 3:  # -\frac{a}{b}
            num = Fraction(int(parts[1]), int(parts[2]) or 1)
            return -num if parts[0] else num
        return Fraction(int(parts[0]), int(parts[1])) if int(parts[1]) else None
    return None


_MATH_NAMES = re.compile(r"\\[A-Za-z]+|sqrt|pi|log|ln|exp|sin|cos|tan")


def _could_be_number(latex: str) -> bool:
    """False for answers with words, variables or several values (`2x+1`, `12 or 13`, `2, 5`).

    Such an answer cannot equal a numeric gold, so math-verify (the slow path) is skipped for it.
    """
    return not re.search(r"[A-Za-z,;]", _MATH_NAMES.sub("", latex))


# ------------------------------------------------------------- math-verify under a hard deadline
# math-verify's own timeouts use SIGALRM: the main thread only, and a signal cannot stop one long C call.
# So every comparison runs in a worker process (one JSON line in, one answer line out) that is killed at
# the deadline and restarted on the next call. Workers are shared by threads, up to MATH_VERIFY_WORKERS.
_PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])
# The child imports this very package (first on its path), never another copy found in its working directory.
_WORKER_CODE = f"import sys; sys.path.insert(0, {_PACKAGE_PARENT!r}); " \
               "from xrouter_lite.pool.grading import _worker_main; _worker_main()"


def _worker_main() -> None:
    """The worker process: read [gold, pred] JSON lines, answer '1' (equal), '0' (not) or 'E <error>'."""
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    from math_verify import parse, verify

    @functools.lru_cache(maxsize=20_000)  # golds repeat across models, answers across tasks
    def parsed(latex: str):
        # No math-verify timeout here (it would be SIGALRM again): the parent's deadline kills us instead.
        return parse(f"${latex}$", parsing_timeout=None) or parse(latex, parsing_timeout=None)

    # math-verify imports its LaTeX parser and most of sympy on first use: pay that here, under the start
    # timeout, not inside the first comparison's deadline.
    verify(parsed("\\frac{1}{2}"), parsed("0.5"), timeout_seconds=None)
    # Answers go to a private copy of stdout; anything a library prints lands on stderr, not in the protocol.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    out.write("ready\n")
    out.flush()
    for line in sys.stdin:
        try:
            gold, pred = json.loads(line)
            g, p = parsed(gold), parsed(pred)
            answer = "1" if g and p and verify(g, p, timeout_seconds=None) else "0"
        except Exception as err:  # noqa: BLE001 - reported to the parent, which counts it
            answer = "E " + f"{type(err).__name__}: {err}".replace("\n", " ")[:300]
        out.write(answer + "\n")
        out.flush()


class _Worker:
    """One math-verify worker process, owned by the process that started it."""

    def __init__(self):
        self.owner = os.getpid()
        self.proc = subprocess.Popen([sys.executable, "-c", _WORKER_CODE], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        # A reader thread turns the worker's answers into a queue, so waiting with a deadline works on every OS
        # (select() cannot wait on pipes on Windows).
        self._lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, name="math-verify-reader", daemon=True).start()
        if self._readline(WORKER_START_TIMEOUT_S) != "ready":
            self.kill()
            raise GraderError("exception", "the math-verify worker process did not start "
                                           f"(is math-verify installed for {sys.executable}?)")

    def _pump(self) -> None:
        stdout = self.proc.stdout
        try:
            for raw in stdout:
                self._lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        except (OSError, ValueError):
            pass
        finally:
            self._lines.put(None)  # EOF: the worker exited or was killed
            stdout.close()

    def _readline(self, timeout: float) -> str | None:
        """The worker's next line, or None at the deadline or when it died."""
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def ask(self, gold: str, pred: str, timeout: float) -> str:
        """'1', '0', 'T' (past the deadline: the worker is killed) or 'E <error>'."""
        try:
            self.proc.stdin.write((json.dumps([gold, pred]) + "\n").encode())
            self.proc.stdin.flush()
        except OSError as err:
            self.kill()
            return f"E math-verify worker gone ({err})"
        answer = self._readline(timeout)
        if answer is None:
            dead = self.proc.poll() is not None
            self.kill()
            return f"E math-verify worker died (exit {self.proc.returncode})" if dead else "T"
        return answer

    def alive(self) -> bool:
        return self.owner == os.getpid() and self.proc.poll() is None

    def kill(self) -> None:
        if self.owner != os.getpid():
            return  # a forked child never touches its parent's worker
        try:
            self.proc.kill()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        try:
            self.proc.stdin.close()  # stdout is closed by the reader thread when it sees the end
        except OSError:
            pass


_idle: list[_Worker] = []
_idle_lock = threading.Lock()
_slots = threading.BoundedSemaphore(MATH_VERIFY_WORKERS)


def _reset_after_fork() -> None:
    """A forked child (build.py's grading processes) starts its own workers, never writes to its parent's."""
    global _idle, _idle_lock, _slots
    _idle, _idle_lock, _slots = [], threading.Lock(), threading.BoundedSemaphore(MATH_VERIFY_WORKERS)


if hasattr(os, "register_at_fork"):  # POSIX; elsewhere processes are spawned, never forked
    os.register_at_fork(after_in_child=_reset_after_fork)


@atexit.register
def _stop_workers() -> None:
    with _idle_lock:
        for w in _idle:
            w.kill()
        _idle.clear()


def _mv_compare(gold: str, pred: str) -> str:
    """One comparison in a worker process under MATH_VERIFY_TIMEOUT_S: '1', '0', 'T' or 'E <error>'."""
    with _slots:
        with _idle_lock:
            worker = _idle.pop() if _idle else None
        try:
            if worker is None or not worker.alive():
                worker = _Worker()
        except GraderError as err:
            return "E " + err.detail
        except OSError as err:
            return f"E could not start a math-verify worker ({err})"
        answer = worker.ask(gold, pred, MATH_VERIFY_TIMEOUT_S)
        if worker.alive():
            with _idle_lock:
                _idle.append(worker)
        return answer


_outcomes: dict[tuple[str, str], str] = {}  # (gold, pred) -> '1' | '0' | 'T'
MAX_CACHED_OUTCOMES = 100_000


def _mv_outcome(gold: str, pred: str) -> str:
    """`_mv_compare`, cached (answers repeat across models). A timeout is cached too, so an answer costs one
    deadline however often it is graded (and still counts each time); a worker failure is not cached."""
    outcome = _outcomes.get((gold, pred))
    if outcome is None:
        outcome = _mv_compare(gold, pred)
        if not outcome.startswith("E"):
            if len(_outcomes) >= MAX_CACHED_OUTCOMES:
                _outcomes.clear()
            _outcomes[(gold, pred)] = outcome
    return outcome


def _mv_equal(gold: str, pred: str) -> bool:
    """math-verify equivalence of two short LaTeX answers; GraderError on a timeout or a worker failure."""
    if len(pred) > MAX_MATH_CHARS or len(gold) > MAX_MATH_CHARS:
        return False
    outcome = _mv_outcome(gold, pred)
    if outcome == "T":
        raise GraderError("timeout", f"math-verify ran past {MATH_VERIFY_TIMEOUT_S:g} s on {pred[:80]!r}")
    if outcome.startswith("E"):
        raise GraderError("exception", outcome[2:])
    return outcome == "1"


# ---------------------------------------------------------------------------------- GSM8K
def gsm_answer(response) -> str | None:
    """The answer a GSM8K response gives: its JSON `answer`, else its last \\boxed{}."""
    value = _answer_text(json_answer(response, latex=True))
    if value:
        return value
    return _last_boxed(_as_text(response)[-TAIL_CHARS:])


_CLOCK = re.compile(r"(\d{1,2}):00\s*(?:[ap]\.?\s*m\.?)?", re.IGNORECASE)  # "2:00 pm" answers "at what hour"


# Arithmetic between numbers or one-letter variables ("x + 18", "2 - 1"); not "is -7", "5 km/h", "$12/tile".
_OPERAND_L, _OPERAND_R = r"(?:\d|\b[a-zA-Z]\b|\))", r"(?:\d|\b[a-zA-Z]\b|\()"
_NUMBER_TIMES_LETTER = re.compile(r"\d[a-zA-Z](?![a-zA-Z])")  # "2x", "3i": a term with a variable, not a number
_ARITHMETIC = re.compile(rf"{_OPERAND_L}\s*[+*/^×÷]\s*{_OPERAND_R}|{_OPERAND_L}\s+-\s+{_OPERAND_R}|\d-\d")


def _stated_number(pred: str) -> Fraction | None:
    """The number a GSM8K answer states, else None.

    Read in order: the whole answer as a number (`$1,234.50`, `45%`, `18 dollars`); the result of a
    computation chain (`20 * 40 = 800`); an on-the-hour time (`2:00 pm` -> 2); the answer's only
    number (`John pays $31,800 per year`). Answers with several numbers (`5 hours and 30 minutes`),
    with arithmetic left undone (`x + 18`) or with a variable (`2x`) are not read here.
    """
    n = _to_number(pred)
    if n is None and "=" in pred:
        n = _to_number(pred.rsplit("=", 1)[1])
    if n is None and _CLOCK.fullmatch(pred.strip()):
        n = Fraction(int(_CLOCK.fullmatch(pred.strip()).group(1)))
    if n is None and not _ARITHMETIC.search(pred) and not _NUMBER_TIMES_LETTER.search(pred):
        body = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", _CURRENCY.sub("", pred))
        numbers = _NUMBER.findall(body)
        n = Fraction(numbers[0]) if len(numbers) == 1 else None
    return n


def grade_gsm(response, gold) -> int:
    """1 if a GSM8K response's answer equals the gold number (`#### 1,234` or `1234`), else 0."""
    pred = gsm_answer(response)
    gold_s = _as_text(gold).replace("#", "").strip()
    if not pred or not gold_s or len(pred) > MAX_ANSWER_CHARS:
        return 0
    g, p = _to_number(gold_s), _stated_number(pred)
    if g is not None and p is not None:  # the fast exact path: almost every GSM8K answer
        return int(g == p)
    pred = _normalise_latex(pred)
    if g is not None and not _could_be_number(pred):
        return 0
    return int(_mv_equal(_normalise_latex(gold_s), pred))


# ---------------------------------------------------------------------------------- MATH
_LATEX_NOISE = [
    (re.compile(r"\\left|\\right|\\!|\\,|\\;|\\:|\\ |~"), ""),
    (re.compile(r"\\[dt]frac"), r"\\frac"),
    (re.compile(r"\^\{?\\circ\}?|°|\\degree"), ""),
    (re.compile(r"\\text\{\s*\}|\\mbox\{\s*\}"), ""),
    (re.compile(r"\\(?:text|textbf|mathrm|mbox|operatorname)\{([^{}]*)\}"), r"\1"),
    (re.compile(r"\s+"), ""),
    (re.compile(r"_\{(\d+)\}"), r"_\1"),
]


def _normalise_latex(s: str) -> str:
    """LaTeX with spacing, `\\left`, `\\dfrac`, degrees, `\\text{}` and `$` removed, for string equality."""
    s = s.strip().strip("$").strip()
    for pattern, repl in _LATEX_NOISE:
        s = pattern.sub(repl, s)
    s = re.sub(r"^(?:[a-zA-Z]\w*|\\[a-zA-Z]+)=(?!=)", "", s)  # "x=5" -> "5"
    return s.rstrip(".").replace("\\$", "")


# A numeral in a base, -221_3 or 100100_b: the same digits with or without the subscript count as equal.
# Only a numeral (digits, and capital digits such as A3_{11}) takes a base; x_1 is a variable, not x in base 1.
_BASE_SUBSCRIPT = re.compile(r"_\{?(\d+|[a-z])\}?$")
_NUMERAL_IN_BASE = re.compile(r"-?[0-9A-Z]*\d[0-9A-Z]*_\{?(?:\d+|[a-z])\}?")


def math_answer(response) -> str | None:
    """The answer a MATH response gives: its JSON `answer` (a \\boxed{} in it unwrapped), else its last \\boxed{}."""
    value = _answer_text(json_answer(response, latex=True))
    if value:
        return _last_boxed(value) or value
    return _last_boxed(_as_text(response)[-TAIL_CHARS:])


def grade_math(response, gold) -> int:
    """1 if a MATH response's answer is equivalent to the LaTeX gold (exact, numeric or math-verify), else 0."""
    pred = math_answer(response)
    gold_s = _as_text(gold).strip()
    gold_s = _last_boxed(gold_s) or gold_s
    if not pred or not gold_s or len(pred) > MAX_ANSWER_CHARS:
        return 0
    g, p = _normalise_latex(gold_s), _normalise_latex(pred)
    if g == p:
        return 1
    g_base = _NUMERAL_IN_BASE.fullmatch(g) and _BASE_SUBSCRIPT.search(g)
    p_base = _NUMERAL_IN_BASE.fullmatch(p) and _BASE_SUBSCRIPT.search(p)
    if g_base or p_base:  # numerals in a base: math-verify would drop the base and read -221_3 as -221
        same_base = not (g_base and p_base) or g_base.group(1) == p_base.group(1)
        return int(same_base and _BASE_SUBSCRIPT.sub("", g) == _BASE_SUBSCRIPT.sub("", p))
    gn, pn = _to_number(g), _to_number(p)
    if gn is not None and pn is not None:
        return int(gn == pn)
    if gn is not None and not _could_be_number(p):
        return 0
    return int(_mv_equal(g, p))


# ------------------------------------------------------------------------------ CRUXEval-O
_NO_VALUE = object()  # "not a literal": distinct from a literal None
_STRING_ESCAPE = re.compile(r"\\([\\'\"ntr])")


def _literal(src: str):
    """The Python value of a literal (`[1, 'a']`; `v` of `f(x) == v` or `assert f(x) == v`); _NO_VALUE if none."""
    src = src.strip()
    if not src or len(src) > MAX_ANSWER_CHARS:  # checked first: the regexes below are not linear
        return _NO_VALUE
    src = re.sub(r"^assert\s+", "", _FENCE.sub("", src).strip())
    for candidate in (src, src.replace("\r", "\\r").replace("\n", "\\n")):  # JSON decoded "\n" to a newline
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # SyntaxWarning on odd escapes such as "\d"
                node = ast.parse(candidate, mode="eval").body
            if isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], ast.Eq):
                node = node.comparators[0]  # "f('ab') == 'ba'" -> 'ba'
            return ast.literal_eval(node)
        except Exception:  # SyntaxError, ValueError, RecursionError, MemoryError on adversarial input
            continue
    return _NO_VALUE


def _readings(answer: str) -> list:
    """The values a CRUXEval-O answer can mean, most literal first.

    The prompt shows `"answer": "42"`, so an answer is Python source inside a JSON string; but
    models also put a string's bare text there (`"answer": "  ab"` for `'  ab'`). So an answer
    means its literal value; or, when it is no valid literal but sits between matching quotes
    (`'148: b'148''`), the text between them; or its text as written; or that text with
    `\\n`-style escapes decoded.
    """
    values = []
    value = _literal(answer)
    if value is not _NO_VALUE:
        values.append(value)
    else:
        inner = answer.strip()
        if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":  # 'b'a'': quoted, not escaped
            values.append(inner[1:-1])
    values.append(answer)
    decoded = _STRING_ESCAPE.sub(lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(m.group(1), m.group(1)), answer)
    if decoded != answer:
        values.append(decoded)
    return values


def crux_answer(response) -> str | None:
    """The answer a CRUXEval-O response gives, as the Python source (or bare text) it wrote; None if none."""
    value = json_answer(response, latex=False)
    return value if isinstance(value, str) else _answer_text(value)


def _same_value(a, b) -> bool:
    """Python equality as the official CRUXEval check (`assert f(x) == pred`) applies it; never raises."""
    try:
        if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
            return True
        return bool(a == b)
    except Exception:
        return False


def grade_crux(response, gold) -> int:
    """1 if a CRUXEval-O answer is the same Python value as the gold literal, else 0.

    Values are compared with `==` after `ast.literal_eval` (never `eval`), as CRUXEval's own
    `assert f(x) == pred` does (so `1 == 1.0` and `{1, 2} == {2, 1}`). A JSON string holding no
    literal (`abc`, `  ab`) is read as that text, since the ZeroEval prompt asks for a JSON string;
    `f(x) == v` and `assert` forms are read as `v`.
    """
    value = json_answer(response, latex=False)
    gold_value = _literal(_as_text(gold))
    if value is None or gold_value is _NO_VALUE:
        return 0
    if not isinstance(value, str):  # a JSON number, list or object: the model wrote a value, not source
        return int(_same_value(gold_value, value))
    if isinstance(gold_value, str):
        return int(any(_same_value(gold_value, v) for v in _readings(value)))
    return int(_same_value(gold_value, _literal(value)))


# ------------------------------------------------------------------------------ MMLU-Pro
# Patterns tried in order; each is linear-time (no leading `.*`), so runaway outputs stay fast.
# Letters are matched upper-case only: "the answer is a combination" names no option.
_MMLU_ANSWER_IS = re.compile(r"(?i:answer)\s+is\s*[:*]*\s*\(?([A-J])\)?(?!\w)")
_MMLU_PATTERNS = [
    re.compile(r"(?i:answer)\s*:\s*\**\s*\(?([A-J])\)?(?!\w)"),  # Answer: B / Final Answer: B. text
    re.compile(r"\*\*\s*\(?([A-J])\)?[.):]?\s*\*\*"),  # **B** / **(B)**
    re.compile(r"\b(?:is|to|by|select|choose|pick)\s+(?:(?:option|choice)\s*\(?|\()([A-J])\)?(?!\w)"),
    # "is B. Law is determinate.", "the best choice is:\n\nC. Aspirin", or an answer that starts "A. text"
    # Not after "of"/"in" ("of E. coli", "1 mole of C. Then") nor any colon ("the options:\nA. 3.7").
    re.compile(r'(?:\A\s*|\b(?:is|are|was|be|to|as|with|except|called)(?:[ \t]+|\s*:\s*))"?([A-J])\.[ \t]+\S'),
    re.compile(r"(?:^|\n)[ \t*#>]*\(?([A-J])\)?[.)]?[\s*]*$"),  # a last line that is just the letter
]


def mmlu_pro_answer(response) -> str | None:
    """The letter (A-J) a free-text MMLU-Pro answer chooses, or None when it states none.

    The first "answer is (X)" wins (5-shot models run on into made-up next questions); then the
    last "Answer: X", "**X**", "is (X)" / "to option X", "is X. <option text>" / "is:\n\nX. <option
    text>", or a final line holding only the letter. A stray capital ("I cannot", "H(p)") is not an answer.
    """
    text = _as_text(response)[:HEAD_CHARS]
    m = _MMLU_ANSWER_IS.search(text)
    if m:
        return m.group(1)
    for pattern in _MMLU_PATTERNS:
        last = None
        for last in pattern.finditer(text):
            pass
        if last:
            return last.group(1)
    return None


def grade_mmlu_pro(response, gold) -> int:
    """1 if the letter a response chooses is the gold letter, else 0 (no letter is wrong)."""
    pred = mmlu_pro_answer(response)
    return int(pred is not None and pred == _as_text(gold).strip().upper())


# ------------------------------------------------------------------------------- dispatch
_EXTRACTORS = {"gsm": gsm_answer, "math-l5": math_answer, "crux": crux_answer, "mmlu-pro": mmlu_pro_answer}
_GRADERS = {"gsm": grade_gsm, "math-l5": grade_math, "crux": grade_crux, "mmlu-pro": grade_mmlu_pro}


def _check_task(task: str) -> None:
    if task not in _GRADERS:
        raise ValueError(f"unknown task {task!r}; graded tasks are: {', '.join(TASKS)}")


def extract_answer(task: str, response) -> str | None:
    """The answer a response gives for `task`, as text (a letter for mmlu-pro), or None if it gives none."""
    _check_task(task)
    try:
        return _EXTRACTORS[task](response)
    except Exception:  # graders must never take a run down; an unreadable answer is no answer
        return None


def grade(task: str, response, gold, on_error: str = "count", who: str = "grade") -> int:
    """1 if `response` answers `task` with `gold`, else 0; never raises on a response (ValueError: unknown task).

    A failure of the grader itself (an exception in its code, math-verify past its deadline) scores 0 and is
    counted under (task, `who`) (see `grader_errors`); `on_error="raise"` raises the GraderError instead.
    """
    _check_task(task)
    if on_error not in ("count", "raise"):
        raise ValueError(f"on_error must be 'count' or 'raise', not {on_error!r}")
    if gold is None:
        return 0
    try:
        return _GRADERS[task](response, gold)
    except GraderError as err:
        error = err
    except Exception as err:  # noqa: BLE001 - a bug in a grader: counted, never a silent 0
        error = GraderError("exception", f"{type(err).__name__}: {err}")
    if on_error == "raise":
        raise error
    count_grader_error(task, who, error)
    return 0


def grade_final(query, text, recorded: dict | None = None) -> float:
    """The score of a router's final answer `text` to `query` (a pool.Query).

    With a gold answer (ZeroEval, MMLU-Pro, live tasks that have one): `grade(query.task, text, query.gold)`.
    Without one (RouterBench): `recorded` maps each recorded model response to that query to its
    recorded score; a final answer scores the score of the response it repeats verbatim (surrounding
    whitespace ignored), and 0.0 for anything else, including the router's own direct answers.
    Never raises: a grader failure scores 0.0 and is counted under (task, "final answer") with the query id.
    """
    if query.gold is not None and query.task in _GRADERS:
        try:
            return float(grade(query.task, text, query.gold, on_error="raise"))
        except GraderError as err:  # counted, never raised: one bad answer must not stop training
            count_grader_error(query.task, "final answer", err, example=query.id)
            return 0.0
    if not recorded:
        return 0.0
    key = _as_text(text).strip()
    for response, score in recorded.items():
        if _as_text(response).strip() == key:
            try:
                score = float(score)
            except (TypeError, ValueError):
                return 0.0
            return score if math.isfinite(score) else 0.0
    return 0.0
