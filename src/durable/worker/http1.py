"""The invoke's HTTP/1.1 client: keep-alive connections on asyncio transports, httptools' parser.

Why not aiohttp here (docs/decisions.md, "The invoke's own HTTP/1.1 client"): an invoke is one POST of
a body we built to an origin we already checked, and one answer read whole, up to a bound. aiohttp
spends ~145 µs of CPU on such a request on this machine, this client ~47 (sequential POSTs to one
uvicorn, the same answer): the invoke is most of the engine's work per step, so that is a third of the
engine's CPU per step. The parsing, the part that must be right, is httptools (llhttp, uvicorn's
parser); what is ours is the connection pool and the request line.

What it does: POST to http(s)://host[:port]/path?query with the headers given, read an answer of at
most `limit` bytes (Content-Length, chunked, or until the server closes) with a head of at most
MAX_HEAD bytes and at most 2 x `limit` + MAX_HEAD bytes in all (a hostile app cannot grow the engine's
memory with headers or trailers that never end), and keep the connection for the next request to the
same origin when both sides allow it. What it does not do: redirects (an
invoke never follows one), proxies, HTTP/2, compression, cookies, `Expect: 100-continue`.

Failures are told apart for the caller, which decides what they mean (worker/invoke.py):
`ConnectFailed` (nothing was sent: DNS, refused, unreachable, TLS handshake), `ConnectTimeout`,
`Disconnected` (with whether any byte of an answer had arrived), `AnswerTooLarge`, `BadAnswer`
(not HTTP), and `TimeoutError` when the whole request outlived its deadline.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import time
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import NamedTuple, cast
from urllib.parse import quote, urlsplit

import httptools

Resolve = Callable[[str, int], Awaitable[list[str]]]  # (host, port) -> addresses to try, in order
IDLE_S = 60.0  # a pooled connection idle longer than this is closed rather than reused
MAX_HEAD = 64 * 1024  # an answer's status line and headers (and a chunked body's trailers), in bytes

_TARGET_SAFE = "/%:@!$&'()*+,;=-._~?"  # what a request target may carry as is (RFC 3986); the rest is escaped


class ConnectFailed(Exception):
    """No connection: nothing of the request was sent. `error` is the OSError (None: DNS)."""

    def __init__(self, message: str, error: OSError | None = None, *, dns: bool = False, tls: bool = False):
        super().__init__(message)
        self.error = error
        self.dns = dns
        self.tls = tls


class ConnectTimeout(Exception):
    """The TCP (and TLS) connect took longer than the connect bound: nothing was sent."""


class Disconnected(Exception):
    """The connection ended before a whole answer; `answered`: whether any byte of one had arrived."""

    def __init__(self, message: str, answered: bool) -> None:
        super().__init__(message)
        self.answered = answered


class AnswerTooLarge(Exception):
    """The answer's body is longer than the limit (declared or read); the connection is closed."""

    def __init__(self, length: int | None) -> None:
        super().__init__("declared" if length is not None else "read")
        self.length = length  # the Content-Length that announced it, or None when reading found it


class BadAnswer(Exception):
    """What came back is not an HTTP/1.x answer."""


class Response(NamedTuple):
    status: int
    reason: str
    headers: dict[str, str]  # names lower-cased; a repeated header keeps its last value
    body: bytes


class Origin(NamedTuple):
    """Where a URL's requests go: the pool key, what to connect to, and the request's first lines."""

    key: tuple[str, str, int]  # (scheme, host, port)
    host: str  # for DNS and TLS, without brackets
    port: int
    tls: bool
    head: bytes  # "POST <target> HTTP/1.1\r\nhost: <host>\r\n"


