"""Serve the dashboard (the Vite build in `static/`) from the engine's own port.

`mount(app)` must be called after every API route is registered: it adds one catch-all mount at `/`,
which Starlette tries last. Files under `static/` are served as they are (`/assets/*` are content-hashed,
so they are cached for a year; everything else is revalidated); any other GET outside the engine's own
prefixes answers `index.html`, so a deep link such as `/w/app_x/runs?run=…` loads the app (SPA fallback).
Under the engine's prefixes an unknown path stays a JSON 404 (or a 405 when the path exists with another
method). Without a build, `/` says how to make one.
"""

from __future__ import annotations

import html
from pathlib import Path

import orjson
from fastapi import FastAPI
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Match
from starlette.types import Receive, Scope, Send

STATIC = Path(__file__).resolve().parent / "static"

# Paths that belong to the engine, never to the SPA fallback.
RESERVED = ("/api", "/e", "/fn", "/healthz", "/metrics", "/openapi.json", "/assets")

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"

NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Durable</title>
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:15vh auto;padding:0 1rem;color:#111827}}
code{{background:#f1f5f9;padding:.1rem .3rem;border-radius:4px}}</style></head>
<body><h1>Durable</h1><p>dashboard not built: run <code>make run</code>
(or <code>cd dashboard &amp;&amp; npm ci &amp;&amp; npm run build</code>).</p>
<p>The API is up: <a href="/api/docs">/api/docs</a>, <a href="/openapi.json">/openapi.json</a>.</p>
<p style="color:#6b7280;font-size:.9em">Looked for {path}</p></body></html>
"""


def _reserved(path: str) -> bool:
    return any(path == prefix or path.startswith(prefix + "/") for prefix in RESERVED)


def _error(status: int, message: str, code: str) -> Response:
    body = orjson.dumps({"error": message, "code": code})
    return Response(body, status_code=status, media_type="application/json")


class Dashboard:
    """The ASGI app behind the catch-all mount."""

    def __init__(self, app: FastAPI, root: Path = STATIC) -> None:
        self.app = app
        self.root = root.resolve()

    def _method_elsewhere(self, scope: Scope) -> bool:
        """Whether an API route has this path with another method (Starlette's partial match)."""
        return any(route.matches(scope)[0] == Match.PARTIAL for route in self.app.router.routes)

    def _file(self, path: str) -> Path | None:
        relative = path.lstrip("/")
        if not relative:
            return None
        candidate = (self.root / relative).resolve()
        if not candidate.is_relative_to(self.root) or not candidate.is_file():
            return None
        return candidate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        response = self._respond(scope)
        await response(scope, receive, send)

    def _respond(self, scope: Scope) -> Response:
        path: str = scope["path"]
        method: str = scope["method"]
        if method not in ("GET", "HEAD"):
            if self._method_elsewhere(scope):
                return _error(405, f"{method} is not allowed on {path}", "method_not_allowed")
            return _error(404, f"no route {method} {path}", "not_found")
        file = self._file(path)
        if file is not None:
            cache = IMMUTABLE if path.startswith("/assets/") else REVALIDATE
            return FileResponse(file, headers={"cache-control": cache})
        if _reserved(path):
            if self._method_elsewhere(scope):
                return _error(405, f"{method} is not allowed on {path}", "method_not_allowed")
            return _error(404, f"no route {method} {path}", "not_found")
        index = self.root / "index.html"
        if not index.is_file():
            page = NOT_BUILT.format(path=html.escape(str(index)))
            return HTMLResponse(page, status_code=200, headers={"cache-control": REVALIDATE})
        return FileResponse(index, media_type="text/html", headers={"cache-control": REVALIDATE})


def mount(app: FastAPI, root: Path = STATIC) -> None:
    """Serve the dashboard at `/`. Call it last, after every other route is registered."""
    app.mount("/", Dashboard(app, root), name="dashboard")
