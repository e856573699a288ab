"""Process-wide objects the routes share, built once by create_app."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography import x509

from dmp.auth.tokens import TokenSigner
from dmp.services.context import Runtime


@dataclass
class AppState:
    runtime: Runtime
    signer: TokenSigner
    ca_cert: x509.Certificate
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
