"""One signed HTTP round trip to the app, over a shared keep-alive aiohttp session.

aiohttp rather than httpx: on this machine httpx.AsyncClient fell from ~1,100 to ~300 requests/s as
concurrency rose to 32, while aiohttp rose to ~10,000 (shared/bench-anchors.md).

Failures are classified here (docs/decisions.md, "Attempts"): an app that never ran anything (connection
refused or reset before any answer, DNS failure, connect timeout, HTTP 502/503/504 from a proxy in front
of it) raises InvokeError with `unreachable=True`, which backs off without using up an attempt;
everything else (a read timeout once the request was sent, any other non-2xx, a redirect, a bad
signature or answer) is an error of the attempt.
"""

from __future__ import annotations

import errno
from urllib.parse import urlsplit

import aiohttp
import orjson

from durable.core.ops import parse_op
from durable.core.signing import sign, verify
from durable.errors import InvalidInput, InvokeError
from durable.types import MAX_BODY, Op

CONNECT_TIMEOUT_S = 10.0  # a TCP (and TLS) connect longer than this counts as the app being unreachable
UNREACHABLE_STATUSES = (502, 503, 504)  # a gateway in front of the app says the app is not there


class Invoker:
    def __init__(
        self, timeout_ms: int, user_agent: str = "durable", connect_timeout_ms: int | None = None
    ) -> None:
        self.user_agent = user_agent
        total = timeout_ms / 1000
        # A separate connect bound, so a connect timeout (nothing ran) is told apart from a read timeout.
        self.connect_ms = min(connect_timeout_ms or int(CONNECT_TIMEOUT_S * 1000), timeout_ms)
        self.timeout = aiohttp.ClientTimeout(total=total, sock_connect=self.connect_ms / 1000)
        self.timeout_ms = timeout_ms
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self.timeout, json_serialize=lambda v: orjson.dumps(v).decode()
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def invoke(self, url: str | None, body: dict[str, object], signing_key: str) -> Op:
        """POST the invoke; return the app's op, or raise InvokeError naming what was wrong."""
        if not url:
            raise InvokeError("the app has no URL: sync it first (POST /fn/sync with its url)")
        raw = orjson.dumps(body)
        headers = {
            "content-type": "application/json",
            "user-agent": self.user_agent,
            "x-durable-signature": sign(raw, signing_key),
        }
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
                    # An excerpt only, with control characters (a NUL cannot be stored) shown as spaces.
                    text = "".join(
                        c if c.isprintable() else " " for c in answer[:300].decode("utf-8", "replace")
                    )
                    raise InvokeError(f"the app answered HTTP {status}: {text}")
                if not verify(answer, signing_key, response.headers.get("x-durable-signature")):
                    raise InvokeError("the app's answer has a missing or wrong x-durable-signature")
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
