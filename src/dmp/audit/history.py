"""The patient portal's "historique des accès": who, when, what, in which mode, in French.

``history_line`` turns one entry into a line such as
"Dr Charles MULLER (Médecin, Cabinet du Parc) a consulté 3 documents — accès normal" or
"… a ouvert un accès d'urgence au dossier — en bris de glace : « patient inconscient »".
Entries carry no health content; neither do the lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Connection, and_, or_

from dmp.audit.actions import (
    ACCESS_MODE_LABELS,
    AccessMode,
    AuditAction,
    Outcome,
    action_info,
)
from dmp.audit.entry import StoredEntry
from dmp.audit.trail import iter_entries, opened
from dmp.domain.actor import ActorKind
from dmp.domain.professional import PROFESSIONS
from dmp.store.schema_audit import audit_entry

PARIS = ZoneInfo("Europe/Paris")
_DOCTORS = {"10", "40"}  # médecins and chirurgiens-dentistes are addressed as "Dr"
_KIND_LABELS: dict[str, str] = {
    ActorKind.PATIENT: "patient",
    ActorKind.REPRESENTATIVE: "représentant légal",
    ActorKind.OPERATOR: "guichet d'accueil",
}
OPERATIONS_PREFIX = "exploitation:"  # the operator's staff (audit commands); the desk is "guichet:"
_ON_BEHALF = {
    "representative": "en tant que représentant légal de",
    "administrator": "en tant qu'administrateur, pour",
    "delegate": "pour le compte de",
}


@dataclass(frozen=True, slots=True)
class HistoryItem:
    at: datetime  # aware UTC
    when: str  # "le 23/11/2026 à 10:05" (Paris time)
    who: str  # "Dr Charles MULLER"
    profession: str | None  # "Médecin"
    structure: str | None
    action: str  # the action code
    what: str  # "a consulté 3 documents"
    mode: str | None  # "accès normal", "en bris de glace : « … »"
    outcome: str
    emergency: bool  # break-glass or centre 15: the portal highlights these
    text: str  # the whole sentence


def _who(e: StoredEntry) -> str:
    if e.actor_kind == ActorKind.SYSTEM:
        return "Le service DMP"
    name = e.actor_name
    if (
        e.actor_kind == ActorKind.PROFESSIONAL
        and e.actor_profession in _DOCTORS
        and not name.lower().startswith(("dr ", "dr.", "docteur "))
    ):
        name = f"Dr {name}"
    return name


def professional_label(name: str, profession: str | None) -> str:
    """« Dr Charles MULLER (Médecin) »: a professional as the history's filter lists them."""
    shown = name
    if profession in _DOCTORS and not name.lower().startswith(("dr ", "dr.", "docteur ")):
        shown = f"Dr {name}"
    label = PROFESSIONS.get(profession) if profession else None
    return f"{shown} ({label})" if label else shown


def _mode(e: StoredEntry) -> str | None:
    if e.access_mode == AccessMode.BRIS_DE_GLACE:
        return f"en bris de glace : « {e.justification} »" if e.justification else "en bris de glace"
    if e.access_mode == AccessMode.CENTRE_15:
        label = ACCESS_MODE_LABELS[AccessMode.CENTRE_15]
        return f"{label} : « {e.justification} »" if e.justification else label
    if e.actor_kind != ActorKind.PROFESSIONAL:
        return None  # the patient's, a representative's or the desk's own actions
    return ACCESS_MODE_LABELS.get(e.access_mode, e.access_mode)


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


_CODES = frozenset(a.value for a in AuditAction)
_REFUSAL_DETAIL = re.compile(r"^([a-z0-9_.]+) refusé : (.*)$", re.DOTALL)


def _refusal(e: StoredEntry) -> str:
    """« tentative refusée : consultation d'un document (le patient a bloqué ce professionnel) ».

    An ``access.refused`` entry names the attempted action and the reason in its detail
    (``services.trail.refused``: "document.retrieve refusé : <reason>"): the line says what was
    attempted, once, and why, rather than « accès refusé (document.retrieve refusé : …) »."""
    label, reason = action_info(e.action).label, e.detail
    found = _REFUSAL_DETAIL.match(e.detail or "")
    if e.action == AuditAction.ACCESS_REFUSED and found is not None:
        attempted = action_info(found.group(1))
        label = attempted.label if found.group(1) in _CODES else "accès au dossier"
        reason = found.group(2).strip()
    elif e.action == AuditAction.ACCESS_REFUSED:
        label = "accès au dossier"
    text = f"tentative refusée : {_lower_first(label)}"
    return f"{text} ({reason})" if reason else text


