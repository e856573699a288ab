"""Property: the SQL search filter selects exactly what ``decide`` permits.

Hypothesis generates records (consents), actors, documents and contexts; the
documents are written to the database and the compiled condition is compared with
the pure decision on every (actor, document) pair, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, and_, delete, insert, select

from dmp.domain.actor import Actor, ActorKind, PurposeOfUse
from dmp.policy import Context, DocumentFacts, EmergencyConsents, RecordConsents, RecordFacts, Transparency
from dmp.policy.rules import document_visible, record_access, trail_entry_visible
from dmp.services.policy_sql import hidden_by_mask_condition, trail_hidden_condition, visible_condition
from dmp.store.schema import document, patient

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
PID = uuid.UUID("6f1c2f0e-0000-4000-8000-00000000abcd")
PROS = ["810001234565", "810002345675", "810003456786", "810004567896"]
STRUCTS = ["S1", "S2", "S3"]
REPS = ["rep-1", "rep-2"]
TYPES = [
    "11488-4",
    "11502-2",
    "89601-9",
    "ATTEST-RESID",
    "68599-0",
    "60591-5",
    "18748-4",
    "DOCPAT02",
    "PRESC-KINE",
    "60593-1",
]

pros = st.sampled_from(PROS)
subset = lambda pool: st.frozensets(st.sampled_from(pool), max_size=len(pool))  # noqa: E731

consents_st = st.builds(
    RecordConsents,
    authorised=subset(PROS),
    blocked=subset(PROS),
    medecin_traitant=st.none() | pros,
    administrators=subset(PROS),
    care_teams=subset(STRUCTS),
    care_team_objections=subset(STRUCTS),
    representatives=subset(REPS),
    emergency=st.builds(
        EmergencyConsents, samu=st.booleans(), break_glass=st.booleans(), masked=st.booleans()
    ),
)

professional_st = st.builds(
    Actor,
    kind=st.just(ActorKind.PROFESSIONAL),
    id=pros,
    name=st.just("Pro"),
    profession=st.sampled_from(["10", "21", "60", "70", "40", "99"]),
    specialty=st.sampled_from([None, "SM26", "SM25", "SM59"]),
    structure_id=st.none() | st.sampled_from(STRUCTS),
    setting=st.sampled_from([None, "SAMU_SMUR", "ESSMS"]),
    purpose=st.sampled_from(list(PurposeOfUse)),
    justification=st.sampled_from([None, "urgence vitale"]),
)
actor_st = st.one_of(
    professional_st,
    professional_st,
    professional_st,
    st.builds(
        Actor,
        kind=st.just(ActorKind.PATIENT),
        id=st.sampled_from([str(PID), str(uuid.uuid4())]),
        name=st.just("Patient"),
    ),
    st.builds(
        Actor,
        kind=st.just(ActorKind.REPRESENTATIVE),
        id=st.sampled_from([*REPS, "rep-x"]),
        name=st.just("Parent"),
    ),
    st.builds(Actor, kind=st.just(ActorKind.OPERATOR), id=st.just("guichet"), name=st.just("Agent")),
)
doc_st = st.builds(
    DocumentFacts,
    type_code=st.sampled_from(TYPES),
    class_code=st.just("10"),
    flags=st.integers(0, 7),
    availability=st.sampled_from(["approved", "archived", "deprecated", "deleted"]),
    author_id=st.none() | pros,
    published_by=pros,
    submitted=st.integers(0, 60).map(lambda d: NOW - timedelta(days=d)),
    occupational=st.booleans(),
)
ctx_st = st.builds(
    Context,
    now=st.just(NOW),
    transparency=st.just(Transparency.HIDDEN),
    history=st.booleans(),
)


def _ensure_patient(engine: Engine) -> None:
    with engine.begin() as conn:
        if conn.execute(select(patient.c.id).where(patient.c.id == PID)).first() is None:
            conn.execute(
                insert(patient).values(
                    id=PID,
                    ins_oid="1.2.250.1.213.1.4.8",
                    ins_value="000000000000000",
                    birth_family_name="X",
                    birth_given_names="Y",
                    sex="female",
                    birth_date=date(1980, 1, 1),
                    birth_place_insee="75056",
                    identity_status="QUAL",
                    traits_key="x",
                    record_status="open",
                    created_at=NOW,
                    updated_at=NOW,
                    version=1,
                )
            )


def _row(d: DocumentFacts, doc_id: uuid.UUID) -> dict[str, Any]:
    return {
        "patient_id": PID,
        "id": doc_id,
        "unique_id": f"urn:uuid:{doc_id}",
        "version_id": 1,
        "availability": d.availability,
        "class_code": d.class_code,
        "type_system": "x",
        "type_code": d.type_code,
        "format_code": "f",
        "facility_code": "SA01",
        "practice_code": "AMBULATOIRE",
        "confidentiality": "N",
        "flags": d.flags,
        "author_id": d.author_id,
        "creation_time": d.submitted,
        "period_start": d.submitted,
        "submission_time": d.submitted,
        "submission_set_id": uuid.uuid4(),
        "title": "t",
        "mime_type": "text/xml",
        "language": "fr-FR",
        "size": 1,
        "sha1_b64": "x",
        "sha256_hex": "0" * 64,
        "blob_key": "k",
        "published_by": d.published_by,
        "occupational": d.occupational,
        "last_updated": d.submitted,
        "resource_json": b"{}",
    }


@pytest.fixture()
def prepared(engine: Engine) -> Engine:
    from conftest import truncate

    truncate(engine)
    _ensure_patient(engine)
    return engine


def test_sql_filter_equals_decide(prepared: Engine) -> None:
    engine = prepared
    compared = {"pairs": 0}

    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(actor=actor_st, consents=consents_st, docs=st.lists(doc_st, min_size=1, max_size=10), ctx=ctx_st)
    def check(actor: Actor, consents: RecordConsents, docs: list[DocumentFacts], ctx: Context) -> None:
        facts = RecordFacts(str(PID), True, consents)
        access = record_access(actor, facts)
        ids = [uuid.uuid4() for _ in docs]
        with engine.begin() as conn:
            conn.execute(delete(document).where(document.c.patient_id == PID))
            conn.execute(insert(document), [_row(d, i) for d, i in zip(docs, ids, strict=True)])
            in_sql = {
                r.id
                for r in conn.execute(
                    select(document.c.id).where(
                        and_(document.c.patient_id == PID, visible_condition(access, ctx))
                    )
                )
            }
            masked_sql = {
                r.id
                for r in conn.execute(
                    select(document.c.id).where(
                        and_(document.c.patient_id == PID, hidden_by_mask_condition(access, ctx))
                    )
                )
            }
            trail_hidden_sql = {
                r.id
                for r in conn.execute(
                    select(document.c.id).where(
                        and_(document.c.patient_id == PID, trail_hidden_condition(access, ctx))
                    )
                )
            }
        in_python = {i for d, i in zip(docs, ids, strict=True) if document_visible(access, d, ctx).permitted}
        assert in_sql == in_python
        # The trail hides exactly what trail_entry_visible refuses to a permitted reader.
        trail_hidden_python = {
            i
            for d, i in zip(docs, ids, strict=True)
            if access.decision.permitted and not trail_entry_visible(access, d, ctx).permitted
        }
        assert trail_hidden_sql == trail_hidden_python
        # Documents counted as "masked from you" are never ones the actor can see.
        assert not (masked_sql & in_python)
        compared["pairs"] += len(docs)

    check()
    assert compared["pairs"] >= 1000  # thousands of (actor, document) pairs on each engine
