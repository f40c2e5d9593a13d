"""The admin surface holds (issue 9, items 2 and 5): safe defaults, the Host check, loopback-only
provisioning without a token, token-gated /metrics, /openapi.json and docs, server-side sessions that
expire and revoke, the sign-in rate limit, browser-write checks, and security headers on every answer.

Each test drives the real ASGI app over httpx on a real Postgres, replaying captured cookies and posting
from other origins the way an attacker would.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from durable.api.app import create_app
from durable.config import Settings, exposure_problem, load
from durable.errors import ConfigError
from durable.store.db import Database
from tests.harness import make_settings

TOKEN = "s3cret-admin-token"
METRICS_TOKEN = "prometheus-scrape-token"
ORIGIN = "http://127.0.0.1:3030"
BASE = ORIGIN
BEARER = {"authorization": f"Bearer {TOKEN}"}
SAME_ORIGIN = {"origin": ORIGIN, "content-type": "application/json"}


@asynccontextmanager
async def client(
    db: Database, settings: Settings, *, address: str = "127.0.0.1", base: str = BASE
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(db, settings)
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url=base) as http:
        yield http


@pytest.fixture
async def guarded(db: Database, dsn: str) -> AsyncIterator[httpx.AsyncClient]:
    async with client(db, make_settings(dsn, admin_token=TOKEN, metrics_token=METRICS_TOKEN)) as http:
        yield http


@pytest.fixture
async def open_engine(db: Database, dsn: str) -> AsyncIterator[httpx.AsyncClient]:
    async with client(db, make_settings(dsn)) as http:
        yield http


async def sign_in(http: httpx.AsyncClient, token: str = TOKEN) -> str:
    """POST /api/login as the dashboard does; return the session cookie's value."""
    response = await http.post("/api/login", json={"token": token}, headers={"origin": ORIGIN})
    assert response.status_code == 200, response.text
    match = re.search(r"durable_session=([^;]+)", response.headers["set-cookie"])
    assert match is not None
    http.cookies.clear()  # each test sends the cookie it means to, like a replayed capture
    return match.group(1)


def cookie(value: str) -> dict[str, str]:
    return {"cookie": f"durable_session={value}"}


async def app_count(db: Database) -> int:
    return len(await db.fetch("app_list"))


# --- defaults and start-up ---------------------------------------------------------------------------


def test_the_default_binds_loopback_and_a_public_address_needs_a_token() -> None:
    assert load({}).host == "127.0.0.1"
    assert exposure_problem(load({})) is None
    assert exposure_problem(load({"DURABLE_HOST": "::1"})) is None
    problem = exposure_problem(load({"DURABLE_HOST": "0.0.0.0"}))
    assert problem is not None and "DURABLE_HOST" in problem and "DURABLE_ADMIN_TOKEN" in problem
    assert "DURABLE_INSECURE=1" in problem
    assert exposure_problem(load({"DURABLE_HOST": "0.0.0.0", "DURABLE_ADMIN_TOKEN": TOKEN})) is None
    assert exposure_problem(load({"DURABLE_HOST": "10.1.2.3", "DURABLE_INSECURE": "1"})) is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DURABLE_ALLOWED_HOSTS", "https://durable.example.com"),
        ("DURABLE_ALLOWED_HOSTS", "durable.example.com:443"),
        ("DURABLE_INSECURE", "yes please"),
        ("DURABLE_SESSION_TTL_MS", "12h"),
        ("DURABLE_METRICS_TOKEN", "short"),
    ],
)
def test_a_bad_security_variable_names_itself(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name) as caught:
        load({name: value})
    assert "expected" in caught.value.message


def test_allowed_hosts_are_a_comma_separated_list() -> None:
    settings = load({"DURABLE_ALLOWED_HOSTS": "Durable.Example.com, 10.0.0.5,[fd00::1]"})
    assert settings.allowed_hosts == ("durable.example.com", "10.0.0.5", "[fd00::1]")
    assert load({}).session_ttl_ms == 12 * 3600 * 1000


# --- Host header (DNS rebinding) -----------------------------------------------------------------------


