"""Read API: cursor pagination, filters, and the admin token (Bearer or session cookie)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from durable.api.app import create_app
from durable.store.db import Database
from tests.harness import Engine, Workspace, make_settings


async def test_runs_paginate_with_a_cursor_and_filter(engine: Engine) -> None:
    ws = await engine.workspace()
    await engine.sync(
        ws,
        "http://127.0.0.1:9/app",
        [{"id": "a", "trigger": {"event": "go"}}, {"id": "b", "trigger": {"event": "go"}}],
    )
    response = await engine.signed(ws, "/e", [{"name": "go", "data": {"i": i}} for i in range(30)])
    assert response.status_code == 200 and len(response.json()["ids"]) == 30
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 7, **({"cursor": cursor} if cursor else {})}
        page = (await engine.api.get(f"/api/apps/{ws.id}/runs", params=params)).json()
        seen += [r["id"] for r in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert len(seen) == 60 and len(set(seen)) == 60 and seen == sorted(seen, reverse=True)
    only_b = await engine.runs(ws, functionId="b")
    assert len(only_b) == 30 and {r["functionId"] for r in only_b} == {"b"}
    queued = await engine.runs(ws, status="active", activity="queued")
    assert len(queued) == 60
    events = (await engine.api.get(f"/api/apps/{ws.id}/events", params={"limit": 30})).json()
    assert len(events["items"]) == 30 and events["nextCursor"] is None
    assert all(len(e["runs"]) == 2 for e in events["items"])


@pytest.fixture
async def guarded(db: Database, dsn: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(dsn, admin_token="s3cret-token")
    app = create_app(db, settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://engine") as client:
        yield client


async def test_admin_token_gates_the_api(guarded: httpx.AsyncClient) -> None:
    assert (await guarded.get("/api/apps")).status_code == 401
    assert (await guarded.post("/api/apps", json={"name": "x", "environment": "dev"})).status_code == 401
    bad = await guarded.get("/api/apps", headers={"authorization": "Bearer wrong"})
    assert bad.status_code == 401
    ok = await guarded.get("/api/apps", headers={"authorization": "Bearer s3cret-token"})
    assert ok.status_code == 200
    assert (await guarded.get("/healthz")).status_code == 200  # open
    assert (await guarded.post("/api/login", json={"token": "nope"})).status_code == 401
    login = await guarded.post("/api/login", json={"token": "s3cret-token"})
    assert login.status_code == 200
    cookie = login.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie
    assert "s3cret-token" not in login.headers["set-cookie"]
    assert (await guarded.get("/api/apps")).status_code == 200  # the cookie signs in
    await guarded.post("/api/logout")
    guarded.cookies.clear()
    assert (await guarded.get("/api/apps")).status_code == 401


async def test_signed_routes_never_need_the_admin_token(guarded: httpx.AsyncClient, db: Database) -> None:
    created = await guarded.post(
        "/api/apps",
        json={"name": "x", "environment": "dev"},
        headers={"authorization": "Bearer s3cret-token"},
    )
    body = created.json()
    ws = Workspace(body["id"], body["signingKey"])
    import orjson

    from durable.core.signing import sign

    raw = orjson.dumps({"name": "ping"})
    response = await guarded.post(
        "/e", content=raw, headers={"x-durable-app": ws.id, "x-durable-signature": sign(raw, ws.signing_key)}
    )
    assert response.status_code == 200 and len(response.json()["ids"]) == 1


async def test_session_says_whether_sign_in_is_needed(guarded: httpx.AsyncClient, engine: Engine) -> None:
    assert (await guarded.get("/api/session")).json() == {"authRequired": True, "signedIn": False}
    await guarded.post("/api/login", json={"token": "s3cret-token"})
    assert (await guarded.get("/api/session")).json() == {"authRequired": True, "signedIn": True}
    assert (await engine.api.get("/api/session")).json() == {"authRequired": False, "signedIn": True}


async def test_stream_refuses_without_the_admin_token(guarded: httpx.AsyncClient) -> None:
    guarded.cookies.clear()
    assert (await guarded.get("/api/stream")).status_code == 401


async def test_run_function_starts_only_that_function(engine: Engine) -> None:
    ws = await engine.workspace()
    await engine.sync(
        ws,
        "http://127.0.0.1:9/x",
        [
            {"id": "a", "trigger": {"event": "shared"}},
            {"id": "b", "trigger": {"event": "shared"}},
            {"id": "nightly", "trigger": {"cron": "0 3 * * *"}},
        ],
    )
    response = await engine.api.post(f"/api/apps/{ws.id}/functions/a/run", json={"data": {"x": 1}})
    assert response.status_code == 200
    response = await engine.api.post(f"/api/apps/{ws.id}/functions/nightly/run", json={})
    assert response.status_code == 200
    runs = await engine.runs(ws)
    assert sorted(r["functionId"] for r in runs) == ["a", "nightly"]
    cron_run = await engine.run(next(r["id"] for r in runs if r["functionId"] == "nightly"))
    assert cron_run["event"]["name"] == "$cron" and cron_run["event"]["data"]["cron"] == "0 3 * * *"
    missing = await engine.api.post(f"/api/apps/{ws.id}/functions/ghost/run", json={})
    assert missing.status_code == 404 and "ghost" in missing.json()["error"]
    bad = await engine.api.post(f"/api/apps/{ws.id}/functions/a/run", json={"data": [1]})
    assert bad.status_code == 400 and "data" in bad.json()["error"]


async def test_a_self_provisioning_app_gets_the_durable_env_environment(db: Database, dsn: str) -> None:
    app = create_app(db, make_settings(dsn, env="acc"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://engine") as client:
        body = (await client.post("/api/apps", json={"name": "billing"})).json()
        assert body["environment"] == "acc"
        explicit = (await client.post("/api/apps", json={"name": "billing", "environment": "prod"})).json()
        assert explicit["environment"] == "prod" and explicit["id"] != body["id"]
