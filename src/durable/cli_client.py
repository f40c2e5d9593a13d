"""The CLI's HTTP client: the engine's JSON API over the standard library (urllib), nothing else.

Every call has one of three outcomes, which the CLI maps to its exit codes:

- a decoded JSON answer (2xx): exit 0;
- :class:`Refused`: the engine answered, but not with success (4xx/5xx, a redirect, or an answer that
  is not JSON): exit 1, printing the API's ``error`` message;
- :class:`Unreachable`: no answer at all (refused connection, DNS, TLS, a 30 s timeout): exit 3,
  naming the URL.

The admin token goes out as ``Authorization: Bearer`` and never appears in a message. Redirects are
not followed: urllib would carry the Authorization header to wherever the redirect points.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from durable import __version__
from durable.core.signing import V2_HEADER, new_nonce, sign_v2

TIMEOUT_S = 30.0
DEFAULT_URL = "http://127.0.0.1:3030"


class Refused(Exception):
    """The engine answered with an error; ``message`` is the API's own when it gave one."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


class Unreachable(Exception):
    """No answer from the engine at ``url``; ``reason`` says what happened."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_: Any, **__: Any) -> None:
        return None  # urllib then raises the 3xx as an HTTPError, which becomes Refused


def check_url(url: str) -> str | None:
    """Why ``url`` cannot be the engine's base URL, or None when it can."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r} is not an engine URL: expected http://host:port or https://host"
    if parts.query or parts.fragment:
        return f"{url!r} is not an engine URL: it must not have a query or a fragment"
    return None


def quote(segment: str) -> str:
    """A path segment (an app or run id) escaped whole: ``/`` and ``?`` in it stay inside it."""
    return urllib.parse.quote(segment, safe="")


class Client:
    """Calls on the engine at ``base_url``, with the admin ``token`` when one is given."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = TIMEOUT_S) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.timeout = timeout
        self._opener = urllib.request.build_opener(_NoRedirects())

    def get(self, path: str, query: Mapping[str, object] | None = None) -> Any:
        params = {k: str(v) for k, v in (query or {}).items() if v is not None}
        if params:
            path = f"{path}?{urllib.parse.urlencode(params)}"
        return self.request("GET", path)

    def post(self, path: str, payload: object) -> Any:
        return self.request("POST", path, json.dumps(payload, separators=(",", ":")).encode())

    def send_events(self, app_id: str, signing_key: str, payload: object) -> Any:
        """``POST /e`` signed with signatures v2 as the app ``app_id`` (the answer's signature is not
        checked: the CLI trusts the engine it was pointed at, as curl would)."""
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        now_ms = time.time_ns() // 1_000_000
        headers = {
            "x-durable-app": app_id,
            V2_HEADER: sign_v2(signing_key, "app", now_ms, new_nonce(), "", body),
        }
        return self.request("POST", "/e", body, headers, admin=False)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        admin: bool = True,
    ) -> Any:
        url = self.base_url + path
        request = urllib.request.Request(url, data=body, method=method)
        request.add_header("accept", "application/json")
        request.add_header("user-agent", f"durable-cli/{__version__}")
        if body is not None:
            request.add_header("content-type", "application/json")
        if admin and self._token:
            request.add_header("authorization", f"Bearer {self._token}")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, _read(exc)
            raise _refusal(status, raw, exc.headers.get("location"), self.base_url) from None
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
            raise Unreachable(self.base_url, _reason(exc, self.timeout)) from None
        try:
            return json.loads(raw)
        except ValueError:
            raise Refused(
                status, f"the answer of {url} is not JSON (HTTP {status}): is --url a Durable engine?"
            ) from None


def _read(exc: urllib.error.HTTPError) -> bytes:
    try:
        return exc.read()
    except OSError:
        return b""


def _refusal(status: int, raw: bytes, location: str | None, base_url: str) -> Refused:
    if 300 <= status < 400:
        where = f" to {location}" if location else ""
        return Refused(
            status, f"the engine answered a redirect (HTTP {status}{where}): check --url {base_url}"
        )
    try:
        payload = json.loads(raw)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("error"), str):
        code = payload.get("code")
        return Refused(status, payload["error"], code if isinstance(code, str) else None)
    return Refused(status, f"HTTP {status} without a JSON error from {base_url}: is --url a Durable engine?")


def _reason(exc: BaseException, timeout: float) -> str:
    inner = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(inner, TimeoutError | socket.timeout):
        return f"no answer within {timeout:g} s"
    if isinstance(inner, ConnectionRefusedError):
        return "connection refused"
    if isinstance(inner, socket.gaierror):
        return f"the host name does not resolve ({inner.strerror or inner})"
    if isinstance(inner, ssl.SSLError):
        return f"TLS failed ({inner.reason or inner})"
    if isinstance(inner, http.client.HTTPException):
        return f"the answer is not HTTP ({type(inner).__name__}): is --url a Durable engine?"
    if isinstance(inner, OSError) and inner.strerror:
        return inner.strerror.lower()
    return str(inner) or type(inner).__name__
