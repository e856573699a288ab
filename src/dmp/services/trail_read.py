"""Reading the trail (TR-01/TR-02): who may read which entries, as FHIR AuditEvents.

The patient and their legal representatives read the whole trail of the record since its
creation, except the entries about documents a confidentiality flag hides from them (until
it no longer does); a professional reads the entries of their own actions; the operator's
security role (an OPERATOR actor with the ``audit`` scope) reads everything. Every read of
the trail is itself traced.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, not_, select

from dmp.audit import AuditAction, HistoryItem, history, history_line, iter_entries, opened, to_audit_event
from dmp.domain.actor import Actor
from dmp.errors import DmpError
from dmp.policy import trail_access
from dmp.services import consents, trail
from dmp.services.access import context as access_context
from dmp.services.context import Runtime
from dmp.services.policy_sql import trail_hidden_condition, visible_condition
from dmp.store.schema import document


@dataclass(frozen=True)
class TrailScope:
    """What ``actor`` may read of a record's trail."""

    only_actor: str | None  # a professional reads their own actions only
    hide_targets: tuple[str, ...]  # entries naming these documents are left out
    # A view that may leave entries out (anyone's but the security role's), even when nothing
    # is left out today: it never shows chain positions, whose gaps would tell.
    partial: bool = True


def scope(conn: Connection, rt: Runtime, actor: Actor, patient_id: UUID) -> TrailScope:
    """What ``actor`` may read of the record's trail (``policy.trail_access``); a refusal is the
    same 404 as for a record that does not exist."""
    found = consents.record_by_id(conn, patient_id)  # closed records keep their trail (retention)
    if found is None:
        raise DmpError("NOT_FOUND")
    allowed = trail_access(actor, found[1])
    if not allowed.decision.permitted:
        # The answer of a missing record; the attempt is traced for the patient to see.
        raise trail.refused(
            DmpError("NOT_FOUND"),
            actor,
            AuditAction.AUDIT_READ,
            patient_id=patient_id,
            at=rt.now(),
            decision=allowed.decision,
        )
    if allowed.reader is None:  # the security role (TR-06): the whole trail
        return TrailScope(None, (), partial=False)
    if allowed.own_actions_only:  # every document this professional may not see, now
        condition = not_(visible_condition(allowed.reader, access_context(rt, history=True)))
    else:
        condition = trail_hidden_condition(allowed.reader, access_context(rt))
    hidden = conn.execute(
        select(document.c.id).where(document.c.patient_id == patient_id, condition)
    ).scalars()
    only = actor.id if allowed.own_actions_only else None
    return TrailScope(only, tuple(f"DocumentReference/{d}" for d in hidden))


def audit_events(
    conn: Connection,
    rt: Runtime,
    actor: Actor,
    patient_id: UUID,
    *,
    start: datetime | None,
    end: datetime | None,
    count: int,
    offset: int,
) -> tuple[list[dict[str, Any]], bool]:
    allowed = scope(conn, rt, actor, patient_id)
    entries = list(
        iter_entries(
            conn,
            patient_id,
            start,
            end,
            newest_first=True,
            limit=count + 1,
            offset=offset,
            actor_id=allowed.only_actor,
            hide_targets=allowed.hide_targets,
        )
    )
    more = len(entries) > count
    entries = entries[:count]
    _trace_read(conn, rt, actor, patient_id, len(entries))
    whole = allowed.only_actor is None and allowed.partial is False
    return [to_audit_event(e, rt.fhir_base, chain=whole) for e in opened(conn, entries)], more


def history_page(
    conn: Connection, rt: Runtime, actor: Actor, patient_id: UUID, *, count: int, offset: int
) -> tuple[list[HistoryItem], bool]:
    """The portal's « historique des accès », newest first, under the same scope."""
    allowed = scope(conn, rt, actor, patient_id)
    if allowed.only_actor is not None:  # the portal is the patient's and their representatives'
        raise DmpError("NOT_FOUND")
    items = history(
        conn, patient_id, limit=count + 1, offset=offset, hide_targets=allowed.hide_targets
    )
    _trace_read(conn, rt, actor, patient_id, min(len(items), count))
    return items[:count], len(items) > count


def own_history_page(
    conn: Connection, rt: Runtime, actor: Actor, patient_id: UUID, *, count: int, offset: int
) -> tuple[list[HistoryItem], bool]:
    """The professionals' portal « mon historique d'accès » (TR-03): their own actions on the
    record, newest first, never the entries naming a document hidden from them; on a record they
    may not open, the answer of a record that does not exist."""
    allowed = scope(conn, rt, actor, patient_id)
    if allowed.only_actor is None:  # the patient's and the security role's views are elsewhere
        raise DmpError("NOT_FOUND")
    entries = iter_entries(
        conn, patient_id, newest_first=True, limit=count + 1, offset=offset,
        actor_id=allowed.only_actor, hide_targets=allowed.hide_targets,
    )
    items = [history_line(e) for e in opened(conn, entries)]
    _trace_read(conn, rt, actor, patient_id, min(len(items), count))
    return items[:count], len(items) > count


def _trace_read(conn: Connection, rt: Runtime, actor: Actor, patient_id: UUID, n: int) -> None:
    trail.record(
        conn,
        actor,
        AuditAction.AUDIT_READ,
        patient_id=patient_id,
        at=rt.now(),
        detail=f"{n} entrée(s) consultée(s)",
    )


def operator_actor(agent: str) -> Actor:
    """The operator's staff member running an audit command (``dmp audit history|export``)."""
    from dmp.audit.history import OPERATIONS_PREFIX
    from dmp.domain.actor import ActorKind

    return Actor(kind=ActorKind.OPERATOR, id=f"{OPERATIONS_PREFIX}{agent}", name=agent)


def trace_operator_read(
    conn: Connection,
    actor: Actor,
    patient_id: UUID | None,
    at: datetime,
    *,
    what: str,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int | None = None,
) -> int:
    """Before the operator's commands show or export a trail: one ``audit.read`` entry per record
    read (every record with entries in [start, end) when ``patient_id`` is None), written and
    committed by the caller first, so that nothing is shown untraced. Returns the records traced."""
    from sqlalchemy import func

    from dmp.store.schema_audit import audit_entry
    from dmp.store.shard import nil_keys

    # The record-less chains are not records: nothing to trace there (ADR 0009).
    q = select(audit_entry.c.patient_id, func.count()).where(audit_entry.c.patient_id.not_in(nil_keys()))
    if patient_id is not None:
        q = q.where(audit_entry.c.patient_id == patient_id)
    if start is not None:
        q = q.where(audit_entry.c.at >= start)
    if end is not None:
        q = q.where(audit_entry.c.at < end)
    counts = list(conn.execute(q.group_by(audit_entry.c.patient_id).order_by(audit_entry.c.patient_id)))
    for pid, n in counts:
        shown = min(n, limit) if limit is not None else n
        trail.record(
            conn, actor, AuditAction.AUDIT_READ, patient_id=pid, at=at,
            detail=f"{shown} entrée(s) consultée(s) ({what})",
        )
    return len(counts)
