"""The layering rule of ADR 0001, enforced on the import graph of ``src/dmp``.

Every module under ``src/dmp`` is parsed with :mod:`ast`; every ``import x`` and
``from x import y`` is collected wherever it appears (module level, inside functions, inside
``if`` blocks), relative imports are resolved against the importing module, and
``from package import name`` resolves to the submodule ``package.name`` when there is one.
Importing ``dmp.a.b`` also runs ``dmp/a/__init__.py``, so an import implies an edge to each
ancestor package of its target (except the importer's own ancestors, which Python has already
initialised before the importer runs).

Two checks:

* **No import cycle between modules** (module granularity). Function-level (lazy) imports count:
  they hide a cycle from the interpreter but not from the reader. Imports guarded by
  ``if TYPE_CHECKING:`` do *not* count here, since they never run.
* **No forbidden edge between packages** (package granularity: ``dmp.domain``, ``dmp.services``,
  ``dmp.errors`` ...). ``TYPE_CHECKING``-only imports *do* count here: they create no runtime
  cycle but they still couple the importer to the imported layer.

Edges that are known and scheduled for removal are listed in ``EXEMPT`` with the reason; the test
also fails when an exempted edge disappears, so the list cannot go stale.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
ROOT = SRC / "dmp"


@dataclass(frozen=True)
class Edge:
    importer: str
    line: int
    imported: str
    type_only: bool
    implied: bool = False  # edge to an ancestor package run by importing one of its modules

    def __str__(self) -> str:
        return f"{self.importer}:{self.line} -> {self.imported}"


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(ROOT.rglob("*.py")):
        if "migrations" in path.relative_to(ROOT).parts:
            continue  # Alembic scripts are loaded by Alembic, not imported.
        found[_module_name(path)] = path
    return found


MODULES = _modules()


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _walk(node: ast.AST, type_only: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, type_only
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield from _walk_stmt(stmt, True)
            for stmt in child.orelse:
                yield from _walk_stmt(stmt, type_only)
        else:
            yield from _walk(child, type_only)


def _walk_stmt(stmt: ast.stmt, type_only: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    if isinstance(stmt, ast.Import | ast.ImportFrom):
        yield stmt, type_only
    else:
        yield from _walk(stmt, type_only)


def _ours(name: str) -> str | None:
    """The longest known module that ``name`` designates, or None when it is not ours."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in MODULES:
            return candidate
        parts.pop()
    return None


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            if (target := _ours(alias.name)) is not None:
                yield target
        return
    if node.level:
        is_package = MODULES[module].name == "__init__.py"
        base_parts = module.split(".")
        drop = node.level - 1 if is_package else node.level
        base_parts = base_parts[: len(base_parts) - drop]
        base = ".".join(base_parts + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        target = sub if sub in MODULES else _ours(base)
        if target is not None:
            yield target


def _edges_of(module: str, source: str) -> list[Edge]:
    edges: list[Edge] = []
    for node, type_only in _walk(ast.parse(source), False):
        for target in _targets(module, node):
            if target != module:
                edges.append(Edge(module, node.lineno, target, type_only))
            parts = target.split(".")
            for n in range(2, len(parts)):
                ancestor = ".".join(parts[:n])
                if ancestor in MODULES and ancestor != module and not module.startswith(ancestor + "."):
                    edges.append(Edge(module, node.lineno, ancestor, type_only, implied=True))
    return edges


def _edges() -> list[Edge]:
    edges: list[Edge] = []
    for module, path in MODULES.items():
        edges.extend(_edges_of(module, path.read_text(encoding="utf-8")))
    return edges


EDGES = _edges()


def package(module: str) -> str:
    """``dmp.services.access`` -> ``dmp.services``; ``dmp.errors`` -> ``dmp.errors``."""
    return ".".join(module.split(".")[:2])


def _find_cycles(graph: dict[str, set[str]]) -> list[tuple[list[str], list[str]]]:
    """(one shortest cycle, every module entangled) per strongly connected component (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0

    def strongconnect(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component: list[str] = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)

    cycles: list[tuple[list[str], list[str]]] = []
    for component in components:
        members = set(component)
        start = component[0]
        # Shortest path back to start inside the component (BFS).
        previous: dict[str, str] = {}
        frontier = [start]
        found = False
        while frontier and not found:
            following: list[str] = []
            for v in frontier:
                for w in sorted(graph[v] & members):
                    if w == start:
                        path = [v]
                        while path[-1] != start:
                            path.append(previous[path[-1]])
                        cycles.append(([*reversed(path), start], component))
                        found = True
                        break
                    if w not in previous:
                        previous[w] = v
                        following.append(w)
                if found:
                    break
            frontier = following
    return cycles


def test_no_import_cycle() -> None:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    lines: dict[tuple[str, str], int] = {}
    for edge in EDGES:
        if not edge.type_only:
            graph[edge.importer].add(edge.imported)
            lines.setdefault((edge.importer, edge.imported), edge.line)
    cycles = _find_cycles(graph)
    rendered = [
        " -> ".join([*(f"{a}:{lines[(a, b)]}" for a, b in zip(cycle, cycle[1:], strict=False)), cycle[-1]])
        + (f"\n    (entangled: {', '.join(component)})" if len(component) > 2 else "")
        for cycle, component in cycles
    ]
    assert not rendered, "import cycles:\n  " + "\n  ".join(rendered)


# Package -> packages of ours it may import (besides itself). None = no restriction.
ALLOWED: dict[str, frozenset[str] | None] = {
    "dmp.errors": frozenset(),
    "dmp.domain": frozenset({"dmp.errors"}),
    "dmp.policy": frozenset({"dmp.domain", "dmp.errors"}),
}
# Package -> packages of ours it must not import.
FORBIDDEN: dict[str, frozenset[str]] = {
    "dmp.auth": frozenset({"dmp.policy"}),
    "dmp.api": frozenset({"dmp.store"}),
    "dmp.web": frozenset({"dmp.store"}),
    "dmp.cli": frozenset({"dmp.store"}),
    "dmp.fhir": frozenset({"dmp.services"}),
}

# Known forbidden edges, keyed by "importer module:line -> imported module". Each one says why it
# is still there. Remove the entry together with the import.
EXEMPT: dict[str, str] = {}


def _forbidden(edge: Edge) -> bool:
    if edge.implied:
        return False  # the direct edge to the module is reported instead
    src, dst = package(edge.importer), package(edge.imported)
    if src == dst:
        return False
    allowed = ALLOWED.get(src)
    if allowed is not None and dst not in allowed:
        return True
    return dst in FORBIDDEN.get(src, frozenset())


def test_no_forbidden_edge() -> None:
    offending = sorted({(e.importer, e.line, str(e)) for e in EDGES if _forbidden(e)})
    new = [text for _, _, text in offending if text not in EXEMPT]
    assert not new, "forbidden imports (see ADR 0001):\n  " + "\n  ".join(new)


def test_exemptions_are_still_needed() -> None:
    offending = {str(e) for e in EDGES if _forbidden(e)}
    stale = sorted(set(EXEMPT) - offending)
    assert not stale, "exempted edges that no longer exist, remove them from EXEMPT:\n  " + "\n  ".join(stale)


def test_the_parser_sees_lazy_relative_and_type_only_imports() -> None:
    """Guard the checker itself against silently finding nothing."""
    source = """
from typing import TYPE_CHECKING
import dmp.errors
from . import catalogue
from ..store.schema import documents
if TYPE_CHECKING:
    from dmp.policy import Rule
def f():
    from dmp.services import access
    import json
"""
    edges = {(e.imported, e.type_only, e.implied) for e in _edges_of("dmp.fhir.validate", source)}
    assert edges == {
        ("dmp.errors", False, False),
        ("dmp.fhir", False, False),  # `catalogue` is no module: the name comes from the package
        ("dmp.store.schema", False, False),
        ("dmp.store", False, True),
        ("dmp.policy", True, False),
        ("dmp.services.access", False, False),
        ("dmp.services", False, True),
    }
    assert len(MODULES) > 50
    assert any(e.importer == "dmp.web" and e.imported == "dmp.web.oauth" for e in EDGES)


def test_the_checker_finds_cycles_and_forbidden_edges() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert _find_cycles(graph) == [(["a", "b", "c", "a"], ["a", "b", "c"])]
    assert _find_cycles({"a": {"b"}, "b": set()}) == []
    assert _forbidden(Edge("dmp.domain.document", 1, "dmp.terminology", False))
    assert _forbidden(Edge("dmp.policy.rules", 1, "dmp.store.schema", True))  # TYPE_CHECKING counts
    assert _forbidden(Edge("dmp.cli", 1, "dmp.store.db", False))
    assert not _forbidden(Edge("dmp.domain.document", 1, "dmp.errors", False))
    assert not _forbidden(Edge("dmp.policy.rules", 1, "dmp.domain.actor", False))
    assert not _forbidden(Edge("dmp.web.pro", 1, "dmp.services.consents", False))
    assert not _forbidden(Edge("dmp.services.access", 1, "dmp.store.schema", False))
