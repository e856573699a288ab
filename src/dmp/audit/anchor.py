"""Signed anchors: a periodic Merkle root over the chain heads, signed by the instance key.

Anchor *n* covers the heads that moved since anchor *n-1* (its period). Its payload —
id, dates, root, number of heads, the digest of anchor *n-1*'s payload and the key id —
is signed with ECDSA P-256 / SHA-256 by the instance key ``var/keys/audit-anchor.pem``
(created 0600 on first use). Anchors therefore form a signed chain of their own; a gap
in their numbers or a broken ``prev_digest`` is reported by ``dmp audit verify``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Connection, and_, func, insert, select

from dmp.audit.merkle import heads_root
from dmp.store.schema_audit import audit_anchor, audit_anchor_head, audit_entry, audit_head

KEY_FILE = "audit-anchor.pem"
PUBLIC_KEY_GLOB = "audit-anchor*.pub.pem"  # retired keys' public halves, kept to verify old anchors
GENESIS_DIGEST = "0" * 64
_CHUNK = 1000


class AnchorError(RuntimeError):
    """An anchor cannot be made (e.g. a chain head does not match its entry)."""


@dataclass(frozen=True, slots=True)
class Anchor:
    id: int
    created_at: datetime
    period_start: datetime | None
    period_end: datetime
    head_count: int
    merkle_root: str
    prev_digest: str
    key_id: str
    signature: str

    @classmethod
    def from_row(cls, row: Any) -> Anchor:
        return cls(
            id=int(row.id),
            created_at=row.created_at,
            period_start=row.period_start,
            period_end=row.period_end,
            head_count=int(row.head_count),
            merkle_root=row.merkle_root,
            prev_digest=row.prev_digest,
            key_id=row.key_id,
            signature=row.signature,
        )

    def payload(self) -> bytes:
        """The signed bytes (sorted-key compact JSON)."""
        return anchor_payload(
            self.id, self.created_at, self.period_start, self.period_end, self.head_count,
            self.merkle_root, self.prev_digest, self.key_id,
        )

    def digest(self) -> str:
        return hashlib.sha256(self.payload()).hexdigest()


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def anchor_payload(
    anchor_id: int,
    created_at: datetime,
    period_start: datetime | None,
    period_end: datetime,
    head_count: int,
    merkle_root: str,
    prev_digest: str,
    key_id: str,
) -> bytes:
    doc = {
        "v": 1,
        "type": "dmp-audit-anchor",
        "id": anchor_id,
        "created_at": _ts(created_at),
        "period_start": _ts(period_start),
        "period_end": _ts(period_end),
        "head_count": head_count,
        "merkle_root": merkle_root,
        "prev_digest": prev_digest,
        "key_id": key_id,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("ascii")


# ---- keys -----------------------------------------------------------------------------


def key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """SHA-256 of the SubjectPublicKeyInfo (DER), first 16 bytes in hex."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()[:32]


def load_or_create_key(keys_dir: Path) -> ec.EllipticCurvePrivateKey:
    """The instance anchor key ``keys_dir/audit-anchor.pem``, generated (0600) if missing."""
    path = keys_dir / KEY_FILE
    if not path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # created meanwhile by another process
            return load_or_create_key(keys_dir)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        return key
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, ec.EllipticCurvePrivateKey) or not isinstance(loaded.curve, ec.SECP256R1):
        raise AnchorError(f"{path} : clé EC P-256 attendue")
    return loaded


def verification_keys(keys_dir: Path) -> dict[str, ec.EllipticCurvePublicKey]:
    """Public keys that may have signed anchors: the instance key and retired ``*.pub.pem``."""
    keys: dict[str, ec.EllipticCurvePublicKey] = {}
    for pub_path in sorted(keys_dir.glob(PUBLIC_KEY_GLOB)):
        pub = serialization.load_pem_public_key(pub_path.read_bytes())
        if isinstance(pub, ec.EllipticCurvePublicKey):
            keys[key_id(pub)] = pub
    priv_path = keys_dir / KEY_FILE
    if priv_path.exists():
        priv = serialization.load_pem_private_key(priv_path.read_bytes(), password=None)
        if isinstance(priv, ec.EllipticCurvePrivateKey):
            keys[key_id(priv.public_key())] = priv.public_key()
    return keys


