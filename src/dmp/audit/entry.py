"""One audit entry: what the caller gives, what is stored, and its canonical hash.

The hash of entry *n* of a record is SHA-256 over the canonical serialization of all its
fields **and** ``prev_hash`` (the hash of entry *n-1*, or 64 zeros for the first): sorted-key
JSON, no whitespace, UTF-8, timestamps as UTC ISO 8601 with microseconds. Because the
record id and the position are inside the hash, an entry cannot be moved to another
record or position without its hash changing.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

from dmp.audit.actions import AccessMode, AuditAction, Outcome
from dmp.domain.actor import Actor, ActorKind, PurposeOfUse
from dmp.store.audit_row import COLUMNS, AuditEntryRow, HashRole, names_with
from dmp.store.shard import is_nil_key, nil_key

FORMAT_VERSION = 2
NIL_PATIENT = UUID(int=0)  # the first chain of entries that concern no record (failed logins…)
GENESIS = "0" * 64  # prev_hash of every chain's first entry


def is_nil_chain(patient_id: UUID) -> bool:
    """Whether ``patient_id`` is one of the chains of entries that concern no record.

    Such entries are spread over ``dmp.store.shard.NIL_KEYS`` chains (``UUID(int=k)``), so
    that no single chain head is locked by every record-less append (ADR 0009);
    :data:`NIL_PATIENT`, the only one before, is the first of them.
    """
    return is_nil_key(patient_id)


def nil_chain(actor_kind: str, actor_id: str) -> UUID:
    """The record-less chain of an actor's entries: a stable hash of the actor, so that
    different actors' entries land on different chains and one actor's stay in order."""
    return nil_key("audit", f"{actor_kind}:{actor_id}")

_PURPOSE_MODE = {
    PurposeOfUse.TREAT: AccessMode.NORMAL,
    PurposeOfUse.ETREAT: AccessMode.BRIS_DE_GLACE,
    PurposeOfUse.CENTRE15: AccessMode.CENTRE_15,
}
_KIND_MODE = {ActorKind.PATIENT: AccessMode.PATIENT, ActorKind.REPRESENTATIVE: AccessMode.REPRESENTATIVE}
ON_BEHALF_ROLES = ("representative", "administrator", "delegate")


class DecisionLike(Protocol):
    """What the trail reads from an access-policy decision (``dmp.policy.Decision``)."""

    @property
    def rule_id(self) -> str: ...

    @property
    def mode(self) -> Any: ...  # a str-valued enum or None

    @property
    def permitted(self) -> bool: ...

    @property
    def reason(self) -> str: ...


def _reference(target: str | UUID) -> str:
    return f"DocumentReference/{target}" if isinstance(target, UUID) else target


@dataclass(frozen=True, kw_only=True)
class AuditRecord:
    """An action to trace, as the use case describes it (before it gets a position)."""

    action: AuditAction | str
    patient_id: UUID | None  # None: the action concerns no record (stored under NIL_PATIENT)
    at: datetime
    actor_kind: str
    actor_id: str
    actor_name: str
    actor_profession: str | None = None
    actor_specialty: str | None = None
    actor_structure_id: str | None = None
    actor_structure_name: str | None = None
    software: str | None = None
    on_behalf_of: str | None = None
    on_behalf_of_name: str | None = None
    on_behalf_of_role: str | None = None
    outcome: Outcome | str = Outcome.SUCCESS
    rule_id: str | None = None
    access_mode: AccessMode | str = AccessMode.NORMAL
    justification: str | None = None
    target_ids: tuple[str, ...] = ()
    detail: str | None = None
    source_address: str | None = None
    id: UUID = field(default_factory=uuid.uuid4)

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError("AuditRecord.at doit être une date avec fuseau horaire")
        AuditAction(str(self.action))  # ValueError on an unknown code: a programming error
        Outcome(str(self.outcome))
        AccessMode(str(self.access_mode))
        if self.on_behalf_of_role is not None and self.on_behalf_of_role not in ON_BEHALF_ROLES:
            raise ValueError(f"on_behalf_of_role inconnu : {self.on_behalf_of_role}")
        if not isinstance(self.target_ids, tuple):
            object.__setattr__(self, "target_ids", tuple(self.target_ids))

    @classmethod
    def for_actor(
        cls,
        actor: Actor,
        action: AuditAction,
        *,
        patient_id: UUID | None,
        at: datetime,
        decision: DecisionLike | None = None,
        outcome: Outcome | None = None,
        rule_id: str | None = None,
        access_mode: AccessMode | str | None = None,
        targets: Iterable[str | UUID] = (),
        detail: str | None = None,
        source_address: str | None = None,
        on_behalf_of: str | None = None,
        on_behalf_of_name: str | None = None,
        on_behalf_of_role: str | None = None,
    ) -> AuditRecord:
        """The entry for ``actor`` doing ``action``; explicit arguments win over ``decision``.

        Without a decision, the access mode follows the purpose of use signed in the card
        assertion (TREAT → normal, ETREAT → bris de glace, CENTRE15 → centre 15); a refused
        decision gives outcome ``refused`` and its reason as detail.
        """
        mode: str | None = str(access_mode) if access_mode is not None else None
        if mode is None and decision is not None and decision.mode is not None:
            mode = str(decision.mode)
        if mode is None:
            mode = _KIND_MODE.get(actor.kind) or _PURPOSE_MODE.get(actor.purpose, AccessMode.NORMAL)
        if outcome is None:
            outcome = Outcome.REFUSED if decision is not None and not decision.permitted else Outcome.SUCCESS
        if detail is None and decision is not None and not decision.permitted and decision.reason:
            detail = decision.reason
        return cls(
            action=action,
            patient_id=patient_id,
            at=at,
            actor_kind=actor.kind.value,
            actor_id=actor.id,
            actor_name=actor.name,
            actor_profession=actor.profession,
            actor_specialty=actor.specialty,
            actor_structure_id=actor.structure_id,
            actor_structure_name=actor.structure_name,
            software=actor.software,
            on_behalf_of=on_behalf_of,
            on_behalf_of_name=on_behalf_of_name,
            on_behalf_of_role=on_behalf_of_role,
            outcome=outcome,
            rule_id=rule_id if rule_id is not None else (decision.rule_id if decision is not None else None),
            access_mode=mode,
            justification=actor.justification,
            target_ids=tuple(_reference(t) for t in targets),
            detail=detail,
            # forward-compatible: taken from the actor if authentication ever records it there
            source_address=source_address
            if source_address is not None
            else getattr(actor, "source_address", None),
        )


# Every list of an entry's fields derives from the one definition, dmp.store.audit_row.
# The hashed fields, in storage form; "v" (format version) and "prev_hash" are added.
FIELDS = names_with(HashRole.BODY, HashRole.POSITION)
BODY_FIELDS = names_with(HashRole.BODY)  # the canonical JSON body: FIELDS but seq
RECORD_FIELDS = BODY_FIELDS  # what an AuditRecord gives (the chain assigns seq and the hashes)

if {f.name for f in fields(AuditRecord)} != set(RECORD_FIELDS):  # pragma: no cover (import-time check)
    raise TypeError("AuditRecord and dmp.store.audit_row.AuditEntryRow disagree on an entry's fields")


def _same(value: Any) -> Any:
    return value


def _targets_json(value: tuple[str, ...]) -> str:
    return json.dumps(list(value), separators=(",", ":"), ensure_ascii=False)


# The storage form of the fields that are not stored as given.
_STORAGE_FORM: dict[str, Callable[[Any], Any]] = {
    "patient_id": lambda v: v or NIL_PATIENT,
    "at": lambda v: v.astimezone(UTC),
    "action": str,
    "outcome": str,
    "access_mode": str,
    "target_ids": _targets_json,
}
if not set(_STORAGE_FORM) <= set(RECORD_FIELDS):  # pragma: no cover (import-time check)
    raise TypeError(f"storage form of unknown fields: {sorted(set(_STORAGE_FORM) - set(RECORD_FIELDS))}")


@dataclass(frozen=True, kw_only=True)
class StoredEntry(AuditEntryRow):
    """An entry as stored: storage forms (strings), its position and hashes.

    Its fields are :class:`dmp.store.audit_row.AuditEntryRow`'s, the ``audit_entry`` columns.
    """

    @property
    def targets(self) -> list[str]:
        try:
            value = json.loads(self.target_ids)
        except ValueError:
            return []
        return [str(v) for v in value] if isinstance(value, list) else []

    @property
    def has_record(self) -> bool:
        return not is_nil_chain(self.patient_id)

    def values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in COLUMNS}

    @classmethod
    def from_row(cls, row: Any) -> StoredEntry:
        """From an ``audit_entry`` row (a SQLAlchemy Row or mapping), or a StoredEntry."""
        if isinstance(row, StoredEntry):
            return row
        m: Mapping[str, Any] = row._mapping if hasattr(row, "_mapping") else row
        return cls(**{name: m[name] for name in COLUMNS})

    @classmethod
    def build(cls, rec: AuditRecord, seq: int, prev_hash: str) -> StoredEntry:
        values = storage_values(rec)
        values["seq"] = seq
        return cls(**values, prev_hash=prev_hash, hash=entry_hash(values, prev_hash))


def storage_values(rec: AuditRecord) -> dict[str, Any]:
    """The stored form of ``rec``'s fields (FIELDS but ``seq``, which the chain assigns)."""
    return {name: _STORAGE_FORM.get(name, _same)(getattr(rec, name)) for name in RECORD_FIELDS}


