"""The command line: `python -m xrouter_lite <command>`; `--help` on any command lists its options.

    python -m xrouter_lite notebooks --profile smoke     # run the tutorial series with papermill
    python -m xrouter_lite pool --data ../shared/data    # per-task accuracy and cost of every model
    python -m xrouter_lite evaluate --split test --routers all --json
"""

from __future__ import annotations

import argparse
import sys

from xrouter_lite.profiles import PROFILES


def _data_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None, help="recorded data directory (default: $XROUTER_LITE_DATA, then "
                                                 "../shared/data beside the checkout, then data/upstream)")


def build_parser() -> argparse.ArgumentParser:
    """All subcommands; each handler is imported only when its command runs, so --help stays fast."""
    parser = argparse.ArgumentParser(prog="python -m xrouter_lite", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("notebooks", help="execute every notebook in order with papermill")
    p.add_argument("--profile", choices=list(PROFILES), default="cpu")
    p.add_argument("--notebooks", default="notebooks", help="folder of NN_*.ipynb notebooks")
    p.add_argument("--runs", default=None, help="where run directories are created (default: $XROUTER_LITE_RUNS, "
                                                 "else <checkout>/runs; runs/latest points at the newest)")
    p.add_argument("--only", nargs="*", default=None, help="run only notebooks whose names start with these")
    _data_arg(p)
    p.set_defaults(handler="xrouter_lite.runner:notebooks_command")

    p = sub.add_parser("pool", help="per (source, task, model): n, accuracy, tokens and USD per query")
    _data_arg(p)
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    p.add_argument("--source", default=None, help="zeroeval, mmlu-pro or routerbench (default: all)")
    p.set_defaults(handler="xrouter_lite.data:pool_command")

    p = sub.add_parser("download", help="fetch the recorded upstream files into a data directory")
    p.add_argument("--data", default=None, help="directory to download into (default: <checkout>/data/upstream)")
    p.add_argument("--sources", nargs="*", default=None, help="zeroeval mmlu-pro routerbench (default: all)")
    p.set_defaults(handler="xrouter_lite.data:download_command")

    p = sub.add_parser("evaluate", help="evaluate routers on a split of the replay pool")
    _data_arg(p)
    p.add_argument("--split", default="test", choices=["train", "validation", "test"])
    p.add_argument("--routers", default="all", help="comma-separated router names, or all")
    p.add_argument("--lambda", dest="lam", type=float, default=3.0, help="cost weight of the reward")
    p.add_argument("--source", default="zeroeval", choices=["zeroeval", "mmlu-pro", "routerbench"])
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    p.set_defaults(handler="xrouter_lite.routers:evaluate_command")

    p = sub.add_parser("record", help="record a live pool's answers into the tidy table (costs money)")
    p.add_argument("--pool", required=True, help="YAML pool config (start from `python -m xrouter_lite example-pool`)")
    p.add_argument("--tasks", default="gsm", help="comma-separated tasks to ask, e.g. gsm,crux")
    p.add_argument("--n", type=int, default=20, help="queries per task (train split)")
    p.add_argument("--budget", type=float, required=True, help="hard USD cap for this recording")
    p.add_argument("--out", default="runs/live/pool.parquet", help="where the tidy table is written")
    p.add_argument("--cache", default=".cache/responses.sqlite", help="SQLite response cache")
    p.add_argument("--concurrency", type=int, default=4)
    _data_arg(p)
    p.set_defaults(handler="xrouter_lite.live:record_command")

    # `python -m xrouter_lite.serve` parses with these options too; the defaults of --timeout and --model-name
    # repeat serve.DEFAULT_TIMEOUT_S and serve.ROUTER_NAME, since importing serve here would slow every command.
    p = sub.add_parser("serve", help="serve a trained router behind an OpenAI-compatible endpoint (localhost)")
    p.add_argument("--router", required=True,
                   help="run directory (serves artifacts/router_grpo, else artifacts/router_sft) or a checkpoint dir")
    p.add_argument("--pool", required=True, help="'replay' (recorded answers from --data) or a YAML live pool config")
    p.add_argument("--data", default=None,
                   help="replay: data directory (default: $XROUTER_LITE_DATA) or a tidy table .parquet/.csv")
    p.add_argument("--sources", default="zeroeval", help="replay: comma-separated sources to load from --data")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--host", default="127.0.0.1", help="bind address; the server has no auth, keep it local")
    p.add_argument("--mode", choices=["agent", "simple"], default=None, help="default: the checkpoint's router.json")
    p.add_argument("--max-turns", type=int, default=None, help="default: the checkpoint's router.json, else 3")
    p.add_argument("--fallback", default=None, help="model answering when the router's episode is invalid "
                                                    "(default: the cheapest model available for the query)")
    p.add_argument("--budget-usd", type=float, default=None, help="USD cap for the whole process (default: none)")
    p.add_argument("--request-budget-usd", type=float, default=None, help="USD cap per request (default: none)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per request before a 504")
    p.add_argument("--model-name", default="xrouter-lite", help="the name clients send as `model`")
    p.add_argument("--max-new-tokens", type=int, default=160, help="router tokens per turn (a tool call is ~40)")
    p.add_argument("--cache", default=None, help="live pool: SQLite response cache; repeated questions are free")
    p.add_argument("--device", default=None, help="router device: cuda, mps or cpu (default: the best available)")
    p.set_defaults(handler="xrouter_lite.serve:serve_command")

    p = sub.add_parser("gpu-check", help="time 4-bit load, SFT and GRPO steps and report peak memory on this device",
                       add_help=False)
    p.set_defaults(handler="xrouter_lite.gpu_check:gpu_check_command")

    p = sub.add_parser("example-pool", help="print the example live-pool YAML (or copy it with --out FILE)")
    p.add_argument("--out", default=None, help="write it here instead of printing it")
    p.set_defaults(handler="xrouter_lite.__main__:example_pool_command")
    return parser


def example_pool_command(args) -> int:
    """CLI `python -m xrouter_lite example-pool [--out FILE]`: the YAML shipped inside the package."""
    from pathlib import Path

    from xrouter_lite.profiles import example_pool_config

    text = example_pool_config().read_text()
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}: delete the models you have no key for, then check the prices")
    else:
        print(text, end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run the chosen command's handler."""
    import importlib

    from xrouter_lite.profiles import DataNotFound

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["gpu-check"]:  # its own parser: the flags live beside the check
        from xrouter_lite.gpu_check import main as gpu_check

        gpu_check(argv[1:])
        return 0
    args = build_parser().parse_args(argv)
    module, func = args.handler.split(":")
    try:
        return int(getattr(importlib.import_module(module), func)(args) or 0)
    except DataNotFound as exc:  # where we looked and the one command to run; no traceback
        print(exc, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
