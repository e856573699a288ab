"""The profession x document-type matrix, as data (``matrix.json``).

The same table drives ``decide``, the SQL filters, the tests and the generated page
``docs/access-matrix.md``. The policy is pure (ADR 0001): that every type named here is a
JDV_J66 code is checked by ``tests/policy/test_matrix_codes.py``, not at load time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True, slots=True)
class TypeRule:
    """Either every type except ``types`` (``all_except``) or only ``types``."""

    all_except: bool
    types: frozenset[str]

    def allows(self, type_code: str) -> bool:
        return (type_code not in self.types) if self.all_except else (type_code in self.types)


@dataclass(frozen=True, slots=True)
class ProfessionRights:
    code: str
    read: TypeRule
    write: TypeRule
    source: str


def _expand(items: list[str], groups: dict[str, list[str]]) -> frozenset[str]:
    out: set[str] = set()
    for item in items:
        out |= set(groups[item[1:]]) if item.startswith("@") else {item}
    return frozenset(out)


def _rule(spec: dict[str, list[str]], groups: dict[str, list[str]]) -> TypeRule:
    if "all_except" in spec:
        return TypeRule(True, _expand(spec["all_except"], groups))
    return TypeRule(False, _expand(spec["only"], groups))


@cache
def matrix() -> dict[str, ProfessionRights]:
    data = json.loads(resources.files("dmp.policy").joinpath("matrix.json").read_text("utf-8"))
    groups: dict[str, list[str]] = data["groups"]
    return {
        code: ProfessionRights(code, _rule(row["read"], groups), _rule(row["write"], groups), row["source"])
        for code, row in data["professions"].items()
    }


def rights_of(profession: str | None) -> ProfessionRights | None:
    return matrix().get(profession or "")


@cache
def matrix_groups() -> dict[str, frozenset[str]]:
    data = json.loads(resources.files("dmp.policy").joinpath("matrix.json").read_text("utf-8"))
    return {k: frozenset(v) for k, v in data["groups"].items()}
