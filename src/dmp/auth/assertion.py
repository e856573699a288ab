"""Verification of SMART Backend Services client assertions signed by a card.

The client (the professional's software) asks for an access token with the
``client_credentials`` grant and a ``private_key_jwt`` client assertion
(RFC 7523), signed with the private key of the professional's card. The JOSE
header carries the card certificate chain in ``x5c`` (leaf first); the leaf must
be issued directly by the configured CA (``dmp.auth.pki``). A CA certificate sent
in ``x5c`` is never trusted: it is ignored when identical to the configured CA,
refused otherwise.

Claims:

* ``iss`` = ``sub`` = client id = the card's IDNPS (``8`` + RPPS);
* ``aud``: the token endpoint URL (string, or list containing it);
* ``exp`` (required), ``iat`` and ``nbf`` (optional); lifetime at most
  ``max_lifetime`` (5 minutes by default);
* ``jti`` (required), single use;
* ``purpose_of_use`` (optional): ``TREAT`` (default), ``ETREAT`` (break-glass;
  requires ``justification``) or ``CENTRE15``;
* ``justification`` (optional, up to 1000 characters; required for ``ETREAT``);
* ``software`` (optional): client software name and version.

Since these claims are signed with the card's key, the purpose and the
justification of a break-glass access are non-repudiable.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import math
from base64 import b64decode
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, overload

import jwt
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from dmp.auth.pki import CardIdentity, card_identity
from dmp.domain.actor import PurposeOfUse
from dmp.errors import DmpError

__all__ = [
    "ALLOWED_ALGORITHMS",
    "MAX_JUSTIFICATION_LENGTH",
    "VerifiedAssertion",
    "verify_client_assertion",
]

ALLOWED_ALGORITHMS = frozenset({"ES256", "RS256", "PS256"})
MAX_JUSTIFICATION_LENGTH = 1000
MAX_SOFTWARE_LENGTH = 200
MAX_JTI_LENGTH = 256
MAX_ASSERTION_LENGTH = 32 * 1024
MAX_X5C_CERTIFICATES = 4
MIN_RSA_KEY_SIZE = 2048
# Tolerated difference between the client's clock and ours, for iat/nbf in the
# future and for the lifetime measured from our clock.
CLOCK_SKEW = timedelta(seconds=30)

_PURPOSES = {p.value: p for p in PurposeOfUse}


@dataclass(frozen=True, slots=True)
class VerifiedAssertion:
    identity: CardIdentity
    purpose: PurposeOfUse
    justification: str | None
    software: str | None
    jti: str
    expires_at: datetime  # aware, UTC


def _fmt(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d à %H:%M:%S UTC")


def _invalid(detail: str) -> DmpError:
    return DmpError("ASSERTION_INVALID", detail)


def _cert_invalid(detail: str) -> DmpError:
    return DmpError("CERTIFICATE_INVALID", detail)


# ------------------------------------------------------------------------ header


def _parse_header(assertion: str) -> dict[str, Any]:
    if not isinstance(assertion, str) or not assertion:
        raise _invalid("assertion absente")
    if len(assertion) > MAX_ASSERTION_LENGTH:
        raise _invalid(f"assertion trop longue ({MAX_ASSERTION_LENGTH} caractères au plus)")
    if assertion.count(".") != 2:
        raise _invalid("l'assertion n'est pas un JWT signé (format JWS compact attendu)")
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError:
        raise _invalid("en-tête JWT illisible") from None
    if not isinstance(header, dict):
        raise _invalid("en-tête JWT illisible")
    return header


def claimed_client(assertion: str) -> str:
    """Who an assertion *claims* to come from, before any check: for counting failures only.

    The card certificate's fingerprint when the header carries one, else the unverified ``iss``;
    never trusted for anything but keeping one card's failures apart from another's.
    """
    try:
        header = _parse_header(assertion)
        x5c = header.get("x5c")
        if isinstance(x5c, list) and x5c and isinstance(x5c[0], str):
            return "x5c:" + hashlib.sha256(x5c[0].encode()).hexdigest()
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except (DmpError, jwt.PyJWTError, ValueError):
        return "illisible"
    issuer = claims.get("iss") if isinstance(claims, dict) else None
    return f"iss:{issuer[:256]}" if isinstance(issuer, str) else "illisible"


def _check_algorithm(header: dict[str, Any]) -> str:
    alg = header.get("alg")
    if not isinstance(alg, str) or not alg:
        raise _invalid("algorithme de signature (alg) absent")
    if alg not in ALLOWED_ALGORITHMS:
        allowed = ", ".join(sorted(ALLOWED_ALGORITHMS))
        raise _invalid(f"algorithme de signature {alg!r} refusé (acceptés : {allowed})")
    if "crit" in header or "b64" in header:
        raise _invalid("en-têtes crit/b64 non pris en charge")
    return alg


def _load_x5c(header: dict[str, Any]) -> list[x509.Certificate]:
    x5c = header.get("x5c")
    if x5c is None:
        raise _cert_invalid("chaîne de certificats absente (en-tête x5c)")
    if not isinstance(x5c, list) or not x5c:
        raise _cert_invalid("en-tête x5c invalide : liste non vide de certificats attendue")
    if len(x5c) > MAX_X5C_CERTIFICATES:
        raise _cert_invalid(f"en-tête x5c trop long ({MAX_X5C_CERTIFICATES} certificats au plus)")
    certs: list[x509.Certificate] = []
    for position, item in enumerate(x5c, start=1):
        if not isinstance(item, str) or not item:
            raise _cert_invalid(f"x5c[{position}] : certificat encodé en base64 attendu")
        try:
            der = b64decode(item, validate=True)
        except (binascii.Error, ValueError):
            raise _cert_invalid(
                f"x5c[{position}] : base64 invalide (base64 standard du DER attendu)"
            ) from None
        try:
            certs.append(x509.load_der_x509_certificate(der))
        except ValueError:
            raise _cert_invalid(f"x5c[{position}] : certificat DER illisible") from None
    return certs


# ------------------------------------------------------------------ certificate


def _check_chain(certs: list[x509.Certificate], ca_cert: x509.Certificate) -> x509.Certificate:
    leaf, extras = certs[0], certs[1:]
    if leaf == ca_cert:
        raise _cert_invalid(
            "le premier certificat de x5c est celui de l'autorité de certification, pas celui d'une carte"
        )
    for position, extra in enumerate(extras, start=2):
        if extra != ca_cert:
            raise _cert_invalid(
                f"x5c[{position}] : certificat inattendu ({extra.subject.rfc4514_string()}) ; "
                "seul le certificat de l'autorité de certification du DMP peut suivre celui "
                "de la carte"
            )
    try:
        leaf.verify_directly_issued_by(ca_cert)
    except ValueError:
        raise _cert_invalid(
            f"certificat non émis par l'autorité de certification du DMP "
            f"(émetteur : {leaf.issuer.rfc4514_string()})"
        ) from None
    except InvalidSignature:
        raise _cert_invalid(
            "signature du certificat invalide : il n'a pas été émis par l'autorité de certification du DMP"
        ) from None
    except TypeError:
        raise _cert_invalid("algorithme de signature du certificat non pris en charge") from None

    try:
        basic = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        basic = None
    except ValueError:
        raise _cert_invalid("extensions du certificat illisibles") from None
    if basic is not None and basic.ca:
        raise _cert_invalid("certificat d'autorité : un certificat de carte est attendu")
    return leaf


def _check_validity(leaf: x509.Certificate, now: datetime) -> None:
    not_before, not_after = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    if now < not_before:
        raise _cert_invalid(f"certificat pas encore valide (valide à partir du {_fmt(not_before)})")
    if now > not_after:
        raise _cert_invalid(f"certificat expiré le {_fmt(not_after)}")


def _check_usage(leaf: x509.Certificate) -> None:
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        raise _cert_invalid("usage étendu clientAuth absent (extension extendedKeyUsage manquante)") from None
    except ValueError:
        raise _cert_invalid("extensions du certificat illisibles") from None
    if ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        raise _cert_invalid("usage étendu clientAuth absent : certificat non destiné à l'authentification")
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not usage.digital_signature:
        raise _cert_invalid("usage digitalSignature absent de l'extension keyUsage")


def _check_key_matches_algorithm(
    leaf: x509.Certificate, alg: str
) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    key = leaf.public_key()
    if alg == "ES256":
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
            raise _invalid("l'algorithme ES256 exige une clé EC P-256 dans le certificat")
    else:
        if not isinstance(key, rsa.RSAPublicKey):
            raise _invalid(f"l'algorithme {alg} exige une clé RSA dans le certificat")
        if key.key_size < MIN_RSA_KEY_SIZE:
            raise _cert_invalid(f"clé RSA trop courte ({key.key_size} bits, {MIN_RSA_KEY_SIZE} au moins)")
    return key


# ------------------------------------------------------------------------ claims


@overload
def _numeric_date(claims: dict[str, Any], name: str, *, required: Literal[True]) -> datetime: ...
@overload
def _numeric_date(claims: dict[str, Any], name: str, *, required: Literal[False]) -> datetime | None: ...
def _numeric_date(claims: dict[str, Any], name: str, *, required: bool) -> datetime | None:
    """The claim as a UTC datetime; absent, None, or (``required``) an invalid-assertion error."""
    value = claims.get(name)
    if value is None:
        if required:
            raise _invalid(f"revendication {name} absente")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _invalid(f"revendication {name} invalide : date numérique (secondes) attendue")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise _invalid(f"revendication {name} hors limites") from None


def _optional_string(claims: dict[str, Any], name: str, max_length: int) -> str | None:
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _invalid(f"revendication {name} invalide : chaîne de caractères attendue")
    value = value.strip()
    if len(value) > max_length:
        raise _invalid(f"revendication {name} trop longue ({max_length} caractères au plus)")
    return value or None


def _check_times(claims: dict[str, Any], now: datetime, max_lifetime: timedelta) -> datetime:
    exp = _numeric_date(claims, "exp", required=True)
    iat = _numeric_date(claims, "iat", required=False)
    nbf = _numeric_date(claims, "nbf", required=False)
    limit = int(max_lifetime.total_seconds())
    if exp <= now:
        raise _invalid(f"assertion expirée le {_fmt(exp)}")
    if iat is not None:
        if iat > exp:
            raise _invalid("date d'émission (iat) postérieure à la date d'expiration (exp)")
        if iat > now + CLOCK_SKEW:
            raise _invalid(f"date d'émission (iat) dans le futur : {_fmt(iat)}")
        if exp - iat > max_lifetime:
            raise _invalid(
                f"durée de vie de l'assertion trop longue ({int((exp - iat).total_seconds())} s "
                f"entre iat et exp, {limit} s au plus)"
            )
    if exp - now > max_lifetime + CLOCK_SKEW:
        raise _invalid(
            f"durée de vie de l'assertion trop longue (exp dans {int((exp - now).total_seconds())}"
            f" s, {limit} s au plus)"
        )
    if nbf is not None and nbf > now + CLOCK_SKEW:
        raise _invalid(f"assertion pas encore valide (nbf : {_fmt(nbf)})")
    return exp


def _check_subject(claims: dict[str, Any], identity: CardIdentity) -> None:
    iss, sub = claims.get("iss"), claims.get("sub")
    if not isinstance(iss, str) or not iss:
        raise _invalid("revendication iss absente")
    if not isinstance(sub, str) or not sub:
        raise _invalid("revendication sub absente")
    if iss != sub:
        raise _invalid(f"iss ({iss}) et sub ({sub}) doivent être égaux (identifiant du client)")
    if sub != identity.idnps:
        raise _invalid(
            f"l'identifiant du client ({sub}) ne correspond pas à l'IDNPS du certificat ({identity.idnps})"
        )


def _check_audience(claims: dict[str, Any], audience: str) -> None:
    aud = claims.get("aud")
    if isinstance(aud, str):
        ok = aud == audience
    elif isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud):
        ok = audience in aud
    elif aud is None:
        raise _invalid(f"revendication aud absente (audience attendue {audience})")
    else:
        raise _invalid("revendication aud invalide : chaîne ou liste de chaînes attendue")
    if not ok:
        raise _invalid(f"audience attendue {audience}")


def _check_purpose(claims: dict[str, Any]) -> tuple[PurposeOfUse, str | None]:
    raw = claims.get("purpose_of_use")
    if raw is None:
        purpose = PurposeOfUse.TREAT
    elif isinstance(raw, str) and raw in _PURPOSES:
        purpose = _PURPOSES[raw]
    else:
        allowed = ", ".join(_PURPOSES)
        raise _invalid(f"motif d'accès (purpose_of_use) {raw!r} inconnu (acceptés : {allowed})")
    justification = _optional_string(claims, "justification", MAX_JUSTIFICATION_LENGTH)
    if purpose is PurposeOfUse.ETREAT and justification is None:
        raise _invalid(
            "un accès en urgence (bris de glace, ETREAT) exige une justification "
            "(revendication justification)"
        )
    return purpose, justification


# -------------------------------------------------------------------------- main


def verify_client_assertion(
    assertion: str,
    *,
    ca_cert: x509.Certificate,
    audience: str,
    now: datetime,
    is_revoked: Callable[[int], bool],
    remember_jti: Callable[[str, datetime], bool],
    max_lifetime: timedelta = timedelta(minutes=5),
) -> VerifiedAssertion:
    """Verify a card-signed client assertion; raise ``DmpError`` on any failure.

    ``is_revoked(serial)`` tells whether a card serial number is revoked.
    ``remember_jti(jti, expires_at)`` records a jti until its expiry and returns
    False if it was already recorded; it is called last, once everything else
    has been checked.
    """
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)

    header = _parse_header(assertion)
    alg = _check_algorithm(header)
    certs = _load_x5c(header)

    # Trust of the card certificate.
    if not ca_cert.not_valid_before_utc <= now <= ca_cert.not_valid_after_utc:
        raise _cert_invalid(
            "le certificat de l'autorité de certification du DMP n'est pas valide à cette date "
            f"(du {_fmt(ca_cert.not_valid_before_utc)} au {_fmt(ca_cert.not_valid_after_utc)})"
        )
    leaf = _check_chain(certs, ca_cert)
    _check_validity(leaf, now)
    _check_usage(leaf)
    identity = card_identity(leaf)
    public_key = _check_key_matches_algorithm(leaf, alg)

    # Signature of the assertion by the card's key.
    try:
        decoded = jwt.PyJWS().decode_complete(assertion, public_key, algorithms=[alg])
    except jwt.InvalidSignatureError:
        raise _invalid("signature invalide") from None
    except jwt.PyJWTError:
        raise _invalid("JWT illisible ou signature invalide") from None
    try:
        claims = json.loads(decoded["payload"])
    except (ValueError, UnicodeDecodeError):
        raise _invalid("contenu du JWT illisible (JSON attendu)") from None
    if not isinstance(claims, dict):
        raise _invalid("contenu du JWT invalide : objet JSON attendu")

    if is_revoked(identity.serial):
        raise DmpError(
            "CERTIFICATE_REVOKED",
            f"numéro de série {identity.serial:X} (hexadécimal), IDNPS {identity.idnps}",
        )

    _check_subject(claims, identity)
    _check_audience(claims, audience)
    expires_at = _check_times(claims, now, max_lifetime)
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti.strip():
        raise _invalid("revendication jti absente (identifiant unique de l'assertion)")
    if len(jti) > MAX_JTI_LENGTH:
        raise _invalid(f"revendication jti trop longue ({MAX_JTI_LENGTH} caractères au plus)")
    purpose, justification = _check_purpose(claims)
    software = _optional_string(claims, "software", MAX_SOFTWARE_LENGTH)

    if not remember_jti(jti, expires_at):
        raise DmpError("ASSERTION_REPLAYED", f"jti {jti}")

    return VerifiedAssertion(
        identity=identity,
        purpose=purpose,
        justification=justification,
        software=software,
        jti=jti,
        expires_at=expires_at,
    )
