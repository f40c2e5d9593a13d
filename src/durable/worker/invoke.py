"""One signed HTTP round trip to the app, over a shared keep-alive aiohttp session.

aiohttp rather than httpx: on this machine httpx.AsyncClient fell from ~1,100 to ~300 requests/s as
concurrency rose to 32, while aiohttp rose to ~10,000 (shared/bench-anchors.md).

Failures are classified here (docs/decisions.md, "Attempts"): an app that never ran anything (connection
refused or reset before any answer, DNS failure, connect timeout, HTTP 502/503/504 from a proxy in front
of it) raises InvokeError with `unreachable=True`, which backs off without using up an attempt;
everything else (a read timeout once the request was sent, any other non-2xx, a redirect, a bad
signature or answer) is an error of the attempt.

Signatures (docs/protocol.md, "Signing"): every invoke carries `x-durable-signature-v2` (sender `engine`,
a fresh nonce), plus the v1 `x-durable-signature` in compat mode. The answer must carry a v2 signature
by the app whose `r` is this invoke's nonce, so an answer captured from another invoke is refused; only
in compat mode may it carry v1 alone.

Tracing (docs/tracing.md): an invoke may carry the W3C `traceparent` of its span; like every header it
is outside the signature, which covers the body.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

import aiohttp
import orjson
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from durable.core.ops import parse_op
from durable.core.outbound import AllowList, as_address, is_own_address, own_origin, refusal
from durable.core.signing import (
    V1_HEADER,
    V2_HEADER,
    Keys,
    describe,
    new_nonce,
    sign,
    sign_v2,
    verify_any,
    verify_v2,
)
from durable.engine.outbound import is_local_address
from durable.engine.tracing import Tracing
from durable.errors import InvalidInput, InvokeError
from durable.types import MAX_BODY, Op

CONNECT_TIMEOUT_S = 10.0  # a TCP (and TLS) connect longer than this counts as the app being unreachable
UNREACHABLE_STATUSES = (502, 503, 504)  # a gateway in front of the app says the app is not there


class Invoker:
    def __init__(
        self,
        timeout_ms: int,
        user_agent: str = "durable",
        connect_timeout_ms: int | None = None,
        *,
        own_port: int | None = None,
        own_host: str = "127.0.0.1",
        allow: AllowList | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        """`own_port`/`own_host`: where this engine's API listens (PORT, DURABLE_HOST), never invoked;
        `allow`: DURABLE_APP_URL_ALLOW, checked again here since it may have changed since the sync;
        `tracing`: the OpenTelemetry spans of the runs driven with this invoker (None: tracing off)."""
        self.user_agent = user_agent
        self.tracing = tracing
        self.own_port = own_port
        self.own_host = own_host
        self.allow = allow
        total = timeout_ms / 1000
        # A separate connect bound, so a connect timeout (nothing ran) is told apart from a read timeout.
        self.connect_ms = min(connect_timeout_ms or int(CONNECT_TIMEOUT_S * 1000), timeout_ms)
        self.timeout = aiohttp.ClientTimeout(total=total, sock_connect=self.connect_ms / 1000)
        self.timeout_ms = timeout_ms
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            # Every address a name resolves to is checked before the connect: DNS may have changed
            # since the sync (aiohttp's cache keeps only answers that passed).
            resolver = _GuardedResolver(self.own_port) if self.own_port is not None else None
            connector = aiohttp.TCPConnector(
                limit=0, keepalive_timeout=60, ttl_dns_cache=300, resolver=resolver
            )
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self.timeout, json_serialize=lambda v: orjson.dumps(v).decode()
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self.tracing is not None:
            await asyncio.to_thread(self.tracing.close)  # exports the spans still queued
            self.tracing = None

    async def invoke(
        self, url: str | None, body: dict[str, object], keys: Keys | str, traceparent: str | None = None
    ) -> Op:
        """POST the invoke; return the app's op, or raise InvokeError naming what was wrong.

        `keys`: the workspace's keys and signature mode (a bare key: one key, compat mode);
        `traceparent`: the W3C header of this invoke's span, sent as is (docs/tracing.md: it is not
        covered by the signature)."""
        if not url:
            raise InvokeError("the app has no URL: sync it first (POST /fn/sync with its url)")
        _refuse(url, self.own_port, self.own_host, self.allow)
        if isinstance(keys, str):
            keys = Keys(keys)
        raw = orjson.dumps(body)
        nonce = new_nonce()
        headers = {
            "content-type": "application/json",
            "user-agent": self.user_agent,
            V2_HEADER: sign_v2(keys.signing, "engine", _now_ms(), nonce, "", raw),
        }
        if keys.mode == "compat":
            headers[V1_HEADER] = sign(raw, keys.signing)
        if traceparent is not None:
            headers["traceparent"] = traceparent
        answered = False  # whether any byte of an HTTP answer arrived: after that, the app may have run
        try:
            async with self.session().post(url, data=raw, headers=headers, allow_redirects=False) as response:
                answered = True
                status = response.status
                if status in UNREACHABLE_STATUSES:
                    raise InvokeError(
                        f"app unreachable: HTTP {status} {response.reason or ''}".rstrip(), unreachable=True
                    )
                if 300 <= status < 400:
                    location = response.headers.get("location")
                    raise InvokeError(
                        f"the app answered HTTP {status}, a redirect to {location!r}: invokes never follow "
                        "redirects; sync the app with the URL that serves it (POST /fn/sync url)"
                    )
                answer = await _read_limited(response)
                if not 200 <= status < 300:
                    raise InvokeError(f"the app answered HTTP {status}: {excerpt(answer)}")
                _check_answer(answer, response.headers, keys, nonce)
        except _OwnAddress as exc:
            raise InvokeError(str(exc), retryable=False) from None
        except aiohttp.ConnectionTimeoutError:
            message = f"app unreachable: connect timed out after {self.connect_ms} ms"
            raise InvokeError(message, unreachable=True) from None
        except TimeoutError:
            raise InvokeError(f"the app did not answer within {self.timeout_ms} ms") from None
        except aiohttp.ClientConnectorDNSError:
            host = urlsplit(url).hostname
            raise InvokeError(f"app unreachable: DNS lookup of {host!r} failed", unreachable=True) from None
        except aiohttp.ClientSSLError as exc:
            raise InvokeError(f"could not reach the app at {url}: {exc or type(exc).__name__}") from None
        except aiohttp.ClientConnectorError as exc:
            raise InvokeError(f"app unreachable: {_connect_reason(exc.os_error)}", unreachable=True) from None
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            if not answered:
                message = "app unreachable: connection closed before any answer"
                raise InvokeError(message, unreachable=True) from None
            raise InvokeError(f"could not reach the app at {url}: {exc or type(exc).__name__}") from None
        except aiohttp.ClientError as exc:
            raise InvokeError(f"could not reach the app at {url}: {exc or type(exc).__name__}") from None
        try:
            return parse_op(answer)
        except InvalidInput as exc:
            raise InvokeError(f"the app's answer is invalid: {exc.message}") from None


def _now_ms() -> int:
    """The wall clock: signature times are compared across hosts, never with the movable test clock."""
    return time.time_ns() // 1_000_000


def _check_answer(answer: bytes, headers: Mapping[str, str], keys: Keys, nonce: str) -> None:
    """Refuse (InvokeError) an answer not signed by the app for the invoke whose nonce is `nonce`."""
    v2 = headers.get(V2_HEADER)
    if v2 is None and keys.mode == "compat":
        if not verify_any(answer, keys.accepted, headers.get(V1_HEADER)):
            raise InvokeError(f"the app's answer has a missing or wrong {V1_HEADER} (and no {V2_HEADER})")
        return
    if v2 is None:
        raise InvokeError(
            f"the app's answer has no {V2_HEADER}: this workspace requires signatures v2 "
            "(update the SDK, or switch the workspace to compat: PATCH /api/apps/{id} signatureMode)"
        )
    now = _now_ms()
    verdict = verify_v2(v2, answer, keys.accepted, "app", now, nonce)
    if verdict.reason == "reply":
        raise InvokeError(
            "the app's answer was signed for another invoke "
            f"({V2_HEADER} r={verdict.signature.r if verdict.signature else None}, this invoke's n={nonce})"
        )
    if not verdict.ok:
        raise InvokeError(f"the app's answer is refused: {describe(verdict, now, nonce)}")


def _refuse(url: str, own_port: int | None, own_host: str, allow: AllowList | None) -> None:
    """The sync-time rules, again: the list may have changed, or the URL was stored before them."""
    if own_port is None and allow is None:
        return
    own = None
    if own_port is not None:
        own = own_origin(url, bound_host=own_host, own_port=own_port, is_local=is_local_address)
    problem = refusal(url, allow, own)
    if problem is not None:
        raise InvokeError(f"refused to invoke the app: {problem}", retryable=False)


EXCERPT_CHARS = 200


def excerpt(answer: bytes) -> str:
    """What of an app's error answer is stored in the run: one line of at most 200 printable
    characters. Control and format characters (a NUL cannot be stored; a newline would forge a log
    line; bidi overrides would disguise the text) become spaces, runs of spaces one."""
    text = answer[: EXCERPT_CHARS * 4].decode("utf-8", "replace")
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


class _OwnAddress(Exception):
    """A resolved address of the app's URL is this engine's own API (raised by _GuardedResolver)."""


class _GuardedResolver(AbstractResolver):
    """aiohttp's default resolver, refusing a name that resolves to this engine's own port."""

    def __init__(self, own_port: int) -> None:
        self.own_port = own_port
        self.inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self.inner.resolve(host, port, family)
        for result in results:
            address = as_address(result["host"])
            if address is not None and is_own_address(address, port, self.own_port, is_local_address):
                raise _OwnAddress(
                    f"refused to invoke the app: {host!r} resolves to {result['host']}, and port {port} "
                    "there is this engine's own API; the engine never invokes itself (sync the URL your "
                    "app serves its functions on)"
                )
        return results

    async def close(self) -> None:
        await self.inner.close()


def _connect_reason(error: OSError) -> str:
    if isinstance(error, ConnectionRefusedError) or error.errno == errno.ECONNREFUSED:
        return "connection refused"
    if isinstance(error, ConnectionResetError):
        return "connection reset before any answer"
    return error.strerror or str(error) or type(error).__name__


async def _read_limited(response: aiohttp.ClientResponse) -> bytes:
    length = response.content_length
    if length is not None and length > MAX_BODY:
        raise InvokeError(f"the app's answer is {length} bytes; the limit is 4 MiB")
    chunks = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > MAX_BODY:
            raise InvokeError("the app's answer exceeds 4 MiB")
        chunks.append(chunk)
    return b"".join(chunks)
