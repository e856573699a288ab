"""The audit entry's fields, defined once: the dataclass every other list is derived from.

Each field of :class:`AuditEntryRow` is one column of ``audit_entry``, in column order, and
carries in its metadata the column type, whether it may be NULL and its part in the hash
(:class:`HashRole`). From this one definition come:

* the ``audit_entry`` table (:func:`entry_columns`, used by :mod:`dmp.store.schema_audit`);
* :class:`dmp.audit.StoredEntry` (a subclass adding behaviour, no field), its ``values()``
  and ``from_row``;
* the hashed fields and their roles (``dmp.audit.entry.FIELDS``, ``BODY_FIELDS``) and the
  storage form of a record (``dmp.audit.entry.storage_values``, whose fields are checked
  against :class:`dmp.audit.AuditRecord` when the module loads).

It lives in the store package and imports nothing from :mod:`dmp.audit`, so that the table
can be built from it without an import cycle. Adding, removing or retyping a field here
changes the table (write a migration) and, for a ``BODY`` field, the hash (bump
``dmp.audit.entry.FORMAT_VERSION``; the known-answer tests in tests/unit/test_audit_hash.py
say so).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from sqlalchemy import BigInteger, Column, String, Text, Uuid
from sqlalchemy.types import TypeEngine

from dmp.store.types import UtcDateTime


class HashRole(StrEnum):
    """How a field enters the entry's hash (see ``dmp.audit.entry``)."""

    BODY = "body"  # a key of the canonical JSON body (sorted keys, so declaration order is moot)
    POSITION = "position"  # seq: 8 bytes, big endian, after the body digest
    LINK = "link"  # prev_hash: 32 bytes after the position
    RESULT = "result"  # hash: what is computed


@dataclass(frozen=True)
class ColumnSpec:
    type: TypeEngine[Any] | type[TypeEngine[Any]]
    nullable: bool
    hash_role: HashRole
    autoincrement: bool | None = None  # False on integer columns that are not counters


def column(
    type_: TypeEngine[Any] | type[TypeEngine[Any]],
    *,
    nullable: bool = False,
    hash_role: HashRole = HashRole.BODY,
    autoincrement: bool | None = None,
) -> dict[str, ColumnSpec]:
    """The metadata of one field: ``name: T = field(metadata=column(...))``."""
    return {"column": ColumnSpec(type_, nullable, hash_role, autoincrement)}


def spec(f: dataclasses.Field[Any]) -> ColumnSpec:
    value = f.metadata["column"]
    if not isinstance(value, ColumnSpec):
        raise TypeError(f"audit entry field {f.name} declares no column")
    return value


@dataclass(frozen=True, kw_only=True)
class AuditEntryRow:
    """One ``audit_entry`` row, storage forms (strings), position and hashes."""

    patient_id: UUID = field(metadata=column(Uuid))  # nil UUID when the action concerns no record
    seq: int = field(  # 1, 2, 3… per record
        metadata=column(BigInteger, hash_role=HashRole.POSITION, autoincrement=False)
    )
    id: UUID = field(metadata=column(Uuid))  # the AuditEvent id
    at: datetime = field(metadata=column(UtcDateTime))
    actor_kind: str = field(metadata=column(String(16)))  # professional | patient | representative | …
    actor_id: str = field(metadata=column(String(64)))  # IDNPS, INS, desk agent id…
    actor_name: str = field(metadata=column(Text))
    actor_profession: str | None = field(metadata=column(String(8), nullable=True))  # TRE_G15 code
    actor_specialty: str | None = field(metadata=column(String(16), nullable=True))
    actor_structure_id: str | None = field(metadata=column(String(64), nullable=True))
    actor_structure_name: str | None = field(metadata=column(Text, nullable=True))
    software: str | None = field(metadata=column(Text, nullable=True))
    # the principal the actor acts for (id)
    on_behalf_of: str | None = field(metadata=column(String(64), nullable=True))
    on_behalf_of_name: str | None = field(metadata=column(Text, nullable=True))
    # representative | administrator | delegate
    on_behalf_of_role: str | None = field(metadata=column(String(16), nullable=True))
    action: str = field(metadata=column(String(32)))  # dmp.audit.actions.AuditAction
    outcome: str = field(metadata=column(String(8)))  # success | refused | error
    rule_id: str | None = field(metadata=column(String(64), nullable=True))  # the policy rule that decided
    access_mode: str = field(metadata=column(String(20)))  # normal | medecin_traitant | bris_de_glace | …
    # break-glass justification, as signed by the card
    justification: str | None = field(metadata=column(Text, nullable=True))
    # JSON list of references ("DocumentReference/<id>"), hashed as stored
    target_ids: str = field(metadata=column(Text))
    detail: str | None = field(metadata=column(Text, nullable=True))  # French, never health content
    source_address: str | None = field(metadata=column(String(64), nullable=True))
    prev_hash: str = field(metadata=column(String(64), hash_role=HashRole.LINK))
    hash: str = field(metadata=column(String(64), hash_role=HashRole.RESULT))


ROW_FIELDS: tuple[dataclasses.Field[Any], ...] = dataclasses.fields(AuditEntryRow)
COLUMNS = tuple(f.name for f in ROW_FIELDS)  # every column, in table order


def names_with(*roles: HashRole) -> tuple[str, ...]:
    """The fields whose hash role is one of ``roles``, in column order."""
    return tuple(f.name for f in ROW_FIELDS if spec(f).hash_role in roles)


def entry_columns() -> list[Column[Any]]:
    """Fresh ``Column`` objects for the ``audit_entry`` table, in field order."""
    out: list[Column[Any]] = []
    for f in ROW_FIELDS:
        s = spec(f)
        kw: dict[str, Any] = {"nullable": s.nullable}
        if s.autoincrement is not None:
            kw["autoincrement"] = s.autoincrement
        out.append(Column(f.name, s.type, **kw))
    return out
