"""Tampering with the trail directly in the database is caught by ``dmp audit verify``.

Each test builds two chains (A: 5 entries, B: 3 entries), tampers with A as the table owner
(PostgreSQL: triggers disabled with ALTER TABLE … DISABLE TRIGGER; SQLite: triggers dropped),
then runs the CLI and checks exit code 1 and the French report line naming A and the first
broken position, and that B is reported intact.
"""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Connection, Engine, delete, insert, select, update
from test_audit_trail import (  # noqa: F401 - the fixtures are used by name
    Cli,
    audit_engine_fixture,
    chain,
    cli_fixture,
    db_fixture,
    fill,
    rec,
    reseal,
    set_head,
    tampering,
)

from dmp.audit import NIL_PATIENT, StoredEntry, make_anchor
from dmp.store.schema_audit import audit_anchor, audit_anchor_head, audit_entry

E = audit_entry.c


@pytest.fixture()
def chains(db: Engine) -> tuple[UUID, UUID]:
    a, b = uuid4(), uuid4()
    fill(db, a, 5)
    fill(db, b, 3)
    return a, b


def broken(cli: Cli, *args: str) -> list[str]:
    result = cli("verify", *args)
    assert result.exit_code == 1, result.output
    assert "le journal a été altéré" in result.output
    return [line for line in result.output.splitlines() if line.startswith("Rupture")]


def expect(cli: Cli, pid: UUID, seq: int, text: str, *args: str) -> None:
    lines = broken(cli, *args)
    assert len(lines) == 1, lines  # B is intact
    assert lines[0].startswith(f"Rupture — Patient/{pid}, position {seq} : {text}"), lines[0]


def move(conn: Connection, pid: UUID, moves: dict[int, int]) -> None:
    """Renumber entries (old → new) without colliding on the primary key."""
    for old in moves:
        conn.execute(update(audit_entry).where(E.patient_id == pid, E.seq == old).values(seq=old + 100_000))
    for old, new in moves.items():
        conn.execute(update(audit_entry).where(E.patient_id == pid, E.seq == old + 100_000).values(seq=new))


def test_edited_entry(db: Engine, cli: Cli, chains: tuple[UUID, UUID]) -> None:
    a, _ = chains
    with tampering(db) as conn:
        conn.execute(update(audit_entry).where(E.patient_id == a, E.seq == 3).values(actor_name="Quelqu'un"))
    expect(cli, a, 3, "entrée modifiée : son contenu ne correspond plus à son empreinte enregistrée.")
    expect(cli, a, 3, "entrée modifiée", "--patient", f"Patient/{a}")


def test_edited_and_resealed_entry_breaks_the_next_link(
    db: Engine, cli: Cli, chains: tuple[UUID, UUID]
) -> None:
    a, _ = chains
    prev = chain(db, a)[1].hash
    with tampering(db) as conn:
        conn.execute(update(audit_entry).where(E.patient_id == a, E.seq == 3).values(outcome="refused"))
        reseal(conn, a, 3, prev)
    expect(cli, a, 4, "chaînage rompu : l'empreinte précédente enregistrée ne correspond pas à l'entrée en "
                      "position 3")


def test_deleted_middle_entry(db: Engine, cli: Cli, chains: tuple[UUID, UUID]) -> None:
    a, _ = chains
    with tampering(db) as conn:
        conn.execute(delete(audit_entry).where(E.patient_id == a, E.seq == 3))
    expect(cli, a, 3, "entrée manquante (supprimée) : la chaîne passe de la position 2 à la position 4.")


def test_deleted_first_entries(db: Engine, cli: Cli, chains: tuple[UUID, UUID]) -> None:
    a, _ = chains
    with tampering(db) as conn:
        conn.execute(delete(audit_entry).where(E.patient_id == a, E.seq <= 2))
    expect(cli, a, 1, "entrées manquantes (supprimées) aux positions 1 à 2.")


