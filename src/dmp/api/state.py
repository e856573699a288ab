"""Process-wide objects the routes share, built once by create_app."""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography import x509

from dmp.auth.tokens import TokenSigner
from dmp.services.context import Runtime


class FailureLimiter:
    """At most ``limit`` failed logins per client address in a sliding ``window`` (seconds)."""

    def __init__(self, limit: int = 20, window: int = 60) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            q = self._failures[key]
            while q and q[0] < now - self.window:
                q.popleft()
            return len(q) < self.limit

    def failure(self, key: str) -> None:
        with self._lock:
            self._failures[key].append(time.monotonic())


@dataclass
class AppState:
    runtime: Runtime
    signer: TokenSigner
    ca_cert: x509.Certificate
    login_limiter: FailureLimiter = field(default_factory=FailureLimiter)
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    # Test hook for the all-or-nothing check: fail after N documents. Never set in production.
    fail_after: int | None = None