def sign(key: ec.EllipticCurvePrivateKey, payload: bytes) -> str:
    return base64.b64encode(key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode("ascii")


def signature_valid(anchor: Anchor, keys: Mapping[str, ec.EllipticCurvePublicKey]) -> bool | None:
    """True/False; None when no key with the anchor's key id is known."""
    pub = keys.get(anchor.key_id)
    if pub is None:
        return None
    try:
        pub.verify(base64.b64decode(anchor.signature), anchor.payload(), ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


# ---- making and reading anchors -----------------------------------------------------------


def latest_anchor(conn: Connection) -> Anchor | None:
    row = conn.execute(select(audit_anchor).order_by(audit_anchor.c.id.desc()).limit(1)).first()
    return Anchor.from_row(row) if row is not None else None


def get_anchor(conn: Connection, anchor_id: int) -> Anchor | None:
    row = conn.execute(select(audit_anchor).where(audit_anchor.c.id == anchor_id)).first()
    return Anchor.from_row(row) if row is not None else None


def list_anchors(conn: Connection) -> list[Anchor]:
    return [Anchor.from_row(r) for r in conn.execute(select(audit_anchor).order_by(audit_anchor.c.id))]


def anchor_heads(conn: Connection, anchor_id: int) -> list[tuple[UUID, int, str]]:
    rows = conn.execute(
        select(audit_anchor_head.c.patient_id, audit_anchor_head.c.seq, audit_anchor_head.c.hash)
        .where(audit_anchor_head.c.anchor_id == anchor_id)
        .order_by(audit_anchor_head.c.patient_id)
    )
    return [(r.patient_id, int(r.seq), r.hash) for r in rows]


def _moved_heads(conn: Connection) -> list[tuple[UUID, int, str, str | None]]:
    """Heads beyond their last anchored position, with the hash of the entry they name."""
    h, ah, e = audit_head, audit_anchor_head, audit_entry
    last_anchored = (
        select(func.max(ah.c.seq)).where(ah.c.patient_id == h.c.patient_id).scalar_subquery()
    )
    rows = conn.execute(
        select(h.c.patient_id, h.c.seq, h.c.hash, e.c.hash.label("entry_hash"))
        .select_from(h.outerjoin(e, and_(e.c.patient_id == h.c.patient_id, e.c.seq == h.c.seq)))
        .where(h.c.seq > func.coalesce(last_anchored, 0))
        .order_by(h.c.patient_id)
    )
    return [(r.patient_id, int(r.seq), r.hash, r.entry_hash) for r in rows]


def make_anchor(conn: Connection, signer_key: ec.EllipticCurvePrivateKey, now: datetime) -> Anchor:
    """Anchor the heads that moved since the previous anchor; sign and store it.

    Refuses (``AnchorError``) to anchor a head that does not match its entry: anchoring
    must never launder a tampered chain. Two concurrent runs cannot fork the anchor chain
    (the second one fails on the primary key).
    """
    if now.tzinfo is None:
        raise ValueError("make_anchor : date avec fuseau horaire attendue")
    prev = latest_anchor(conn)
    moved = _moved_heads(conn)
    bad = [pid for pid, _seq, head_hash, entry_hash in moved if head_hash != entry_hash]
    if bad:
        raise AnchorError(
            f"{len(bad)} tête(s) de chaîne incohérente(s) (dont Patient/{bad[0]}) : "
            "lancez « dmp audit verify » ; aucune ancre n'a été créée."
        )
    heads = [(pid, seq, head_hash) for pid, seq, head_hash, _ in moved]
    pub = signer_key.public_key()
    anchor_id = prev.id + 1 if prev is not None else 1
    kid = key_id(pub)
    root = heads_root(heads)
    prev_digest = prev.digest() if prev is not None else GENESIS_DIGEST
    period_start = prev.period_end if prev is not None else None
    payload = anchor_payload(anchor_id, now, period_start, now, len(heads), root, prev_digest, kid)
    anchor = Anchor(
        id=anchor_id,
        created_at=now,
        period_start=period_start,
        period_end=now,
        head_count=len(heads),
        merkle_root=root,
        prev_digest=prev_digest,
        key_id=kid,
        signature=sign(signer_key, payload),
    )
    conn.execute(
        insert(audit_anchor).values(
            id=anchor.id,
            created_at=anchor.created_at,
            period_start=anchor.period_start,
            period_end=anchor.period_end,
            head_count=anchor.head_count,
            merkle_root=anchor.merkle_root,
            prev_digest=anchor.prev_digest,
            key_id=anchor.key_id,
            signature=anchor.signature,
        )
    )
    for i in range(0, len(heads), _CHUNK):
        conn.execute(
            insert(audit_anchor_head),
            [
                {"patient_id": pid, "anchor_id": anchor_id, "seq": seq, "hash": hh}
                for pid, seq, hh in heads[i : i + _CHUNK]
            ],
        )
    return anchor