def test_deleted_middle_entry_with_renumbering(db: Engine, cli: Cli, chains: tuple[UUID, UUID]) -> None:
    a, _ = chains
    last = chain(db, a)[-1].hash
    with tampering(db) as conn:
        conn.execute(delete(audit_entry).where(E.patient_id == a, E.seq == 3))
        move(conn, a, {4: 3, 5: 4})
        set_head(conn, a, 4, last)
    expect(cli, a, 3, "entrée supprimée puis chaîne renumérotée : l'entrée enregistrée en position 4 occupe "
                      "désormais la position 3.")


def test_deleted_last_entry_is_caught_by_the_head(db: Engine, cli: Cli, chains: tuple[UUID, UUID]) -> None:
    a, _ = chains
    with tampering(db) as conn:
        conn.execute(delete(audit_entry).where(E.patient_id == a, E.seq == 5))
    expect(cli, a, 5, "entrée(s) manquante(s) en fin de chaîne : la tête de chaîne en indique 5, la dernière "
                      "présente est en position 4.")


def test_deleted_last_entry_and_rewritten_head_are_caught_by_the_anchor(
    db: Engine, cli: Cli, chains: tuple[UUID, UUID]
) -> None:
    a, _ = chains
    assert cli("anchor").exit_code == 0
    fourth = chain(db, a)[3].hash
    with tampering(db) as conn:
        conn.execute(delete(audit_entry).where(E.patient_id == a, E.seq == 5))
        set_head(conn, a, 4, fourth)
    expect(cli, a, 5, "entrée(s) manquante(s) en fin de chaîne : l'ancre n° 1 atteste 5 entrée(s), la chaîne "
                      "s'arrête à la position 4.")


def test_truncation_after_the_last_anchor_with_rewritten_head_is_not_detectable(
    db: Engine, cli: Cli, chains: tuple[UUID, UUID]
) -> None:
    """The documented limit (docs/audit.md): what no anchor attests yet can be cut by a superuser."""
    a, _ = chains
    assert cli("anchor").exit_code == 0
    fill(db, a, 1, start=5)  # entry 6, not anchored
    fifth = chain(db, a)[4].hash
    with tampering(db) as conn:
        conn.execute(delete(audit_entry).where(E.patient_id == a, E.seq == 6))
        set_head(conn, a, 5, fifth)
    assert cli("verify").exit_code == 0


def test_inserted_entry(db: Engine, cli: Cli, chains: tuple[UUID, UUID]) -> None:
    """A forged entry slipped in at position 3 with a correct hash and link, the rest shifted."""
    a, _ = chains
    before = chain(db, a)
    forged = StoredEntry.build(rec(a, 2, actor_name="Faux Docteur"), 3, before[1].hash)
    with tampering(db) as conn:
        move(conn, a, {5: 6, 4: 5, 3: 4})
        conn.execute(insert(audit_entry).values(forged.values()))
        set_head(conn, a, 6, before[-1].hash)
    expect(cli, a, 3, "entrée insérée : l'entrée enregistrée à l'origine en position 3 a été décalée en "
                      "position 4.")


def test_entry_appended_behind_the_head(db: Engine, cli: Cli, chains: tuple[UUID, UUID]) -> None:
    a, _ = chains
    forged = StoredEntry.build(rec(a, 9), 6, chain(db, a)[-1].hash)
    with tampering(db) as conn:
        conn.execute(insert(audit_entry).values(forged.values()))
    expect(cli, a, 6, "entrée ajoutée après la fin de chaîne enregistrée (position 5).")


def test_reordered_entries(db: Engine, cli: Cli, chains: tuple[UUID, UUID]) -> None:
    a, _ = chains
    with tampering(db) as conn:
        move(conn, a, {2: 4, 4: 2})
    expect(cli, a, 2, "entrées réordonnées : l'entrée présente en position 2 a été enregistrée en "
                      "position 4.")


def test_swapped_neighbours(db: Engine, cli: Cli, chains: tuple[UUID, UUID]) -> None:
    a, _ = chains
    with tampering(db) as conn:
        move(conn, a, {3: 4, 4: 3})
    expect(cli, a, 3, "entrées réordonnées : les entrées des positions 3 et 4 ont été interverties.")


