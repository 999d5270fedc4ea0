"""The model pool (notebook 01): the recorded answers of real models, what they cost, and live endpoints.

    upstream    the pinned upstream files: where they come from, `download`, the readers that parse them
    tokens      the one token estimate and its calibration per tokenizer family
    splits      train / validation / test from a hash of the question text
    core        `ModelSpec`, `Query`, `Answer`, the `Pool` interface, the price table (prices.csv), `ReplayPool`
    grading     graders: a model's answer against the gold answer, 0 or 1
    readers     the upstream files of ZeroEval, MMLU-Pro and RouterBench as raw rows, their fields checked
    costs       what a row costs: `reprice` (o1-mini's reasoning multiplier), the token estimate against RouterBench
    build       one source's tidy table: its raw rows graded, output tokens counted, priced, in the DESIGN.md columns
    table       the tidy table (one row per query and model): `load_table`, its parquet cache, `pool_summary`
    commands    the `pool` and `download` commands
    cache       the SQLite response cache of live calls
    budget      `BudgetGuard`: the hard USD cap of live calls, reserved before a call is sent, shared by processes
    config      pool configs: the YAML list of live models, validated into `ModelSpec`s (`load_pool_config`)
    live        `LivePool`: real OpenAI-compatible endpoints behind the `Pool` interface, with retries, cache, budget
    recording   `record`: a live pool's graded answers into the tidy table, resumable; `select_queries`
    repricing   price jitter: the same pool with some models' prices scaled

Notebooks import what they need from here (`from xrouter_lite.pool import ReplayPool, load_table`); the modules
import each other by their full names.
"""

from xrouter_lite import _lazy_exports

# name -> its module here: the names the notebooks import from this package, loaded on first use
_EXPORTS = {
    "count_tokens": "tokens", "TOKEN_FACTORS": "tokens",
    "add_splits": "splits",
    "blended_price": "core", "load_prices": "core", "PRICES_CSV": "core", "Query": "core", "ReplayPool": "core",
    "crux_answer": "grading", "grade": "grading", "grade_final": "grading",
    "REASONING_MULTIPLIER": "costs", "reprice": "costs", "token_residuals": "costs",
    "grader_error_counts": "table", "load_table": "table", "pool_summary": "table",
    "BudgetExceeded": "budget", "load_pool_config": "config", "record": "recording", "select_queries": "recording",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS)
