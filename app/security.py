"""API keys and per-key rate limits for the /v1 routes.

With ``DOCQA_API_KEYS`` empty the API is open (a single-user, loopback install). Otherwise each
request needs ``Authorization: Bearer KEY`` (401), and each key gets a token bucket of
``DOCQA_RATE_LIMIT_PER_MINUTE`` requests (429 with ``Retry-After``).

Keys are compared as bytes: the server decodes header bytes as latin-1, and
``hmac.compare_digest`` refuses ``str`` with non-ASCII characters (a TypeError, once a 500).
``token.encode("latin-1")`` gives back the exact bytes the client sent, so a key with non-ASCII
characters matches a client that sends it in UTF-8.
"""

from __future__ import annotations

import hmac
import math

from fastapi import Request

from app.errors import RateLimitedError, UnauthorizedError
from app.state import ServiceState


def check_api_key(state: ServiceState, request: Request) -> None:
    keys = [k.get_secret_value() for k in state.settings.api_keys]
    if not keys:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    sent = token.encode("latin-1", "replace")
    if scheme.lower() != "bearer" or not any(
        hmac.compare_digest(sent, k.encode("utf-8")) for k in keys
    ):
        raise UnauthorizedError(
            "missing or invalid API key: send `Authorization: Bearer <key>`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    wait = state.limiter.take(token)
    if wait > 0:
        raise RateLimitedError(
            "rate limit exceeded for this API key",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )


async def require_api_key(request: Request) -> None:
    check_api_key(request.app.state.docqa, request)
