"""The command line: `python -m xrouter_lite <command>`; `--help` on any command lists its options.

    python -m xrouter_lite notebooks --profile smoke     # run the tutorial series with papermill
    python -m xrouter_lite pool --data ../shared/data    # per-task accuracy and cost of every model
    python -m xrouter_lite evaluate --split test --routers all --json
    python -m xrouter_lite report runs/cpu-<timestamp>             # the run's results -> docs/results + README

Every command also takes `--prices FILE` (your prices, merged over the shipped table), `--allow-pickle`
(read a RouterBench .pkl: unpickling runs code) and `--debug` (a traceback instead of the one-line error
a user mistake gets, with exit status 2).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from xrouter_lite.profiles import PROFILES

# What a user can fix gets one line on stderr and exit status 2; anything else is a bug and keeps its traceback.
# Errors of modules that the CLI imports only when their command runs are named, not imported.
USER_ERROR_NAMES = {"xrouter_lite.errors.UserError", "xrouter_lite.pool.config.ConfigError",
                    "xrouter_lite.pool.budget.BudgetExceeded", "builtins.OSError"}  # OSError: paths, permissions, network


def is_user_error(err: BaseException) -> bool:
    """Whether `err` is a mistake in the user's input or environment (see USER_ERROR_NAMES), not a bug."""
    return any(f"{c.__module__}.{c.__qualname__}" in USER_ERROR_NAMES for c in type(err).__mro__)


