"""Test PKI standing in for the French *IGC Santé* (CPS card certificates).

In production, professionals authenticate with the authentication certificate of
their CPS card (or its e-CPS / software equivalent), issued by the ANS
*IGC Santé*. This module builds a small, self-contained stand-in so that the
service, its tests and the demo can run without any real card: one certificate
authority (CA) that directly issues "card" certificates. There is no
intermediate CA and no CRL file: revocation is a list of serial numbers kept by
the service (see ``dmp.auth.assertion``).

Certificate profile
===================

Certificate authority (``ca.crt`` / ``ca.key``)
-----------------------------------------------

* Key: EC P-256 (``secp256r1``), stored as unencrypted PKCS#8 PEM, file mode
  ``0600``. Keep it offline outside of tests.
* Signature: ECDSA with SHA-256. Self-signed. Version 3.
* Subject = issuer: ``C=FR, O=DMP (test), CN=<common name>`` (default common name
  ``DMP IGC-Santé de test``).
* Validity: from one hour before creation, for ``days`` days (default 3650).
* Extensions:

  ========================  ========  ======================================
  Extension                 Critical  Value
  ========================  ========  ======================================
  basicConstraints          yes       ``CA:TRUE, pathlen:0``
  keyUsage                  yes       ``keyCertSign, cRLSign``
  subjectKeyIdentifier      no        SHA-1 of the public key
  ========================  ========  ======================================

Card certificate (``card.crt`` / ``card.key`` / ``chain.pem``)
---------------------------------------------------------------

* Key: EC P-256, unencrypted PKCS#8 PEM, file mode ``0600``.
* Signature: ECDSA with SHA-256 by the CA. Serial number: 159 random bits.
* Subject attributes (one of each at most):

  ==========================================  ===============================
  Attribute (OID)                             Content
  ==========================================  ===============================
  countryName (2.5.4.6)                       ``FR``
  organizationName (2.5.4.10)                 structure name, if any
  organizationIdentifier (2.5.4.97)           structure id (Struct_IdNat),
                                              if any
  organizationalUnitName (2.5.4.11)           specialty (savoir-faire, e.g.
                                              ``SM26``), if any
  title (2.5.4.12)                            profession code, TRE_G15
                                              (e.g. ``10`` = médecin)
  serialNumber (2.5.4.5)                      IDNPS = ``8`` + RPPS (11 digits)
  commonName (2.5.4.3)                        professional's display name
  businessCategory (2.5.4.15)                 practice setting (TRE_A01), e.g.
                                              ``SAMU_SMUR``, if any
  ==========================================  ===============================

* Validity: from five minutes before issuance, for ``days`` days (default
  1095), never beyond the CA's own expiry.
* Extensions:

  ========================  ========  ======================================
  Extension                 Critical  Value
  ========================  ========  ======================================
  basicConstraints          yes       ``CA:FALSE``
  keyUsage                  yes       ``digitalSignature``
  extendedKeyUsage          no        ``clientAuth`` (1.3.6.1.5.5.7.3.2)
  subjectKeyIdentifier      no        SHA-1 of the public key
  authorityKeyIdentifier    no        the CA's subjectKeyIdentifier
  ========================  ========  ======================================

* ``card.crt`` holds the card certificate alone; ``chain.pem`` holds the card
  certificate followed by the CA certificate, in the order a client puts them
  in the ``x5c`` header of its client assertion (leaf first).

What the service checks
-----------------------

The card certificate must be directly issued by the configured CA (signature
verified; a CA certificate sent by the client is never trusted), must not itself
be a CA, must be valid at the time of the request, must carry the
``clientAuth`` extended key usage and an IDNPS ``serialNumber``, and its serial
number must not be revoked.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dmp.domain.professional import is_valid_rpps
from dmp.errors import DmpError

__all__ = [
    "CA_CERT_FILE",
    "CA_KEY_FILE",
    "CARD_CERT_FILE",
    "CARD_KEY_FILE",
    "CHAIN_FILE",
    "CardFiles",
    "CardIdentity",
    "CertificateAuthority",
    "PkiError",
    "card_identity",
    "init_ca",
    "issue_card",
    "load_ca",
]

CA_CERT_FILE = "ca.crt"
CA_KEY_FILE = "ca.key"
CARD_CERT_FILE = "card.crt"
CARD_KEY_FILE = "card.key"
CHAIN_FILE = "chain.pem"

DEFAULT_CA_NAME = "DMP IGC-Santé de test"

_RPPS_RE = re.compile(r"[0-9]{11}")
_IDNPS_RE = re.compile(r"8[0-9]{11}")
# X.520 upper bounds (ub-common-name, ub-title, ub-organization-name, ...).
_MAX_ATTRIBUTE_LENGTH = 64
_CA_BACKDATE = timedelta(hours=1)
_CARD_BACKDATE = timedelta(minutes=5)


class PkiError(Exception):
    """A PKI operation could not be done; the message is French, for the CLI."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey


