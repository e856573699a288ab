from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from auth_helpers import (
    AUDIENCE,
    IDNPS,
    NOW,
    JtiMemory,
    b64der,
    build_assertion,
    claims_for,
    custom_leaf,
    load_chain,
    load_key,
    make_ca,
    make_card,
    raw_jws,
    self_signed,
)
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from dmp.auth.assertion import VerifiedAssertion, verify_client_assertion
from dmp.auth.pki import CardFiles, load_ca
from dmp.domain.actor import PurposeOfUse
from dmp.errors import DmpError


@dataclass
class Pki:
    ca_dir: Path
    ca_cert: x509.Certificate
    card: CardFiles
    tmp: Path


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca_dir = tmp_path / "ca"
    ca_cert = make_ca(ca_dir)
    return Pki(ca_dir, ca_cert, make_card(ca_dir, tmp_path / "card"), tmp_path)


def verify(
    pki: Pki,
    assertion: str,
    *,
    now: datetime = NOW,
    is_revoked: Callable[[int], bool] = lambda serial: False,
    remember_jti: Callable[[str, datetime], bool] | None = None,
    max_lifetime: timedelta = timedelta(minutes=5),
) -> VerifiedAssertion:
    return verify_client_assertion(
        assertion,
        ca_cert=pki.ca_cert,
        audience=AUDIENCE,
        now=now,
        is_revoked=is_revoked,
        remember_jti=remember_jti if remember_jti is not None else JtiMemory(),
        max_lifetime=max_lifetime,
    )


def refused(pki: Pki, assertion: str, code: str, fragment: str, **kwargs: object) -> DmpError:
    with pytest.raises(DmpError) as err:
        verify(pki, assertion, **kwargs)  # type: ignore[arg-type]
    assert err.value.code == code, err.value
    assert fragment in err.value.detail, err.value.detail
    return err.value


# ------------------------------------------------------------------- happy paths


def test_happy_path(pki: Pki) -> None:
    memory = JtiMemory()
    claims = claims_for()
    result = verify(pki, build_assertion(pki.card, claims), remember_jti=memory)
    identity = result.identity
    assert identity.idnps == IDNPS
    assert identity.rpps == IDNPS[1:]
    assert identity.name == "Dr Marie Curie"
    assert identity.profession == "10"
    assert identity.specialty == "SM26"
    assert identity.structure_id == "10B0123456"
    assert identity.structure_name == "Cabinet Curie"
    assert identity.serial == pki.card.serial
    assert result.purpose is PurposeOfUse.TREAT
    assert result.justification is None
    assert result.software is None
    assert result.jti == claims["jti"]
    assert result.expires_at.timestamp() == claims["exp"]
    assert memory.seen == {claims["jti"]: result.expires_at}


def test_break_glass_with_justification_and_software(pki: Pki) -> None:
    claims = claims_for(
        aud=["https://other.example.test", AUDIENCE],
        purpose_of_use="ETREAT",
        justification="Patient inconscient admis aux urgences",
        software="MonLogiciel 4.2",
    )
    result = verify(pki, build_assertion(pki.card, claims))
    assert result.purpose is PurposeOfUse.ETREAT
    assert result.justification == "Patient inconscient admis aux urgences"
    assert result.software == "MonLogiciel 4.2"


def test_centre15_without_iat(pki: Pki) -> None:
    claims = claims_for(purpose_of_use="CENTRE15", iat=None)
    assert verify(pki, build_assertion(pki.card, claims)).purpose is PurposeOfUse.CENTRE15


def test_leaf_alone_without_ca_in_x5c(pki: Pki) -> None:
    leaf = load_chain(pki.card.certificate)
    assert verify(pki, build_assertion(pki.card, chain=leaf)).identity.idnps == IDNPS


@pytest.mark.parametrize("algorithm", ["RS256", "PS256"])
def test_rsa_card(pki: Pki, algorithm: str) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf = custom_leaf(pki.ca_dir, key)
    assertion = build_assertion(pki.card, key=key, chain=[leaf, pki.ca_cert], algorithm=algorithm)
    assert verify(pki, assertion).identity.name == "Dr Custom"


# ------------------------------------------------------------------ certificate


def test_expired_certificate(pki: Pki) -> None:
    card = make_card(
        pki.ca_dir, pki.tmp / "old", not_before=NOW - timedelta(days=400), days=365
    )
    refused(pki, build_assertion(card), "CERTIFICATE_INVALID", "certificat expiré le")


def test_not_yet_valid_certificate(pki: Pki) -> None:
    card = make_card(pki.ca_dir, pki.tmp / "future", not_before=NOW + timedelta(days=1))
    refused(pki, build_assertion(card), "CERTIFICATE_INVALID", "pas encore valide")


