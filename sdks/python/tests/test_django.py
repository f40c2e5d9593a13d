"""The Django helper: ``durable_sdk.django.view`` routed by a real, in-test configured Django."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest

import durable_sdk
from durable_sdk import _signing, _step

django = pytest.importorskip("django")  # a test-only dependency
from django.conf import settings  # noqa: E402

if not settings.configured:
    settings.configure(
        SECRET_KEY="durable-sdk-tests",
        ALLOWED_HOSTS=["testserver"],
        ROOT_URLCONF=__name__,  # the urlpatterns below
        MIDDLEWARE=["django.middleware.common.CommonMiddleware", "django.middleware.csrf.CsrfViewMiddleware"],
        INSTALLED_APPS=[],
        DATABASES={},
    )
    django.setup()

from django.test import AsyncClient, Client, override_settings  # noqa: E402
from django.urls import path  # noqa: E402

from durable_sdk.django import view  # noqa: E402

KEY = "signkey-test-1"  # the conftest key: urlpatterns are built at import time
threads: dict[str, int] = {}


@durable_sdk.function(id="hello", trigger={"event": "demo.hello"})
async def hello(event: Any, step: Any) -> Any:
    await step.sleep("pause", "1s")
    return await step.run("greet", lambda: f"hi {event['data']['name']}")


@durable_sdk.function(id="plain", trigger={"event": "demo.plain"})
def plain(event: Any, step: Any) -> Any:
    threads["sync"] = threading.get_ident()
    return step.run("greet", lambda: "hi")


urlpatterns = [path("api/durable", view([hello, plain], signing_key=KEY))]


def invoke_body(function_id: str, steps: dict[str, Any] | None = None, data: Any = "Zoë") -> bytes:
    event = {"id": "e1", "name": "demo.hello", "data": {"name": data}, "ts": 1767225600000}
    body = {"runId": "r1", "functionId": function_id, "attempt": 1, "event": event, "steps": steps or {}}
    return json.dumps(body).encode()


@pytest.fixture
def client(key: str) -> Any:
    assert key == KEY
    return Client(enforce_csrf_checks=True)  # the view must not need a CSRF token


def post(client: Any, key: str, body: bytes) -> Any:
    nonce = _signing.new_nonce()
    signature = durable_sdk.sign_v2(body, key, "engine", _step._now_ms(), n=nonce)
    answer = client.post(
        "/api/durable", body, "application/json", headers={"x-durable-signature-v2": signature}
    )
    assert answer.headers["x-durable-signature"] == durable_sdk.sign(answer.content, key)
    if answer.status_code != 413:  # refused before the body (and its signature) was read
        assert _signing.parse_v2(answer.headers["x-durable-signature-v2"]).r == nonce
    assert answer.headers["content-type"] == "application/json"
    return answer


def test_async_handler_runs_under_asyncio_run(client: Any, key: str) -> None:
    answer = post(client, key, invoke_body("hello", {"pause": {"type": "sleep"}}))
    expected = (
        '{"op":"checkpoint","steps":[{"id":"greet","data":"hi Zoë"}],"then":{"op":"done","data":"hi Zoë"}}'
    ).encode()
    assert (answer.status_code, answer.content) == (200, expected)


def test_plain_handler(client: Any, key: str) -> None:
    threads.clear()
    answer = post(client, key, invoke_body("plain", {"greet": {"type": "run", "data": "x"}}))
    assert (answer.status_code, answer.json()) == (200, {"op": "done", "data": "x"})
    assert threads == {"sync": threading.get_ident()}


def test_bad_signature_is_401(client: Any, key: str, bad_signature: Any) -> None:
    headers, error = bad_signature
    threads.clear()
    answer = client.post("/api/durable", invoke_body("plain"), "application/json", headers=headers)
    assert answer.status_code == 401
    assert answer.json()["error"].startswith(error)
    assert durable_sdk.verify(answer.content, key, answer.headers["x-durable-signature"])
    assert threads == {}


def test_under_asgi(key: str) -> None:
    body = invoke_body("hello", {"pause": {"type": "sleep"}})
    signature = durable_sdk.sign_v2(body, key, "engine", _step._now_ms())

    async def go() -> Any:
        client = AsyncClient(enforce_csrf_checks=True)
        return await client.post(
            "/api/durable", body, "application/json", headers={"x-durable-signature-v2": signature}
        )

    answer = asyncio.run(go())
    assert (answer.status_code, answer.json()["then"]) == (200, {"op": "done", "data": "hi Zoë"})


def test_get_unknown_function_and_methods(client: Any, key: str) -> None:
    assert client.get("/api/durable").json() == {"functions": ["hello", "plain"]}
    assert post(client, key, invoke_body("nope")).status_code == 404
    assert client.delete("/api/durable").status_code == 405


def test_big_invokes_need_data_upload_max_memory_size(client: Any, key: str) -> None:
    body = invoke_body("plain", data="x" * (3 * 1024 * 1024))  # over Django's 2.5 MiB default
    answer = post(client, key, body)
    assert (answer.status_code, answer.json()["error"]) == (
        413,
        f"body over DATA_UPLOAD_MAX_MEMORY_SIZE: set it to at least {4 * 1024 * 1024}",
    )
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=4 * 1024 * 1024):
        assert post(client, key, body).json()["steps"] == [{"id": "greet", "data": "hi"}]
