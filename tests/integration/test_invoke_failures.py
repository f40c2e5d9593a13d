"""worker/invoke.py tells an unreachable app (nothing ran: no attempt used up) from a failed attempt,
over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from durable.errors import InvokeError
from durable.worker.invoke import Invoker
from tests.harness import free_port

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[str]:
    """A TCP server speaking whatever `handler` writes; yields its invoke URL."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/api/durable"
    finally:
        server.close()


def answering(head: bytes) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(head)
        await writer.drain()
        writer.close()

    return handler


async def failure(url: str, invoker: Invoker | None = None) -> InvokeError:
    invoker = invoker or Invoker(timeout_ms=2000)
    try:
        with pytest.raises(InvokeError) as caught:
            await invoker.invoke(url, {"runId": "r"}, "key")
    finally:
        await invoker.close()
    return caught.value


async def test_connection_refused_is_unreachable() -> None:
    error = await failure(f"http://127.0.0.1:{free_port()}/api/durable")
    assert error.unreachable and error.message == "app unreachable: connection refused"


async def test_a_connection_closed_before_any_answer_is_unreachable() -> None:
    async def close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async with raw_server(close) as url:
        error = await failure(url)
    assert error.unreachable and error.message == "app unreachable: connection closed before any answer"


@pytest.mark.parametrize(
    ("status", "reason"), [(502, "Bad Gateway"), (503, "Service Unavailable"), (504, "Gateway Timeout")]
)
async def test_a_gateway_error_is_unreachable(status: int, reason: str) -> None:
    head = f"HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\n\r\n".encode()
    async with raw_server(answering(head)) as url:
        error = await failure(url)
    assert error.unreachable and error.message == f"app unreachable: HTTP {status} {reason}"


async def test_a_connect_timeout_is_unreachable() -> None:
    # A listener that never accepts, with its accept queue full: the kernel drops further SYNs.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        await asyncio.sleep(0.2)
        error = await failure(
            f"http://127.0.0.1:{port}/api/durable", Invoker(timeout_ms=5000, connect_timeout_ms=300)
        )
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
    assert error.unreachable and error.message == "app unreachable: connect timed out after 300 ms"


async def test_other_failures_are_errors_of_the_attempt() -> None:
    async with raw_server(
        answering(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\n\r\noops")
    ) as url:
        error = await failure(url)
    assert not error.unreachable and error.message == "the app answered HTTP 500: oops"

    async with raw_server(answering(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")) as url:
        error = await failure(url)
    assert not error.unreachable and "x-durable-signature" in error.message

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(3)  # the request was sent: the app may be running it
        writer.close()

    async with raw_server(silent) as url:
        error = await failure(url, Invoker(timeout_ms=500))
    assert not error.unreachable and error.message == "the app did not answer within 500 ms"


async def test_a_redirect_is_not_followed() -> None:
    hits: list[bytes] = []

    async def target(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hits.append(await reader.readuntil(b"\r\n\r\n"))
        writer.close()

    async with raw_server(target) as target_url:
        head = f"HTTP/1.1 302 Found\r\nlocation: {target_url}\r\ncontent-length: 0\r\n\r\n".encode()
        async with raw_server(answering(head)) as url:
            error = await failure(url)
    assert hits == []
    assert not error.unreachable
    assert error.message.startswith(f"the app answered HTTP 302, a redirect to {target_url!r}")