def test_certificate_from_another_ca(pki: Pki) -> None:
    make_ca(pki.tmp / "other-ca", common_name="Autre AC")
    card = make_card(pki.tmp / "other-ca", pki.tmp / "other-card")
    # With the other CA in the chain: that CA is never trusted.
    refused(pki, build_assertion(card), "CERTIFICATE_INVALID", "x5c[2] : certificat inattendu")
    # Leaf alone.
    leaf = load_chain(card.certificate)
    refused(
        pki,
        build_assertion(card, chain=leaf),
        "CERTIFICATE_INVALID",
        "non émis par l'autorité de certification du DMP",
    )


def test_certificate_from_another_ca_with_the_same_name(pki: Pki) -> None:
    make_ca(pki.tmp / "twin-ca")  # same default common name, different key
    card = make_card(pki.tmp / "twin-ca", pki.tmp / "twin-card")
    leaf = load_chain(card.certificate)
    refused(
        pki,
        build_assertion(card, chain=leaf),
        "CERTIFICATE_INVALID",
        "signature du certificat invalide",
    )


def test_self_signed_leaf_claiming_to_be_the_ca(pki: Pki) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    fake = self_signed(key, pki.ca_cert.subject)
    assertion = build_assertion(pki.card, key=key, chain=[fake])
    refused(pki, assertion, "CERTIFICATE_INVALID", "signature du certificat invalide")


def test_ca_certificate_as_leaf(pki: Pki) -> None:
    ca = load_ca(pki.ca_dir)
    assertion = build_assertion(pki.card, key=ca.key, chain=[pki.ca_cert])
    refused(pki, assertion, "CERTIFICATE_INVALID", "celui de l'autorité de certification")


def test_ca_flag_on_leaf(pki: Pki) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = custom_leaf(pki.ca_dir, key, is_ca=True)
    assertion = build_assertion(pki.card, key=key, chain=[leaf])
    refused(pki, assertion, "CERTIFICATE_INVALID", "certificat d'autorité")


def test_certificate_without_client_auth(pki: Pki) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = custom_leaf(pki.ca_dir, key, client_auth=False)
    assertion = build_assertion(pki.card, key=key, chain=[leaf])
    refused(pki, assertion, "CERTIFICATE_INVALID", "clientAuth")


def test_revoked_certificate(pki: Pki) -> None:
    err = refused(
        pki,
        build_assertion(pki.card),
        "CERTIFICATE_REVOKED",
        IDNPS,
        is_revoked=lambda serial: serial == pki.card.serial,
    )
    assert "révoqué" in err.message


def test_missing_x5c(pki: Pki) -> None:
    key = load_key(pki.card.key)
    import jwt

    assertion = jwt.encode(claims_for(), key, algorithm="ES256")  # type: ignore[arg-type]
    refused(pki, assertion, "CERTIFICATE_INVALID", "x5c")


def test_x5c_not_base64_der(pki: Pki) -> None:
    header = {"alg": "ES256", "x5c": ["pas du base64 !"]}
    refused(pki, raw_jws(header, claims_for(), b"x"), "CERTIFICATE_INVALID", "base64 invalide")


# -------------------------------------------------------------------- signature


def test_forged_signature(pki: Pki) -> None:
    other_key = ec.generate_private_key(ec.SECP256R1())
    assertion = build_assertion(pki.card, key=other_key)
    refused(pki, assertion, "ASSERTION_INVALID", "signature invalide")


def test_tampered_claims(pki: Pki) -> None:
    assertion = build_assertion(pki.card)
    header, _payload, signature = assertion.split(".")
    _h, other_payload, _s = build_assertion(pki.card, claims_for(software="X")).split(".")
    tampered = f"{header}.{other_payload}.{signature}"
    refused(pki, tampered, "ASSERTION_INVALID", "signature invalide")


def test_alg_none(pki: Pki) -> None:
    header = {"alg": "none", "x5c": [b64der(c) for c in load_chain(pki.card.chain)]}
    refused(pki, raw_jws(header, claims_for(), None), "ASSERTION_INVALID", "'none' refusé")


def test_hs256_with_the_public_key(pki: Pki) -> None:
    chain = load_chain(pki.card.chain)
    public_pem = chain[0].public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "JWT", "x5c": [b64der(c) for c in chain]}
    refused(pki, raw_jws(header, claims_for(), public_pem), "ASSERTION_INVALID", "'HS256' refusé")


