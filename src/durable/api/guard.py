"""ASGI middleware that holds for every route, before any routing: Host check, browser-write check,
security headers.

- `HostGuard` (DNS rebinding): a request's Host must name the address the connection arrived at, the
  bound DURABLE_HOST, localhost / 127.0.0.1 / [::1], or a DURABLE_ALLOWED_HOSTS entry; else 421. A page
  on a rebound name reaches the engine with its own name in Host, which none of those match.
- `BrowserWriteGuard` (CSRF): a write (POST/PUT/PATCH/DELETE) under /api that a browser could send on
  its own, i.e. one carrying the session cookie, an Origin or a Sec-Fetch-Site and no Bearer header,
  must be `application/json` from this engine's own origin; else 403 naming what is wrong. A cross-origin
  form can send neither, and SameSite=Strict does not cover another port of the same host. Scripts and
  SDKs (no Origin, no cookie) and Bearer callers (a page cannot add that header cross-origin without a
  CORS preflight, which the engine never grants) pass untouched.
- `SecurityHeaders`: a strict CSP (no inline script, no framing), nosniff, no referrer, on every answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from http.cookies import CookieError, SimpleCookie
from urllib.parse import urlsplit

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from durable.api.auth import COOKIE

# style-src needs no 'unsafe-inline': Preact and swagger-ui set styles through the CSSOM (element.style),
# which CSP allows; no <style> element or style="" markup is served. img-src allows data: for the icons
# swagger-ui's CSS embeds.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
ALWAYS_ALLOWED = ("localhost", "127.0.0.1", "::1")
WILDCARDS = ("0.0.0.0", "::", "")
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DEFAULT_PORTS = {"http": 80, "https": 443}


def _canonical(host: str) -> str:
    """A host name without port or IPv6 brackets, lower-case, no trailing dot."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") == 1:  # name:port (a bare IPv6 address has several colons)
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _refuse(send: Send, status: int, message: str, code: str) -> None:
    body = orjson.dumps({"error": message, "code": code})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class HostGuard:
    def __init__(self, app: ASGIApp, bound_host: str, allowed_hosts: Iterable[str]) -> None:
        self.app = app
        names = {*ALWAYS_ALLOWED, *(_canonical(h) for h in allowed_hosts)}
        if _canonical(bound_host) not in WILDCARDS:
            names.add(_canonical(bound_host))
        self.allowed = frozenset(names)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        raw = _header(scope, b"host")
        server = scope.get("server")
        # The address this connection arrived at: a client naming the engine's own IP is not rebinding.
        arrived = _canonical(str(server[0])) if server else None
        host = _canonical(raw) if raw is not None else None
        if host is not None and (host in self.allowed or host == arrived):
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1008})
            return
        if raw is None:
            await _refuse(send, 400, "host: the Host header is missing", "bad_request")
            return
        await _refuse(
            send,
            421,
            f"host: {raw!r} is not served here: expected the engine's own address, localhost, or a "
            "DURABLE_ALLOWED_HOSTS entry (a name that is not listed may be a DNS-rebinding attack)",
            "misdirected",
        )


def _has_session_cookie(scope: Scope) -> bool:
    raw = _header(scope, b"cookie")
    if not raw:
        return False
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except CookieError:
        return COOKIE in raw
    return COOKIE in jar


def _netloc(scheme: str, host: str, port: int | None) -> str:
    return host if port is None or DEFAULT_PORTS.get(scheme) == port else f"{host}:{port}"


def _origin_problem(origin: str, host_header: str | None) -> str | None:
    """None when Origin names this request's own host and port (scheme-blind: TLS may end at a proxy)."""
    parts = urlsplit(origin)
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or host_header is None:
        return f"origin: {origin!r} is not this engine's origin"
    given = _netloc(parts.scheme, parts.hostname.lower(), port)
    own = host_header.strip().lower()
    for scheme, default in DEFAULT_PORTS.items():
        if scheme == parts.scheme and own.endswith(f":{default}"):
            own = own[: -len(f":{default}")]
    if given.rstrip(".") == own.rstrip("."):
        return None
    return f"origin: {origin!r} is not this engine's origin ({host_header}): cross-origin writes are refused"


def browser_write_problem(scope: Scope) -> str | None:
    """Why a browser-sendable write under /api is refused, or None (see the module docstring)."""
    if scope["method"] not in WRITES:
        return None
    path: str = scope["path"]
    if not (path == "/api" or path.startswith("/api/")):
        return None
    authorization = _header(scope, b"authorization") or ""
    if authorization.lower().startswith("bearer "):
        return None
    origin = _header(scope, b"origin")
    site = _header(scope, b"sec-fetch-site")
    cookie = _has_session_cookie(scope)
    if not cookie and origin is None and site is None:
        return None
    if site is not None and site.lower() != "same-origin":
        return f"sec-fetch-site: {site!r}: writes from another origin are refused (expected same-origin)"
    if origin is not None:
        problem = _origin_problem(origin, _header(scope, b"host"))
        if problem:
            return problem
    elif site is None:
        return "origin: a write with the session cookie needs a same-origin Origin or Sec-Fetch-Site header"
    content_type = (_header(scope, b"content-type") or "").split(";", 1)[0].strip().lower()
    if content_type != "application/json":
        return (
            f"content-type: {content_type or 'none'!r} is refused for a browser's write: "
            "expected application/json"
        )
    return None


class BrowserWriteGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            problem = browser_write_problem(scope)
            if problem is not None:
                await _refuse(send, 403, problem, "forbidden")
                return
        await self.app(scope, receive, send)


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {key.lower() for key, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)