async def test_a_foreign_host_header_is_refused_and_nothing_runs(
    open_engine: httpx.AsyncClient, db: Database
) -> None:
    for path in ("/healthz", "/api/apps", "/"):
        response = await open_engine.get(path, headers={"host": "rebind.attacker.example"})
        assert response.status_code == 421
        assert "rebind.attacker.example" in response.json()["error"]
    posted = await open_engine.post(
        "/api/apps", json={"name": "x"}, headers={"host": "rebind.attacker.example:3030"}
    )
    assert posted.status_code == 421 and await app_count(db) == 0


@pytest.mark.parametrize(
    "host", ["127.0.0.1:3030", "localhost:3030", "LOCALHOST", "[::1]:3030", "127.0.0.1", "durable.internal"]
)
async def test_loopback_names_and_listed_hosts_pass(db: Database, dsn: str, host: str) -> None:
    settings = make_settings(dsn, allowed_hosts=("durable.internal",))
    async with client(db, settings) as http:
        response = await http.get("/healthz", headers={"host": host})
        assert response.status_code == 200, response.text


async def test_the_address_a_connection_arrived_at_passes(db: Database, dsn: str) -> None:
    # Bound to 0.0.0.0 (behind a token), a client that used the engine's IP names that IP in Host.
    settings = make_settings(dsn, host="0.0.0.0", admin_token=TOKEN)
    async with client(db, settings, base="http://10.20.30.40:3030") as http:
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/healthz", headers={"host": "10.20.30.41:3030"})).status_code == 421
    bound = make_settings(dsn, host="192.0.2.10")
    async with client(db, bound) as http:
        assert (await http.get("/healthz", headers={"host": "192.0.2.10:3030"})).status_code == 200


# --- provisioning ---------------------------------------------------------------------------------------


async def test_without_a_token_only_loopback_may_provision(db: Database, dsn: str) -> None:
    settings = make_settings(dsn)
    async with client(db, settings) as local:
        created = await local.post("/api/apps", json={"name": "shop", "environment": "prod"})
        assert created.status_code == 200 and created.json()["signingKey"]
    for address in ("203.0.113.7", "10.0.0.8", "::ffff:198.51.100.1"):
        async with client(db, settings, address=address) as remote:
            # Naming an existing workspace must not hand out its key; a new one is not created either.
            for name in ("shop", "other"):
                refused = await remote.post("/api/apps", json={"name": name, "environment": "prod"})
                assert refused.status_code == 403
                message = refused.json()["error"]
                assert address in message and "loopback" in message and "DURABLE_ADMIN_TOKEN" in message
                assert "signingKey" not in refused.text
    assert await app_count(db) == 1
    async with client(db, settings, address="::1") as local6:
        again = await local6.post("/api/apps", json={"name": "shop", "environment": "prod"})
        assert again.status_code == 200 and again.json()["signingKey"] == created.json()["signingKey"]


async def test_with_a_token_provisioning_needs_it_from_anywhere(
    guarded: httpx.AsyncClient, db: Database
) -> None:
    refused = await guarded.post("/api/apps", json={"name": "shop"})
    assert refused.status_code == 401 and "signingKey" not in refused.text
    created = await guarded.post("/api/apps", json={"name": "shop"}, headers=BEARER)
    assert created.status_code == 200
    key = created.json()["signingKey"]
    listed = await guarded.get("/api/apps", headers=BEARER)
    assert listed.status_code == 200 and key not in listed.text and "signingKey" not in listed.text
    assert await app_count(db) == 1


async def test_a_remote_caller_with_the_token_may_provision(db: Database, dsn: str) -> None:
    async with client(db, make_settings(dsn, admin_token=TOKEN), address="203.0.113.7") as remote:
        assert (await remote.post("/api/apps", json={"name": "shop"}, headers=BEARER)).status_code == 200


# --- what the token covers ------------------------------------------------------------------------------


async def test_metrics_openapi_and_docs_need_the_token(guarded: httpx.AsyncClient) -> None:
    for path in (
        "/metrics",
        "/openapi.json",
        "/api/docs",
        "/api/docs/init.js",
        "/api/docs/swagger-ui-bundle.js",
    ):
        response = await guarded.get(path)
        assert response.status_code == 401, path
        assert "DURABLE_ADMIN_TOKEN" in response.json()["error"]
        assert (await guarded.get(path, headers=BEARER)).status_code == 200, path
    assert "paths" in (await guarded.get("/openapi.json", headers=BEARER)).json()
    # A separate scrape token reads /metrics and nothing else.
    scrape = {"authorization": f"Bearer {METRICS_TOKEN}"}
    assert (await guarded.get("/metrics", headers=scrape)).status_code == 200
    assert (await guarded.get("/openapi.json", headers=scrape)).status_code == 401
    assert (await guarded.get("/api/apps", headers=scrape)).status_code == 401
    # A session cookie opens them too (the docs page is read in a browser).
    session = await sign_in(guarded)
    assert (await guarded.get("/api/docs", headers=cookie(session))).status_code == 200


