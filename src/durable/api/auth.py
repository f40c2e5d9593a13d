"""Admin auth: `Authorization: Bearer <DURABLE_ADMIN_TOKEN>` or a server-side session from POST /api/login.

Invariants:
- The session cookie holds a random id (256 bits); Postgres keeps only its SHA-256, the client address,
  and `expires_at` (DURABLE_SESSION_TTL_MS, on the database clock). Sign-out deletes the row, so a
  captured cookie stops working; an expired row is refused at once and pruned by the maintenance loop.
- Each session is bound to a key derived from the admin token it was opened with: changing
  DURABLE_ADMIN_TOKEN invalidates every older session without touching the table.
- Failed sign-ins are limited per client address (`SignInLimiter`) and logged with the address, never
  the token; successful ones are logged too. Every comparison of a secret is constant-time.
- What a cookie may *do* (JSON bodies, same origin) is checked before routing, in api/guard.py.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
import time
from collections import OrderedDict, deque
from functools import lru_cache

from starlette.requests import Request
from starlette.responses import Response

from durable.errors import TooManyRequests, Unauthorized
from durable.store.db import Database

COOKIE = "durable_session"
SIGN_IN = "sign in: send Authorization: Bearer <DURABLE_ADMIN_TOKEN>, or POST /api/login {token}"

log = logging.getLogger("durable.auth")


@lru_cache(maxsize=4)
def token_binding(token: str) -> bytes:
    """A key derived from the admin token, stored with each session: slow to invert (PBKDF2), computed
    once per process and token, and useless for signing in."""
    return hashlib.pbkdf2_hmac("sha256", token.encode(), b"durable-session-binding-v2", 100_000)


def _id_hash(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode()).digest()


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else None


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


async def check_admin(request: Request, token: str | None) -> None:
    """Raise Unauthorized unless the request carries the admin token or a live session (a no-op when no
    token is set). A Bearer header, right or wrong, decides alone: no fallback to the cookie."""
    if token is None:
        return
    bearer = _bearer(request)
    if bearer is not None:
        if _same(bearer, token):
            return
        raise Unauthorized("authorization: the bearer token is wrong")
    session_id = request.cookies.get(COOKIE)
    if session_id:
        db: Database = request.app.state.db
        if await db.fetchval("session_valid", _id_hash(session_id), token_binding(token)):
            return
        raise Unauthorized(f"{COOKIE}: the session expired or was signed out; {SIGN_IN}")
    raise Unauthorized(SIGN_IN)


async def check_metrics(request: Request) -> None:
    """/metrics: DURABLE_METRICS_TOKEN as a Bearer token when one is set, else the admin rules."""
    settings = request.app.state.settings
    bearer = _bearer(request)
    if settings.metrics_token is not None and bearer is not None and _same(bearer, settings.metrics_token):
        return
    if settings.admin_token is None and settings.metrics_token is not None:
        raise Unauthorized("authorization: send Authorization: Bearer <DURABLE_METRICS_TOKEN>")
    await check_admin(request, settings.admin_token)


class SignInLimiter:
    """At most `limit` failed sign-ins per client address in any `window_s`, per engine process; then 429
    until the oldest failure leaves the window. While limited even the right token is refused, so guessing
    gains nothing. Memory is bounded: past `max_clients` addresses the stalest is dropped."""

    def __init__(self, limit: int = 5, window_s: float = 60.0, max_clients: int = 10_000) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_clients = max_clients
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, address: str, now: float) -> deque[float]:
        failures = self._failures.get(address, deque())
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        return failures

    def check(self, address: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        failures = self._recent(address, now)
        if len(failures) >= self.limit:
            retry_after = max(1, math.ceil(failures[0] + self.window_s - now))
            raise TooManyRequests(
                f"token: {len(failures)} failed sign-ins from {address} in the last "
                f"{int(self.window_s)} s; retry in {retry_after} s",
                retry_after_s=retry_after,
            )

    def failed(self, address: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        failures = self._recent(address, now)
        failures.append(now)
        self._failures[address] = failures
        self._failures.move_to_end(address)
        while len(self._failures) > self.max_clients:
            self._failures.popitem(last=False)


async def sign_in(request: Request, given: str, response: Response) -> None:
    """Check the token (rate-limited per address), open a session and set its cookie on `response`."""
    settings = request.app.state.settings
    limiter: SignInLimiter = request.app.state.sign_in_limiter
    address = client_address(request)
    limiter.check(address)
    token = settings.admin_token
    if token is None:
        raise Unauthorized("token: sign-in is off because DURABLE_ADMIN_TOKEN is not set (the API is open)")
    if not _same(given, token):
        limiter.failed(address)
        log.warning("sign-in failed from %s: wrong token", address)
        raise Unauthorized("token: the admin token is wrong")
    session_id = secrets.token_urlsafe(32)
    db: Database = request.app.state.db
    await db.execute(
        "session_create", _id_hash(session_id), token_binding(token), address, settings.session_ttl_ms
    )
    log.info("sign-in from %s: session opened for %d s", address, settings.session_ttl_ms // 1000)
    # httpOnly (no script reads it), SameSite=Strict, and not Secure-only so http://localhost works.
    response.set_cookie(
        COOKIE,
        session_id,
        max_age=settings.session_ttl_ms // 1000,
        httponly=True,
        samesite="strict",
        path="/",
    )


async def sign_out(request: Request, response: Response) -> None:
    """Delete the request's session (if any) server-side and clear the cookie."""
    session_id = request.cookies.get(COOKIE)
    if session_id:
        db: Database = request.app.state.db
        await db.execute("session_delete", _id_hash(session_id))
        log.info("sign-out from %s", client_address(request))
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