@dataclass(frozen=True, slots=True)
class CardFiles:
    certificate: Path  # card.crt: the card certificate alone
    key: Path  # card.key: its private key (0600)
    chain: Path  # chain.pem: card certificate then CA certificate
    serial: int


@dataclass(frozen=True, slots=True)
class CardIdentity:
    idnps: str  # "8" + RPPS
    rpps: str
    name: str
    profession: str  # TRE_G15 code
    specialty: str | None
    structure_id: str | None
    structure_name: str | None
    setting: str | None  # practice setting (TRE_A01), e.g. SAMU_SMUR
    serial: int
    not_before: datetime  # aware, UTC
    not_after: datetime  # aware, UTC


# --------------------------------------------------------------------------- files


def _write_private(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600; never overwrite."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise PkiError(f"Le fichier {path} existe déjà ; il n'a pas été remplacé.") from None
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
    finally:
        os.close(fd)


def _write_public(path: Path, data: bytes) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise PkiError(f"Le fichier {path} existe déjà ; il n'a pas été remplacé.") from None
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _check_attribute(label: str, value: str) -> str:
    value = value.strip()
    if not value:
        raise PkiError(f"{label} : valeur vide.")
    if len(value) > _MAX_ATTRIBUTE_LENGTH:
        raise PkiError(f"{label} : {_MAX_ATTRIBUTE_LENGTH} caractères au plus ({len(value)} reçus).")
    return value


# ------------------------------------------------------------------------------ CA


def init_ca(
    directory: Path,
    *,
    common_name: str = DEFAULT_CA_NAME,
    days: int = 3650,
) -> None:
    """Create a new test CA (``ca.key``, ``ca.crt``) in ``directory``.

    Refuses (``PkiError``) if a CA already exists there.
    """
    directory = Path(directory)
    cert_path, key_path = directory / CA_CERT_FILE, directory / CA_KEY_FILE
    for path in (cert_path, key_path):
        if path.exists():
            raise PkiError(
                f"Une autorité de certification existe déjà dans {directory} ({path.name}) ; "
                "elle n'a pas été remplacée."
            )
    if days < 1:
        raise PkiError(f"Durée de validité invalide : {days} jours (1 au moins).")
    common_name = _check_attribute("Nom de l'autorité de certification", common_name)

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "DMP (test)"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    now = datetime.now(UTC)
    public_key = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CA_BACKDATE)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .sign(key, hashes.SHA256())
    )

    directory.mkdir(parents=True, exist_ok=True)
    _write_private(key_path, _key_pem(key))
    _write_public(cert_path, _cert_pem(cert))


def load_ca(directory: Path) -> CertificateAuthority:
    """Load the CA certificate and private key from ``directory``."""
    directory = Path(directory)
    cert_path, key_path = directory / CA_CERT_FILE, directory / CA_KEY_FILE
    try:
        cert_pem = cert_path.read_bytes()
        key_pem = key_path.read_bytes()
    except FileNotFoundError as exc:
        raise PkiError(
            f"Aucune autorité de certification dans {directory} : fichier {exc.filename} absent."
        ) from None
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        raise PkiError(f"Certificat d'autorité illisible : {cert_path}.") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise PkiError(f"Clé privée d'autorité illisible : {key_path}.") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"La clé {key_path} n'est pas une clé EC.")
    if key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise PkiError(f"La clé {key_path} ne correspond pas au certificat {cert_path}.")
    return CertificateAuthority(certificate=cert, key=key)


# ---------------------------------------------------------------------------- cards


