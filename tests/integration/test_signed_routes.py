"""The signed routes (`POST /e`, `POST /fn/sync`) are served by api/signed.py's SignedRoutes, before
FastAPI's routing: what that middleware decides, and that nothing the app promised for those routes
changed (the error answers, the guards in front of them, the other methods). Real Postgres."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from starlette.responses import Response

from durable.api import signed
from durable.api.signed import SignedRoutes
from tests.harness import Engine


async def test_only_post_to_the_two_paths_is_taken_before_the_router(monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[str] = []
    passed: list[tuple[str, str]] = []

    async def handler(request: Any) -> Response:
        served.append(request.url.path)
        return Response(b"{}", media_type="application/json")

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        passed.append((scope["method"], scope["path"]))
        await Response(b"inner")(scope, receive, send)

    monkeypatch.setitem(SignedRoutes.ROUTES, "/e", handler)
    monkeypatch.setitem(SignedRoutes.ROUTES, "/fn/sync", handler)
    middleware = SignedRoutes(inner)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    for method, path in [
        ("POST", "/e"),
        ("POST", "/fn/sync"),
        ("GET", "/e"),
        ("POST", "/e/"),
        ("POST", "/ex"),
    ]:
        scope = {"type": "http", "method": method, "path": path, "headers": [], "query_string": b""}
        await middleware(scope, receive, send)
    assert served == ["/e", "/fn/sync"]
    assert passed == [("GET", "/e"), ("POST", "/e/"), ("POST", "/ex")]


async def test_it_is_the_innermost_middleware(engine: Engine) -> None:
    # Innermost: the Host check, the browser-write check, the URL check and the security headers all
    # run before it (Starlette lists the last added first).
    assert engine.app.user_middleware[-1].cls is signed.SignedRoutes


async def test_a_lost_database_is_a_503_with_retry_after(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = await engine.workspace("shop", "dev")

    async def refused(_app_id: str) -> None:
        raise asyncpg.CannotConnectNowError("the database system is starting up")

    monkeypatch.setattr(engine.app.state.apps, "get", refused)
    for path, payload in (
        ("/e", {"name": "x"}),
        ("/fn/sync", {"url": "http://127.0.0.1:1/", "functions": []}),
    ):
        answer = await engine.signed(ws, path, payload)
        assert answer.status_code == 503, answer.text
        assert answer.headers["retry-after"] == "2"
        assert answer.json()["code"] == "unavailable" and "database unavailable" in answer.json()["error"]


async def test_a_database_error_that_is_a_bug_stays_a_500(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = await engine.workspace("shop", "dev")

    async def wrong(_app_id: str) -> None:
        raise asyncpg.UndefinedColumnError("column x does not exist")

    monkeypatch.setattr(engine.app.state.apps, "get", wrong)
    with pytest.raises(asyncpg.UndefinedColumnError):  # the test client re-raises what answered 500
        await engine.signed(ws, "/e", {"name": "x"})


async def test_the_guards_and_the_headers_still_apply(engine: Engine) -> None:
    ws = await engine.workspace("shop", "dev")
    stored = await engine.signed(ws, "/e", {"name": "order.paid"})
    assert stored.status_code == 200, stored.text
    assert stored.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" in stored.headers
    rebound = await engine.api.post("/e", content=b"{}", headers={"host": "evil.example"})
    assert rebound.status_code == 421, rebound.text
    nul = await engine.api.post("/e?x=%00", content=b"{}")
    assert nul.status_code == 400 and "NUL" in nul.json()["error"]
    unsigned = await engine.api.post("/e", content=b"{}")
    assert unsigned.status_code == 401 and "x-durable-app" in unsigned.json()["error"]


async def test_other_methods_are_fastapis(engine: Engine) -> None:
    answer = await engine.api.get("/e")
    assert answer.status_code == 405, answer.text
