"""The patient portal's "historique des accès": who, when, what, in which mode, in French.

``history_line`` turns one entry into a line such as
"Dr Charles MULLER (Médecin, Cabinet du Parc) a consulté 3 documents — accès normal" or
"… a ouvert un accès d'urgence au dossier — en bris de glace : « patient inconscient »".
Entries carry no health content; neither do the lines.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from dmp.audit.actions import ACCESS_MODE_LABELS, AccessMode, Outcome, action_info
from dmp.audit.entry import StoredEntry
from dmp.audit.trail import iter_entries, opened
from dmp.domain.actor import ActorKind
from dmp.domain.professional import PROFESSIONS

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


def _mode(e: StoredEntry) -> str | None:
    if e.access_mode == AccessMode.BRIS_DE_GLACE:
        return f"en bris de glace : « {e.justification} »" if e.justification else "en bris de glace"
    if e.access_mode == AccessMode.CENTRE_15:
        label = ACCESS_MODE_LABELS[AccessMode.CENTRE_15]
        return f"{label} : « {e.justification} »" if e.justification else label
    if e.actor_kind != ActorKind.PROFESSIONAL:
        return None  # the patient's, a representative's or the desk's own actions
    return ACCESS_MODE_LABELS.get(e.access_mode, e.access_mode)


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
        sentence = f"{who_full} — tentative refusée : {info.label[0].lower()}{info.label[1:]}"
        if e.detail:
            sentence += f" ({e.detail})"
    elif e.outcome == Outcome.ERROR:
        sentence = f"{who_full} — échec technique : {info.label[0].lower()}{info.label[1:]}"
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
