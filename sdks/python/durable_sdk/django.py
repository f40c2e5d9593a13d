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

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse


def view(functions: Iterable[Function], signing_key: str) -> Callable[[HttpRequest], HttpResponse]:
    """Return a CSRF-exempt view answering the engine's signed invokes for ``functions``.

    A plain view, under WSGI or ASGI: plain ``def`` handlers run in the view's thread,
    ``async def`` handlers in ``asyncio.run``. The engine signs its requests instead of sending
    a CSRF token, hence the exemption.
    """
    from django.core.exceptions import RequestDataTooBig
    from django.http import HttpResponse
    from django.views.decorators.csrf import csrf_exempt

    endpoint = _Endpoint(functions, signing_key)

    def durable(request: HttpRequest) -> HttpResponse:
        try:
            body = request.body  # the raw bytes the signature covers
        except RequestDataTooBig:
            error = f"body over DATA_UPLOAD_MAX_MEMORY_SIZE: set it to at least {MAX_BODY}"
            status, headers, payload = endpoint.respond(413, {"error": error})
        else:
            signature = request.headers.get("x-durable-signature")
            status, headers, payload = endpoint.answer(request.method or "GET", body, signature)
        return HttpResponse(payload, status=status, headers=dict(headers))

    exempt: Callable[[HttpRequest], HttpResponse] = csrf_exempt(durable)
    return exempt
