"""lsgan's internal import graph has no cycle.

The graph is read from the source with ``ast`` (nothing is imported): an edge ``a -> b`` for every
``import``/``from ... import`` in module ``a`` that names a module ``b`` of the package
(``from pkg import name`` points at ``pkg.name`` when that is a module, else at ``pkg``). Importing
``pkg.sub`` from outside ``pkg`` first runs ``pkg/__init__``, so such an import is an edge to ``pkg`` as
well. Imports under ``if TYPE_CHECKING:`` never run and are left out.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Set

PACKAGE = Path(__file__).resolve().parent.parent / "lsgan"


def _modules() -> Dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _targets(node, module: str, is_package: bool, modules: Dict[str, Path]) -> List[str]:
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:  # relative: from the module's package, one level up per extra dot
            pkg = module.split(".") if is_package else module.split(".")[:-1]
            pkg = pkg[:len(pkg) - (node.level - 1)]
            base = ".".join(pkg + ([base] if base else []))
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
    out = []
    for name in names:
        while name and name not in modules:  # import a.b.c of a module a.b: the module
            name = name.rpartition(".")[0]
        if name:
            out.append(name)
    return out


def import_graph(include_function_level: bool = False) -> Dict[str, Set[str]]:
    modules = _modules()
    graph: Dict[str, Set[str]] = defaultdict(set)

    def visit(module: str, node, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                if not (top or include_function_level):
                    continue
                is_package = modules[module].name == "__init__.py"
                for target in _targets(child, module, is_package, modules):
                    parts = target.split(".")
                    # the target and each enclosing package the importer is not inside (their __init__ runs first)
                    for i in range(2, len(parts) + 1):
                        pkg = ".".join(parts[:i])
                        if pkg != module and (pkg == target or not module.startswith(pkg + ".")):
                            graph[module].add(pkg)
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(module, child, False)
            else:
                visit(module, child, top)

    for module, path in modules.items():
        graph.setdefault(module, set())
        visit(module, ast.parse(path.read_text(), filename=str(path)), True)
    return graph


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def _describe(graph: Dict[str, Set[str]], found: List[List[str]]) -> str:
    lines = []
    for comp in found:
        members = set(comp)
        lines.append(" | ".join(f"{m} -> {', '.join(sorted(graph[m] & members))}" for m in comp))
    return "; ".join(lines)


def test_the_graph_sees_the_package():
    graph = import_graph()
    assert {"lsgan.errors", "lsgan.config", "lsgan.methods.base", "lsgan.run"} <= set(graph)
    assert "lsgan.errors" in graph["lsgan.config"] and "lsgan.methods" in graph["lsgan.config"]
    # an import of a submodule from outside its package runs the package's __init__ first
    assert "lsgan.methods" in graph["lsgan.config"] and "lsgan.methods.base" in graph["lsgan.config"]


def test_no_cycle_among_module_level_imports():
    graph = import_graph()
    found = cycles(graph)
    assert not found, f"module-level import cycles: {_describe(graph, found)}"


def test_no_cycle_counting_imports_inside_functions():
    """A lazy import is for start-up time or an optional dependency, never to hide a cycle."""
    graph = import_graph(include_function_level=True)
    found = cycles(graph)
    assert not found, f"import cycles (function-level imports included): {_describe(graph, found)}"


def test_errors_is_the_bottom():
    graph = import_graph(include_function_level=True)
    assert graph["lsgan.errors"] == set()


def test_a_cycle_is_reported():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert "a -> b" in _describe(graph, cycles(graph))