def _common_args(p: argparse.ArgumentParser) -> None:
    """Options every command takes; they act through environment variables, so notebook kernels inherit them."""
    p.add_argument("--prices", default=None, metavar="FILE",
                   help="CSV of your own prices (model,price_in,price_out in USD per 1M tokens), merged over "
                        "the shipped prices.csv (default: $XROUTER_LITE_PRICES)")
    p.add_argument("--allow-pickle", action="store_true",
                   help="read routerbench_0shot.pkl if present; unpickling runs code, so only for a file you "
                        "downloaded yourself (default: $XROUTER_LITE_ALLOW_PICKLE)")
    p.add_argument("--debug", action="store_true", help="show the full traceback of any error")


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
    p.add_argument("--resume", default=None, metavar="RUN_DIR",
                   help="continue that run directory: keep its notebooks that ran ok, run the rest (after a crash)")
    p.add_argument("--source", default=None, choices=["zeroeval", "mmlu-pro"],
                   help="the recorded source notebooks 02-05 train and evaluate on (default: each notebook's, zeroeval)")
    p.add_argument("--set", action="append", default=None, metavar="NAME=VALUE",
                   help="a notebook parameter for every notebook that has it, e.g. --set LAMBDA_SWEEP=false "
                        "(values read as YAML; repeatable)")
    _data_arg(p)
    p.set_defaults(handler="xrouter_lite.runner:notebooks_command")

    p = sub.add_parser("pool", help="per (source, task, model): n, accuracy, tokens and USD per query")
    _data_arg(p)
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    p.add_argument("--source", default=None, help="zeroeval, mmlu-pro or routerbench (default: all)")
    p.set_defaults(handler="xrouter_lite.pool.commands:pool_command")

    p = sub.add_parser("download", help="fetch the recorded upstream files into a data directory")
    p.add_argument("--data", default=None, help="directory to download into (default: <checkout>/data/upstream)")
    p.add_argument("--sources", nargs="*", default=None, help="zeroeval mmlu-pro routerbench (default: all)")
    p.set_defaults(handler="xrouter_lite.pool.commands:download_command")

    p = sub.add_parser("evaluate", help="evaluate routers on a split of the replay pool")
    _data_arg(p)
    p.add_argument("--split", default="test", choices=["train", "validation", "test"])
    p.add_argument("--routers", default="all", help="comma-separated router names, or all")
    p.add_argument("--lambda", dest="lam", type=float, default=3.0, help="cost weight of the reward")
    p.add_argument("--source", default="zeroeval", choices=["zeroeval", "mmlu-pro", "routerbench"])
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    p.set_defaults(handler="xrouter_lite.routing.baselines:evaluate_command")

    p = sub.add_parser("record", help="record a live pool's answers into the tidy table (costs money)")
    p.add_argument("--pool", required=True, help="YAML pool config (start from `python -m xrouter_lite example-pool`)")
    p.add_argument("--tasks", default="gsm", help="comma-separated tasks to ask, e.g. gsm,crux")
    p.add_argument("--n", type=int, default=20, help="queries per task (train split)")
    p.add_argument("--budget", type=float, required=True, help="hard USD cap for this recording")
    p.add_argument("--out", default="runs/live/pool.parquet", help="where the tidy table is written")
    p.add_argument("--cache", default=None, help="SQLite response cache (default: responses.sqlite in "
                                                 "$XROUTER_LITE_CACHE, else <checkout>/.cache)")
    p.add_argument("--concurrency", type=int, default=4)
    _data_arg(p)
    p.set_defaults(handler="xrouter_lite.pool.recording:record_command")

    p = sub.add_parser("report", help="write a finished run's results to docs/results/<profile>.{json,md} and the "
                                      "README's block; --check: exit 1 when the README is stale")
    p.add_argument("run_dir", nargs="?", default=None, help="runs/<profile>-<timestamp> (omit with --check)")
    p.add_argument("--check", action="store_true", help="only compare the README's blocks with docs/results/*.json")
    p.add_argument("--baselines", action="append", metavar="SOURCE=FILE",
                   help="per-source baseline rows from `evaluate --split test --routers all --source SOURCE --json`")
    p.add_argument("--baselines-lambda", type=float, default=3.0, help="the --lambda those evaluate runs used")
    p.add_argument("--seeds", default=None, help="JSON of `python benchmarks/grpo_seeds.py --json PATH`")
    p.add_argument("--table", action="append", default=None, help="extra table JSON {title, command, rows}")
    p.add_argument("--no-readme", action="store_true", help="write docs/results only, leave README.md alone")
    p.add_argument("--root", default=".", help="the checkout whose README.md and docs/results are written")
    p.set_defaults(handler="xrouter_lite.report:report_command")

    # `python -m xrouter_lite.serve` parses with these options too; the defaults of --timeout and --model-name
    # repeat serve.service.DEFAULT_TIMEOUT_S and ROUTER_NAME, since importing serve here would slow every command.
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
    p.add_argument("--cost-weight", type=float, default=None,
                   help="default cost weight λ (reward points per USD) for requests without `cost_weight` "
                        "(default: the checkpoint's router.json `lambda`)")
    p.set_defaults(handler="xrouter_lite.serve.cli:serve_command")

    p = sub.add_parser("gpu-check", help="time 4-bit load, SFT and GRPO steps and report peak memory on this device",
                       add_help=False)
    p.set_defaults(handler="xrouter_lite.training.gpu_check:gpu_check_command")

    p = sub.add_parser("example-pool", help="print the example live-pool YAML (or copy it with --out FILE)")
    p.add_argument("--out", default=None, help="write it here instead of printing it")
    p.set_defaults(handler="xrouter_lite.__main__:example_pool_command")
    for command in sub.choices.values():  # every command, including any added above this line
        _common_args(command)
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
    """Parse arguments and run the chosen command's handler; a user error is one line on stderr and status 2."""
    import importlib

    from xrouter_lite.pool.core import PRICES_ENV, load_prices
    from xrouter_lite.pool.readers import PICKLE_ENV
    from xrouter_lite.profiles import DataNotFound

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["gpu-check"]:  # its own parser: the flags live beside the check
        from xrouter_lite.training.gpu_check import main as gpu_check

        gpu_check(argv[1:])
        return 0
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:  # warnings (partial data files, grader failures) as plain lines
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    saved = {k: os.environ.get(k) for k in (PRICES_ENV, PICKLE_ENV)}
    if args.prices:
        os.environ[PRICES_ENV] = os.path.abspath(args.prices)
    if args.allow_pickle:
        os.environ[PICKLE_ENV] = "1"
    try:
        if args.prices:
            load_prices(extra=args.prices)  # a bad price file fails now, naming its line, not deep inside a command
        module, func = args.handler.split(":")
        return int(getattr(importlib.import_module(module), func)(args) or 0)
    except DataNotFound as exc:  # where we looked and the one command to run; no traceback
        if args.debug:
            raise
        print(exc, file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - sorted into user errors (one line) and bugs (re-raised)
        if args.debug or not is_user_error(err):
            raise
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"error: {message} (--debug shows the traceback)", file=sys.stderr)
        return 2
    finally:  # main() may run inside another program (tests, notebooks): leave its environment as it was
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


if __name__ == "__main__":
    sys.exit(main())
