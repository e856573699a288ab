"""Generation of the codes people type or receive, and TOTP (RFC 6238) checking."""

from __future__ import annotations

import secrets
from datetime import datetime

import pyotp

from dmp.accounts.keys import same

# No 0/O, 1/I/L, 2/Z, 5/S, 8/B: codes read aloud at a desk or copied from a letter.
_ALPHABET = "ACDEFGHJKMNPQRTUVWXY34679"
ACTIVATION_GROUPS = 4  # XXXX-XXXX-XXXX-XXXX: 16 characters, about 74 bits
RECOVERY_COUNT = 10
OTP_DIGITS = 6
TOTP_STEP = 30
TOTP_WINDOW = 1  # one step of clock drift either way


def _group(n: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def activation_code() -> str:
    return "-".join(_group(4) for _ in range(ACTIVATION_GROUPS))


def recovery_codes(n: int = RECOVERY_COUNT) -> list[str]:
    return [f"{_group(5)}-{_group(5)}" for _ in range(n)]


def normalize_code(raw: str) -> str:
    """Typed codes: spaces and dashes ignored, case folded."""
    return "".join(ch for ch in raw.upper() if ch.isalnum())


def otp_code() -> str:
    return f"{secrets.randbelow(10**OTP_DIGITS):0{OTP_DIGITS}d}"


def new_totp_secret() -> str:
    return pyotp.random_base32(32)


def totp_uri(secret: str, account_label: str, issuer: str = "DMP") -> str:
    return pyotp.TOTP(secret, interval=TOTP_STEP).provisioning_uri(name=account_label, issuer_name=issuer)


def totp_match(secret: str, code: str, now: datetime, last_step: int | None) -> int | None:
    """The time step that ``code`` matches (within the drift window, after ``last_step``), or None.

    Every candidate is compared (constant time, no early exit) and a step already used is
    refused, so a code seen over someone's shoulder cannot be replayed.
    """
    totp = pyotp.TOTP(secret, interval=TOTP_STEP)
    code = "".join(ch for ch in code if ch.isdigit())
    current = totp.timecode(now)
    found: int | None = None
    for offset in range(-TOTP_WINDOW, TOTP_WINDOW + 1):
        step = current + offset
        if same(totp.generate_otp(step), code) and (last_step is None or step > last_step) and found is None:
            found = step
    return found