def issue_card(
    directory: Path,
    *,
    rpps: str,
    profession: str,
    specialty: str | None,
    name: str,
    structure_id: str | None,
    structure_name: str | None,
    out: Path,
    days: int = 1095,
    not_before: datetime | None = None,
    setting: str | None = None,
) -> CardFiles:
    """Issue a card certificate with the CA in ``directory``; write it to ``out``.

    Writes ``card.crt``, ``card.key`` (0600) and ``chain.pem`` (card + CA). Refuses
    to overwrite existing files. ``not_before`` (default: five minutes ago) lets
    tests build not-yet-valid or expired cards; the validity never extends past
    the CA's.
    """
    if not _RPPS_RE.fullmatch(rpps) or not is_valid_rpps(rpps):
        raise PkiError(f"Numéro RPPS invalide : {rpps!r} (11 chiffres dont une clé de Luhn attendus).")
    name = _check_attribute("Nom du professionnel", name)
    profession = _check_attribute("Code profession", profession)
    specialty = _check_attribute("Savoir-faire", specialty) if specialty is not None else None
    structure_id = (
        _check_attribute("Identifiant de structure", structure_id) if structure_id is not None else None
    )
    structure_name = (
        _check_attribute("Nom de structure", structure_name) if structure_name is not None else None
    )
    if days < 1:
        raise PkiError(f"Durée de validité invalide : {days} jours (1 au moins).")

    out = Path(out)
    paths = (out / CARD_CERT_FILE, out / CARD_KEY_FILE, out / CHAIN_FILE)
    for path in paths:
        if path.exists():
            raise PkiError(f"Le fichier {path} existe déjà ; il n'a pas été remplacé.")

    ca = load_ca(directory)
    ca_cert = ca.certificate

    start = not_before if not_before is not None else datetime.now(UTC) - _CARD_BACKDATE
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    end = min(start + timedelta(days=days), ca_cert.not_valid_after_utc)
    if end <= start:
        raise PkiError(
            "L'autorité de certification expire avant le début de validité de la carte "
            f"({ca_cert.not_valid_after_utc:%Y-%m-%d})."
        )

    attributes = [x509.NameAttribute(NameOID.COUNTRY_NAME, "FR")]
    if structure_name is not None:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, structure_name))
    if structure_id is not None:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, structure_id))
    if specialty is not None:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, specialty))
    if setting is not None:
        setting = _check_attribute("Cadre d'exercice", setting)
        attributes.append(x509.NameAttribute(NameOID.BUSINESS_CATEGORY, setting))
    attributes += [
        x509.NameAttribute(NameOID.TITLE, profession),
        x509.NameAttribute(NameOID.SERIAL_NUMBER, "8" + rpps),
        x509.NameAttribute(NameOID.COMMON_NAME, name),
    ]

    key = ec.generate_private_key(ec.SECP256R1())
    public_key = key.public_key()
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    serial = x509.random_serial_number()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attributes))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(ca.key, hashes.SHA256())
    )

    out.mkdir(parents=True, exist_ok=True)
    cert_path, key_path, chain_path = paths
    _write_private(key_path, _key_pem(key))
    _write_public(cert_path, _cert_pem(cert))
    _write_public(chain_path, _cert_pem(cert) + _cert_pem(ca_cert))
    return CardFiles(certificate=cert_path, key=key_path, chain=chain_path, serial=serial)


def _single(cert: x509.Certificate, oid: x509.ObjectIdentifier, label: str) -> str | None:
    values = cert.subject.get_attributes_for_oid(oid)
    if not values:
        return None
    if len(values) > 1:
        raise DmpError("CERTIFICATE_INVALID", f"attribut {label} présent plusieurs fois")
    value = values[0].value
    if isinstance(value, bytes):
        raise DmpError("CERTIFICATE_INVALID", f"attribut {label} illisible")
    value = value.strip()
    return value or None


def card_identity(cert: x509.Certificate) -> CardIdentity:
    """Read the professional's identity from a card certificate's subject.

    Raises ``DmpError("CERTIFICATE_INVALID")`` if the IDNPS, the name or the
    profession is missing or malformed. Does not check the certificate's trust.
    """
    idnps = _single(cert, NameOID.SERIAL_NUMBER, "serialNumber (IDNPS)")
    if idnps is None:
        raise DmpError("CERTIFICATE_INVALID", "IDNPS absent (attribut serialNumber du sujet)")
    if not _IDNPS_RE.fullmatch(idnps):
        raise DmpError(
            "CERTIFICATE_INVALID",
            f"IDNPS {idnps!r} invalide (« 8 » suivi des 11 chiffres du RPPS attendu)",
        )
    name = _single(cert, NameOID.COMMON_NAME, "commonName")
    if name is None:
        raise DmpError("CERTIFICATE_INVALID", "nom du professionnel absent (attribut commonName)")
    profession = _single(cert, NameOID.TITLE, "title (profession)")
    if profession is None:
        raise DmpError("CERTIFICATE_INVALID", "code profession absent (attribut title)")
    return CardIdentity(
        idnps=idnps,
        rpps=idnps[1:],
        name=name,
        profession=profession,
        specialty=_single(cert, NameOID.ORGANIZATIONAL_UNIT_NAME, "organizationalUnitName"),
        structure_id=_single(cert, NameOID.ORGANIZATION_IDENTIFIER, "organizationIdentifier"),
        structure_name=_single(cert, NameOID.ORGANIZATION_NAME, "organizationName"),
        setting=_single(cert, NameOID.BUSINESS_CATEGORY, "businessCategory"),
        serial=cert.serial_number,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
    )
