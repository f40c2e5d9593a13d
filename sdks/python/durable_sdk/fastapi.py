"""FastAPI helper: the engine's endpoint as an ``APIRouter`` to ``include_router`` into an app.

    from durable_sdk.fastapi import router
    app.include_router(router([hello], signing_key=KEY))   # POST/GET /api/durable

FastAPI is imported only when ``router`` is called; ``durable_sdk`` itself needs no framework.
A router rather than ``app.mount(path, serve(...))``: a mount answers its bare path with a redirect
to ``path + "/"``, which the engine's POST would have to follow.
"""

# No ``from __future__ import annotations``: FastAPI reads the view's ``Request`` annotation at runtime.
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ._options import Function
from ._serve import MAX_BODY, _Endpoint
from ._signing import V1_HEADER, V2_HEADER

if TYPE_CHECKING:
    from fastapi import APIRouter


def router(
    functions: Iterable[Function],
    signing_key: str,
    path: str = "/api/durable",
    signing_key_fallback: str | None = None,
) -> "APIRouter":
    """Return an ``APIRouter`` answering the engine's signed invokes for ``functions`` at ``path``.

    ``async def`` handlers run on the event loop, plain ``def`` handlers in a worker thread;
    the route is left out of the OpenAPI schema. ``signing_key_fallback`` is a second key accepted
    on invokes while the key is rotated.
    """
    from fastapi import APIRouter, Request, Response

    endpoint = _Endpoint(functions, signing_key, signing_key_fallback)
    api = APIRouter()

    @api.api_route(path, methods=["GET", "POST"], include_in_schema=False)
    async def durable(request: Request) -> Response:
        chunks, size = [], 0
        async for chunk in request.stream():  # read no more than the engine may send, plus one byte
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_BODY:
                break
        v1, v2 = request.headers.get(V1_HEADER), request.headers.get(V2_HEADER)
        trace = request.headers.get("traceparent")
        status, headers, body = await endpoint.answer_async(request.method, b"".join(chunks), v1, v2, trace)
        return Response(body, status_code=status, headers=dict(headers))

    return api
