"""Emergency sessions (bris de glace, centre 15): the obligations the policy attaches to them."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import Connection, insert, select

from dmp.domain.actor import Actor
from dmp.policy import AccessMode, Decision, Obligation
from dmp.services import alerts
from dmp.services.notifications import notify
from dmp.store import sealed_fields
from dmp.store.schema_policy import emergency_access

EMERGENCY_WINDOW = timedelta(hours=1)
_MODE_TEXT = {
    AccessMode.BRIS_DE_GLACE: "en urgence (bris de glace)",
    AccessMode.CENTRE_15: "par la régulation médicale (centre 15)",
}


def apply_emergency_obligations(
    conn: Connection, actor: Actor, patient_id: UUID, decision: Decision, now: datetime
) -> bool:
    """Open (once per window) an emergency session and notify the patient; True if opened."""
    if Obligation.NOTIFY_PATIENT not in decision.obligations or decision.mode is None:
        return False
    open_session = conn.execute(
        select(emergency_access.c.id)
        .where(
            emergency_access.c.patient_id == patient_id,
            emergency_access.c.actor_id == actor.id,
            emergency_access.c.mode == decision.mode.value,
            emergency_access.c.expires_at > now,
        )
        .limit(1)
    ).first()
    if open_session is not None:
        return False
    session_id = uuid.uuid4()
    conn.execute(
        insert(emergency_access).values(
            patient_id=patient_id,
            id=session_id,
            actor_id=actor.id,
            actor_name=actor.name,
            mode=decision.mode.value,
            justification=sealed_fields.seal_text(
                sealed_fields.write_dek(conn, patient_id), patient_id, "emergency_access.justification",
                session_id, actor.justification,
            ),
            started_at=now,
            expires_at=now + EMERGENCY_WINDOW,
        )
    )
    who = alerts.professional_label(actor)
    text = f"Votre DMP a été consulté {_MODE_TEXT.get(decision.mode, 'en urgence')} par {who}"
    if actor.justification:
        text += f". Motif déclaré : « {actor.justification} »"
    notify(conn, patient_id, f"emergency-{decision.mode.value}", text + ".", now)
    alerts.emergency_access(conn, actor, patient_id, decision.mode.value, session_id, now)
    return True
