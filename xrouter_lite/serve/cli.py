"""The `serve` command: find the checkpoint, read its router.json, open the pool, build the app, serve it.

`read_router_info` and `service_options` turn a checkpoint's router.json into `create_app` keywords (notebook 05
uses them too); `build_placeholder_router` makes an untrained tiny router when no trained one exists; `open_pool`
opens 'replay' (a recorded table) or a live pool config; `serve_command` is `python -m xrouter_lite serve`, `main`
is `python -m xrouter_lite.serve`.
"""

import json
import math
import os
import sys
from pathlib import Path
from typing import Sequence

from xrouter_lite.pool.core import Pool, PoolError, ReplayPool
from xrouter_lite.pool.live import LivePool
from xrouter_lite.routing.protocol import MAX_TOOL_RESULT_CHARS, system_prompt, tool_schemas
from xrouter_lite.serve.app import create_app
from xrouter_lite.serve.service import DEFAULT_COST_WEIGHT

ROUTER_DIRS = ("router_grpo", "router_sft")  # checkpoints the training notebooks write, preferred first


def find_router(path: str | os.PathLike) -> Path | None:
    """The checkpoint to serve: `path` if it holds one, else <path>/artifacts/router_grpo, then router_sft."""
    p = Path(path).expanduser()
    for c in (p, *(p / "artifacts" / d for d in ROUTER_DIRS), *(p / d for d in ROUTER_DIRS)):
        if (c / "config.json").is_file() or (c / "adapter_config.json").is_file():
            return c
    return None


def read_router_info(checkpoint: str | os.PathLike) -> dict:
    """The checkpoint's router.json (mode, max_turns, base, stage, lambda, lambda_in_prompt, tool_result_chars,
    answer_notes, ...), or {} when it has none."""
    path = Path(checkpoint) / "router.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def service_options(info: dict) -> dict:
    """`create_app` keywords from a router.json: mode, max_turns, and how the router was trained to read (its
    default cost weight `lambda`, whether it is told λ, `tool_result_chars`, `answer_notes`)."""
    lam = info.get("lambda")
    return {"mode": info.get("mode", "agent"), "max_turns": info.get("max_turns", 3),
            "cost_weight": DEFAULT_COST_WEIGHT if lam is None else float(lam),
            "state_lambda": bool(info.get("lambda_in_prompt", False)),
            "tool_result_chars": info.get("tool_result_chars") or None,
            "answer_notes": bool(info.get("answer_notes", False))}


def build_placeholder_router(pool: Pool, out_dir: str | os.PathLike, questions: Sequence[str] = (),
                             mode: str = "agent", max_turns: int = 3, hidden_size: int = 64, layers: int = 2) -> Path:
    """An UNTRAINED tiny router (random weights) for when no trained checkpoint exists; its turns are invalid."""
    from xrouter_lite.training.modeling import build_tiny_router

    # The tokenizer learns the router's own prompt (system prompt + tool schemas), so prompts stay short.
    texts = [system_prompt(mode, max_turns), json.dumps(tool_schemas(pool.models, mode))] * 4 + list(questions)
    out = Path(out_dir)
    build_tiny_router(texts, out, vocab_size=2048, hidden_size=hidden_size, layers=layers, heads=2)
    info = {"mode": mode, "max_turns": max_turns, "base": "tiny", "stage": "untrained", "lambda": None}
    (out / "router.json").write_text(json.dumps(info, indent=2) + "\n")
    return out


def load_replay_table(data: str | os.PathLike | None, sources: Sequence[str] = ("zeroeval",)):
    """A tidy table: a .parquet/.csv file (e.g. a live recording), else `load_table` of a data directory."""
    import pandas as pd

    path = Path(data) if data else None
    if path is not None and path.suffix in (".parquet", ".csv"):
        if not path.is_file():
            raise FileNotFoundError(f"tidy table {path} does not exist")
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        text = {c: str for c in ("query_id", "source", "task", "category", "question", "gold", "model", "response")}
        table = pd.read_csv(path, keep_default_na=False, dtype=text)
        return table.assign(gold=table["gold"].map(lambda g: g if g != "" else None))
    from xrouter_lite.pool.table import load_table

    return load_table(data, sources=list(sources), progress=sys.stderr.isatty())


def open_pool(pool: str, data: str | None = None, sources: Sequence[str] = ("zeroeval",),
              cache: str | None = None) -> Pool:
    """'replay' -> a ReplayPool of the recorded table; a YAML path -> a LivePool (the server keeps the budget)."""
    if pool == "replay":
        return ReplayPool(load_replay_table(data, sources))
    from xrouter_lite.pool.cache import ResponseCache
    from xrouter_lite.pool.config import load_pool_config

    return LivePool(load_pool_config(pool), ResponseCache(cache) if cache else None, budget=None)


def app_from_args(args):
    """The app the `serve` command runs: router checkpoint + router.json settings + pool."""
    checkpoint = find_router(args.router)
    if checkpoint is None:
        raise FileNotFoundError(f"no router checkpoint in {args.router}: expected artifacts/router_grpo or "
                                "artifacts/router_sft (notebooks 02 and 03 write them), or a checkpoint directory")
    info = read_router_info(checkpoint)
    pool = open_pool(args.pool, args.data, [s.strip() for s in args.sources.split(",") if s.strip()], args.cache)
    from xrouter_lite.training.lm_router import LMRouter  # torch loads only once the checkpoint and pool are known good
    from xrouter_lite.training.modeling import load_saved_router

    model, tokenizer = load_saved_router(checkpoint, device=args.device)  # whole, or a 4-bit base + its adapter
    print(f"router: {checkpoint} ({info.get('stage', 'unknown stage')}); pool: {type(pool).__name__} of "
          f"{len(pool.models)} models", file=sys.stderr)
    options = service_options(info)
    cli_weight = getattr(args, "cost_weight", None)
    if cli_weight is not None and not (math.isfinite(cli_weight) and cli_weight >= 0):
        raise ValueError(f"--cost-weight must be a finite number >= 0 (reward points per USD), got {cli_weight}")
    options.update({k: v for k, v in (("mode", args.mode), ("max_turns", args.max_turns),
                                      ("cost_weight", getattr(args, "cost_weight", None))) if v is not None})
    told = "told λ in its prompt" if options["state_lambda"] else "not trained with a stated λ: cost_weight is reported only"
    print(f"cost weight: {options['cost_weight']:g} per USD by default ({told}); tool results clipped to "
          f"{options['tool_result_chars'] or MAX_TOOL_RESULT_CHARS} chars, answer notes "
          f"{'on' if options['answer_notes'] else 'off'}", file=sys.stderr)
    return create_app(LMRouter(model, tokenizer, max_new_tokens=args.max_new_tokens), pool,
                      model_name=args.model_name, fallback=args.fallback, budget_usd=args.budget_usd,
                      request_budget_usd=args.request_budget_usd, timeout_s=args.timeout, **options)


def serve_command(args) -> int:
    """CLI `python -m xrouter_lite serve`: load the router and the pool, then serve until Ctrl-C."""
    import uvicorn

    try:
        app = app_from_args(args)
    except (FileNotFoundError, ValueError, PoolError) as e:  # missing data/checkpoint, bad config, unset API key
        print(f"serve: {e}", file=sys.stderr)
        return 2
    print(f"serving {args.model_name!r} at http://{args.host}:{args.port}/v1 (Ctrl-C stops)", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m xrouter_lite.serve ...`: `python -m xrouter_lite serve ...`, whose parser holds the options."""
    from xrouter_lite.__main__ import main as cli

    return cli(["serve", *(sys.argv[1:] if argv is None else argv)])
