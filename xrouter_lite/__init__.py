"""xrouter_lite: cost-aware LLM routing with SFT + GRPO, after xRouter (arXiv 2510.08439).

    pool/       notebook 01: recorded answers of real models, prices, graders, the tidy table, live endpoints
    routing/    the router's protocol, episodes, the reward, baseline routers, metrics and verdicts
    training/   notebooks 02-03: the router LM, SFT traces, SFT, guided decoding, GRPO, evaluation
    explore/    notebook 04: what-if replay, figures, the widget explorer
    serve/      notebook 05: the OpenAI-compatible endpoint (request checks, the service, the HTTP app, the command)
    profiles, runner, report, notebook, colab, errors: settings, running the series, results, notebook setup

    >>> from xrouter_lite.profiles import get_profile
    >>> get_profile("smoke").name
    'smoke'
"""

__version__ = "0.1.0"


def _lazy_exports(package: str, exports: dict[str, str]):
    """`__getattr__` and `__dir__` for a subpackage that re-exports names of its modules (name -> module).

    A module is imported on first use of one of its names, so `from xrouter_lite.pool import ReplayPool` loads
    `pool.core` and not `pool.live` (openai) or `pool.grading` (math-verify), and a subpackage's `__init__` imports
    nothing: no import circle can pass through it. Modules of the package import from the defining module, never
    from a subpackage's `__init__` (tests/test_layout.py checks both)."""
    from importlib import import_module

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(f"{package}.{exports[name]}"), name)

    def __dir__() -> list[str]:
        return sorted(set(exports) | set(import_module(package).__dict__))

    return __getattr__, __dir__
