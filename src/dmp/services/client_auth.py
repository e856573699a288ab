"""Server-side state of the professionals' client authentication (SMART Backend Services):
revoked card certificates (``dmp pki revoke``) and the assertion ids already used (replay).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.exc import IntegrityError

from dmp.store.schema import revoked_certificate, used_assertion


def is_revoked(conn: Connection, serial: int) -> bool:
    return (
        conn.execute(
            select(revoked_certificate.c.serial).where(revoked_certificate.c.serial == str(serial))
        ).first()
        is not None
    )


def revoke(conn: Connection, serial: int, now: datetime, reason: str | None) -> bool:
    """Revoke a card certificate by serial number; False if it was revoked already."""
    if conn.execute(select(revoked_certificate).where(revoked_certificate.c.serial == str(serial))).first():
        return False
    conn.execute(insert(revoked_certificate).values(serial=str(serial), revoked_at=now, reason=reason))
    return True


def remember_jti(conn: Connection, jti: str, exp: datetime, now: datetime) -> bool:
    """Record an assertion id until it expires; False if it was seen already (a replay)."""
    conn.execute(delete(used_assertion).where(used_assertion.c.expires_at < now))
    try:
        with conn.begin_nested():
            conn.execute(insert(used_assertion).values(jti=jti, expires_at=exp))
    except IntegrityError:
        return False
    return True
