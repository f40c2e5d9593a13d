"""worker/http1.py, the invoke's HTTP/1.1 client, against raw servers on 127.0.0.1 that answer byte for
byte what each test writes: keep-alive kept and dropped as both sides say, every way an answer's body
can end, answers split at arbitrary points, the size bound, interim answers, bytes nobody asked for,
TLS, and what it refuses to send."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from durable.worker import http1
from tests.harness import free_port

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Server:
    """A TCP server on 127.0.0.1 that counts its connections; `url` posts to /api/durable."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[bytes] = []
        self.url = ""


@asynccontextmanager
async def serving(
    handler: Handler | Callable[[Server], Handler], tls: ssl.SSLContext | None = None
) -> AsyncIterator[Server]:
    """Serve `handler`, or the handler `handler(server)` makes (one that records the requests)."""
    server = Server()
    if isinstance(handler, Answers):
        handler = handler(server)

    async def counted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server.connections += 1
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    listening = await asyncio.start_server(counted, "127.0.0.1", 0, ssl=tls)
    port = listening.sockets[0].getsockname()[1]
    server.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/api/durable?fnId=a%20b"
    try:
        yield server
    finally:
        listening.close()


async def read_request(reader: asyncio.StreamReader, server: Server) -> bytes:
    """One request: its head, then as many body bytes as its content-length says."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    body = await reader.readexactly(length)
    server.requests.append(head + body)
    return body


class Answers:
    """A handler writing `raws` in turn, one per request on the same connection, then holding it open
    until the client drops it (or closing it: `close_after`)."""

    def __init__(self, *raws: bytes, close_after: bool = False) -> None:
        self.raws = raws
        self.close_after = close_after

    def __call__(self, server: Server) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            for raw in self.raws:
                await read_request(reader, server)
                writer.write(raw)
                await writer.drain()
            if not self.close_after:
                await reader.read()

        return handler


answers = Answers


def ok(body: bytes, *extra: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n" % len(body)
    return head + b"".join(extra) + b"\r\n" + body


def client(limit: int = 1 << 20, tls: ssl.SSLContext | None = None) -> http1.Client:
    return http1.Client(connect_timeout_s=2, limit=limit, tls=tls)


async def test_one_connection_carries_request_after_request() -> None:
    async with serving(answers(*[ok(b'{"n":%d}' % i) for i in range(5)])) as s:
        c = client()
        for i in range(5):
            response = await c.post(s.url, b'{"i":%d}' % i, {"x-durable-signature-v2": "v=2"}, 2)
            assert (response.status, response.body) == (200, b'{"n":%d}' % i)
            assert response.headers["content-type"] == "application/json"
        await c.close()
    assert s.connections == 1
    first = s.requests[0]
    assert first.startswith(b"POST /api/durable?fnId=a%20b HTTP/1.1\r\nhost: 127.0.0.1:")
    assert b"\r\ncontent-length: 7\r\n" in first and b"\r\nx-durable-signature-v2: v=2\r\n" in first
    assert first.endswith(b'\r\n\r\n{"i":0}')


@pytest.mark.parametrize(
    "answer",
    [
        ok(b"{}", b"connection: close\r\n"),
        b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\n{}",
    ],
    ids=["connection-close", "http-1.0"],
)
async def test_an_answer_that_ends_the_connection_is_not_reused(answer: bytes) -> None:
    async with serving(answers(answer, close_after=True)) as s:
        c = client()
        for _ in range(3):
            response = await c.post(s.url, b"{}", {}, 2)
            assert response.body == b"{}"
        await c.close()
    assert s.connections == 3


async def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    async with serving(answers(ok(b"1"), close_after=True)) as s:
        c = client()
        assert (await c.post(s.url, b"{}", {}, 2)).body == b"1"
        await asyncio.sleep(0.05)  # the server's close reaches the client
        assert (await c.post(s.url, b"{}", {}, 2)).body == b"1"
        await c.close()
    assert s.connections == 2


def chunked(body: bytes, sizes: list[int]) -> bytes:
    out, at = [b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"], 0
    for size in sizes:
        piece = body[at : at + size]
        if not piece:
            break
        out.append(b"%x\r\n%s\r\n" % (len(piece), piece))
        at += len(piece)
    if at < len(body):
        out.append(b"%x\r\n%s\r\n" % (len(body) - at, body[at:]))
    out.append(b"0\r\n\r\n")
    return b"".join(out)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.binary(max_size=3000),
    framing=st.sampled_from(["length", "chunked", "until-close"]),
    chunks=st.lists(st.integers(1, 700), max_size=8),
    cuts=st.lists(st.integers(1, 400), max_size=12),
)
def test_an_answer_split_anywhere_reads_back_whole(
    body: bytes, framing: str, chunks: list[int], cuts: list[int]
) -> None:
    """Whatever the body's bytes, its framing, and where TCP splits what the server writes, the
    client returns exactly the body; a kept connection then serves the next request too."""
    if framing == "length":
        raw = ok(body)
    elif framing == "chunked":
        raw = chunked(body, chunks)
    else:
        raw = b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n" + body

    async def scenario() -> None:
        server = Server()

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            for _ in range(1 if framing == "until-close" else 2):
                await read_request(reader, server)
                at = 0
                for cut in cuts:
                    writer.write(raw[at : at + cut])
                    await writer.drain()
                    await asyncio.sleep(0)
                    at += cut
                writer.write(raw[at:])
                await writer.drain()
            if framing == "until-close":
                writer.close()
                return
            await reader.read()

        async with serving(handler) as s:
            c = client()
            try:
                assert (await c.post(s.url, b"{}", {}, 5)).body == body
                if framing != "until-close":
                    assert (await c.post(s.url, b"{}", {}, 5)).body == body
                    assert s.connections == 1
            finally:
                await c.close()

    asyncio.run(scenario())


async def test_an_interim_answer_is_skipped() -> None:
    raw = b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n" + ok(b'{"op":"done"}')
    async with serving(answers(raw)) as s:
        c = client()
        response = await c.post(s.url, b"{}", {}, 2)
        await c.close()
    assert (response.status, response.body) == (200, b'{"op":"done"}')
    assert "link" not in response.headers


async def test_an_answer_over_the_limit_is_refused_declared_or_read() -> None:
    big = b"x" * 101
    async with serving(answers(ok(big), close_after=True)) as s:
        c = client(limit=100)
        with pytest.raises(http1.AnswerTooLarge) as declared:
            await c.post(s.url, b"{}", {}, 2)
        await c.close()
    assert declared.value.length == 101
    async with serving(answers(chunked(big, [60, 60]), close_after=True)) as s:
        c = client(limit=100)
        with pytest.raises(http1.AnswerTooLarge) as read:
            await c.post(s.url, b"{}", {}, 2)
        await c.close()
    assert read.value.length is None
    async with serving(answers(ok(big[:100]))) as s:
        c = client(limit=100)
        assert (await c.post(s.url, b"{}", {}, 2)).body == big[:100]  # at the limit: fine
        await c.close()


async def test_what_is_not_http_is_a_bad_answer() -> None:
    async with serving(answers(b"SSH-2.0-OpenSSH_9.2\r\n")) as s:
        c = client()
        with pytest.raises(http1.BadAnswer):
            await c.post(s.url, b"{}", {}, 2)
        await c.close()


async def test_bytes_after_the_answer_spoil_the_connection() -> None:
    """A server that writes a second answer to one request: the first answer is returned, and the
    connection is not trusted with the next request (the stray bytes would be read as its answer)."""
    async with serving(answers(ok(b"1") + ok(b"2"), ok(b"3"))) as s:
        c = client()
        assert (await c.post(s.url, b"{}", {}, 2)).body == b"1"
        assert (await c.post(s.url, b"{}", {}, 2)).body == b"1"
        await c.close()
    assert s.connections == 2


async def test_closed_before_any_answer_and_mid_answer_are_told_apart() -> None:
    async def close_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")

    async def close_mid_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{")
        await writer.drain()

    for handler, answered in ((close_at_once, False), (close_mid_answer, True)):
        async with serving(handler) as s:
            c = client()
            with pytest.raises(http1.Disconnected) as caught:
                await c.post(s.url, b"{}", {}, 2)
            await c.close()
        assert caught.value.answered is answered


async def test_connect_failures_name_what_failed() -> None:
    c = client()
    with pytest.raises(http1.ConnectFailed) as refused:
        await c.post(f"http://127.0.0.1:{free_port()}/", b"{}", {}, 2)
    assert isinstance(refused.value.error, ConnectionRefusedError)
    with pytest.raises(http1.ConnectFailed) as dns:
        await c.post("http://no-such-host.invalid/", b"{}", {}, 2)
    assert dns.value.dns and "no-such-host.invalid" in str(dns.value)
    await c.close()


async def test_the_whole_request_has_a_deadline() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    async with serving(silent) as s:
        c = client()
        with pytest.raises(TimeoutError):
            await c.post(s.url, b"{}", {}, 0.2)
        await c.close()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://example.com/", "scheme"),
        ("http:///path", "no host"),
        ("http://user:secret@example.com/", "user name or password"),
    ],
)
async def test_a_url_it_cannot_post_to_is_refused_before_any_connection(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        await client().post(url, b"{}", {}, 2)


@pytest.mark.parametrize(
    "header", [{"x-a": "1\r\nx-injected: 1"}, {"x-a\r\nx-b": "1"}, {"x-a": "1\n"}, {"x:a": "1"}]
)
async def test_a_header_that_would_split_the_request_is_refused(header: dict[str, str]) -> None:
    async with serving(answers(ok(b"{}"))) as s:
        with pytest.raises(ValueError, match="cannot be sent"):
            await client().post(s.url, b"{}", header, 2)
    assert s.requests == []


def test_the_request_target_is_escaped_and_the_host_carries_a_non_default_port() -> None:
    plain = http1.origin("http://Example.com/a b/ü?q=1 2#frag")
    assert plain.head == b"POST /a%20b/%C3%BC?q=1%202 HTTP/1.1\r\nhost: example.com\r\n"
    assert plain.key == ("http", "example.com", 80)
    v6 = http1.origin("https://[::1]:8443")
    assert v6.head == b"POST / HTTP/1.1\r\nhost: [::1]:8443\r\n" and v6.tls and v6.host == "::1"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_tls_verifies_the_apps_certificate(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)
    async with serving(answers(ok(b'{"tls":1}'), ok(b'{"tls":2}')), tls=served) as s:
        trusted = client(tls=ssl.create_default_context(cafile=str(cert)))
        assert (await trusted.post(s.url, b"{}", {}, 2)).body == b'{"tls":1}'
        assert (await trusted.post(s.url, b"{}", {}, 2)).body == b'{"tls":2}'
        await trusted.close()
        assert s.connections == 1
        stranger = client()  # the system's CAs: a self-signed certificate is refused
        with pytest.raises(http1.ConnectFailed) as refused:
            await stranger.post(s.url, b"{}", {}, 2)
        await stranger.close()
    assert refused.value.tls and "certificate verify failed" in str(refused.value)


def streaming(head: bytes, filler: bytes, total: int) -> Handler:
    """A handler that answers `head`, then `filler` again and again up to `total` bytes, and waits."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(head)
        sent = 0
        while sent < total:
            writer.write(filler)
            sent += len(filler)
            await writer.drain()
        await reader.read()

    return handler