def test_algorithm_not_matching_the_certificate_key(pki: Pki) -> None:
    header = {"alg": "RS256", "x5c": [b64der(c) for c in load_chain(pki.card.chain)]}
    refused(pki, raw_jws(header, claims_for(), b"x"), "ASSERTION_INVALID", "exige une clé RSA")


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "e30.e30.", "x" * 40000])
def test_garbage(pki: Pki, garbage: str) -> None:
    with pytest.raises(DmpError) as err:
        verify(pki, garbage)
    assert err.value.code == "ASSERTION_INVALID"


# ----------------------------------------------------------------------- claims


def test_wrong_audience(pki: Pki) -> None:
    assertion = build_assertion(pki.card, claims_for(aud="https://evil.example.test/token"))
    refused(pki, assertion, "ASSERTION_INVALID", f"audience attendue {AUDIENCE}")


def test_audience_list_without_ours(pki: Pki) -> None:
    assertion = build_assertion(pki.card, claims_for(aud=["https://a.test", "https://b.test"]))
    refused(pki, assertion, "ASSERTION_INVALID", "audience attendue")


def test_expired_assertion(pki: Pki) -> None:
    claims = claims_for(now=NOW - timedelta(minutes=10))
    refused(pki, build_assertion(pki.card, claims), "ASSERTION_INVALID", "assertion expirée le")


def test_lifetime_too_long(pki: Pki) -> None:
    claims = claims_for(lifetime=timedelta(minutes=10))
    refused(pki, build_assertion(pki.card, claims), "ASSERTION_INVALID", "durée de vie")


def test_lifetime_too_long_without_iat(pki: Pki) -> None:
    claims = claims_for(lifetime=timedelta(minutes=10), iat=None)
    refused(pki, build_assertion(pki.card, claims), "ASSERTION_INVALID", "exp dans 600 s")


def test_missing_exp(pki: Pki) -> None:
    claims = claims_for(exp=None)
    refused(pki, build_assertion(pki.card, claims), "ASSERTION_INVALID", "exp absente")


def test_iat_in_the_future(pki: Pki) -> None:
    claims = claims_for(now=NOW + timedelta(minutes=2), lifetime=timedelta(minutes=1))
    refused(pki, build_assertion(pki.card, claims), "ASSERTION_INVALID", "dans le futur")


def test_missing_jti(pki: Pki) -> None:
    claims = claims_for(jti=None)
    refused(pki, build_assertion(pki.card, claims), "ASSERTION_INVALID", "jti absente")


def test_replayed_jti(pki: Pki) -> None:
    memory = JtiMemory()
    assertion = build_assertion(pki.card)
    verify(pki, assertion, remember_jti=memory)
    err = refused(pki, assertion, "ASSERTION_REPLAYED", "jti", remember_jti=memory)
    assert "déjà utilisée" in err.message


def test_refused_assertion_does_not_burn_its_jti(pki: Pki) -> None:
    memory = JtiMemory()
    bad = claims_for(aud="https://evil.example.test/token")
    assertion = build_assertion(pki.card, bad)
    refused(pki, assertion, "ASSERTION_INVALID", "audience", remember_jti=memory)
    good = {**bad, "aud": AUDIENCE}
    assert verify(pki, build_assertion(pki.card, good), remember_jti=memory).jti == bad["jti"]


def test_iss_differs_from_sub(pki: Pki) -> None:
    claims = claims_for(iss="899999999999")
    refused(pki, build_assertion(pki.card, claims), "ASSERTION_INVALID", "doivent être égaux")


def test_sub_differs_from_card_idnps(pki: Pki) -> None:
    claims = claims_for(sub="899999999999")
    refused(
        pki,
        build_assertion(pki.card, claims),
        "ASSERTION_INVALID",
        f"ne correspond pas à l'IDNPS du certificat ({IDNPS})",
    )


@pytest.mark.parametrize("justification", [None, "", "   "])
def test_break_glass_without_justification(pki: Pki, justification: str | None) -> None:
    claims = claims_for(purpose_of_use="ETREAT")
    if justification is not None:
        claims["justification"] = justification
    refused(pki, build_assertion(pki.card, claims), "ASSERTION_INVALID", "exige une justification")


def test_justification_too_long(pki: Pki) -> None:
    claims = claims_for(purpose_of_use="ETREAT", justification="x" * 1001)
    refused(pki, build_assertion(pki.card, claims), "ASSERTION_INVALID", "1000 caractères")


def test_unknown_purpose(pki: Pki) -> None:
    claims = claims_for(purpose_of_use="HMARKT")
    refused(pki, build_assertion(pki.card, claims), "ASSERTION_INVALID", "'HMARKT' inconnu")
