"""`/openapi.json` and the docs page `/api/docs`, both behind the admin token when one is set.

The page runs swagger-ui from files bundled with the dashboard build (`static/swagger/`, copied from the
`swagger-ui-dist` npm package by dashboard/vite.config.ts), never from a CDN, and its start-up script is
a file too: the CSP (api/guard.py) allows no inline script.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from durable.api.auth import check_admin
from durable.api.http import JSON
from durable.dashboard.mount import STATIC
from durable.errors import NotFound

SWAGGER = STATIC / "swagger"
FILES = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css"}

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Durable API</title>
<link rel="stylesheet" href="/api/docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/api/docs/swagger-ui-bundle.js"></script>
<script src="/api/docs/init.js"></script>
</body></html>
"""

INIT = """window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  withCredentials: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
"""


async def require_admin(request: Request) -> None:
    await check_admin(request, request.app.state.settings.admin_token)


router = APIRouter(dependencies=[Depends(require_admin)], include_in_schema=False)


@router.get("/openapi.json")
async def openapi(request: Request) -> Response:
    return JSON(request.app.openapi())


@router.get("/api/docs")
async def docs_page() -> Response:
    return HTMLResponse(PAGE, headers={"cache-control": "no-cache"})


@router.get("/docs")
@router.get("/redoc")
async def docs_elsewhere() -> Response:
    """Where FastAPI apps usually keep their docs: the page is at /api/docs."""
    return RedirectResponse("/api/docs", status_code=308)


@router.get("/api/docs/init.js")
async def docs_init() -> Response:
    return Response(INIT, media_type="text/javascript", headers={"cache-control": "no-cache"})


@router.get("/api/docs/{name}")
async def docs_file(name: str) -> Response:
    path = SWAGGER / name
    if name not in FILES or not path.is_file():
        raise NotFound(f"no docs file {name!r} (build the dashboard: cd dashboard && npm run build)")
    return FileResponse(path, media_type=FILES[name], headers={"cache-control": "no-cache"})
