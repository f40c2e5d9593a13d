"""One signed HTTP round trip to the app, over the keep-alive connections of worker/http1.py.

The transport is our own small HTTP/1.1 client on httptools rather than aiohttp, which cost three
times the CPU per invoke (docs/decisions.md, "The invoke's own HTTP/1.1 client"; before it aiohttp had
replaced httpx, which fell from ~1,100 to ~300 requests/s as concurrency rose to 32).

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
import time
from collections.abc import Mapping

import orjson

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
from durable.worker import http1

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
        # A separate connect bound, so a connect timeout (nothing ran) is told apart from a read timeout.
        self.connect_ms = min(connect_timeout_ms or int(CONNECT_TIMEOUT_S * 1000), timeout_ms)
        self.timeout_ms = timeout_ms
        # Every address a name resolves to is checked before the connect: DNS may have changed since
        # the sync.
        self.http = http1.Client(
            connect_timeout_s=self.connect_ms / 1000, limit=MAX_BODY, resolve=self._resolve
        )

    async def _resolve(self, host: str, port: int) -> list[str]:
        """The addresses of `host`, refused (_OwnAddress) when one of them is this engine's own API."""
        addresses = await http1.default_resolve(host, port)
        own_port = self.own_port
        if own_port is None:
            return addresses
        for found in addresses:
            address = as_address(found)
            if address is not None and is_own_address(address, port, own_port, is_local_address):
                raise _OwnAddress(
                    f"refused to invoke the app: {host!r} resolves to {found}, and port {port} "
                    "there is this engine's own API; the engine never invokes itself (sync the URL your "
                    "app serves its functions on)"
                )
        return addresses

    async def close(self) -> None:
        await self.http.close()
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
        try:
            response = await self.http.post(url, raw, headers, self.timeout_ms / 1000)
        except _OwnAddress as exc:
            raise InvokeError(str(exc), retryable=False) from None
        except http1.ConnectTimeout:
            message = f"app unreachable: connect timed out after {self.connect_ms} ms"
            raise InvokeError(message, unreachable=True) from None
        except TimeoutError:
            raise InvokeError(f"the app did not answer within {self.timeout_ms} ms") from None
        except http1.ConnectFailed as exc:
            if exc.dns:
                raise InvokeError(f"app unreachable: {exc}", unreachable=True) from None
            if exc.tls or exc.error is None:
                raise InvokeError(f"could not reach the app at {url}: {exc}") from None
            raise InvokeError(f"app unreachable: {_connect_reason(exc.error)}", unreachable=True) from None
        except http1.Disconnected as exc:
            if not exc.answered:
                raise InvokeError(
                    "app unreachable: connection closed before any answer", unreachable=True
                ) from None
            raise InvokeError(f"could not reach the app at {url}: {exc}") from None
        except http1.AnswerTooLarge as exc:
            if exc.length is not None:
                raise InvokeError(f"the app's answer is {exc.length} bytes; the limit is 4 MiB") from None
            raise InvokeError("the app's answer exceeds 4 MiB") from None
        except (http1.BadAnswer, OSError, ValueError) as exc:
            raise InvokeError(f"could not reach the app at {url}: {exc or type(exc).__name__}") from None
        status, answer = response.status, response.body
        if status in UNREACHABLE_STATUSES:
            raise InvokeError(f"app unreachable: HTTP {status} {response.reason}".rstrip(), unreachable=True)
        if 300 <= status < 400:
            location = response.headers.get("location")
            raise InvokeError(
                f"the app answered HTTP {status}, a redirect to {location!r}: invokes never follow "
                "redirects; sync the app with the URL that serves it (POST /fn/sync url)"
            )
        if not 200 <= status < 300:
            raise InvokeError(f"the app answered HTTP {status}: {excerpt(answer)}")
        _check_answer(answer, response.headers, keys, nonce)
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


def _connect_reason(error: OSError) -> str:
    if isinstance(error, ConnectionRefusedError) or error.errno == errno.ECONNREFUSED:
        return "connection refused"
    if isinstance(error, ConnectionResetError):
        return "connection reset before any answer"
    return error.strerror or str(error) or type(error).__name__
