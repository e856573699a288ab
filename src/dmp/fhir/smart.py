"""SMART App Launch 2.x discovery document (``.well-known/smart-configuration``).

It says only what the server does: SMART Backend Services for professionals' software
(``client_credentials`` with a ``private_key_jwt`` assertion carrying the card chain in ``x5c``),
and authorization code + PKCE (S256 only) for patients' apps, which are public clients.
"""

from __future__ import annotations

from collections.abc import Iterable

from dmp.fhir.common import Json

BACKEND_SCOPE = "system/*.*"  # what a card's token is granted (docs/auth.md)


def smart_configuration(
    base_url: str, patient_app_scopes: Iterable[str], assertion_algorithms: Iterable[str]
) -> Json:
    base = base_url.rstrip("/")
    return {
        "issuer": base,
        "token_endpoint": f"{base}/oauth/token",
        "authorization_endpoint": f"{base}/oauth/authorize",
        "grant_types_supported": ["authorization_code", "client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": sorted(assertion_algorithms),
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": sorted({BACKEND_SCOPE, *patient_app_scopes}),
        "capabilities": [
            "client-confidential-asymmetric",
            "client-public",
            "launch-standalone",
            "context-standalone-patient",
            "permission-patient",
            "permission-v2",
        ],
    }
