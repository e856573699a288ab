from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import jwt
import pytest
from auth_helpers import IDNPS, NOW, make_ca, make_card
from cryptography import x509

from dmp.auth.assertion import VerifiedAssertion
from dmp.auth.pki import PkiError, card_identity
from dmp.auth.tokens import TokenSigner, actor_from_assertion
from dmp.domain.actor import Actor, ActorKind, PurposeOfUse
from dmp.errors import DmpError

ISSUER = "https://dmp.example.test"

ACTOR = Actor(
    kind=ActorKind.PROFESSIONAL,
    id=IDNPS,
    name="Dr Marie Curie",
    profession="10",
    specialty="SM26",
    structure_id="10B0123456",
    structure_name="Cabinet Curie",
    purpose=PurposeOfUse.ETREAT,
    justification="Patient inconscient",
    software="MonLogiciel 4.2",
    scopes=frozenset({"system/DocumentReference.read", "system/Patient.read"}),
)


@pytest.fixture
def signer(tmp_path: Path) -> TokenSigner:
    return TokenSigner.generate_file(tmp_path / "token.key")


def _code(signer: TokenSigner, token: str, **kwargs: object) -> DmpError:
    with pytest.raises(DmpError) as err:
        signer.verify(token, now=kwargs.get("now", NOW))  # type: ignore[arg-type]
    return err.value


def test_round_trip(signer: TokenSigner) -> None:
    token, expires_in = signer.issue(ACTOR, now=NOW, issuer=ISSUER)
    assert expires_in == 900
    assert signer.verify(token, now=NOW) == ACTOR
    assert signer.verify(token, now=NOW + timedelta(seconds=899)) == ACTOR


def test_claims(signer: TokenSigner) -> None:
    token, _ = signer.issue(ACTOR, now=NOW, issuer=ISSUER, lifetime=timedelta(minutes=5))
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES256"
    assert header["kid"] == signer.kid == signer.public_jwk()["kid"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["iss"] == ISSUER
    assert claims["sub"] == IDNPS
    assert claims["kind"] == "professional"
    assert claims["purpose_of_use"] == "ETREAT"
    assert claims["justification"] == "Patient inconscient"
    assert claims["scope"] == "system/DocumentReference.read system/Patient.read"
    assert claims["exp"] - claims["iat"] == 300
    assert claims["iat"] == int(NOW.timestamp())
    assert claims["jti"]
    # Verifiable by a third party with the published JWK.
    public = jwt.PyJWK({k: v for k, v in signer.public_jwk().items() if k != "use"})
    jwt.decode(token, public, algorithms=["ES256"], options={"verify_exp": False})


def test_minimal_actor_omits_empty_claims(signer: TokenSigner) -> None:
    actor = Actor(kind=ActorKind.PROFESSIONAL, id=IDNPS, name="Dr X")
    token, _ = signer.issue(actor, now=NOW, issuer=ISSUER)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert "justification" not in claims and "scope" not in claims and "specialty" not in claims
    assert signer.verify(token, now=NOW) == actor


def test_each_token_has_its_own_jti(signer: TokenSigner) -> None:
    a, _ = signer.issue(ACTOR, now=NOW, issuer=ISSUER)
    b, _ = signer.issue(ACTOR, now=NOW, issuer=ISSUER)
    assert jwt.decode(a, options={"verify_signature": False})["jti"] != jwt.decode(
        b, options={"verify_signature": False}
    )["jti"]


def test_tampered_token(signer: TokenSigner) -> None:
    token, _ = signer.issue(ACTOR, now=NOW, issuer=ISSUER)
    other, _ = signer.issue(
        Actor(kind=ActorKind.PROFESSIONAL, id="899999999999", name="Intrus"), now=NOW, issuer=ISSUER
    )
    header, _payload, signature = token.split(".")
    forged = f"{header}.{other.split('.')[1]}.{signature}"
    err = _code(signer, forged)
    assert err.code == "TOKEN_INVALID"
    assert "signature invalide" in err.detail
    # Flipped signature.
    bad_sig = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert _code(signer, bad_sig).code == "TOKEN_INVALID"


def test_token_from_another_key(signer: TokenSigner, tmp_path: Path) -> None:
    other = TokenSigner.generate_file(tmp_path / "other.key")
    token, _ = other.issue(ACTOR, now=NOW, issuer=ISSUER)
    err = _code(signer, token)
    assert err.code == "TOKEN_INVALID"
    assert "clé de signature inconnue" in err.detail


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "x" * 10000])
def test_garbage_token(signer: TokenSigner, token: str) -> None:
    assert _code(signer, token).code == "TOKEN_INVALID"


