"""The package's layout: no import circle (lazy imports included), one module per public name, subpackages that say
what they hold and re-export only what their modules define."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "xrouter_lite"
SUBPACKAGES = ("pool", "routing", "training", "explore", "serve")  # in dependency order: each imports only earlier ones
BENEATH = ("xrouter_lite", "xrouter_lite.errors", "xrouter_lite.profiles", "xrouter_lite.notebook")  # top-level
# modules that a subpackage may import (the lazy re-export helper, user errors, every knob and path, figure rendering)


def _dotted(path: Path) -> str:
    parts = ("xrouter_lite",) + path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, ast.Module]:
    """dotted module name (`xrouter_lite.pool.table`; a package by its own name) -> its parsed source."""
    return {_dotted(p): ast.parse(p.read_text(encoding="utf-8")) for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, tree: ast.Module, known) -> list[tuple[ast.AST, str, str | None]]:
    """(node, the package module it imports, the name taken from it or None) for every import anywhere in the file."""
    is_package = (PACKAGE / Path(*name.split(".")[1:]) / "__init__.py").is_file() if "." in name else True
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                hits = [".".join(parts[:i]) for i in range(len(parts), 0, -1) if ".".join(parts[:i]) in known]
                if hits:
                    out.append((node, hits[0], None))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against this module's package
                package = name.split(".") if is_package else name.split(".")[:-1]
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            if base not in known:
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.append((node, sub, None) if sub in known else (node, base, alias.name))
    return out


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports anywhere in its file: top level, in functions, under TYPE_CHECKING.

    `from xrouter_lite.pool import upstream` imports the module `xrouter_lite.pool.upstream`; `from xrouter_lite.pool
    import ReplayPool` the package `xrouter_lite.pool` (whose lazy re-exports load on first use, see below)."""
    trees = _modules()
    return {name: {dep for _, dep, _ in _imports(name, tree, trees)} - {name, "xrouter_lite.__main__"}
            for name, tree in trees.items()}


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
    assert {"xrouter_lite.profiles", "xrouter_lite.pool.core"} <= tree["xrouter_lite.pool.table"]  # top-level imports
    assert "xrouter_lite.routing.reward" in tree["xrouter_lite.explore.figures"]  # imported inside a function there
    assert "xrouter_lite.pool.upstream" in tree["xrouter_lite.profiles"]  # `from xrouter_lite.pool import upstream`
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle_in_the_package():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


# Public names that more than one module defines on purpose, each with its reason. Anything else defined twice is
# one concept under two homes (or two concepts under one name): give it one home, or distinct names.
SHARED_NAMES = {
    "main": "each runnable module's entry point (`python -m xrouter_lite`, `xrouter_lite.serve` (`serve.cli`), "
            "`training.gpu_check`)",
    "log": "each module's own `logging.getLogger(__name__)`",
    "zero_margin": "metrics: the point estimate; verdicts: the same margin with its bootstrap interval",
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


def _exports(tree: ast.Module) -> dict[str, str]:
    """A subpackage's `_EXPORTS` literal: name -> module in that subpackage."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in node.targets):
            return ast.literal_eval(node.value)
    return {}


def test_every_subpackage_says_what_it_holds_and_re_exports_what_its_modules_define():
    trees, defined = _modules(), public_definitions()
    for sub in SUBPACKAGES:
        package = f"xrouter_lite.{sub}"
        doc = ast.get_docstring(trees[package], clean=False) or ""
        listed = {line.split()[0] for line in doc.splitlines() if line.startswith("    ") and line.split()}
        modules = {m.rsplit(".", 1)[1] for m in trees if m.startswith(package + ".")}
        assert modules <= listed, f"{package}'s docstring does not describe {sorted(modules - listed)}"
        exports = _exports(trees[package])
        assert exports, f"{package} re-exports nothing"
        wrong = {n: m for n, m in exports.items() if f"{package}.{m}" not in defined.get(n, [])}
        assert not wrong, f"{package}._EXPORTS names a module that does not define the name: {wrong}"


def test_modules_import_each_other_by_full_name_and_subpackages_only_downwards():
    """A module never takes a name from a subpackage's `__init__` (its re-exports are for notebooks), so the graph
    above is the whole story; pool <- routing <- training <- explore <- serve: no subpackage imports a later one;
    and of the top-level modules a subpackage imports only those BENEATH it."""
    trees = _modules()
    packages = {"xrouter_lite"} | {f"xrouter_lite.{s}" for s in SUBPACKAGES}
    via_init = sorted(f"{name}: from {dep} import {what}" for name, tree in trees.items()
                      for _, dep, what in _imports(name, tree, trees)
                      if dep in packages and what is not None and what != "_lazy_exports")
    assert not via_init, f"import from the defining module instead: {via_init}"
    rank = {f"xrouter_lite.{s}": i for i, s in enumerate(SUBPACKAGES)}

    def rank_of(module: str) -> int | None:
        return rank.get(".".join(module.split(".")[:2]))

    upward = sorted(f"{m} -> {d}" for m, deps in import_graph().items() for d in deps
                    if rank_of(m) is not None and rank_of(d) is not None and rank_of(d) > rank_of(m))
    assert not upward, f"a subpackage imports a later one: {upward}"
    above = sorted(f"{m} -> {d}" for m, deps in import_graph().items() for d in deps
                   if rank_of(m) is not None and rank_of(d) is None and d not in BENEATH)
    assert not above, f"a subpackage imports a top-level module that is not among BENEATH: {above}"


def test_a_long_module_states_why_it_is_one_module():
    long = {p.relative_to(PACKAGE).as_posix(): p for p in PACKAGE.rglob("*.py")
            if len(p.read_text().splitlines()) > 500}
    unexplained = sorted(name for name, p in long.items()
                         if "Why one module:" not in (ast.get_docstring(ast.parse(p.read_text())) or ""))
    assert not unexplained, f"over 500 lines without 'Why one module:' in the docstring: {unexplained}"
