"""Failed token requests, counted in the database and shared by every worker (accounts/throttle.py).

Used by both grants of ``POST /oauth/token``: client credentials (``api/auth.py``) and the patient
apps' authorization code (``web/oauth.py``).
"""

from __future__ import annotations

import math
from datetime import datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dmp.accounts import throttle
from dmp.accounts.keys import keys_for
from dmp.api.state import AppState
from dmp.errors import DmpError


def token_buckets(request: Request, state: AppState, client: str) -> throttle.TokenKeys:
    """The client's bucket and the address's (the address as the trusted proxies give it)."""
    address = request.client.host if request.client else "inconnue"
    return throttle.TokenKeys.of(keys_for(state.runtime.settings), client, address)


def refused_until(state: AppState, buckets: throttle.TokenKeys, now: datetime) -> datetime | None:
    with state.runtime.engine.begin() as conn:
        return throttle.token_refused_until(conn, buckets, now)


def count_failure(state: AppState, buckets: throttle.TokenKeys) -> None:
    with state.runtime.engine.begin() as conn:
        throttle.count_token_failure(conn, buckets, state.runtime.now())


def rate_limited(until: datetime, now: datetime) -> Response:
    seconds = str(max(1, math.ceil((until - now).total_seconds())))
    return JSONResponse(
        {
            "error": "slow_down",
            "error_description": DmpError("RATE_LIMITED", seconds).message,
            "dmp_error_code": "RATE_LIMITED",
        },
        status_code=429,
        headers={"Retry-After": seconds, "Cache-Control": "no-store"},
    )
