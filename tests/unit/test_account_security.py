"""Account security building blocks: password policy, codes, TOTP, keys, cookies, PKCE."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pyotp
import pytest

from dmp.accounts import codes
from dmp.accounts.directory import read_entries
from dmp.accounts.keys import AccountKeys
from dmp.accounts.oauth import check_redirect_uri, s256, valid_challenge
from dmp.accounts.passwords import common_passwords, hash_password, password_problems, verify_password
from dmp.accounts.service import majority_date, normalize_login
from dmp.web.common import PERSON_SPACE, safe_next, secure_cookies


@pytest.mark.parametrize(
    "password",
    [
        "court",
        "motdepasse2024!",
        "Azertyuiop123",
        "P@ssw0rd12345",
        "azertyazertyazerty",
        "aaaaaaaaaaaaaa",
        "123456789012",
        "Jetaime123456!",
        "monespacesante",
    ],
)
def test_weak_passwords_are_refused(password: str) -> None:
    assert password_problems(password)


@pytest.mark.parametrize(
    "password",
    [
        "Une phrase de passe tout à fait sûre",
        "correct horse battery staple",
        "Soleil-de-minuit-bleu-42",
    ],
)
def test_good_passwords_are_accepted(password: str) -> None:
    assert password_problems(password) == []


def test_personal_words_are_refused() -> None:
    assert password_problems("Dupont-Marie-1980-05-17", personal=["DUPONT"])
    assert password_problems("ma date 17051980 et moi", personal=["17051980"])


def test_common_list_is_shipped_and_hashes_are_argon2id() -> None:
    assert len(common_passwords()) > 300 and "123456" in common_passwords()
    stored = hash_password("Une phrase de passe tout à fait sûre")
    assert stored.startswith("$argon2id$")
    assert verify_password(stored, "Une phrase de passe tout à fait sûre")
    assert not verify_password(stored, "une autre phrase de passe")
    assert not verify_password(None, "n'importe quoi")  # unknown account: same work, refused


def test_codes_are_unambiguous_and_normalised() -> None:
    code = codes.activation_code()
    assert len(code) == 19 and code.count("-") == 3
    assert not set(code.replace("-", "")) & set("01OILZ2S5B8")
    assert codes.normalize_code(code.lower().replace("-", " ")) == code.replace("-", "")
    assert len(set(codes.recovery_codes())) == codes.RECOVERY_COUNT
    assert codes.otp_code().isdigit() and len(codes.otp_code()) == 6


def test_totp_window_and_replay() -> None:
    secret = codes.new_totp_secret()
    now = datetime(2026, 11, 23, 9, 30, 10, tzinfo=UTC)
    totp = pyotp.TOTP(secret)
    step = codes.totp_match(secret, totp.at(now), now, None)
    assert step == totp.timecode(now)
    assert codes.totp_match(secret, totp.at(now - timedelta(seconds=30)), now, None) == step - 1  # drift
    assert codes.totp_match(secret, totp.at(now - timedelta(seconds=90)), now, None) is None
    assert codes.totp_match(secret, totp.at(now), now, step) is None  # replay
    assert codes.totp_match(secret, "000000" if totp.at(now) != "000000" else "111111", now, None) is None


def test_keys_seal_totp_secrets_per_account_and_separate_purposes() -> None:
    keys = AccountKeys.derive(b"m" * 32)
    account, other = uuid4(), uuid4()
    sealed = keys.seal_totp(account, "JBSWY3DPEHPK3PXP")
    assert b"JBSWY3DPEHPK3PXP" not in sealed
    assert keys.open_totp(account, sealed) == "JBSWY3DPEHPK3PXP"
    with pytest.raises(Exception):  # noqa: B017 - AES-GCM InvalidTag
        keys.open_totp(other, sealed)
    assert keys.digest("activation", "X") != keys.digest("recovery", "X")
    assert keys.digest("activation", "X") != AccountKeys.derive(b"n" * 32).digest("activation", "X")
    assert "m" * 8 not in repr(keys) and "secret" in repr(keys)


@pytest.mark.parametrize(
    "base,secure",
    [
        ("https://dmp.exemple.fr", True),
        ("http://127.0.0.1:8080", False),
        ("http://localhost:8080", False),
        ("http://[::1]:8080", False),
        ("http://dmp.exemple.fr", True),
        ("http://10.0.0.5:8080", True),
    ],
)
def test_secure_cookies_are_relaxed_only_on_loopback_http(base: str, secure: bool) -> None:
    assert secure_cookies(base) is secure


@pytest.mark.parametrize(
    "value,ok",
    [
        ("/oauth/authorize?client_id=x", True),
        ("/", True),
        ("//evil.example/x", False),
        ("https://evil.example/", False),
        ("/\\evil.example", False),
        ("", False),
        ("/a\nb", False),
    ],
)
def test_return_pages_are_local_only(value: str, ok: bool) -> None:
    assert (safe_next(value, PERSON_SPACE) is not None) is ok


def test_pkce_s256_rfc7636_vector_and_redirect_rules() -> None:
    assert (
        s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )
    assert valid_challenge("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
    assert not valid_challenge("trop-court") and not valid_challenge("x" * 129)
    for uri in ("https://app.exemple.fr/cb", "http://127.0.0.1:7000/cb", "fr.exemple.app:/cb"):
        assert check_redirect_uri(uri) == uri
    for uri in ("http://app.exemple.fr/cb", "https://app.exemple.fr/cb#x", "javascript:alert(1)", "app:/cb"):
        with pytest.raises(ValueError):
            check_redirect_uri(uri)


def test_logins_and_majority_dates() -> None:
    assert normalize_login("person", " 2 79 03 51 215 189 89 ") == "279035121518989"
    assert normalize_login("person", " Parent@Exemple.FR ") == "parent@exemple.fr"
    assert normalize_login("pro", "100 0123 4565") == "10001234565"
    assert majority_date(date(2008, 2, 29)) == date(2026, 3, 1)
    assert majority_date(date(2008, 11, 23)) == date(2026, 11, 23)


def test_directory_header_is_checked(tmp_path: Path) -> None:
    f = tmp_path / "x.csv"
    f.write_text("Nom d'exercice;Code profession\nDUPONT;10\n", encoding="utf-8")
    with pytest.raises(ValueError, match="identifiant pp"):
        read_entries(f)
    f.write_text(
        "Identifiant PP;Nom d'exercice;Prénom d'exercice;Code profession\n10001234565;MULLER;Charles;10\n",
        encoding="utf-8",
    )
    total, entries = read_entries(f)
    [(line, entry)] = list(entries)
    assert (total, line, entry.rpps, entry.name, entry.profession) == (
        1,
        2,
        "10001234565",
        "Charles MULLER",
        "10",
    )
