"""Verification of the trail: chains, heads and signed anchors.

For each record, entries are read in position order and their hashes recomputed. The first
broken link of each record is reported, with a diagnosis in French:

* a position with no entry: **entrée manquante** (deleted);
* a recomputed hash that differs from the stored one: **entrée modifiée** — unless the
  entry's hash matches *another* position, in which case it was moved: **entrée insérée**
  before it, **entrée supprimée** with renumbering, or **entrées réordonnées**;
* a correct hash but a ``prev_hash`` that is not the previous entry's hash: **chaînage
  rompu** (an entry edited and re-sealed, or moved);
* the chain's end disagreeing with ``audit_head`` or with the last signed anchor that
  covers the record: entries removed (or added) at the end.

Anchors are checked for their numbering, their own chain (``prev_digest``), the Merkle
root over the heads they list, and their signature.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, TypeVar
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Connection, Select, and_, func, select

from dmp.audit.anchor import GENESIS_DIGEST, Anchor, anchor_heads, list_anchors, signature_valid
from dmp.audit.entry import GENESIS, StoredEntry, entry_hash, is_nil_chain
from dmp.audit.merkle import heads_root
from dmp.store.schema_audit import audit_anchor_head, audit_entry, audit_head

T = TypeVar("T")
_MAX_SEARCH = 100_000  # positions tried when looking for where a moved entry came from


def chain_label(patient_id: UUID) -> str:
    """How a chain is named in French: ``Patient/<id>``, or ``journal hors dossier`` for the
    first record-less chain (the only one before ADR 0009) and ``journal hors dossier n° k``
    for the others."""
    if not is_nil_chain(patient_id):
        return f"Patient/{patient_id}"
    return "journal hors dossier" if patient_id.int == 0 else f"journal hors dossier n° {patient_id.int}"


class BreakKind(StrEnum):
    MISSING = "missing"
    EDITED = "edited"
    INSERTED = "inserted"
    REORDERED = "reordered"
    LINK = "link"
    HEAD = "head"
    ANCHOR = "anchor"


@dataclass(frozen=True, slots=True)
class Break:
    kind: BreakKind
    message: str  # French
    patient_id: UUID | None = None  # None: a break of the anchors themselves
    seq: int | None = None
    anchor_id: int | None = None

    @property
    def subject(self) -> str:
        if self.patient_id is None:
            return f"ancre n° {self.anchor_id}" if self.anchor_id is not None else "ancres"
        return chain_label(self.patient_id)

    def line(self) -> str:
        where = f", position {self.seq}" if self.seq is not None else ""
        return f"Rupture — {self.subject}{where} : {self.message}"


@dataclass
class VerifyReport:
    scope: str
    records: int = 0
    entries: int = 0
    anchors: int = 0
    latest_anchor: Anchor | None = None
    breaks: list[Break] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaks

    def first_break(self, patient_id: UUID | None = None) -> Break | None:
        for b in self.breaks:
            if patient_id is None or b.patient_id == patient_id:
                return b
        return None

    def lines(self) -> list[str]:
        out = [f"Vérification du journal d'audit ({self.scope})."]
        out.append(
            f"{self.records} chaîne(s) de dossier, {self.entries} entrée(s) relue(s), "
            f"{self.anchors} ancre(s) contrôlée(s)."
        )
        if self.latest_anchor is not None:
            a = self.latest_anchor
            out.append(f"Dernière ancre : n° {a.id} du {a.created_at:%d/%m/%Y à %H:%M:%S} UTC.")
        out += [f"Avertissement : {w}" for w in self.warnings]
        out += [b.line() for b in self.breaks]
        if self.ok:
            out.append("Résultat : journal intègre, aucune rupture détectée.")
        else:
            out.append(f"Résultat : {len(self.breaks)} rupture(s) détectée(s) : le journal a été altéré.")
        return out


class _Peek(Generic[T]):
    def __init__(self, it: Iterator[T]) -> None:
        self._it = it
        self._next: T | None = None
        self._done = False
        self._advance()

    def _advance(self) -> None:
        try:
            self._next = next(self._it)
        except StopIteration:
            self._next = None
            self._done = True

    def peek(self) -> T | None:
        return self._next

    def pop(self) -> T:
        value = self._next
        if value is None:
            raise RuntimeError("pop() past the end of the stream")
        self._advance()
        return value


@dataclass(frozen=True, slots=True)
class _Anchored:
    anchor_id: int
    seq: int
    hash: str


def _anchored_query(patient_id: UUID | None, max_anchor: int | None) -> Select[Any]:
    ah = audit_anchor_head
    latest = select(ah.c.patient_id, func.max(ah.c.anchor_id).label("aid"))
    if patient_id is not None:
        latest = latest.where(ah.c.patient_id == patient_id)
    if max_anchor is not None:
        latest = latest.where(ah.c.anchor_id <= max_anchor)
    sub = latest.group_by(ah.c.patient_id).subquery()
    return (
        select(ah.c.patient_id, ah.c.anchor_id, ah.c.seq, ah.c.hash)
        .join(sub, and_(ah.c.patient_id == sub.c.patient_id, ah.c.anchor_id == sub.c.aid))
        .order_by(ah.c.patient_id)
    )


def _stream(conn: Connection, q: Select[Any]) -> Iterator[Any]:
    last: UUID | None = None
    for row in conn.execute(q.execution_options(yield_per=1000)):
        if last is not None and row.patient_id < last:
            raise RuntimeError("ordre des dossiers inattendu dans la base (tri des UUID)")
        last = row.patient_id
        yield row


def _rehash_at(e: StoredEntry, seq: int) -> str:
    values = e.values()
    values["seq"] = seq
    return entry_hash(values, e.prev_hash)


def _original_position(e: StoredEntry, upper: int) -> int | None:
    """The position ``e`` was sealed at, if it is not its current one."""
    k = e.seq
    tried = 0
    s: int
    for s in itertools.chain((k - 1, k + 1), range(1, upper + 1)):
        if s < 1 or s == k:
            continue
        tried += 1
        if tried > _MAX_SEARCH:
            return None
        if _rehash_at(e, s) == e.hash:
            return s
    return None


def _diagnose(e: StoredEntry, nxt: StoredEntry | None, pid: UUID, upper: int) -> Break:
    k = e.seq
    s = _original_position(e, upper)
    if s is None:
        return Break(
            BreakKind.EDITED,
            "entrée modifiée : son contenu ne correspond plus à son empreinte enregistrée.",
            pid, k,
        )
    if s == k - 1:
        return Break(
            BreakKind.INSERTED,
            f"entrée insérée : l'entrée enregistrée à l'origine en position {k - 1} "
            f"a été décalée en position {k}.",
            pid, k - 1,
        )
    if s == k + 1:
        if nxt is not None and nxt.seq == k + 1 and _rehash_at(nxt, k) == nxt.hash:
            return Break(
                BreakKind.REORDERED,
                f"entrées réordonnées : les entrées des positions {k} et {k + 1} ont été interverties.",
                pid, k,
            )
        return Break(
            BreakKind.MISSING,
            f"entrée supprimée puis chaîne renumérotée : l'entrée enregistrée en position {k + 1} "
            f"occupe désormais la position {k}.",
            pid, k,
        )
    return Break(
        BreakKind.REORDERED,
        f"entrées réordonnées : l'entrée présente en position {k} a été enregistrée en position {s}.",
        pid, k,
    )


def _check_record(
    pid: UUID,
    entries: _Peek[StoredEntry],
    head: Any | None,
    check: _Anchored | None,
    start: _Anchored | None,
    progress: Callable[[int], object] | None,
) -> tuple[Break | None, int]:
    """The first break of one record's chain (entries in ``entries`` while they are ``pid``'s)."""
    expected = start.seq if start is not None else 1
    prev: str | None = None if start is not None else GENESIS  # unknown before a since-anchor start
    last: StoredEntry | None = None
    brk: Break | None = None
    upper = max(int(head.seq) if head is not None else 0, check.seq if check else 0)
    n = 0
    while (e := entries.peek()) is not None and e.patient_id == pid:
        entries.pop()
        n += 1
        if progress is not None and n % 1000 == 0:
            progress(1000)
        if brk is not None:
            continue  # the rest of the record is only counted
        brk = (
            _sequence_break(e, expected, pid)
            or _hash_break(e, entries, pid, upper)
            or _link_break(e, prev, pid)
            or _anchor_break(e, pid, (start, check))
        )
        if brk is None:
            prev, last, expected = e.hash, e, expected + 1
    if progress is not None and n % 1000:
        progress(n % 1000)
    if brk is not None:
        return brk, n
    return _end_break(pid, head, check, last, expected - 1), n


def _sequence_break(e: StoredEntry, expected: int, pid: UUID) -> Break | None:
    """Entry ``e`` is not at the position the chain expects: entries missing, or one repeated."""
    if e.seq == expected:
        return None
    if e.seq < expected:
        return Break(BreakKind.INSERTED, "position en double dans la chaîne.", pid, e.seq)
    if e.seq - expected == 1:
        msg = f"entrée manquante (supprimée) : la chaîne passe de la position {expected - 1} " \
              f"à la position {e.seq}."
        if expected == 1:
            msg = f"entrée manquante (supprimée) : la chaîne commence à la position {e.seq}."
    else:
        msg = f"entrées manquantes (supprimées) aux positions {expected} à {e.seq - 1}."
    return Break(BreakKind.MISSING, msg, pid, expected)


def _hash_break(e: StoredEntry, entries: _Peek[StoredEntry], pid: UUID, upper: int) -> Break | None:
    """Entry ``e`` no longer matches its hash: what happened, told from the entry that follows."""
    if entry_hash(e.values(), e.prev_hash) == e.hash:
        return None
    return _diagnose(e, entries.peek() if _same(entries.peek(), pid) else None, pid, max(upper, e.seq + 1))


def _link_break(e: StoredEntry, prev: str | None, pid: UUID) -> Break | None:
    """Entry ``e`` does not chain to the entry before it (``prev``: that entry's hash, if known)."""
    if prev is None or e.prev_hash == prev:
        return None
    return Break(
        BreakKind.LINK,
        f"chaînage rompu : l'empreinte précédente enregistrée ne correspond pas à l'entrée "
        f"en position {e.seq - 1} (entrée modifiée puis re-scellée, insérée ou déplacée).",
        pid, e.seq,
    )


def _anchor_break(
    e: StoredEntry, pid: UUID, anchors: tuple[_Anchored | None, _Anchored | None]
) -> Break | None:
    """Entry ``e`` differs from the one an anchor attested at its position."""
    for anchored in anchors:
        if anchored is not None and e.seq == anchored.seq and e.hash != anchored.hash:
            return Break(
                BreakKind.ANCHOR,
                f"l'entrée ne correspond pas à celle attestée par l'ancre n° {anchored.anchor_id} "
                "(chaîne réécrite depuis l'ancrage).",
                pid, e.seq, anchored.anchor_id,
            )
    return None


def _end_break(
    pid: UUID, head: Any | None, check: _Anchored | None, last: StoredEntry | None, last_seq: int
) -> Break | None:
    """A break at the end of a chain whose entries are sound: against its head, then its anchor."""
    brk = _head_break(pid, head, last, last_seq)
    if brk is None and check is not None and check.seq > last_seq:
        brk = Break(
            BreakKind.MISSING,
            f"entrée(s) manquante(s) en fin de chaîne : l'ancre n° {check.anchor_id} atteste "
            f"{check.seq} entrée(s), la chaîne s'arrête à la position {last_seq}.",
            pid, last_seq + 1, check.anchor_id,
        )
    return brk


def _head_break(pid: UUID, head: Any | None, last: StoredEntry | None, last_seq: int) -> Break | None:
    """The chain's last entry (``last``, at ``last_seq``) disagrees with the audit_head row."""
    if head is None:
        if last is not None:
            return Break(BreakKind.HEAD, "tête de chaîne absente de la table audit_head.", pid, last_seq)
        return None
    if int(head.seq) > last_seq:
        present = (
            "aucune entrée n'est présente"
            if last_seq == 0
            else f"la dernière présente est en position {last_seq}"
        )
        return Break(
            BreakKind.MISSING,
            f"entrée(s) manquante(s) en fin de chaîne : la tête de chaîne en indique {int(head.seq)}, "
            f"{present}.",
            pid, last_seq + 1,
        )
    if int(head.seq) < last_seq:
        return Break(
            BreakKind.INSERTED,
            f"entrée ajoutée après la fin de chaîne enregistrée (position {int(head.seq)}).",
            pid, int(head.seq) + 1,
        )
    if last is not None and head.hash != last.hash:
        return Break(
            BreakKind.HEAD, "la tête de chaîne ne correspond pas à la dernière entrée.", pid, last_seq
        )
    return None


def _same(e: StoredEntry | None, pid: UUID) -> bool:
    return e is not None and e.patient_id == pid


def _check_anchors(
    conn: Connection,
    anchors: list[Anchor],
    keys: Mapping[str, ec.EllipticCurvePublicKey] | None,
    recompute: set[int] | None,
    report: VerifyReport,
) -> None:
    """Numbering, anchor chain, signatures; Merkle roots of ``recompute`` (None: all)."""
    prev: Anchor | None = None
    for a in anchors:
        expected_id = prev.id + 1 if prev is not None else 1
        if a.id != expected_id:
            missing = (
                f"ancre n° {expected_id} manquante (supprimée)"
                if a.id - expected_id == 1
                else f"ancres n° {expected_id} à {a.id - 1} manquantes (supprimées)"
            )
            report.breaks.append(Break(BreakKind.ANCHOR, f"{missing} avant celle-ci.", anchor_id=a.id))
        elif a.prev_digest != (prev.digest() if prev is not None else GENESIS_DIGEST):
            report.breaks.append(Break(
                BreakKind.ANCHOR, "chaînage des ancres rompu : l'ancre précédente a été modifiée.",
                anchor_id=a.id,
            ))
        if keys is not None:
            valid = signature_valid(a, keys)
            if valid is None:
                report.breaks.append(Break(
                    BreakKind.ANCHOR, f"signée par une clé inconnue (identifiant {a.key_id}).",
                    anchor_id=a.id,
                ))
            elif not valid:
                report.breaks.append(Break(
                    BreakKind.ANCHOR, "signature invalide : l'ancre a été modifiée.", anchor_id=a.id,
                ))
        if recompute is None or a.id in recompute:
            heads = anchor_heads(conn, a.id)
            if len(heads) != a.head_count or heads_root(heads) != a.merkle_root:
                report.breaks.append(Break(
                    BreakKind.ANCHOR,
                    "les têtes de chaîne ancrées ont été modifiées (racine de Merkle différente de la "
                    "racine signée).",
                    anchor_id=a.id,
                ))
        report.anchors += 1
        prev = a
    if keys is None and anchors:
        report.warnings.append("signatures des ancres non vérifiées (aucune clé de vérification fournie).")


def verify(
    conn: Connection,
    patient_id: UUID | None = None,
    since_anchor: int | None = None,
    *,
    keys: Mapping[str, ec.EllipticCurvePublicKey] | None = None,
    progress: Callable[[int], object] | None = None,
) -> VerifyReport:
    """Recompute the chains (all records, or one) and check them against heads and anchors.

    ``since_anchor``: incremental check, from the state attested by that anchor; it assumes
    the trail up to that anchor was verified before (anchors older than it are checked for
    numbering and signature, not recomputed). ``keys``: public keys by key id (see
    :func:`dmp.audit.anchor.verification_keys`); without them, signatures are not checked.
    """
    scope = "journal complet" if patient_id is None else chain_label(patient_id)
    if since_anchor is not None:
        scope += f", depuis l'ancre n° {since_anchor}"
    report = VerifyReport(scope=scope)
    anchors = list_anchors(conn)
    report.latest_anchor = anchors[-1] if anchors else None
    if since_anchor is not None and all(a.id != since_anchor for a in anchors):
        report.breaks.append(Break(BreakKind.ANCHOR, "ancre introuvable.", anchor_id=since_anchor))
        return report

    # Which anchors get their Merkle root recomputed.
    recompute: set[int] | None = None
    if patient_id is not None:
        recompute = {
            int(r.anchor_id)
            for q in (_anchored_query(patient_id, None), _anchored_query(patient_id, since_anchor))
            for r in conn.execute(q)
        }
    elif since_anchor is not None:
        recompute = {a.id for a in anchors if a.id >= since_anchor}
    _check_anchors(conn, anchors, keys, recompute, report)

    e_q = select(audit_entry)
    h_q = select(audit_head).order_by(audit_head.c.patient_id)
    if patient_id is not None:
        e_q = e_q.where(audit_entry.c.patient_id == patient_id)
        h_q = h_q.where(audit_head.c.patient_id == patient_id)
    if since_anchor is not None:
        s_sub = _anchored_query(patient_id, since_anchor).subquery()
        e_q = e_q.outerjoin(s_sub, s_sub.c.patient_id == audit_entry.c.patient_id).where(
            audit_entry.c.seq >= func.coalesce(s_sub.c.seq, 1)
        )
    e_q = e_q.order_by(audit_entry.c.patient_id, audit_entry.c.seq)

    entries = _Peek(StoredEntry.from_row(r) for r in _stream(conn, e_q))
    heads = _Peek(_stream(conn, h_q))
    checks = _Peek(_stream(conn, _anchored_query(patient_id, None)))
    starts: _Peek[Any] = _Peek(
        _stream(conn, _anchored_query(patient_id, since_anchor)) if since_anchor is not None else iter(())
    )

    def anchored(p: _Peek[Any], pid: UUID) -> _Anchored | None:
        row = p.peek()
        if row is not None and row.patient_id == pid:
            p.pop()
            return _Anchored(int(row.anchor_id), int(row.seq), row.hash)
        return None

    while True:
        candidates = [x.patient_id for x in (entries.peek(), heads.peek(), checks.peek(), starts.peek())
                      if x is not None]
        if not candidates:
            break
        pid: UUID = min(candidates)
        head_row = heads.peek()
        head = heads.pop() if head_row is not None and head_row.patient_id == pid else None
        check, start = anchored(checks, pid), anchored(starts, pid)
        brk, n = _check_record(pid, entries, head, check, start, progress)
        report.records += 1
        report.entries += n
        if brk is not None:
            report.breaks.append(brk)
    return report
