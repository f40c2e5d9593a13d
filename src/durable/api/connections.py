"""HTTP connections a slow or hostile client cannot hold open: the bounds uvicorn's protocol lacks.

uvicorn's httptools protocol (pinned 0.54) arms no timer until a connection's first response is complete,
so a client that connects and sends nothing, trickles its headers a byte at a time, or never finishes its
body holds that connection (a file descriptor, a parser, the buffered headers) for ever, and the head of a
request may grow without limit. :func:`bounded_http` returns the protocol ``durable start`` serves with:

- a request must be read whole (request line, headers and body) within ``read_timeout_s`` of its first
  byte, and a new connection must deliver its first request within that time of opening; otherwise the
  connection is closed (a handler waiting for the body then sees the client disconnect);
- a request line plus headers over :data:`MAX_HEAD_BYTES` gets ``431`` and the connection is closed.

Between requests uvicorn's keep-alive timeout closes an idle connection; a response being written (an SSE
stream, a slow handler) is not bounded here: only reading the request is.

It also writes a response's head and its first body chunk in one ``write`` (:class:`_HeadWithBody`):
uvicorn writes them apart, two syscalls and two TCP segments for every answer, the second of which can
wake the client again. A head whose body does not follow in the same turn of the loop (an SSE stream's)
is written at the end of that turn.
"""

from __future__ import annotations

import asyncio
import logging

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("durable.http")

MAX_HEAD_BYTES = 64 * 1024
"""Largest request line plus headers accepted (nginx's default buffers hold 32 KiB)."""
MAX_CONNECTIONS = 1024
"""uvicorn's ``limit_concurrency``: past this many open connections (or requests being handled) a new
request gets 503. Above the 400 slow connections the tests hold open, far below the open-file limit."""

_HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: application/json\r\n"
    b"connection: close\r\n"
    b"content-length: %d\r\n\r\n%s"
)


class _HeadTooLarge(Exception):
    """Raised from a parser callback: httptools stops parsing and uvicorn answers through
    ``send_400_response``, which the protocol below turns into the 431."""


class _HeadWithBody:
    """The transport a request's response cycle writes to: the first write (uvicorn's status line and
    headers) is held until the next write joins it, or until the loop's next turn; every other call is
    the connection's transport's."""

    __slots__ = ("_transport", "_loop", "_held")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = b""  # b"": nothing written yet; None: the head is out

    def write(self, data: bytes) -> None:
        held = self._held
        if held is None:
            self._transport.write(data)
        elif held:
            self._held = None
            self._transport.write(held + data)
        else:
            self._held = bytes(data)
            self._loop.call_soon(self._release)

    def _release(self) -> None:
        held, self._held = self._held, None
        if held and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        self._release()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> object:
        return getattr(self._transport, name)


class _BoundedHttp(HttpToolsProtocol):
    read_timeout_s = 30.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._read_deadline: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._head_too_large = False
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._arm()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self.cycle is not None and self.cycle.transport is self.transport:
            self.cycle.transport = _HeadWithBody(self.transport, self.loop)  # type: ignore[assignment]

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        if not self._head_too_large:
            super().send_400_response(msg)
            return
        body = b'{"error": "the request line and headers exceed %d bytes", "code": "headers_too_large"}' % (
            MAX_HEAD_BYTES
        )
        self.transport.write(_HEAD_TOO_LARGE % (len(body), body))
        self.transport.close()

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_HEAD_BYTES:
            self._head_too_large = True
            raise _HeadTooLarge

    def _arm(self) -> None:
        if self._read_deadline is None:
            self._read_deadline = self.loop.call_later(self.read_timeout_s, self._too_slow)

    def _disarm(self) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()
            self._read_deadline = None

    def _too_slow(self) -> None:
        self._read_deadline = None
        if not self.transport.is_closing():
            log.debug("closing a connection that did not send a whole request in %.0f s", self.read_timeout_s)
            self.transport.close()


def bounded_http(read_timeout_s: float) -> type[HttpToolsProtocol]:
    """The protocol class for ``uvicorn.Config(http=...)``, closing requests not read within the bound."""
    return type("BoundedHttp", (_BoundedHttp,), {"read_timeout_s": read_timeout_s})
