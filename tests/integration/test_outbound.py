"""Outbound calls are contained (issue 9, item 4): DURABLE_APP_URL_ALLOW limits where sync URLs may
point, the engine never invokes its own API (refused at sync, and at invoke time on what the URL
resolves to), and what is stored of an app's error answer is a short single-line excerpt.

Apps are served over real HTTP on 127.0.0.1; the engine's API is mounted through ASGI, reached as
`http://engine` (tests/integration/conftest.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from ipaddress import ip_address
from typing import Any

import durable_sdk
import pytest

from durable.core.outbound import parse_allow
from durable.engine.outbound import is_local_address
from durable.errors import InvokeError
from durable.worker.invoke import Invoker, excerpt
from tests.harness import Engine, Workspace, free_port
from tests.integration.test_unreachable import Served


def _function(function_id: str = "charge", retries: int | None = None) -> Any:
    options: dict[str, Any] = {"retries": retries} if retries is not None else {}

    @durable_sdk.function(id=function_id, trigger={"event": "go"}, **options)
    async def charge(event, step):  # type: ignore[no-untyped-def]
        return await step.run("a", lambda: 1)

    return charge


async def _sync(engine: Engine, ws: Workspace, url: str) -> Any:
    payload = {"url": url, "functions": [_function().wire]}
    return await engine.signed(ws, "/fn/sync", payload)


async def _stored_url(engine: Engine, ws: Workspace) -> str | None:
    response = await engine.api.get("/api/apps")
    assert response.status_code == 200, response.text
    [app] = [a for a in response.json()["items"] if a["id"] == ws.id]
    return app["url"]  # type: ignore[no-any-return]


async def test_the_allow_list_limits_where_sync_urls_may_point(engine: Engine) -> None:
    allow = parse_allow("app.example.com, *.internal, 127.0.0.1, 10.0.0.0/8, [fd00::5]")
    engine.app.state.settings = dataclasses.replace(engine.settings, app_url_allow=allow)
    ws = await engine.workspace()
    allowed = [
        "http://app.example.com/api/durable",
        "https://APP.example.com./api/durable",  # case and a trailing dot change nothing
        "https://billing.internal:8443/api/durable",
        "http://10.20.30.40:8080/api/durable",
        "http://[fd00::5]:3000/api/durable",
        f"http://127.0.0.1:{free_port()}/api/durable",
    ]
    for url in allowed:
        response = await _sync(engine, ws, url)
        assert response.status_code == 200, (url, response.text)
        assert await _stored_url(engine, ws) == url
    kept = allowed[-1]
    refused = [
        "http://evil.example.org/api/durable",
        "http://app.example.com.evil.org/api/durable",
        "http://internal/api/durable",  # `*.internal` is for sub-domains
        "http://xinternal/api/durable",
        "http://192.168.1.5:3000/api/durable",
        "http://11.0.0.1/api/durable",
        "http://[fd00::6]:3000/api/durable",
        "http://localhost:4000/api/durable",  # 127.0.0.1 is listed, the name localhost is not
    ]
    for url in refused:
        response = await _sync(engine, ws, url)
        assert response.status_code == 400, (url, response.text)
        message = response.json()["error"]
        assert repr(url) in message and "DURABLE_APP_URL_ALLOW" in message, message
        assert await _stored_url(engine, ws) == kept  # nothing of a refused sync is stored


async def test_without_a_list_any_host_is_accepted(engine: Engine) -> None:
    ws = await engine.workspace()
    for url in ("http://anything.example.net/api", "http://192.168.7.7:8080/api", "http://[::1]:4000/x"):
        response = await _sync(engine, ws, url)
        assert response.status_code == 200, (url, response.text)


async def test_a_tenant_cannot_point_its_url_at_the_engines_own_api(engine: Engine) -> None:
    """The attack of issue 9: workspace B's URL aimed at `POST /api/runs/<id>/cancel` of A's run."""
    victim = await engine.workspace("billing")
    assert (await _sync(engine, victim, f"http://127.0.0.1:{free_port()}/api/durable")).status_code == 200
    await engine.send(victim, "go")  # no workers: the run waits, queued
    [run] = await engine.wait_for(lambda: engine.runs(victim), what="the victim's run")

    tenant = await engine.workspace("tenant")
    port = engine.settings.port
    path = f"/api/runs/{run['id']}/cancel"
    for origin in (
        f"http://127.0.0.1:{port}",
        f"http://localhost:{port}",
        f"http://LOCALHOST.:{port}",
        f"http://[::1]:{port}",
        f"http://[::ffff:127.0.0.1]:{port}",
        f"http://0.0.0.0:{port}",
        f"http://127.9.9.9:{port}",
        f"http://2130706433:{port}",  # 127.0.0.1 spelled as one number
        f"http://api.localhost:{port}",
        "http://engine",  # the Host this engine is reached on (tests mount it as http://engine)
        "https://engine",
    ):
        url = origin + path
        response = await _sync(engine, tenant, url)
        assert response.status_code == 400, (url, response.text)
        message = response.json()["error"]
        assert repr(url) in message and "this engine's own API" in message, message
    assert await _stored_url(engine, tenant) is None
    assert (await engine.run(run["id"]))["status"] != "cancelled"
    # An app on this machine on another port is no engine: it syncs.
    response = await _sync(engine, tenant, f"http://localhost:{free_port()}/api/durable")
    assert response.status_code == 200, response.text
    response = await _sync(engine, tenant, f"http://engine:{free_port()}/api/durable")
    assert response.status_code == 200, response.text


@asynccontextmanager
async def listener() -> AsyncIterator[tuple[int, list[int]]]:
    """A TCP port standing for the engine's, and the connections it received."""
    accepted: list[int] = []

    async def handle(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1]), accepted
    finally:
        server.close()