@lru_cache(maxsize=1024)
def origin(url: str) -> Origin:
    """Parse an http(s) URL once; ValueError names what is wrong with it."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"the URL's scheme is {parts.scheme!r}; an invoke goes to http or https")
    host = parts.hostname
    if not host:
        raise ValueError("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("the URL carries a user name or password; an invoke is signed, not logged in")
    port = parts.port or (443 if scheme == "https" else 80)
    default = port == (443 if scheme == "https" else 80)
    shown = f"[{host}]" if ":" in host else host
    authority = shown if default else f"{shown}:{port}"
    target = quote(parts.path or "/", safe=_TARGET_SAFE)
    if parts.query:
        target += "?" + quote(parts.query, safe=_TARGET_SAFE)
    head = f"POST {target} HTTP/1.1\r\nhost: {authority}\r\n".encode("ascii")
    return Origin((scheme, host, port), host, port, scheme == "https", head)


async def default_resolve(host: str, port: int) -> list[str]:
    """The addresses of `host`, an IP literal as itself (no lookup); OSError when DNS fails."""
    if _is_literal(host):
        return [host]
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=1)  # SOCK_STREAM
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, its answer parsed as it arrives."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Response] | None = None
        self.closed = False
        self.idle_since = 0.0
        self._reset()

    def _reset(self) -> None:
        self.answered = False  # any byte of the current answer arrived
        self.complete = False
        self.keep_alive = False  # read at the answer's end: httptools forgets it once feed_data returns
        self.headers: dict[str, str] = {}
        self.reason = b""
        self.chunks: list[bytes] = []
        self.size = 0
        self.until_close = False  # the body has neither a length nor chunks: it ends when the server closes
        self.head_done = False
        self.raw_size = 0  # bytes read for this answer, head and framing included

    # --- asyncio.Protocol --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if self.waiter is None or self.waiter.done():
            self.close()  # bytes nobody asked for: the connection cannot be trusted for the next request
            return
        self.answered = True
        # httptools holds a header until it ends and a chunked body's trailers likewise: bound what one
        # answer may send besides its body, as the body is bounded.
        self.raw_size += len(data)
        if self.raw_size > 2 * self.limit + MAX_HEAD:  # trailers without end, or framing beyond reason
            self._fail(AnswerTooLarge(None))
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(BadAnswer("the app answered with a protocol upgrade"))
        except httptools.HttpParserError as exc:
            if not self.waiter.done():
                self._fail(BadAnswer(f"the answer is not HTTP/1.1 ({exc})"))
        if not self.head_done and self.raw_size > MAX_HEAD and not self.closed:
            self._fail(BadAnswer(f"the answer's head exceeds {MAX_HEAD // 1024} KiB"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is None or self.waiter.done():
            return
        if self.until_close:
            self._finish()
            return
        reason = (
            "connection closed before any answer" if not self.answered else "connection closed mid-answer"
        )
        self.waiter.set_exception(Disconnected(reason if exc is None else f"{reason} ({exc})", self.answered))

    # --- httptools callbacks ---------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.complete:
            self.close()  # a second answer to one request: nothing after it can be trusted

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.head_done = True
        status = self.parser.get_status_code()
        if 100 <= status < 200:
            return  # an interim answer (103 Early Hints): the real one follows
        declared = self.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            self._fail(AnswerTooLarge(int(declared)))
        chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        self.until_close = declared is None and not chunked

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > self.limit:
            self._fail(AnswerTooLarge(None))
            return
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self.parser.get_status_code() < 200:
            self._reset()
            self.answered = True
            return
        self.keep_alive = self.parser.should_keep_alive()
        self._finish()

    # --- ours --------------------------------------------------------------------------------------

    def _finish(self) -> None:
        self.complete = True
        self.until_close = False
        assert self.waiter is not None
        if not self.waiter.done():
            reason = self.reason.decode("latin-1")
            body = b"".join(self.chunks)
            self.waiter.set_result(Response(self.parser.get_status_code(), reason, self.headers, body))

    def _fail(self, error: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(error)
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    async def request(self, data: bytes) -> Response:
        assert self.transport is not None
        self._reset()
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.waiter

    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.closed


class Client:
    """A pool of keep-alive connections per origin, no limit on how many (one per request in flight)."""

    def __init__(
        self,
        *,
        connect_timeout_s: float,
        limit: int,
        resolve: Resolve = default_resolve,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.connect_timeout_s = connect_timeout_s
        self.limit = limit
        self.resolve = resolve
        self._tls = tls
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}

    def tls(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()  # the system's CAs, host names checked
        return self._tls

    async def post(self, url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> Response:
        """POST `body`; the answer read whole. The errors are the module's (docstring); ValueError
        for a URL or header this client cannot send."""
        where = origin(url)
        lines = [where.head, b"content-length: %d\r\n" % len(body)]
        for name, value in headers.items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
                raise ValueError(f"header {name!r} cannot be sent: a CR, LF or colon in it")
            lines.append(f"{name}: {value}\r\n".encode("latin-1"))
        lines.append(b"\r\n")
        lines.append(body)
        data = b"".join(lines)
        async with asyncio.timeout(timeout_s):
            connection = self._take(where.key) or await self._connect(where)
            try:
                response = await connection.request(data)
            except BaseException:
                connection.close()
                raise
        if connection.reusable():
            connection.idle_since = time.monotonic()
            self._idle.setdefault(where.key, []).append(connection)
        else:
            connection.close()
        return response

    def _take(self, key: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            connection = idle.pop()  # the most recent: the likeliest to be open at the other end
            if not connection.closed and now - connection.idle_since < IDLE_S:
                return connection
            connection.close()
        return None

    async def _connect(self, where: Origin) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                try:
                    addresses = await self.resolve(where.host, where.port)
                except OSError as exc:
                    raise ConnectFailed(f"DNS lookup of {where.host!r} failed", exc, dns=True) from None
                error: OSError | None = None
                for address in addresses:
                    try:
                        _, connection = await loop.create_connection(
                            lambda: _Connection(self.limit),
                            address,
                            where.port,
                            ssl=self.tls() if where.tls else None,
                            server_hostname=where.host if where.tls else None,
                        )
                        return connection
                    except ssl.SSLError as exc:
                        raise ConnectFailed(f"TLS with {where.host!r} failed: {exc}", exc, tls=True) from None
                    except OSError as exc:
                        error = exc
                raise ConnectFailed(str(error) if error else "no address", error)
        except TimeoutError:
            raise ConnectTimeout() from None

    async def close(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