async def test_a_metrics_token_alone_guards_metrics(db: Database, dsn: str) -> None:
    async with client(db, make_settings(dsn, metrics_token=METRICS_TOKEN)) as http:
        assert (await http.get("/metrics")).status_code == 401
        scrape = {"authorization": f"Bearer {METRICS_TOKEN}"}
        assert (await http.get("/metrics", headers=scrape)).status_code == 200
        assert (await http.get("/api/apps")).status_code == 200  # no admin token: the API stays open


async def test_only_healthz_and_the_dashboard_shell_are_open(guarded: httpx.AsyncClient) -> None:
    assert (await guarded.get("/healthz")).status_code == 200
    shell = await guarded.get("/")
    assert shell.status_code == 200 and "text/html" in shell.headers["content-type"]
    assets = re.findall(r'(?:src|href)="(/assets/[^"]+)"', shell.text)
    assert assets
    for asset in assets:
        assert (await guarded.get(asset)).status_code == 200
    for path in ("/api/apps", "/api/stream", "/api/runs/r_x", "/metrics", "/openapi.json", "/api/docs"):
        assert (await guarded.get(path)).status_code == 401, path


async def test_the_docs_page_loads_nothing_from_another_host(open_engine: httpx.AsyncClient) -> None:
    page = await open_engine.get("/api/docs")
    assert page.status_code == 200
    init = await open_engine.get("/api/docs/init.js")
    for text in (page.text, init.text):
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text), text
        assert "<script>" not in text  # the CSP allows no inline script
    referenced = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert set(referenced) == {
        "/api/docs/swagger-ui.css",
        "/api/docs/swagger-ui-bundle.js",
        "/api/docs/init.js",
    }
    for url in referenced:
        served = await open_engine.get(url)
        assert served.status_code == 200 and len(served.content) > 100, url
    assert "SwaggerUIBundle" in (await open_engine.get("/api/docs/swagger-ui-bundle.js")).text


# --- sessions -------------------------------------------------------------------------------------------


async def test_a_session_is_random_server_side_and_sign_out_revokes_it(
    guarded: httpx.AsyncClient, db: Database
) -> None:
    first = await sign_in(guarded)
    second = await sign_in(guarded)
    assert first != second and len(first) >= 40 and TOKEN not in first
    login = await guarded.post("/api/login", json={"token": TOKEN}, headers={"origin": ORIGIN})
    set_cookie = login.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=strict" in set_cookie and "secure" not in set_cookie
    assert "max-age=43200" in set_cookie
    guarded.cookies.clear()
    # Postgres holds a hash of the id, never the id or the token.
    async with db.pool.acquire() as conn:
        stored = await conn.fetch("SELECT id_hash, token_hash, client FROM admin_sessions")
    assert len(stored) == 3 and {r["client"] for r in stored} == {"127.0.0.1"}
    assert all(first.encode() not in bytes(r["id_hash"]) for r in stored)
    assert all(TOKEN.encode() not in bytes(r["token_hash"]) for r in stored)

    assert (await guarded.get("/api/apps", headers=cookie(first))).status_code == 200
    out = await guarded.post("/api/logout", json={}, headers={**cookie(first), **SAME_ORIGIN})
    assert out.status_code == 200 and "durable_session=" in out.headers["set-cookie"]
    replayed = await guarded.get("/api/apps", headers=cookie(first))  # the captured cookie, replayed
    assert replayed.status_code == 401 and "signed out" in replayed.json()["error"]
    session = await guarded.get("/api/session", headers=cookie(first))
    assert session.json() == {"authRequired": True, "signedIn": False}
    assert (await guarded.get("/api/apps", headers=cookie(second))).status_code == 200  # others live on
    assert (await guarded.get("/api/apps", headers=cookie("forged-" + "a" * 40))).status_code == 401