def _local_name() -> str:
    """A host name (not an IP, not `localhost`) that resolves to this machine."""
    name = socket.gethostname()
    addresses = {info[4][0] for info in socket.getaddrinfo(name, 80, proto=socket.IPPROTO_TCP)}
    if not addresses or not all(is_local_address(ip_address(a)) for a in addresses):
        pytest.skip(f"the host name {name!r} does not resolve to this machine only")
    return name


async def test_a_url_that_resolves_to_the_engine_fails_the_run_at_invoke(engine: Engine) -> None:
    """DNS can change after a sync: the name passes the sync (no DNS there), the invoke checks what it
    resolves to, sends nothing, and fails the run at once (no retry can succeed)."""
    name = _local_name()
    async with listener() as (port, accepted):
        engine.app.state.settings = dataclasses.replace(engine.settings, port=port)
        ws = await engine.workspace()
        url = f"http://{name}:{port}/api/runs/some-run/cancel"
        charge = _function()
        response = await engine.signed(ws, "/fn/sync", {"url": url, "functions": [charge.wire]})
        assert response.status_code == 200, response.text
        await engine.start_workers()
        engine.invokers[-1].own_port = port  # the workers know the engine's port (PORT)
        await engine.send(ws, "go")
        [failed] = await engine.wait_runs(ws, 1, status="failed")
        run = await engine.run(failed["id"])
        message = run["error"]["message"]
        assert f"{name!r} resolves to" in message and "this engine's own API" in message, message
        assert "gave up after" not in message  # failed at the first attempt: not retryable
        assert len(run["errors"]) == 1, run["errors"]
        assert accepted == []  # nothing was sent to the engine's port


async def test_the_invoke_checks_the_allow_list_again() -> None:
    """A URL stored before the list was narrowed is refused at invoke, before any connection."""
    async with listener() as (port, accepted):
        invoker = Invoker(timeout_ms=2000, allow=parse_allow("apps.example.com"))
        try:
            with pytest.raises(InvokeError) as caught:
                await invoker.invoke(f"http://127.0.0.1:{port}/api/durable", {"runId": "r"}, "key")
        finally:
            await invoker.close()
    assert not caught.value.retryable and "DURABLE_APP_URL_ALLOW" in caught.value.message
    assert accepted == []


async def test_an_error_answer_is_stored_as_a_short_single_line_excerpt(engine: Engine) -> None:
    body = (
        b'Traceback (most recent call last):\n  File "app.py"\r\n\x00\x1b[31mred\x1b[0m \xe2\x80\xae'
        b"gnp.exe\t\xff\xfe " + b"secret-looking-line " * 500
    )

    async def failing(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 500, "headers": []})
        await send({"type": "http.response.body", "body": body})

    ws = await engine.workspace()
    served = Served(failing).start()
    try:
        await engine.sync(ws, served.url, [_function(retries=0)])
        await engine.start_workers()
        await engine.send(ws, "go")
        [failed] = await engine.wait_runs(ws, 1, status="failed")
    finally:
        served.stop()
    message = (await engine.run(failed["id"]))["error"]["message"]
    prefix = "the app answered HTTP 500: "
    assert message.startswith(prefix), message
    stored = message[len(prefix) :].removesuffix(" (gave up after 1 attempts)")
    assert stored == excerpt(body)
    assert len(stored) <= 200 and stored.endswith("…")
    assert stored.isprintable() and "  " not in stored  # one line: no newline, NUL, escape, bidi
    assert stored.startswith('Traceback (most recent call last): File "app.py" [31mred [0m gnp.exe')


def test_an_excerpt_keeps_a_short_answer_whole() -> None:
    assert excerpt(b'{"error": "card declined"}\n') == '{"error": "card declined"}'
    assert excerpt(b"") == ""
    assert len(excerpt("é".encode() * 1000)) == 200
