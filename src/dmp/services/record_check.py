"""Does a record exist for this patient? By strict identity traits (issue 13, professional space).

The professionals' portal finds a patient by INS, or by the strict traits their software reads
(birth family name, first birth given name, birth date, sex). Whether the searcher learns that a
record exists is the policy's decision (``learns_record_exists``); every answer is traced as the
API traces its existence test (TD0.2, ``record.check``), found or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Connection, select

from dmp.domain.actor import Actor
from dmp.domain.identity import IdentityStatus, Sex, normalize_trait
from dmp.policy import learns_record_exists
from dmp.services import access, trail
from dmp.services.context import Runtime
from dmp.services.trail import AuditAction
from dmp.store import sealed_fields
from dmp.store.schema import patient

MAX_MATCHES = 20  # strict traits rarely match more than twins' siblings; bounded all the same


@dataclass(frozen=True)
class TraitsQuery:
    birth_family_name: str
    first_given_name: str
    birth_date: date
    sex: Sex


@dataclass(frozen=True)
class Match:
    """A record the searcher is told about, with what identifies it."""

    ins: str
    family_name: str
    given_names: str
    birth_date: date
    sex: Sex
    identity_status: IdentityStatus


def _rows(conn: Connection, q: TraitsQuery) -> list[Any]:
    """The records of these traits. The names are sealed under each record's key (SE-02) and
    ``traits_key`` is a keyed hash of all the strict traits, so SQL narrows on the birth date and
    sex (clear) and the names are compared here, opened, with the normalisation of record creation.
    Cost: the records born that day of that sex (about 1,000 at national scale), each name opened
    (~20 µs); a blind index of (name, first given name, date, sex) would make it one lookup."""
    family, first = normalize_trait(q.birth_family_name), normalize_trait(q.first_given_name)
    rows = conn.execute(
        select(patient)
        .where(patient.c.birth_date == q.birth_date, patient.c.sex == q.sex.value)
        .order_by(patient.c.id)
    )
    names = ("birth_family_name", "birth_given_names")
    candidates = [sealed_fields.open_row(conn, r, "patient", names, patient_id=r.id) for r in rows]
    return [
        r for r in candidates
        if normalize_trait(r.birth_family_name) == family
        and normalize_trait((r.birth_given_names.split() or [""])[0]) == first
    ][:MAX_MATCHES]


def by_traits(conn: Connection, rt: Runtime, actor: Actor, q: TraitsQuery) -> list[Match]:
    """The records matching ``q`` that ``actor`` is told about; every answer traced (TD0.2)."""
    access.require_health_professional(actor)
    rows = _rows(conn, q) if learns_record_exists(actor) else []
    now = rt.now()
    if not rows:
        trail.record(
            conn, actor, AuditAction.RECORD_CHECK, patient_id=None, at=now,
            detail="aucun DMP pour ces traits d'identité",
        )
    for r in rows:
        trail.record(
            conn, actor, AuditAction.RECORD_CHECK, patient_id=r.id, at=now,
            detail="recherche par traits d'identité",
        )
    return [
        Match(
            r.ins_value, r.birth_family_name, r.birth_given_names, r.birth_date, Sex(r.sex),
            IdentityStatus(r.identity_status),
        )
        for r in rows
    ]
