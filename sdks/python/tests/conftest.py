"""Shared fixtures: the signing key, and helpers driving the ASGI and WSGI apps in-process."""

from __future__ import annotations

import asyncio
import io
import json
import sys
import wsgiref.util
from pathlib import Path
from typing import Any

import pytest

SDK_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(SDK_ROOT))  # import durable_sdk from this checkout, also under the repo-wide config

KEY = "signkey-test-1"


def invoke_headers(body: bytes, key: str = KEY, t: int | None = None, n: str | None = None) -> dict[str, str]:
    """The headers the engine signs an invoke with: v2 (sender engine, at ``t``, default the SDK clock,
    nonce ``n``, default fresh) and v1, as an engine in compat mode sends both."""
    from durable_sdk import _step, sign, sign_v2

    when = _step._now_ms() if t is None else t
    return {
        "x-durable-signature-v2": sign_v2(body, key, "engine", when, n),
        "x-durable-signature": sign(body, key),
        "content-type": "application/json",
    }


def check_answer(answer: Answer, key: str, headers: dict[str, str], now: int | None = None) -> None:
    """Assert that ``answer`` is signed v1 and v2 by the app, bound to the invoke sent with ``headers``."""
    from durable_sdk import _signing, _step, verify, verify_v2

    invoke_nonce = _signing.parse_v2(headers["x-durable-signature-v2"]).n
    when = _step._now_ms() if now is None else now
    signature = verify_v2(
        answer.body, key, answer.headers["x-durable-signature-v2"], "app", when, invoke_nonce
    )
    assert signature.r == invoke_nonce
    assert verify(answer.body, key, answer.headers["x-durable-signature"])


class Answer:
    """One HTTP answer of an app: status, lower-cased headers, raw body."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)


def asgi_request(
    app: Any,
    method: str = "POST",
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    chunks: list[bytes] | None = None,
) -> Answer:
    """Send one HTTP request through an ASGI app with hand-made scope, receive and send."""
    parts = chunks if chunks is not None else [body]
    messages = [
        {"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
        for i, part in enumerate(parts)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": "/api/durable",
        "raw_path": b"/api/durable",
        "query_string": b"",
        "root_path": "",
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 4000),
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
    }
    asyncio.run(app(scope, receive, send))
    start, body_message = sent
    assert start["type"] == "http.response.start" and body_message["type"] == "http.response.body"
    answer_headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return Answer(start["status"], answer_headers, body_message["body"])


def wsgi_request(
    app: Any, method: str = "POST", body: bytes = b"", headers: dict[str, str] | None = None
) -> Answer:
    """Send one HTTP request through a WSGI app."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": "/api/durable",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    wsgiref.util.setup_testing_defaults(environ)
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    started: list[Any] = []
    chunks = app(environ, lambda status, headers: started.append((status, headers)))
    ((status, answer_headers),) = started
    return Answer(int(status.split()[0]), {k.lower(): v for k, v in answer_headers}, b"".join(chunks))


@pytest.fixture
def key() -> str:
    """The signing key the test apps use."""
    return KEY


@pytest.fixture(name="asgi_request")
def _asgi_request() -> Any:
    return asgi_request


@pytest.fixture(name="wsgi_request")
def _wsgi_request() -> Any:
    return wsgi_request


@pytest.fixture(name="invoke_headers")
def _invoke_headers() -> Any:
    return invoke_headers


@pytest.fixture(name="check_answer")
def _check_answer() -> Any:
    return check_answer


@pytest.fixture(
    params=[
        (
            {},
            "missing x-durable-signature-v2: this app requires signatures v2, "
            "the invoke carries no signature",
        ),
        (
            {"x-durable-signature": "0" * 64},
            "missing x-durable-signature-v2: this app requires signatures v2, "
            "the invoke carries only x-durable-signature (v1)",
        ),
        (
            {"x-durable-signature-v2": "t=1767225600000,n=n0123456789abcdef,s=" + "0" * 64},
            "x-durable-signature-v2 refused (mac): ",
        ),
    ],
    ids=["missing", "v1-only", "wrong"],
)
def bad_signature(request: Any) -> tuple[dict[str, str], str]:
    """Invoke headers the endpoint must refuse with 401, and the start of the error it must give."""
    headers, error = request.param
    return headers, error
