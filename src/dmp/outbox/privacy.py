"""Recipients are personal data: validation, normalisation and masked forms for the logs."""

from __future__ import annotations

import re

EMAIL = "email"
SMS = "sms"
CHANNELS = frozenset({EMAIL, SMS})

_EMAIL_RE = re.compile(
    r"^[^@\s\x00-\x1f\x7f<>,;\"()\[\]\\]+@[A-Za-z0-9\u00c0-\uffff.-]+\.[A-Za-z0-9\u00c0-\uffff-]+$"
)
_PHONE_RE = re.compile(r"^\+[1-9][0-9]{7,14}$")
_ANY_EMAIL_RE = re.compile(r"[^\s<>()\[\],;:\"']+@[^\s<>()\[\],;:\"']+")
_DIGITS_RE = re.compile(r"\+?[0-9]{8,}")


def normalize_recipient(channel: str, recipient: str) -> str:
    """The stored form of a recipient, or ValueError (message in French, without the value)."""
    if channel == EMAIL:
        value = recipient.strip()
        if len(value) > 254 or not _EMAIL_RE.match(value):
            raise ValueError("adresse électronique invalide")
        return value
    if channel == SMS:
        value = re.sub(r"[\s.\-()]", "", recipient)
        if value.startswith("00"):
            value = "+" + value[2:]
        elif re.fullmatch(r"0[1-9][0-9]{8}", value):  # French national format
            value = "+33" + value[1:]
        if not _PHONE_RE.match(value):
            raise ValueError("numéro de téléphone invalide (format international +33… attendu)")
        return value
    raise ValueError(f"canal inconnu : {channel!r} (email ou sms)")


def mask_email(address: str) -> str:
    """``marie.dupont@example.org`` → ``m***@e***.org``."""
    local, _, domain = address.rpartition("@")
    if not local:
        return "***"
    host, dot, tld = domain.rpartition(".")
    if not host:
        host, dot, tld = domain, "", ""
    return f"{local[:1]}***@{host[:1]}***{dot}{tld}"


def mask_phone(number: str) -> str:
    """``+33612345678`` → ``+33*******78``."""
    if len(number) < 6:
        return "***"
    return number[:3] + "*" * (len(number) - 5) + number[-2:]


def mask_recipient(channel: str, recipient: str) -> str:
    return mask_email(recipient) if channel == EMAIL else mask_phone(recipient)


def scrub(text: str, recipient: str | None = None, *, limit: int = 300) -> str:
    """Remove personal data (the recipient, any address or phone number) from an error text."""
    if recipient:
        text = re.sub(re.escape(recipient), "<destinataire>", text, flags=re.IGNORECASE)
    text = _ANY_EMAIL_RE.sub("<adresse>", text)
    text = _DIGITS_RE.sub("<numéro>", text)
    text = " ".join(text.split())
    return text[:limit]