@pytest.mark.parametrize(
    ("head", "filler"),
    [
        (b"HTTP/1.1 200 OK\r\nx-endless: ", b"a" * 4096),  # one header whose value never ends
        (b"HTTP/1.1 200 OK\r\n", b"x-many: 1\r\n" * 400),  # header after header, no blank line
    ],
    ids=["one-endless-header", "endless-headers"],
)
async def test_a_head_without_end_is_refused_at_its_bound(head: bytes, filler: bytes) -> None:
    """httptools holds a header until it ends: without this bound an app could grow the engine's
    memory until the deadline."""
    async with serving(streaming(head, filler, 4 * http1.MAX_HEAD)) as s:
        c = client()
        with pytest.raises(http1.BadAnswer, match="head exceeds 64 KiB"):
            await c.post(s.url, b"{}", {}, 5)
        await c.close()


async def test_trailers_without_end_are_refused() -> None:
    head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\nx-trailer: "
    async with serving(streaming(head, b"t" * 4096, 4 * http1.MAX_HEAD)) as s:
        c = client(limit=100)
        with pytest.raises(http1.AnswerTooLarge):
            await c.post(s.url, b"{}", {}, 5)
        await c.close()


async def test_a_large_head_within_the_bound_is_read() -> None:
    big = b"".join(b"x-h%d: %s\r\n" % (i, b"v" * 100) for i in range(500))  # ~55 KiB of headers
    async with serving(answers(ok(b'{"ok":1}', big))) as s:
        c = client()
        response = await c.post(s.url, b"{}", {}, 5)
        await c.close()
    assert response.body == b'{"ok":1}' and response.headers["x-h499"] == "v" * 100
