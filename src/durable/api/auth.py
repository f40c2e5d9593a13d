"""Admin auth: `Authorization: Bearer <DURABLE_ADMIN_TOKEN>` or the session cookie of POST /api/login.

The cookie holds an HMAC of the token, never the token; every comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.requests import Request

from durable.errors import Unauthorized

COOKIE = "durable_session"


def session_value(token: str) -> str:
    return hmac.new(token.encode(), b"durable-session-v1", hashlib.sha256).hexdigest()


def check_admin(request: Request, token: str | None) -> None:
    """Raise Unauthorized unless the request carries the admin token (a no-op when none is set)."""
    if token is None:
        return
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        if hmac.compare_digest(header[7:].strip().encode(), token.encode()):
            return
        raise Unauthorized("the bearer token is wrong")
    cookie = request.cookies.get(COOKIE)
    if cookie is not None and hmac.compare_digest(cookie.encode(), session_value(token).encode()):
        return
    raise Unauthorized("sign in: send Authorization: Bearer <DURABLE_ADMIN_TOKEN> or POST /api/login")