def history_line(row: Any) -> HistoryItem:
    """The portal line of an ``audit_entry`` row (or :class:`StoredEntry`)."""
    e = StoredEntry.from_row(row)
    info = action_info(e.action)
    who = _who(e)
    profession = PROFESSIONS.get(e.actor_profession) if e.actor_profession else None
    kind_label = _KIND_LABELS.get(e.actor_kind)
    if e.actor_kind == ActorKind.OPERATOR and e.actor_id.startswith(OPERATIONS_PREFIX):
        kind_label = "exploitation du service DMP"  # `dmp audit history|export`, not the desk
    qualifiers = [q for q in (profession or kind_label, e.actor_structure_name) if q]
    who_full = f"{who} ({', '.join(qualifiers)})" if qualifiers else who
    if e.on_behalf_of_name or e.on_behalf_of:
        lead = _ON_BEHALF.get(e.on_behalf_of_role or "", "pour le compte de")
        who_full += f", {lead} {e.on_behalf_of_name or e.on_behalf_of}"
    documents = [t for t in e.targets if t.startswith(("DocumentReference/", "Binary/"))]
    what = info.phrase(len(documents) or len(e.targets))
    if e.outcome == Outcome.REFUSED:
        what = _refusal(e)
        sentence = f"{who_full} — {what}"
    elif e.outcome == Outcome.ERROR:
        what = f"échec technique : {_lower_first(info.label)}"
        sentence = f"{who_full} — {what}"
    else:
        sentence = f"{who_full} {what}"
    mode = _mode(e)
    if mode:
        sentence += f" — {mode}"
    local = e.at.astimezone(PARIS)
    return HistoryItem(
        at=e.at,
        when=f"le {local:%d/%m/%Y} à {local:%H:%M}",
        who=who,
        profession=profession,
        structure=e.actor_structure_name,
        action=e.action,
        what=what,
        mode=mode,
        outcome=e.outcome,
        emergency=e.access_mode in (AccessMode.BRIS_DE_GLACE, AccessMode.CENTRE_15),
        text=sentence,
    )


def history(
    conn: Connection,
    patient_id: UUID,
    *,
    limit: int = 50,
    offset: int = 0,
    hide_targets: Iterable[str] = (),
) -> list[HistoryItem]:
    """The record's history, newest first (``hide_targets``: see ``iter_entries``)."""
    entries = iter_entries(
        conn, patient_id, newest_first=True, limit=limit, offset=offset, hide_targets=hide_targets
    )
    return [history_line(e) for e in opened(conn, entries)]


# ---- filters of the portal's history (built as SQL conditions on ``audit_entry``) ----------

A = AuditAction
_READS = (
    A.RECORD_READ, A.RECORD_CHECK, A.RECORD_SEARCH, A.SUBMISSION_SEARCH, A.DOCUMENT_READ,
    A.DOCUMENT_RETRIEVE, A.CONSENT_READ, A.AUDIT_READ,
)
_EXPORTS = (A.RECORD_EXPORT, A.RECORD_SUMMARY_PDF)
_PUBLICATIONS = (A.DOCUMENT_PUBLISH, A.DOCUMENT_REPLACE)
_EMERGENCIES = (A.BREAK_GLASS, A.CENTRE_15)
_EMERGENCY_MODES = (AccessMode.BRIS_DE_GLACE, AccessMode.CENTRE_15)
_OTHERS = (A.PATIENT_LOGIN, A.ACCESS_REFUSED)
_MODIFICATIONS = tuple(
    a for a in AuditAction if a not in (*_READS, *_EXPORTS, *_PUBLICATIONS, *_EMERGENCIES, *_OTHERS)
)
# The kinds of action a reader may filter on: value in the URL → French label.
KINDS: dict[str, str] = {
    "consultation": "Consultations et téléchargements",
    "publication": "Ajouts et remplacements de documents",
    "modification": "Modifications (masquage, autorisations, dossier)",
    "urgence": "Accès en urgence",
    "refus": "Tentatives refusées",
    "connexion": "Connexions à l'espace DMP",
}
_PERSONS = (ActorKind.PATIENT.value, ActorKind.REPRESENTATIVE.value)


def kind_condition(kind: str) -> ColumnElement[bool]:
    """The entries of one of :data:`KINDS` (a refused attempt is a « refus », whatever it tried;
    an action in an emergency mode is an « accès en urgence »)."""
    c = audit_entry.c
    succeeded = c.outcome != Outcome.REFUSED.value
    emergency = or_(
        c.action.in_([a.value for a in _EMERGENCIES]), c.access_mode.in_([m.value for m in _EMERGENCY_MODES])
    )
    if kind == "urgence":
        return and_(emergency, succeeded)
    if kind == "refus":
        return c.outcome == Outcome.REFUSED.value
    actions = {
        "consultation": (*_READS, *_EXPORTS),
        "publication": _PUBLICATIONS,
        "modification": _MODIFICATIONS,
        "connexion": (A.PATIENT_LOGIN,),
    }[kind]
    return and_(c.action.in_([a.value for a in actions]), succeeded)


def own_consultation_condition() -> ColumnElement[bool]:
    """The record's holder's and representatives' own reads (page views, searches, reading this
    history): the portal hides them unless asked. Their downloads, logins, changes and refused
    attempts are not consultations and stay shown."""
    c = audit_entry.c
    return and_(
        c.actor_kind.in_(_PERSONS),
        c.action.in_([a.value for a in _READS]),
        c.outcome == Outcome.SUCCESS.value,
    )


def professional_condition(actor_id: str) -> ColumnElement[bool]:
    return and_(audit_entry.c.actor_kind == ActorKind.PROFESSIONAL.value, audit_entry.c.actor_id == actor_id)


def emergency_opening_condition() -> ColumnElement[bool]:
    """The openings of an emergency access (break-glass, centre 15), not each read made under it."""
    c = audit_entry.c
    return and_(c.action.in_([a.value for a in _EMERGENCIES]), c.outcome == Outcome.SUCCESS.value)
