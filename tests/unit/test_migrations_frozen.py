"""Historical migrations are frozen: none imports the application.

A migration that imports ``dmp.*`` runs today's code, not the code of its revision: a
later edit of the application would silently change what an old step does (and what a
fresh database gets). They carry the literal DDL and SQL they produced instead.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

VERSIONS = Path(__file__).resolve().parents[2] / "src" / "dmp" / "store" / "migrations" / "versions"
MIGRATIONS = sorted(VERSIONS.glob("*.py"))


def _imported_modules(path: Path) -> list[str]:
    """Every module the file imports, at any depth (function-local imports included)."""
    out: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            out.append("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name | ast.Attribute):
            name = node.func.id if isinstance(node.func, ast.Name) else node.func.attr
            if name in ("__import__", "import_module"):
                out.append("<dynamic import>")
    return out


def test_there_are_migrations() -> None:
    assert len(MIGRATIONS) >= 2


@pytest.mark.parametrize("path", MIGRATIONS, ids=lambda p: p.name)
def test_migration_imports_nothing_from_the_application(path: Path) -> None:
    offending = [
        m for m in _imported_modules(path) if m == "dmp" or m.startswith(("dmp.", ".", "<dynamic"))
    ]
    assert offending == [], f"{path.name} imports {offending}: freeze what it needs into the file"
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    named = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id == "dmp"]
    assert named == [], f"{path.name} uses the dmp package (lines {named})"
