"""Flask helper: the engine's endpoint as a ``Blueprint`` to register on an app.

    from durable_sdk.flask import blueprint
    app.register_blueprint(blueprint([hello], signing_key=KEY))   # POST/GET /api/durable

Flask is imported only when ``blueprint`` is called; ``durable_sdk`` itself needs no framework.
The engine signs its requests instead of sending a CSRF token: with Flask-WTF's ``CSRFProtect``,
exempt the blueprint (``csrf.exempt(bp)``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ._options import Function
from ._serve import _Endpoint
from ._signing import V1_HEADER, V2_HEADER

if TYPE_CHECKING:
    from flask import Blueprint, Response


def blueprint(
    functions: Iterable[Function],
    signing_key: str,
    url_prefix: str = "/api/durable",
    name: str = "durable",
    signing_key_fallback: str | None = None,
) -> Blueprint:
    """Return a ``Blueprint`` named ``name`` answering the engine's signed invokes at ``url_prefix``.

    ``signing_key_fallback`` is a second key accepted on invokes while the key is rotated.

    The view runs in the request's worker: plain ``def`` handlers directly, ``async def`` handlers in
    ``asyncio.run``. Flask's ``MAX_CONTENT_LENGTH``, if set, should allow the engine's 4 MiB invokes.
    """
    from flask import Blueprint, Response, request

    endpoint = _Endpoint(functions, signing_key, signing_key_fallback)
    bp = Blueprint(name, __name__, url_prefix=url_prefix)

    @bp.route("", methods=["GET", "POST"])
    def durable() -> Response:
        body = request.get_data()  # the raw bytes the signature covers
        status, headers, payload = endpoint.answer(
            request.method,
            body,
            request.headers.get(V1_HEADER),
            request.headers.get(V2_HEADER),
            request.headers.get("traceparent"),
        )
        return Response(payload, status=status, headers=headers)

    return bp
