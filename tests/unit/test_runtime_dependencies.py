"""Every module that ``src/dmp`` imports is provided by the standard library or by a runtime
dependency of ``pyproject.toml`` — never by the ``test`` extra alone (issue 9: ``fhirclient``
was imported at run time but only installed with the tests, so a user's install failed)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "dmp"
# Imported by name at run time through importlib (dmp.fhir.validate).
DYNAMIC_IMPORTS = {"fhirclient"}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _runtime_distributions() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[\s<>=!~\[;]", spec, maxsplit=1)[0] for spec in project["dependencies"]}
    return {_normalise(n) for n in names}


def _top_level_imports() -> set[str]:
    found: set[str] = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found | DYNAMIC_IMPORTS


def test_every_imported_module_comes_from_a_runtime_dependency() -> None:
    providers = packages_distributions()
    runtime = _runtime_distributions()
    # Packages that runtime dependencies pull in themselves are not enough: name them.
    missing = {}
    for module in sorted(_top_level_imports() - set(sys.stdlib_module_names) - {"dmp"}):
        dists = {_normalise(d) for d in providers.get(module, [])}
        if not dists & runtime:
            missing[module] = sorted(dists) or ["(not installed)"]
    assert missing == {}, f"imported by src/dmp but not a runtime dependency: {missing}"


def test_the_test_extra_does_not_repeat_a_runtime_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["optional-dependencies"]["test"]
    test_extra = {_normalise(re.split(r"[\s<>=!~\[;]", s, maxsplit=1)[0]) for s in specs}
    assert not test_extra & _runtime_distributions()
