"""Django helper: the engine's endpoint as a CSRF-exempt view for ``urls.py``.

    from durable_sdk.django import view
    urlpatterns = [path("api/durable", view([hello], signing_key=KEY))]

Django is imported only when ``view`` is called; ``durable_sdk`` itself needs no framework.
Django refuses bodies over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (2.5 MiB by default) while the engine
sends invokes of up to 4 MiB: set ``DATA_UPLOAD_MAX_MEMORY_SIZE = 4 * 1024 * 1024`` (or more).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from ._options import Function
from ._serve import MAX_BODY, _Endpoint
from ._signing import V1_HEADER, V2_HEADER

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse


def view(
    functions: Iterable[Function], signing_key: str, signing_key_fallback: str | None = None
) -> Callable[[HttpRequest], HttpResponse]:
    """Return a CSRF-exempt view answering the engine's signed invokes for ``functions``.

    ``signing_key_fallback`` is a second key accepted on invokes while the key is rotated.

    A plain view, under WSGI or ASGI: plain ``def`` handlers run in the view's thread,
    ``async def`` handlers in ``asyncio.run``. The engine signs its requests instead of sending
    a CSRF token, hence the exemption.
    """
    from django.core.exceptions import RequestDataTooBig
    from django.http import HttpResponse
    from django.views.decorators.csrf import csrf_exempt

    endpoint = _Endpoint(functions, signing_key, signing_key_fallback)

    def durable(request: HttpRequest) -> HttpResponse:
        try:
            body = request.body  # the raw bytes the signature covers
        except RequestDataTooBig:
            error = f"body over DATA_UPLOAD_MAX_MEMORY_SIZE: set it to at least {MAX_BODY}"
            status, headers, payload = endpoint.respond(413, {"error": error})
        else:
            v1, v2 = request.headers.get(V1_HEADER), request.headers.get(V2_HEADER)
            trace = request.headers.get("traceparent")
            status, headers, payload = endpoint.answer(request.method or "GET", body, v1, v2, trace)
        return HttpResponse(payload, status=status, headers=dict(headers))

    exempt: Callable[[HttpRequest], HttpResponse] = csrf_exempt(durable)
    return exempt
