"""One signed HTTP round trip to the app, over a shared keep-alive aiohttp session.

aiohttp rather than httpx: on this machine httpx.AsyncClient fell from ~1,100 to ~300 requests/s as
concurrency rose to 32, while aiohttp rose to ~10,000 (shared/bench-anchors.md).
"""

from __future__ import annotations

import aiohttp
import orjson

from durable.core.ops import parse_op
from durable.core.signing import sign, verify
from durable.errors import InvalidInput, InvokeError
from durable.types import MAX_BODY, Op


class Invoker:
    def __init__(self, timeout_ms: int, user_agent: str = "durable") -> None:
        self.user_agent = user_agent
        self.timeout = aiohttp.ClientTimeout(total=timeout_ms / 1000)
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
        try:
            async with self.session().post(url, data=raw, headers=headers) as response:
                answer = await _read_limited(response)
                if not 200 <= response.status < 300:
                    text = answer[:300].decode("utf-8", "replace")
                    raise InvokeError(f"the app answered HTTP {response.status}: {text}")
                if not verify(answer, signing_key, response.headers.get("x-durable-signature")):
                    raise InvokeError("the app's answer has a missing or wrong x-durable-signature")
        except TimeoutError:
            raise InvokeError(f"the app did not answer within {self.timeout_ms} ms") from None
        except aiohttp.ClientError as exc:
            raise InvokeError(f"could not reach the app at {url}: {exc or type(exc).__name__}") from None
        try:
            return parse_op(answer)
        except InvalidInput as exc:
            raise InvokeError(f"the app's answer is invalid: {exc.message}") from None


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
