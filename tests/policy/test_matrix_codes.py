"""The access matrix names only JDV_J66 type codes (the check ``policy.matrix`` made at load time
before the policy became pure, ADR 0001)."""

from __future__ import annotations

from dmp.policy.matrix import matrix, matrix_groups
from dmp.terminology import valueset


def test_every_type_of_the_matrix_is_a_j66_code() -> None:
    known = {c.code for c in valueset("J66")}
    for code, rights in matrix().items():
        unknown = (rights.read.types | rights.write.types) - known
        assert not unknown, f"matrix.json: types absent from J66 for profession {code}: {sorted(unknown)}"


def test_every_group_of_the_matrix_is_made_of_j66_codes() -> None:
    known = {c.code for c in valueset("J66")}
    for name, types in matrix_groups().items():
        unknown = sorted(types - known)
        assert not unknown, f"matrix.json: group {name} names types absent from J66: {unknown}"
