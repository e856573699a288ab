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

from sqlalchemy import ColumnElement, Connection, Select, func, not_, select

from dmp.audit import (
    AuditAction,
    HistoryItem,
    count_entries,
    history_line,
    iter_entries,
    opened,
    to_audit_event,
)
from dmp.audit.history import (
    KINDS,
    emergency_opening_condition,
    kind_condition,
    own_consultation_condition,
    professional_condition,
    professional_label,
)
from dmp.domain.actor import Actor, ActorKind
from dmp.errors import DmpError
from dmp.policy import trail_access
from dmp.services import consents, trail
from dmp.services.access import context as access_context
from dmp.services.context import Runtime
from dmp.services.policy_sql import trail_hidden_condition, visible_condition
from dmp.store.schema import document
from dmp.store.schema_audit import audit_entry


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


@dataclass(frozen=True)
class HistoryFilter:
    """The portal history's filters, applied in SQL (``iter_entries`` conditions)."""

    professional: str | None = None  # an RPPS among ``professionals``
    start: datetime | None = None  # [start, end), aware
    end: datetime | None = None
    kind: str | None = None  # one of ``dmp.audit.history.KINDS``
    own_consultations: bool = False  # the holder's and representatives' own reads, hidden by default

    def conditions(self) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        if self.professional:
            found.append(professional_condition(self.professional))
        if self.kind in KINDS:
            found.append(kind_condition(self.kind))
        if not self.own_consultations:
            found.append(not_(own_consultation_condition()))
        return found


@dataclass(frozen=True)
class Professional:
    rpps: str
    label: str  # « Dr Charles MULLER (Médecin) »


def _portal_scope(conn: Connection, rt: Runtime, actor: Actor, patient_id: UUID) -> TrailScope:
    allowed = scope(conn, rt, actor, patient_id)
    if allowed.only_actor is not None:  # the portal is the patient's and their representatives'
        raise DmpError("NOT_FOUND")
    return allowed


def _lines(
    conn: Connection, patient_id: UUID, allowed: TrailScope, wanted: HistoryFilter, *, limit: int, offset: int
) -> list[HistoryItem]:
    entries = iter_entries(
        conn, patient_id, wanted.start, wanted.end, newest_first=True, limit=limit, offset=offset,
        hide_targets=allowed.hide_targets, conditions=wanted.conditions(),
    )
    return [history_line(e) for e in opened(conn, entries)]


def history_page(
    conn: Connection,
    rt: Runtime,
    actor: Actor,
    patient_id: UUID,
    *,
    count: int,
    offset: int,
    wanted: HistoryFilter | None = None,
) -> tuple[list[HistoryItem], bool]:
    """The portal's « historique des accès », newest first, under the same scope, filtered."""
    allowed = _portal_scope(conn, rt, actor, patient_id)
    wanted = wanted or HistoryFilter(own_consultations=True)
    items = _lines(conn, patient_id, allowed, wanted, limit=count + 1, offset=offset)
    _trace_read(conn, rt, actor, patient_id, min(len(items), count))
    return items[:count], len(items) > count


def history_export(
    conn: Connection, rt: Runtime, actor: Actor, patient_id: UUID, wanted: HistoryFilter, *, limit: int,
    what: str,
) -> tuple[list[HistoryItem], bool]:
    """The filtered history for a CSV or PDF export (at most ``limit`` lines, newest first), traced
    as a read of the trail before the caller sends it."""
    allowed = _portal_scope(conn, rt, actor, patient_id)
    items = _lines(conn, patient_id, allowed, wanted, limit=limit + 1, offset=0)
    _trace_read(conn, rt, actor, patient_id, min(len(items), limit), what=what)
    return items[:limit], len(items) > limit


def hidden_own_consultations(
    conn: Connection, rt: Runtime, actor: Actor, patient_id: UUID, wanted: HistoryFilter
) -> int:
    """How many of the holder's and representatives' own reads the filter leaves out (the page
    says so next to the toggle); counted under the same scope."""
    allowed = _portal_scope(conn, rt, actor, patient_id)
    shown = HistoryFilter(wanted.professional, wanted.start, wanted.end, wanted.kind, True)
    return count_entries(
        conn, patient_id, wanted.start, wanted.end, hide_targets=allowed.hide_targets,
        conditions=[*shown.conditions(), own_consultation_condition()],
    )


def _professionals_query(patient_id: UUID, allowed: TrailScope) -> Select[Any]:
    """The professionals of the record's trail as ``allowed`` reads it, one row each (to group)."""
    c = audit_entry.c
    q = select(c.actor_id, func.max(c.actor_name), func.max(c.actor_profession)).where(
        c.patient_id == patient_id, c.actor_kind == ActorKind.PROFESSIONAL.value
    )
    for ref in allowed.hide_targets:  # as iter_entries leaves them out
        q = q.where(not_(c.target_ids.contains(f'"{ref}"', autoescape=True)))
    return q.group_by(c.actor_id)


PROFESSIONALS_SHOWN = 500  # a select of the professionals of one record: never more than this


def professionals(conn: Connection, rt: Runtime, actor: Actor, patient_id: UUID) -> list[Professional]:
    """The professionals named in the part of the trail ``actor`` may read (the history's
    « professionnel » filter), by name; one who only appears next to a hidden document is not listed."""
    allowed = _portal_scope(conn, rt, actor, patient_id)
    c = audit_entry.c
    q = _professionals_query(patient_id, allowed)
    rows = conn.execute(q.order_by(func.max(c.actor_name)).limit(PROFESSIONALS_SHOWN))
    return [Professional(r[0], professional_label(r[1], r[2])) for r in rows]


@dataclass(frozen=True)
class TrailNews:
    """What the trail tells of the record since a date (the home's « quoi de neuf »)."""

    professionals: list[Professional]  # first seen in the (visible) trail since then
    emergencies: list[HistoryItem]  # break-glass and centre 15 openings since then, newest first


NEWS_SHOWN = 20


def news_since(conn: Connection, rt: Runtime, actor: Actor, patient_id: UUID, since: datetime) -> TrailNews:
    """The professionals who accessed the record for the first time, and the emergency accesses,
    since ``since``, under the portal's scope; traced as a read of the trail."""
    allowed = _portal_scope(conn, rt, actor, patient_id)
    c = audit_entry.c
    q = _professionals_query(patient_id, allowed)
    q = q.having(func.min(c.at) >= since).order_by(func.min(c.at).desc())
    newcomers = [
        Professional(r[0], professional_label(r[1], r[2]))
        for r in conn.execute(q.limit(NEWS_SHOWN))
    ]
    entries = iter_entries(
        conn, patient_id, since, None, newest_first=True, limit=NEWS_SHOWN,
        hide_targets=allowed.hide_targets, conditions=[emergency_opening_condition()],
    )
    emergencies = [history_line(e) for e in opened(conn, entries)]
    _trace_read(conn, rt, actor, patient_id, len(newcomers) + len(emergencies), what="quoi de neuf")
    return TrailNews(newcomers, emergencies)


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


def _trace_read(
    conn: Connection, rt: Runtime, actor: Actor, patient_id: UUID, n: int, *, what: str | None = None
) -> None:
    detail = f"{n} entrée(s) consultée(s)" + (f" ({what})" if what else "")
    trail.record(conn, actor, AuditAction.AUDIT_READ, patient_id=patient_id, at=rt.now(), detail=detail)


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