def test_rewritten_chain_is_caught_by_the_anchor(db: Engine, cli: Cli, chains: tuple[UUID, UUID]) -> None:
    """Editing entry 2 and re-sealing everything after it, head included: only the anchor knows."""
    a, _ = chains
    assert cli("anchor").exit_code == 0
    prev = chain(db, a)[0].hash
    with tampering(db) as conn:
        conn.execute(update(audit_entry).where(E.patient_id == a, E.seq == 2).values(detail="réécrit"))
        for seq in range(2, 6):
            prev = reseal(conn, a, seq, prev)
        set_head(conn, a, 5, prev)
    expect(cli, a, 5, "l'entrée ne correspond pas à celle attestée par l'ancre n° 1 (chaîne réécrite depuis "
                      "l'ancrage).")


def test_tampered_entry_without_record(db: Engine, cli: Cli, chains: tuple[UUID, UUID]) -> None:
    fill(db, None, 2)
    with tampering(db) as conn:
        conn.execute(
            update(audit_entry).where(E.patient_id == NIL_PATIENT, E.seq == 1).values(outcome="refused")
        )
    lines = broken(cli)
    assert lines == ["Rupture — journal hors dossier, position 1 : entrée modifiée : son contenu ne "
                     "correspond plus à son empreinte enregistrée."]


def test_since_anchor_checks_what_follows_the_anchor(db: Engine, cli: Cli, chains: tuple[UUID, UUID]) -> None:
    a, _ = chains
    assert cli("anchor").exit_code == 0
    fill(db, a, 3, start=5)
    with tampering(db) as conn:
        conn.execute(update(audit_entry).where(E.patient_id == a, E.seq == 7).values(detail="modifié"))
    expect(cli, a, 7, "entrée modifiée", "--since-anchor", "1")
    lines = broken(cli, "--since-anchor", "2")
    assert lines == ["Rupture — ancre n° 2 : ancre introuvable."]


def test_tampered_anchor_signature(db: Engine, cli: Cli, chains: tuple[UUID, UUID]) -> None:
    assert cli("anchor").exit_code == 0
    with tampering(db) as conn:
        conn.execute(update(audit_anchor).where(audit_anchor.c.id == 1).values(head_count=1))
    lines = broken(cli)
    assert "Rupture — ancre n° 1 : signature invalide : l'ancre a été modifiée." in lines


def test_tampered_anchored_heads(db: Engine, cli: Cli, chains: tuple[UUID, UUID]) -> None:
    a, _ = chains
    assert cli("anchor").exit_code == 0
    with tampering(db) as conn:
        conn.execute(update(audit_anchor_head).where(audit_anchor_head.c.patient_id == a).values(seq=4))
    lines = broken(cli)
    assert lines[0] == ("Rupture — ancre n° 1 : les têtes de chaîne ancrées ont été modifiées (racine de "
                        "Merkle différente de la racine signée).")


def test_deleted_anchor(db: Engine, cli: Cli, chains: tuple[UUID, UUID]) -> None:
    a, _ = chains
    assert cli("anchor").exit_code == 0
    fill(db, a, 1, start=5)
    assert cli("anchor").exit_code == 0
    with tampering(db) as conn:
        conn.execute(delete(audit_anchor_head).where(audit_anchor_head.c.anchor_id == 1))
        conn.execute(delete(audit_anchor).where(audit_anchor.c.id == 1))
    assert broken(cli) == ["Rupture — ancre n° 2 : ancre n° 1 manquante (supprimée) avant celle-ci."]


def test_anchor_signed_by_an_unknown_key(db: Engine, cli: Cli, chains: tuple[UUID, UUID]) -> None:
    assert cli("anchor").exit_code == 0  # creates the instance key
    intruder = ec.generate_private_key(ec.SECP256R1())
    fill(db, chains[0], 1, start=5)
    with db.begin() as conn:
        forged = make_anchor(conn, intruder, datetime.now(UTC))
        stored = conn.execute(
            select(audit_anchor.c.key_id).where(audit_anchor.c.id == forged.id)
        ).scalar_one()
    lines = broken(cli)
    assert lines == [f"Rupture — ancre n° 2 : signée par une clé inconnue (identifiant {stored})."]
