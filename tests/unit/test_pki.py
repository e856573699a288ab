from __future__ import annotations

import stat
from pathlib import Path

import pytest
from auth_helpers import NOW, make_card
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dmp.auth.pki import (
    CardIdentity,
    PkiError,
    card_identity,
    init_ca,
    issue_card,
    load_ca,
)
from dmp.errors import DmpError


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_ca_creates_self_signed_ca(tmp_path: Path) -> None:
    ca_dir = tmp_path / "ca"
    init_ca(ca_dir, common_name="AC de test", days=100)
    assert _mode(ca_dir / "ca.key") == 0o600
    ca = load_ca(ca_dir)
    cert = ca.certificate
    assert isinstance(ca.key, ec.EllipticCurvePrivateKey)
    assert isinstance(ca.key.curve, ec.SECP256R1)
    assert cert.subject == cert.issuer
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "AC de test"
    cert.verify_directly_issued_by(cert)
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign and not usage.digital_signature
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(ca.key.public_key())
    assert 99 <= (cert.not_valid_after_utc - cert.not_valid_before_utc).days <= 100


def test_default_ca_name(tmp_path: Path) -> None:
    init_ca(tmp_path)
    cert = load_ca(tmp_path).certificate
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "DMP IGC-Santé de test"
    )


def test_init_ca_refuses_to_overwrite(tmp_path: Path) -> None:
    init_ca(tmp_path)
    before = (tmp_path / "ca.key").read_bytes()
    with pytest.raises(PkiError, match="existe déjà"):
        init_ca(tmp_path)
    assert (tmp_path / "ca.key").read_bytes() == before


def test_load_ca_missing(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match="Aucune autorité de certification"):
        load_ca(tmp_path)


def test_issue_card_files_and_profile(tmp_path: Path) -> None:
    ca_dir, out = tmp_path / "ca", tmp_path / "card"
    init_ca(ca_dir)
    ca = load_ca(ca_dir)
    files = make_card(ca_dir, out)

    assert files.certificate == out / "card.crt"
    assert files.key == out / "card.key"
    assert files.chain == out / "chain.pem"
    assert _mode(files.key) == 0o600
    (card,) = x509.load_pem_x509_certificates(files.certificate.read_bytes())
    chain = x509.load_pem_x509_certificates(files.chain.read_bytes())
    assert chain == [card, ca.certificate]
    assert card.serial_number == files.serial

    card.verify_directly_issued_by(ca.certificate)
    subject = {a.oid: a.value for a in card.subject}
    assert subject[NameOID.COMMON_NAME] == "Dr Marie Curie"
    assert subject[NameOID.SERIAL_NUMBER] == "810003456786"
    assert subject[NameOID.TITLE] == "10"
    assert subject[NameOID.ORGANIZATIONAL_UNIT_NAME] == "SM26"
    assert subject[NameOID.ORGANIZATION_NAME] == "Cabinet Curie"
    assert subject[NameOID.ORGANIZATION_IDENTIFIER] == "10B0123456"

    ext = card.extensions
    assert not ext.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = ext.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    eku = ext.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    aki = ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ca_ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ca_ski.digest


def test_card_identity(tmp_path: Path) -> None:
    init_ca(tmp_path / "ca")
    files = make_card(tmp_path / "ca", tmp_path / "card")
    cert = x509.load_pem_x509_certificate(files.certificate.read_bytes())
    identity = card_identity(cert)
    assert identity == CardIdentity(
        idnps="810003456786",
        rpps="10003456786",
        name="Dr Marie Curie",
        profession="10",
        specialty="SM26",
        structure_id="10B0123456",
        structure_name="Cabinet Curie",
        setting=None,
        serial=files.serial,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
    )
    assert identity.not_before.utcoffset() is not None


def test_card_without_optional_attributes(tmp_path: Path) -> None:
    init_ca(tmp_path / "ca")
    files = issue_card(
        tmp_path / "ca",
        rpps="10000000009",
        profession="60",
        specialty=None,
        name="Jeanne Infirmière",
        structure_id=None,
        structure_name=None,
        out=tmp_path / "card",
    )
    identity = card_identity(x509.load_pem_x509_certificate(files.certificate.read_bytes()))
    assert identity.idnps == "810000000009"
    assert identity.profession == "60"
    assert identity.specialty is None
    assert identity.structure_id is None and identity.structure_name is None
    assert 1094 <= (identity.not_after - identity.not_before).days <= 1095


@pytest.mark.parametrize("rpps", ["1234567890", "123456789012", "1000345678a", "١٠٠٠٣٤٥٦٧٨٩"])
def test_issue_card_refuses_bad_rpps(tmp_path: Path, rpps: str) -> None:
    init_ca(tmp_path / "ca")
    with pytest.raises(PkiError, match="RPPS invalide"):
        issue_card(
            tmp_path / "ca",
            rpps=rpps,
            profession="10",
            specialty=None,
            name="X",
            structure_id=None,
            structure_name=None,
            out=tmp_path / "card",
        )
    assert not (tmp_path / "card").exists()


def test_issue_card_refuses_to_overwrite(tmp_path: Path) -> None:
    init_ca(tmp_path / "ca")
    make_card(tmp_path / "ca", tmp_path / "card")
    with pytest.raises(PkiError, match="existe déjà"):
        make_card(tmp_path / "ca", tmp_path / "card")


def test_issue_card_refuses_too_long_name(tmp_path: Path) -> None:
    init_ca(tmp_path / "ca")
    with pytest.raises(PkiError, match="64 caractères au plus"):
        issue_card(
            tmp_path / "ca",
            rpps="10003456786",
            profession="10",
            specialty=None,
            name="N" * 65,
            structure_id=None,
            structure_name=None,
            out=tmp_path / "card",
        )


def test_card_validity_capped_by_ca(tmp_path: Path) -> None:
    init_ca(tmp_path / "ca", days=10)
    files = make_card(tmp_path / "ca", tmp_path / "card", not_before=NOW)
    cert = x509.load_pem_x509_certificate(files.certificate.read_bytes())
    assert cert.not_valid_after_utc == load_ca(tmp_path / "ca").certificate.not_valid_after_utc


def test_card_identity_requires_idnps(tmp_path: Path) -> None:
    init_ca(tmp_path)
    ca = load_ca(tmp_path).certificate  # the CA has no IDNPS
    with pytest.raises(DmpError) as err:
        card_identity(ca)
    assert err.value.code == "CERTIFICATE_INVALID"
    assert "IDNPS absent" in err.value.detail