async def test_an_expired_session_is_refused_and_pruned(guarded: httpx.AsyncClient, db: Database) -> None:
    session = await sign_in(guarded)
    assert (await guarded.get("/api/apps", headers=cookie(session))).status_code == 200
    await db.set_clock_offset(12 * 3600 * 1000 + 1000)  # just past DURABLE_SESSION_TTL_MS
    expired = await guarded.get("/api/apps", headers=cookie(session))
    assert expired.status_code == 401 and "expired" in expired.json()["error"]
    await db.execute("sessions_prune")
    async with db.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM admin_sessions") == 0


async def test_the_session_ttl_is_configurable(db: Database, dsn: str) -> None:
    async with client(db, make_settings(dsn, admin_token=TOKEN, session_ttl_ms=60_000)) as http:
        session = await sign_in(http)
        await db.set_clock_offset(30_000)
        assert (await http.get("/api/apps", headers=cookie(session))).status_code == 200
        await db.set_clock_offset(61_000)
        assert (await http.get("/api/apps", headers=cookie(session))).status_code == 401


async def test_changing_the_token_ends_every_older_session(db: Database, dsn: str) -> None:
    async with client(db, make_settings(dsn, admin_token=TOKEN)) as before:
        session = await sign_in(before)
        assert (await before.get("/api/apps", headers=cookie(session))).status_code == 200
    async with client(db, make_settings(dsn, admin_token="a-brand-new-token")) as after:
        assert (await after.get("/api/apps", headers=cookie(session))).status_code == 401
        assert (await after.get("/api/apps", headers={"authorization": f"Bearer {TOKEN}"})).status_code == 401


# --- sign-in rate limit and log -------------------------------------------------------------------------


