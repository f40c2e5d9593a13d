"""The app side of the wire protocol: verify, route and answer invokes, as an ASGI or a WSGI app."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable
from http import HTTPStatus
from typing import Any, NamedTuple

from ._options import Function
from ._signing import sign, verify
from ._step import encode, execute_async, execute_blocking, execute_sync, is_async

MAX_BODY = 4 * 1024 * 1024  # the engine refuses bodies over 4 MiB; so does the app
Response = tuple[int, list[tuple[str, str]], bytes]


class _Call(NamedTuple):
    """An authentic, well-formed invoke of a known function, to be run by the app."""

    function: Function
    invoke: dict[str, Any]


class _Endpoint:
    """What the ASGI, WSGI and framework apps share: all but reading the request and writing the answer."""

    def __init__(self, functions: Iterable[Function], signing_key: str) -> None:
        if not isinstance(signing_key, str) or not signing_key:
            raise ValueError("signing_key must be a non-empty string")
        self.key = signing_key
        self.functions = index(functions)

    def respond(self, status: int, payload: Any) -> Response:
        body = encode(payload)
        headers = [
            ("content-type", "application/json"),
            ("content-length", str(len(body))),
            ("x-durable-signature", sign(body, self.key)),
        ]
        return status, headers, body

    def route(self, method: str, body: bytes, signature: str | None) -> Response | _Call:
        """Answer at once, or return the function to run with its invoke body."""
        if method == "GET":
            return self.respond(200, {"functions": sorted(self.functions)})
        if method != "POST":
            return self.respond(405, {"error": f"method {method} not allowed: the engine POSTs invokes"})
        if len(body) > MAX_BODY:
            return self.respond(413, {"error": f"body over {MAX_BODY} bytes"})
        if not verify(body, self.key, signature):
            problem = "wrong" if signature else "missing"
            return self.respond(401, {"error": f"{problem} x-durable-signature"})
        invoke, problem = parse_invoke(body)
        if invoke is None:
            return self.respond(400, {"error": f"malformed invoke: {problem}"})
        function = self.functions.get(invoke["functionId"])
        if function is None:
            return self.respond(404, {"error": f"unknown function {invoke['functionId']!r}"})
        return _Call(function, invoke)

    async def answer_async(self, method: str, body: bytes, signature: str | None) -> Response:
        """Route and run on an event loop: ``async def`` handlers on it, plain ones in a worker thread."""
        routed = self.route(method, body, signature)
        if not isinstance(routed, _Call):
            return routed
        if is_async(routed.function):
            return self.respond(200, await execute_async(*routed))
        return self.respond(200, await asyncio.to_thread(execute_sync, *routed))

    def answer(self, method: str, body: bytes, signature: str | None) -> Response:
        """Route and run in this thread (a WSGI worker): ``async def`` handlers in ``asyncio.run``."""
        routed = self.route(method, body, signature)
        return self.respond(200, execute_blocking(*routed)) if isinstance(routed, _Call) else routed


def index(functions: Iterable[Function]) -> dict[str, Function]:
    """Map function ids to functions, refusing anything but ``Function`` and duplicate ids."""
    found: dict[str, Function] = {}
    for function in functions:
        if not isinstance(function, Function):
            raise ValueError(f"expected functions made by @durable_sdk.function, got {function!r}")
        if function.id in found:
            raise ValueError(f"duplicate function id {function.id!r}")
        found[function.id] = function
    return found


def parse_invoke(body: bytes) -> tuple[dict[str, Any] | None, str]:
    """Decode an invoke body; returns ``(invoke, "")`` or ``(None, problem)``."""
    try:
        invoke = json.loads(body)
    except ValueError as exc:
        return None, f"invalid JSON ({exc})"
    if not isinstance(invoke, dict):
        return None, "the body must be a JSON object"
    if not isinstance(invoke.get("functionId"), str):
        return None, "functionId must be a string"
    if not isinstance(invoke.get("event"), dict):
        return None, "event must be an object"
    steps = invoke.setdefault("steps", {})
    if not isinstance(steps, dict):
        return None, "steps must be an object"
    for step_id, memo in steps.items():
        if not isinstance(memo, dict) or memo.get("type") not in ("run", "sleep", "wait"):
            return None, f"steps.{step_id} must be an object with type run, sleep or wait"
    return invoke, ""


def serve(functions: Iterable[Function], signing_key: str) -> Callable[..., Awaitable[None]]:
    """Return an ASGI 3 app answering the engine's signed invokes for ``functions`` on any path.

    ``async def`` handlers run on the event loop, plain ``def`` handlers in a worker thread.
    """
    endpoint = _Endpoint(functions, signing_key)

    async def app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            raise RuntimeError(f"durable_sdk.serve handles http and lifespan, not {scope['type']!r}")
        chunks, size, more = [], 0, True
        while more and size <= MAX_BODY:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
        signature = dict(scope["headers"]).get(b"x-durable-signature")  # ASGI lower-cases header names
        status, headers, body = await endpoint.answer_async(
            scope["method"], b"".join(chunks), signature and signature.decode("latin-1")
        )
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode(), v.encode()) for k, v in headers],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


def serve_wsgi(functions: Iterable[Function], signing_key: str) -> Callable[..., Iterable[bytes]]:
    """Return a WSGI app answering the engine's signed invokes (``async def`` handlers in ``asyncio.run``)."""
    endpoint = _Endpoint(functions, signing_key)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(min(length, MAX_BODY + 1)) if length > 0 else b""
        status, headers, payload = endpoint.answer(
            environ["REQUEST_METHOD"], body, environ.get("HTTP_X_DURABLE_SIGNATURE")
        )
        start_response(f"{status} {HTTPStatus(status).phrase}", headers)
        return [payload]

    return app
