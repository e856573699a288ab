"""The canonical serialization and hash of audit entries, and the Merkle root of anchors."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID

import pytest

from dmp.audit import GENESIS, NIL_PATIENT, AccessMode, AuditAction, AuditRecord, Outcome, StoredEntry
from dmp.audit.entry import FIELDS, canonical_bytes, entry_hash
from dmp.audit.merkle import head_leaf, heads_root, leaf_hash, merkle_root, node_hash
from dmp.domain.actor import Actor, ActorKind, PurposeOfUse
from dmp.store.schema_audit import audit_anchor_head, audit_entry, audit_head

PID = UUID("6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f")
AT = datetime(2026, 11, 23, 9, 30, 15, 123456, tzinfo=UTC)


def record(**kw: object) -> AuditRecord:
    base: dict[str, object] = {
        "action": AuditAction.DOCUMENT_RETRIEVE,
        "patient_id": PID,
        "at": AT,
        "actor_kind": "professional",
        "actor_id": "810001234565",
        "actor_name": "Charles MULLER",
        "actor_profession": "10",
        "actor_structure_id": "1750803447",
        "actor_structure_name": "Cabinet du Parc",
        "software": "LPS Démo 1.0",
        "rule_id": "R-LECTURE-PS",
        "target_ids": ("DocumentReference/0d9a1c5e-1111-4222-8333-944455556666",),
        "source_address": "192.0.2.10",
        "id": UUID("11111111-2222-4333-8444-555555555555"),
    }
    base.update(kw)
    return AuditRecord(**base)  # type: ignore[arg-type]


def test_canonical_form_is_sorted_compact_utf8_json_of_every_field() -> None:
    e = StoredEntry.build(record(), 1, GENESIS)
    raw = canonical_bytes(e.values(), e.prev_hash)
    doc = json.loads(raw)
    # The body: every field but the position; position and link are chained in binary.
    assert set(doc) == {*FIELDS, "v"} - {"seq"}
    assert raw == json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert doc["at"] == "2026-11-23T09:30:15.123456Z"
    assert doc["patient_id"] == str(PID) and doc["v"] == 2
    assert "LPS Démo" in raw.decode("utf-8")  # UTF-8, not \u escapes
    link = (1).to_bytes(8, "big") + bytes.fromhex(GENESIS)
    assert e.hash == hashlib.sha256(hashlib.sha256(raw).digest() + link).hexdigest()


def test_known_answer() -> None:
    """Freezes the format: a change here breaks every stored chain (bump FORMAT_VERSION)."""
    e = StoredEntry.build(record(), 1, GENESIS)
    assert e.hash == entry_hash(e.values(), GENESIS)
    body = (
        b'{"access_mode":"normal","action":"document.retrieve","actor_id":"810001234565",'
        b'"actor_kind":"professional","actor_name":"Charles MULLER","actor_profession":"10",'
        b'"actor_specialty":null,"actor_structure_id":"1750803447","actor_structure_name":"Cabinet du Parc",'
        b'"at":"2026-11-23T09:30:15.123456Z","detail":null,"id":"11111111-2222-4333-8444-555555555555",'
        b'"justification":null,"on_behalf_of":null,"on_behalf_of_name":null,"on_behalf_of_role":null,'
        b'"outcome":"success","patient_id":"6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f",'
        b'"rule_id":"R-LECTURE-PS",'
        b'"software":"LPS D\xc3\xa9mo 1.0","source_address":"192.0.2.10",'
        b'"target_ids":"[\\"DocumentReference/0d9a1c5e-1111-4222-8333-944455556666\\"]","v":2}'
    )
    expected = hashlib.sha256(hashlib.sha256(body).digest() + (1).to_bytes(8, "big") + bytes(32)).hexdigest()
    assert e.hash == expected


def test_same_instant_in_another_time_zone_hashes_the_same() -> None:
    paris = AT.astimezone(timezone(timedelta(hours=1)))
    same = StoredEntry.build(record(at=paris), 1, GENESIS)
    assert same.hash == StoredEntry.build(record(), 1, GENESIS).hash


@pytest.mark.parametrize("name", [f for f in FIELDS if f not in ("patient_id", "seq")])
def test_every_field_is_covered_by_the_hash(name: str) -> None:
    e = StoredEntry.build(record(), 1, GENESIS)
    values = e.values()
    original = values[name]
    if isinstance(original, datetime):
        values[name] = original + timedelta(microseconds=1)
    elif isinstance(original, UUID):
        values[name] = UUID(int=original.int + 1)
    elif original is None:
        values[name] = "x"
    else:
        values[name] = original + " "
    assert entry_hash(values, e.prev_hash) != e.hash


def test_position_record_and_predecessor_are_covered_by_the_hash() -> None:
    e = StoredEntry.build(record(), 2, "a" * 64)
    values = e.values()
    assert entry_hash({**values, "seq": 3}, e.prev_hash) != e.hash
    assert entry_hash({**values, "patient_id": NIL_PATIENT}, e.prev_hash) != e.hash
    assert entry_hash(values, "b" * 64) != e.hash


def test_record_without_patient_goes_to_the_nil_chain() -> None:
    e = StoredEntry.build(record(patient_id=None, action=AuditAction.PATIENT_LOGIN), 1, GENESIS)
    assert e.patient_id == NIL_PATIENT and not e.has_record


def test_record_validation() -> None:
    with pytest.raises(ValueError):
        record(at=datetime(2026, 11, 23, 9, 30))  # naive
    with pytest.raises(ValueError):
        record(action="document.teleport")
    with pytest.raises(ValueError):
        record(outcome="maybe")
    with pytest.raises(ValueError):
        record(access_mode="backdoor")
    with pytest.raises(ValueError):
        record(on_behalf_of_role="friend")


@dataclasses.dataclass(frozen=True)
class _Decision:
    rule_id: str
    mode: AccessMode | None
    permitted: bool
    reason: str = ""


def test_for_actor_takes_mode_from_purpose_and_decision() -> None:
    doctor = Actor(ActorKind.PROFESSIONAL, "810001234565", "Charles MULLER", profession="10",
                   structure_name="Cabinet du Parc", purpose=PurposeOfUse.ETREAT,
                   justification="patient inconscient", software="LPS 1.0")
    rec = AuditRecord.for_actor(doctor, AuditAction.BREAK_GLASS, patient_id=PID, at=AT,
                                targets=[UUID(int=5)], source_address="192.0.2.1")
    assert rec.access_mode == AccessMode.BRIS_DE_GLACE
    assert rec.justification == "patient inconscient"
    assert rec.target_ids == (f"DocumentReference/{UUID(int=5)}",)
    assert rec.software == "LPS 1.0" and rec.outcome == Outcome.SUCCESS

    centre15 = dataclasses.replace(doctor, purpose=PurposeOfUse.CENTRE15, justification=None)
    rec = AuditRecord.for_actor(centre15, AuditAction.CENTRE_15, patient_id=PID, at=AT)
    assert rec.access_mode == "centre_15"

    normal = dataclasses.replace(doctor, purpose=PurposeOfUse.TREAT, justification=None)
    permit = _Decision("R-MT", AccessMode.MEDECIN_TRAITANT, True)
    rec = AuditRecord.for_actor(normal, AuditAction.RECORD_SEARCH, patient_id=PID, at=AT, decision=permit)
    assert (rec.rule_id, rec.access_mode, rec.outcome) == ("R-MT", "medecin_traitant", "success")

    deny = _Decision("R-BLOQUE", None, False, "professionnel bloqué par le patient")
    rec = AuditRecord.for_actor(normal, AuditAction.DOCUMENT_RETRIEVE, patient_id=PID, at=AT, decision=deny)
    assert (rec.rule_id, rec.access_mode, rec.outcome) == ("R-BLOQUE", "normal", "refused")
    assert rec.detail == "professionnel bloqué par le patient"

    patient = Actor(ActorKind.PATIENT, "279035121518989", "Marie DUPONT")
    rec = AuditRecord.for_actor(patient, AuditAction.PATIENT_LOGIN, patient_id=PID, at=AT)
    assert rec.access_mode == "patient"


def test_trail_tables_are_keyed_by_record_and_outlive_it() -> None:
    for table in (audit_entry, audit_head, audit_anchor_head):
        assert "patient_id" in table.primary_key.columns
    assert not audit_entry.foreign_keys  # no FK to patient: the trail survives the record


# ---- Merkle tree (RFC 6962) -------------------------------------------------------------

# Test vectors of the Certificate Transparency reference implementation (merkle_tree_test.cc).
CT_LEAVES = [b"", b"\x00", b"\x10", b"\x20\x21", b"\x30\x31", b"\x40\x41\x42\x43",
             bytes(range(0x50, 0x58)), bytes(range(0x60, 0x70))]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


@pytest.mark.parametrize("n", range(1, 9))
def test_merkle_root_matches_rfc6962_vectors(n: int) -> None:
    assert merkle_root(CT_LEAVES[:n]).hex() == CT_ROOTS[n - 1]


def test_merkle_root_edge_cases() -> None:
    assert merkle_root([]).hex() == hashlib.sha256(b"").hexdigest()
    assert merkle_root([b"a"]) == leaf_hash(b"a")
    assert merkle_root([b"a", b"b"]) == node_hash(leaf_hash(b"a"), leaf_hash(b"b"))
    # leaves and nodes are domain-separated: a node never equals the leaf of its children's bytes
    assert merkle_root([b"a", b"b"]) != leaf_hash(leaf_hash(b"a") + leaf_hash(b"b"))
    # five leaves: split 4 + 1, not 3 + 2
    five = [b"1", b"2", b"3", b"4", b"5"]
    assert merkle_root(five) == node_hash(merkle_root(five[:4]), leaf_hash(b"5"))


def test_heads_root_depends_on_every_head_not_on_input_order() -> None:
    heads = [(UUID(int=i), i, f"{i:064x}") for i in range(1, 8)]
    root = heads_root(heads)
    assert heads_root(list(reversed(heads))) == root
    assert heads_root(heads[:-1]) != root
    changed = [*heads[:3], (heads[3][0], heads[3][1] + 1, heads[3][2]), *heads[4:]]
    assert heads_root(changed) != root
    assert head_leaf(UUID(int=1), 2, "ab") == f"{UUID(int=1)}:2:ab".encode()


def _every_field_set() -> AuditRecord:
    """An entry with every optional field set, non-ASCII, quotes and a non-UTC time zone."""
    return AuditRecord(
        action=AuditAction.DOCUMENT_RETRIEVE,
        patient_id=PID,
        at=datetime(2026, 11, 23, 10, 30, 15, 5, tzinfo=timezone(timedelta(hours=1))),
        actor_kind="representative",
        actor_id="INS-1",
        actor_name="Zoé « Ñandú » O'Brien",
        actor_profession="10",
        actor_specialty="SM26",
        actor_structure_id="1750803447",
        actor_structure_name='Cabinet\tdu "Parc"',
        software="LPS Démo 1.0",
        on_behalf_of="2990175123456",
        on_behalf_of_name="Léa MARTIN",
        on_behalf_of_role="representative",
        outcome=Outcome.REFUSED,
        rule_id="R-X",
        access_mode=AccessMode.BRIS_DE_GLACE,
        justification="urgence vitale",
        target_ids=("DocumentReference/a", "Patient/é"),
        detail="accès refusé : ✓",
        source_address="2001:db8::1",
        id=UUID("11111111-2222-4333-8444-555555555555"),
    )


_BARE = AuditRecord(
    action=AuditAction.PATIENT_LOGIN,
    patient_id=None,
    at=datetime(2026, 1, 1, tzinfo=UTC),
    actor_kind="patient",
    actor_id="x",
    actor_name="",
    id=UUID(int=7),
)


@pytest.mark.parametrize(
    ("rec", "seq", "prev_hash", "body_sha256", "expected"),
    [
        (
            _every_field_set(),
            1,
            GENESIS,
            "c03f5e01b651b055de8dfb14f1abd27f45dbceef2d42b234f03ca6730e4f38ed",
            "562f4cfe097421b4d79c9deb17cf03e9dc2f71061911c6bde1750fd35c0662b8",
        ),
        (
            _every_field_set(),
            42,
            "ab" * 32,
            "c03f5e01b651b055de8dfb14f1abd27f45dbceef2d42b234f03ca6730e4f38ed",
            "6aba8cec6ff066b83dbf2ffff2e032f5bcd1ba82c19cde1e36770e1fbae493d3",
        ),
        (
            _BARE,
            3,
            "0f" * 32,
            "de276a0e094398a0e9cbdbd837298139344e484178d47b22972400e5e50763ea",
            "1468af6a09b3779f431141fb5cf291520de36579ce3cc112d44bfe71392e0e8f",
        ),
    ],
)
def test_pinned_hashes(rec: AuditRecord, seq: int, prev_hash: str, body_sha256: str, expected: str) -> None:
    """Pinned to what the code computed before the field list became a single definition:
    every stored chain must keep verifying, whatever is refactored around the format."""
    e = StoredEntry.build(rec, seq, prev_hash)
    assert hashlib.sha256(canonical_bytes(e.values())).hexdigest() == body_sha256
    assert e.hash == expected
    assert entry_hash(e.values(), prev_hash) == expected
    # the row read back (a mapping of the stored columns) hashes the same
    again = StoredEntry.from_row({c.name: getattr(e, c.name) for c in audit_entry.columns})
    assert again == e and entry_hash(again.values(), again.prev_hash) == expected


def test_one_definition_of_the_entry_fields() -> None:
    """The table, StoredEntry, the hashed fields and AuditRecord all follow AuditEntryRow."""
    from dmp.audit.entry import BODY_FIELDS, COLUMNS, RECORD_FIELDS, storage_values
    from dmp.store.audit_row import ROW_FIELDS, AuditEntryRow, HashRole, spec

    assert issubclass(StoredEntry, AuditEntryRow)
    assert [f.name for f in dataclasses.fields(StoredEntry)] == list(COLUMNS)
    assert [c.name for c in audit_entry.columns] == list(COLUMNS)
    for f in ROW_FIELDS:
        col, s = audit_entry.c[f.name], spec(f)
        assert col.nullable is s.nullable, f.name
        assert type(col.type) is (s.type if isinstance(s.type, type) else type(s.type)), f.name
        assert ("| None" in str(f.type)) is s.nullable, f.name  # the annotation agrees
    roles = {f.name: spec(f).hash_role for f in ROW_FIELDS}
    assert roles["seq"] is HashRole.POSITION and roles["prev_hash"] is HashRole.LINK
    assert roles["hash"] is HashRole.RESULT
    assert tuple(n for n in COLUMNS if n not in ("prev_hash", "hash")) == FIELDS
    assert BODY_FIELDS == tuple(n for n in FIELDS if n != "seq") == RECORD_FIELDS
    assert {f.name for f in dataclasses.fields(AuditRecord)} == set(RECORD_FIELDS)
    assert list(storage_values(record())) == list(RECORD_FIELDS)
    e = StoredEntry.build(record(), 1, GENESIS)
    assert list(e.values()) == list(COLUMNS)
    assert set(json.loads(canonical_bytes(e.values()))) == {*BODY_FIELDS, "v"}