def _timestamp(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("horodatage sans fuseau horaire")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_bytes(values: Mapping[str, Any], prev_hash: str | None = None) -> bytes:
    """The entry's body as hashed: sorted-key compact UTF-8 JSON of FIELDS but ``seq``.

    The position (``seq``) and the link (``prev_hash``) enter the hash in ``entry_hash``, in
    binary, so that PostgreSQL can chain an entry in the statement that inserts it
    (``prev_hash`` is accepted here and ignored).
    """
    doc: dict[str, Any] = {"v": FORMAT_VERSION}
    for name in BODY_FIELDS:
        value = values[name]
        if name == "at":
            value = _timestamp(value)
        elif isinstance(value, UUID):
            value = str(value)
        doc[name] = value
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def body_digest(values: Mapping[str, Any]) -> bytes:
    return hashlib.sha256(canonical_bytes(values)).digest()


def chain_hash(digest: bytes, seq: int, prev_hash: str) -> str:
    """SHA-256 (hex) of body digest, seq (8 bytes, big endian) and the previous hash (32 bytes).

    PostgreSQL computes the same: ``sha256(digest || int8send(seq) || decode(prev, 'hex'))``.
    """
    link = int(seq).to_bytes(8, "big", signed=True) + bytes.fromhex(prev_hash)
    return hashlib.sha256(digest + link).hexdigest()


def entry_hash(values: Mapping[str, Any], prev_hash: str) -> str:
    """SHA-256 (hex) of an entry given its stored field values and its predecessor's hash."""
    return chain_hash(body_digest(values), int(values["seq"]), prev_hash)