def test_alg_none_token(signer: TokenSigner) -> None:
    token = jwt.encode(
        {"sub": IDNPS, "kind": "professional", "name": "X", "exp": 2**40},
        "",
        algorithm="none",
        headers={"kid": signer.kid},
    )
    err = _code(signer, token)
    assert err.code == "TOKEN_INVALID"
    assert "algorithme" in err.detail


def test_expired_token(signer: TokenSigner) -> None:
    token, _ = signer.issue(ACTOR, now=NOW, issuer=ISSUER)
    err = _code(signer, token, now=NOW + timedelta(minutes=15))
    assert err.code == "TOKEN_EXPIRED"
    assert "expiré" in err.message


def test_cache_hit_skips_signature_check(
    signer: TokenSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    token, _ = signer.issue(ACTOR, now=NOW, issuer=ISSUER)
    calls = 0
    decode = signer._decode

    def counting(t: str) -> tuple[Actor, int]:
        nonlocal calls
        calls += 1
        return decode(t)

    monkeypatch.setattr(signer, "_decode", counting)
    for _ in range(5):
        assert signer.verify(token, now=NOW) == ACTOR
    assert calls == 1


def test_cache_does_not_return_an_expired_actor(signer: TokenSigner) -> None:
    token, _ = signer.issue(ACTOR, now=NOW, issuer=ISSUER)
    assert signer.verify(token, now=NOW) == ACTOR  # now cached
    err = _code(signer, token, now=NOW + timedelta(minutes=16))
    assert err.code == "TOKEN_EXPIRED"
    # Still refused afterwards (evicted, then re-verified and found expired).
    assert _code(signer, token, now=NOW + timedelta(minutes=16)).code == "TOKEN_EXPIRED"


def test_cache_is_bounded(tmp_path: Path) -> None:
    signer = TokenSigner.generate_file(tmp_path / "k.pem", cache_size=2)
    tokens = [signer.issue(ACTOR, now=NOW, issuer=ISSUER)[0] for _ in range(5)]
    for token in tokens:
        signer.verify(token, now=NOW)
    assert len(signer._cache) == 2
    assert list(signer._cache) == tokens[-2:]


def test_concurrent_verification(signer: TokenSigner) -> None:
    tokens = [signer.issue(ACTOR, now=NOW, issuer=ISSUER)[0] for _ in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda t: signer.verify(t, now=NOW), tokens * 25))
    assert all(r == ACTOR for r in results)


def test_generate_file_creates_then_reuses_the_key(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "token.key"
    first = TokenSigner.generate_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = TokenSigner.generate_file(path)
    assert second.kid == first.kid
    assert TokenSigner.from_pem_file(path).kid == first.kid
    token, _ = first.issue(ACTOR, now=NOW, issuer=ISSUER)
    assert second.verify(token, now=NOW) == ACTOR
    assert [p.name for p in path.parent.iterdir()] == ["token.key"]  # no temp file left


def test_missing_or_bad_key_file(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match="introuvable"):
        TokenSigner.from_pem_file(tmp_path / "absent.pem")
    (tmp_path / "bad.pem").write_text("pas une clé")
    with pytest.raises(PkiError, match="illisible"):
        TokenSigner.from_pem_file(tmp_path / "bad.pem")


def test_actor_from_assertion(tmp_path: Path) -> None:
    make_ca(tmp_path / "ca")
    card = make_card(tmp_path / "ca", tmp_path / "card")
    identity = card_identity(x509.load_pem_x509_certificate(card.certificate.read_bytes()))
    verified = VerifiedAssertion(
        identity=identity,
        purpose=PurposeOfUse.CENTRE15,
        justification=None,
        software="Régulation 1.0",
        jti="j-1",
        expires_at=NOW + timedelta(minutes=5),
    )
    actor = actor_from_assertion(verified, scopes=["system/Patient.read"])
    assert actor == Actor(
        kind=ActorKind.PROFESSIONAL,
        id=IDNPS,
        name="Dr Marie Curie",
        profession="10",
        specialty="SM26",
        structure_id="10B0123456",
        structure_name="Cabinet Curie",
        purpose=PurposeOfUse.CENTRE15,
        justification=None,
        software="Régulation 1.0",
        scopes=frozenset({"system/Patient.read"}),
    )
    assert actor.rpps == IDNPS[1:]
