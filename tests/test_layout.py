"""The package's layout: no import circle (lazy imports included), one module per public name."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "xrouter_lite"


def _modules() -> dict[str, ast.Module]:
    return {p.stem: ast.parse(p.read_text(encoding="utf-8")) for p in sorted(PACKAGE.glob("*.py"))}


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports anywhere in its file: top level, in functions, under TYPE_CHECKING."""
    trees = _modules()
    graph = {}
    for name, tree in trees.items():
        deps = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                deps |= {a.name.split(".")[1] for a in node.names if a.name.startswith("xrouter_lite.")}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module == "xrouter_lite":
                    deps |= {a.name for a in node.names if a.name in trees}
                elif node.module.startswith("xrouter_lite."):
                    deps.add(node.module.split(".")[1])
        graph[name] = deps - {name, "__main__"}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(v: str) -> list[str] | None:
        state[v] = 1
        path.append(v)
        for w in sorted(graph.get(v, ())):
            if state.get(w) == 1:
                return path[path.index(w):] + [w]
            if w not in state and (found := visit(w)):
                return found
        state[v] = 2
        path.pop()
        return None

    for v in sorted(graph):
        if v not in state and (found := visit(v)):
            return found
    return None


def test_the_walker_sees_lazy_imports_and_finds_a_circle():
    tree = import_graph()
    assert "profiles" in tree["data"] and "pool" in tree["data"]  # top-level imports are seen
    assert "reward" in tree["explore"]  # reward is imported inside a function there
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle_in_the_package():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


# Public names that more than one module defines on purpose, each with its reason. Anything else defined twice is
# one concept under two homes (or two concepts under one name): give it one home, or distinct names.
SHARED_NAMES = {
    "main": "each runnable module's entry point (`python -m xrouter_lite`, `xrouter_lite.serve`, `gpu_check`)",
    "log": "each module's own `logging.getLogger(__name__)`",
    "zero_margin": "metrics: the point estimate; verdicts: the same margin with its bootstrap interval",
    "Router": "routers.Router is the one-shot baselines' base class, episode.Router the type of an LM router "
              "callable; renaming either touches notebooks and tests that the subpackage move (#18) will rewrite",
}


def public_definitions() -> dict[str, list[str]]:
    """public top-level name -> the modules that define it (def, class or assignment; imports are not definitions)."""
    out: dict[str, list[str]] = {}
    for module, tree in _modules().items():
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names = [node.name]
            elif isinstance(node, ast.Assign):
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names = [node.target.id]
            else:
                names = []
            for name in names:
                if not name.startswith("_"):
                    out.setdefault(name, []).append(module)
    return out


def test_no_two_modules_define_the_same_public_name():
    twice = {n: m for n, m in public_definitions().items() if len(m) > 1 and n not in SHARED_NAMES}
    assert not twice, f"defined in more than one module: {twice}"
    stale = [n for n in SHARED_NAMES if len(public_definitions().get(n, [])) < 2]
    assert not stale, f"SHARED_NAMES lists names no longer defined twice: {stale}"
