"""xrouter_lite: cost-aware LLM routing with SFT + GRPO, after xRouter (arXiv 2510.08439).

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
