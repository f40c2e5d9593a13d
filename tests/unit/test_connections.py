"""The engine's HTTP protocol writes a response's head with its body (api/connections.py).

The protocol `durable start` serves with is driven here in process, on a transport that records what is
written to the socket: an ordinary answer must go out in one write, a streamed answer's head must go out
within a turn of the loop even though no body follows, and a 100-continue interim answer must still
reach a client that waits for it before sending its body.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from durable.api.connections import _HeadWithBody, bounded_http


class Recording(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 3030)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def json_app(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    body = b'{"ids": ["e1"]}'
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"15")]})
    await send({"type": "http.response.body", "body": body})


async def stream_app(scope: Any, receive: Any, send: Any) -> None:
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]}
    )
    await asyncio.sleep(0.05)  # a stream's first event comes later
    await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": False})


def serve(app: Any, request: bytes) -> tuple[Recording, asyncio.AbstractEventLoop, Any]:
    loop = asyncio.new_event_loop()
    config = Config(app=app, lifespan="off", log_level="warning")
    config.load()
    protocol = bounded_http(30.0)(config=config, server_state=ServerState(), app_state={}, _loop=loop)
    transport = Recording()
    protocol.connection_made(transport)
    protocol.data_received(request)
    return transport, loop, protocol


def run_until(loop: asyncio.AbstractEventLoop, transport: Recording, done: Any, timeout: float = 2.0) -> None:
    async def wait() -> None:
        deadline = loop.time() + timeout
        while not done(transport):
            assert loop.time() < deadline, f"not done; written so far: {transport.writes!r}"
            await asyncio.sleep(0.001)

    loop.run_until_complete(wait())


GET = b"GET /e HTTP/1.1\r\nhost: localhost\r\n\r\n"


def test_an_answer_goes_out_in_one_write() -> None:
    transport, loop, _ = serve(json_app, GET)
    try:
        run_until(loop, transport, lambda t: any(w.endswith(b'{"ids": ["e1"]}') for w in t.writes))
        [written] = transport.writes
        assert written.startswith(b"HTTP/1.1 200 OK\r\n")
        assert written.endswith(b'\r\n\r\n{"ids": ["e1"]}')
    finally:
        loop.close()


def test_a_streams_head_goes_out_without_waiting_for_its_body() -> None:
    transport, loop, _ = serve(stream_app, GET)
    try:
        run_until(loop, transport, lambda t: len(t.writes) >= 1, timeout=0.04)  # before the body's 50 ms
        assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
        assert transport.writes[0].endswith(b"\r\n\r\n")
        run_until(loop, transport, lambda t: any(b"data: 1" in w for w in t.writes))
    finally:
        loop.close()


def test_a_100_continue_reaches_the_client_before_its_body_is_sent() -> None:
    request = b"POST /e HTTP/1.1\r\nhost: localhost\r\ncontent-length: 2\r\nexpect: 100-continue\r\n\r\n"
    transport, loop, protocol = serve(json_app, request)
    try:
        run_until(loop, transport, lambda t: any(b"100 Continue" in w for w in t.writes), timeout=0.5)
        assert not any(b"200 OK" in w for w in transport.writes)
        protocol.data_received(b"{}")
        run_until(loop, transport, lambda t: any(w.endswith(b'{"ids": ["e1"]}') for w in t.writes))
        assert b"".join(transport.writes).count(b"HTTP/1.1 200 OK") == 1
    finally:
        loop.close()


@pytest.mark.parametrize("calls", [["close"], ["write", "close"]])
def test_closing_writes_what_is_held_first(calls: list[str]) -> None:
    loop = asyncio.new_event_loop()
    try:
        transport = Recording()
        wrapped = _HeadWithBody(transport, loop)
        wrapped.write(b"HEAD")
        for call in calls:
            if call == "write":
                wrapped.write(b"BODY")
            else:
                wrapped.close()
        assert b"".join(transport.writes) == (b"HEADBODY" if "write" in calls else b"HEAD")
        assert transport.closed
        loop.run_until_complete(asyncio.sleep(0))  # the scheduled release writes nothing twice
        assert b"".join(transport.writes).count(b"HEAD") == 1
    finally:
        loop.close()