async def test_failed_sign_ins_are_limited_per_client_and_logged(
    db: Database, dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(dsn, admin_token=TOKEN)
    app = create_app(db, settings)

    def at(address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        return httpx.AsyncClient(transport=transport, base_url=BASE)

    caplog.set_level(logging.INFO, logger="durable.auth")
    async with at("198.51.100.20") as attacker, at("127.0.0.1") as operator:
        for i in range(5):
            wrong = await attacker.post("/api/login", json={"token": f"guess-number-{i}"})
            assert wrong.status_code == 401
        limited = await attacker.post("/api/login", json={"token": TOKEN})  # even the right one, now
        assert limited.status_code == 429 and limited.json()["code"] == "too_many_requests"
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert "set-cookie" not in limited.headers
        assert (await operator.post("/api/login", json={"token": TOKEN})).status_code == 200
    failures = [r.getMessage() for r in caplog.records if "sign-in failed" in r.getMessage()]
    assert len(failures) == 5 and all("198.51.100.20" in m for m in failures)
    assert any("sign-in from 127.0.0.1" in r.getMessage() for r in caplog.records)
    assert not any("guess-number" in r.getMessage() or TOKEN in r.getMessage() for r in caplog.records)


def test_the_limit_lifts_after_the_window() -> None:
    from durable.api.auth import SignInLimiter
    from durable.errors import TooManyRequests

    limiter = SignInLimiter(limit=5, window_s=60)
    for t in range(5):
        limiter.check("a", now=100.0 + t)
        limiter.failed("a", now=100.0 + t)
    with pytest.raises(TooManyRequests) as caught:
        limiter.check("a", now=110.0)
    assert caught.value.retry_after_s == 50
    limiter.check("a", now=160.5)  # the first failure left the window
    limiter.check("b", now=110.0)


# --- cookie-authenticated writes ------------------------------------------------------------------------


async def test_a_cross_origin_text_form_with_a_valid_cookie_creates_nothing(
    guarded: httpx.AsyncClient, db: Database
) -> None:
    session = await sign_in(guarded)
    form = await guarded.post(
        "/api/apps",
        content=b'{"name": "planted", "environment": "prod"}',
        headers={**cookie(session), "origin": "http://127.0.0.1:9999", "content-type": "text/plain"},
    )
    assert form.status_code == 403 and "http://127.0.0.1:9999" in form.json()["error"]
    assert await app_count(db) == 0
    ok = await guarded.post("/api/apps", json={"name": "mine"}, headers={**cookie(session), **SAME_ORIGIN})
    assert ok.status_code == 200 and await app_count(db) == 1


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ({"origin": "http://127.0.0.1:9999", "content-type": "application/json"}, "origin"),
        ({"origin": "null", "content-type": "application/json"}, "origin"),
        ({"origin": ORIGIN, "content-type": "text/plain"}, "content-type"),
        ({"origin": ORIGIN, "content-type": "application/x-www-form-urlencoded"}, "content-type"),
        ({"origin": ORIGIN}, "content-type"),
        ({"sec-fetch-site": "same-site", "content-type": "application/json"}, "sec-fetch-site"),
        (
            {"sec-fetch-site": "cross-site", "origin": ORIGIN, "content-type": "application/json"},
            "sec-fetch-site",
        ),
        ({"content-type": "application/json"}, "origin"),
    ],
)
async def test_a_cookie_write_needs_json_from_this_origin(
    guarded: httpx.AsyncClient, db: Database, headers: dict[str, str], problem: str
) -> None:
    session = await sign_in(guarded)
    response = await guarded.post(
        "/api/apps", content=b'{"name": "x"}', headers={**cookie(session), **headers}
    )
    assert response.status_code == 403 and response.json()["error"].startswith(problem), response.text
    assert await app_count(db) == 0


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": ORIGIN},
        {"sec-fetch-site": "same-origin"},
        {"sec-fetch-site": "same-origin", "origin": ORIGIN},
    ],
)
async def test_a_same_origin_json_write_with_the_cookie_works(
    guarded: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    session = await sign_in(guarded)
    response = await guarded.post("/api/apps", json={"name": "x"}, headers={**cookie(session), **headers})
    assert response.status_code == 200, response.text


async def test_bearer_and_script_writes_need_no_browser_headers(db: Database, dsn: str) -> None:
    async with client(db, make_settings(dsn, admin_token=TOKEN)) as http:
        # A Bearer header cannot be added by a cross-origin page, so no Origin/Content-Type rule applies.
        response = await http.post(
            "/api/apps", content=b'{"name": "a"}', headers={**BEARER, "content-type": "text/plain"}
        )
        assert response.status_code == 200
    async with client(db, make_settings(dsn)) as http:
        # `curl -d` (form content type, no Origin, no cookie) from this machine, as the README shows.
        response = await http.post(
            "/api/apps",
            content=b'{"name": "b"}',
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 200


async def test_without_a_token_a_cross_origin_page_cannot_write_either(
    open_engine: httpx.AsyncClient, db: Database
) -> None:
    # A browser on this machine visiting another site: the API is open, but the form is still refused.
    form = await open_engine.post(
        "/api/apps",
        content=b'{"name": "planted"}',
        headers={"origin": "http://evil.example", "content-type": "text/plain"},
    )
    assert form.status_code == 403 and await app_count(db) == 0


async def test_sign_out_from_another_origin_is_refused(guarded: httpx.AsyncClient) -> None:
    session = await sign_in(guarded)
    refused = await guarded.post(
        "/api/logout",
        headers={**cookie(session), "origin": "http://127.0.0.1:9999", "content-type": "text/plain"},
    )
    assert refused.status_code == 403
    assert (await guarded.get("/api/apps", headers=cookie(session))).status_code == 200


# --- security headers -----------------------------------------------------------------------------------

CSP_PARTS = (
    "default-src 'self'",
    "script-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
    "form-action 'self'",
)


def assert_secure_headers(response: httpx.Response) -> None:
    csp = response.headers.get("content-security-policy", "")
    for part in CSP_PARTS:
        assert part in csp, (response.request.url, csp)
    assert "unsafe-inline" not in csp.split("script-src", 1)[1].split(";", 1)[0]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


async def test_every_answer_carries_the_security_headers(guarded: httpx.AsyncClient) -> None:
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/healthz", {}),
        ("GET", "/", {}),
        ("GET", "/w/app_x/runs", {}),
        ("GET", "/favicon.svg", {}),
        ("GET", "/api/apps", {}),
        ("GET", "/api/apps", {"headers": BEARER}),
        ("GET", "/api/nope", {"headers": BEARER}),
        ("GET", "/api/docs", {"headers": BEARER}),
        ("GET", "/metrics", {"headers": BEARER}),
        ("GET", "/healthz", {"headers": {"host": "evil.example"}}),
        ("POST", "/api/apps", {"headers": {"origin": "http://evil.example"}}),
        ("POST", "/api/login", {"json": {"token": "wrong"}}),
        ("POST", "/e", {"content": b"{}"}),
    ]
    for method, path, extra in requests:
        response = await guarded.request(method, path, **extra)
        assert_secure_headers(response)
