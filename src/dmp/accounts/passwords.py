"""Password hashing (argon2id) and the password policy.

Policy (docs/accounts.md): 12 to 128 characters, at least 5 different characters, not one of
the most common passwords shipped with the package (``data/common-passwords.txt``, also
refused with digits or symbols around it and with the usual letter substitutions), and not
built on the account's own identifier, name or birth date. No network look-up.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Iterable
from functools import cache
from importlib import resources

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 12
MAX_LENGTH = 128  # bounds the hashing work an attacker can ask for
MIN_DISTINCT = 5

# argon2id, RFC 9106 "second recommended" (low-memory) profile: t=3, m=64 MiB, p=4.
_hasher = PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=4, hash_len=32, salt_len=16)
_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i"}
)
_EDGES = re.compile(r"^[\W\d_]+|[\W\d_]+$")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Constant work whether or not ``stored`` exists: an unknown account costs one hash too."""
    if len(password) > MAX_LENGTH:
        password = password[:MAX_LENGTH]
    try:
        return _hasher.verify(stored or _dummy_hash(), password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)


@cache
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_urlsafe(24))


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@cache
def common_passwords() -> frozenset[str]:
    raw = resources.files("dmp.accounts").joinpath("data", "common-passwords.txt").read_text("utf-8")
    return frozenset(
        _fold(line.strip()).replace(" ", "")
        for line in raw.splitlines()
        if line.strip() and not line.startswith("#")
    )


def _variants(password: str) -> set[str]:
    folded = _fold(password).replace(" ", "")
    core = _EDGES.sub("", folded)
    leet = folded.translate(_LEET)
    return {folded, core, leet, _EDGES.sub("", leet), core.translate(_LEET)} - {""}


def is_common(password: str) -> bool:
    common = common_passwords()
    if any(v in common for v in _variants(password)):
        return True
    # A common password with a few characters around it ("azertyuiop" + "qsdf") is hardly better.
    total = len(password.replace(" ", ""))
    for v in _variants(password):
        if any(len(w) >= 4 and w in v and total - len(w) < 6 for w in common):
            return True
    folded = _fold(password)
    # A common word repeated ("azertyazerty") is no better than the word.
    for size in range(3, len(folded) // 2 + 1):
        if len(folded) % size == 0 and folded[:size] * (len(folded) // size) == folded:
            return True
    return False


def password_problems(password: str, *, personal: Iterable[str] = ()) -> list[str]:
    """What is wrong with a new password, in French (empty when acceptable)."""
    problems: list[str] = []
    if len(password) < MIN_LENGTH:
        problems.append(f"Le mot de passe doit comporter au moins {MIN_LENGTH} caractères.")
    if len(password) > MAX_LENGTH:
        problems.append(f"Le mot de passe doit comporter au plus {MAX_LENGTH} caractères.")
    if len(set(password)) < MIN_DISTINCT:
        problems.append(f"Le mot de passe doit comporter au moins {MIN_DISTINCT} caractères différents.")
    if is_common(password):
        problems.append("Ce mot de passe fait partie des plus courants : choisissez-en un autre.")
    folded = _fold(password)
    for item in personal:
        token = _fold(item).replace(" ", "")
        if len(token) >= 4 and token in folded.replace(" ", ""):
            problems.append(
                "Le mot de passe ne doit pas contenir votre identifiant, votre nom ni votre date "
                "de naissance."
            )
            break
    return problems
