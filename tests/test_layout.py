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
