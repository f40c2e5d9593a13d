"""The app side of the wire protocol: verify, route and answer invokes, as an ASGI or a WSGI app."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Iterable
from http import HTTPStatus
from typing import Any, NamedTuple

from . import _step
from ._errors import SignatureError
from ._nonces import NonceStore
from ._options import Function
from ._signing import V1_HEADER, V2_HEADER, sign, sign_v2, verify_v2
from ._step import execute_async, execute_blocking, execute_sync, is_async
from ._wire import encode

MAX_BODY = 4 * 1024 * 1024  # the engine refuses bodies over 4 MiB; so does the app
MEMO_TYPES = ("run", "sleep", "wait", "invoke", "send")
TRACEPARENT_HEADER = "traceparent"  # W3C trace context of the engine's invoke span (never signed)
_TRACEPARENT = re.compile(r"(?!ff)[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}(-.*)?")
Response = tuple[int, list[tuple[str, str]], bytes]
Clock = Callable[[], int]


class _Call(NamedTuple):
    """An authentic, well-formed invoke of a known function, to be run by the app."""

    function: Function
    invoke: dict[str, Any]
    reply_to: str  # the invoke's v2 nonce: the answer's r


class _Endpoint:
    """What the ASGI, WSGI and framework apps share: all but reading the request and writing the answer.

    Invokes are verified under ``signing_key`` or ``signing_key_fallback`` (while a key is rotated);
    answers are signed with ``signing_key``. ``clock`` (epoch ms) defaults to the SDK clock.
    """

    def __init__(
        self,
        functions: Iterable[Function],
        signing_key: str,
        signing_key_fallback: str | None = None,
        clock: Clock | None = None,
        nonces: NonceStore | None = None,
    ) -> None:
        if not isinstance(signing_key, str) or not signing_key:
            raise ValueError("signing_key must be a non-empty string")
        if signing_key_fallback is not None and (
            not isinstance(signing_key_fallback, str) or not signing_key_fallback
        ):
            raise ValueError("signing_key_fallback must be a non-empty string or None")
        self.key = signing_key
        self.keys = (signing_key,) if signing_key_fallback is None else (signing_key, signing_key_fallback)
        self.functions = index(functions)
        self.clock = clock
        self.nonces = nonces if nonces is not None else NonceStore()

    def now(self) -> int:
        return self.clock() if self.clock else _step._now_ms()  # looked up per call: tests replace it

    def respond(self, status: int, payload: Any, reply_to: str | None = None) -> Response:
        """Encode and sign an answer: v1 always, v2 (sender app, ``r=reply_to``) to a verified v2 invoke.

        An answer to anything else carries no v2 header: an ``r``-less app signature would be a valid
        signature of a request.
        """
        body = encode(payload)
        headers = [
            ("content-type", "application/json"),
            ("content-length", str(len(body))),
            (V1_HEADER, sign(body, self.key)),
        ]
        if reply_to is not None:
            headers.append((V2_HEADER, sign_v2(body, self.key, "app", self.now(), r=reply_to)))
        return status, headers, body

    def authenticate(self, body: bytes, v1: str | None, v2: str | None) -> Response | str:
        """Refuse the invoke (a response), or return its nonce, which the answer's ``r`` repeats.

        Only a valid, fresh, unseen v2 signature from the engine is accepted; the v1 header, which an
        engine in compat mode also sends, proves nothing about time or uniqueness and is not checked.
        """
        if v2 is None:
            got = f"only {V1_HEADER} (v1)" if v1 else "no signature"
            error = f"missing {V2_HEADER}: this app requires signatures v2, the invoke carries {got}"
            return self.respond(401, {"error": error})
        now = self.now()
        try:
            signature = verify_v2(body, self.keys, v2, "engine", now, reply_to=None)
        except SignatureError as exc:
            return self.respond(401, {"error": str(exc)})
        if not self.nonces.accept(signature.n, signature.t, now):
            seen = f"n={signature.n} was already accepted by this app (or could have been: t={signature.t})"
            replay = SignatureError("replay", seen)
            return self.respond(401, {"error": str(replay)}, signature.n)
        return signature.n

    def route(
        self,
        method: str,
        body: bytes,
        v1: str | None,
        v2: str | None = None,
        traceparent: str | None = None,
    ) -> Response | _Call:
        """Answer at once, or return the function to run with its invoke body.

        ``v1`` and ``v2`` are the request's ``x-durable-signature`` and ``x-durable-signature-v2``;
        ``traceparent`` its W3C ``traceparent`` header, kept in the invoke as ``"traceparent"`` when
        well-formed (else None) for the handler's step.
        """
        if method == "GET":
            return self.respond(200, {"functions": sorted(self.functions)})
        if method != "POST":
            return self.respond(405, {"error": f"method {method} not allowed: the engine POSTs invokes"})
        if len(body) > MAX_BODY:
            return self.respond(413, {"error": f"body over {MAX_BODY} bytes"})
        reply_to = self.authenticate(body, v1, v2)
        if isinstance(reply_to, tuple):
            return reply_to
        invoke, problem = parse_invoke(body)
        if invoke is None:
            return self.respond(400, {"error": f"malformed invoke: {problem}"}, reply_to)
        function = self.functions.get(invoke["functionId"])
        if function is None:
            return self.respond(404, {"error": f"unknown function {invoke['functionId']!r}"}, reply_to)
        invoke["traceparent"] = parse_traceparent(traceparent)
        return _Call(function, invoke, reply_to)

    async def answer_async(
        self,
        method: str,
        body: bytes,
        v1: str | None,
        v2: str | None = None,
        traceparent: str | None = None,
    ) -> Response:
        """Route and run on an event loop: ``async def`` handlers on it, plain ones in a worker thread."""
        started = _step._monotonic_ms()  # a checkpoint's max_ms counts from here
        routed = self.route(method, body, v1, v2, traceparent)
        if not isinstance(routed, _Call):
            return routed
        if is_async(routed.function):
            op = await execute_async(routed.function, routed.invoke, started_ms=started)
        else:
            op = await asyncio.to_thread(execute_sync, routed.function, routed.invoke, None, started)
        return self.respond(200, op, routed.reply_to)

    def answer(
        self,
        method: str,
        body: bytes,
        v1: str | None,
        v2: str | None = None,
        traceparent: str | None = None,
    ) -> Response:
        """Route and run in this thread (a WSGI worker): ``async def`` handlers in ``asyncio.run``."""
        started = _step._monotonic_ms()  # a checkpoint's max_ms counts from here
        routed = self.route(method, body, v1, v2, traceparent)
        if not isinstance(routed, _Call):
            return routed
        op = execute_blocking(routed.function, routed.invoke, started_ms=started)
        return self.respond(200, op, routed.reply_to)


def index(functions: Iterable[Function]) -> dict[str, Function]:
    """Map function ids to functions, each followed by its ``on_failure`` handler (``<id>:failure``);
    refuses anything but ``Function`` and duplicate ids."""
    found: dict[str, Function] = {}
    for function in functions:
        if not isinstance(function, Function):
            raise ValueError(f"expected functions made by @durable_sdk.function, got {function!r}")
        for served in (function, function.failure):
            if served is None:
                continue
            if served.id in found:
                raise ValueError(f"duplicate function id {served.id!r}")
            found[served.id] = served
    return found


def parse_traceparent(value: str | None) -> str | None:
    """The W3C ``traceparent`` header value if well-formed (lower-case hex, non-zero ids, version not
    ``ff``), else None: a malformed one is ignored, as the W3C recommendation says."""
    if value is None:
        return None
    value = value.strip()
    return value if _TRACEPARENT.fullmatch(value) else None


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
        if not isinstance(memo, dict) or memo.get("type") not in MEMO_TYPES:
            return None, f"steps.{step_id} must be an object with type run, sleep, wait, invoke or send"
    return invoke, ""


def serve(
    functions: Iterable[Function], signing_key: str, signing_key_fallback: str | None = None
) -> Callable[..., Awaitable[None]]:
    """Return an ASGI 3 app answering the engine's signed invokes for ``functions`` on any path.

    ``async def`` handlers run on the event loop, plain ``def`` handlers in a worker thread.
    ``signing_key_fallback`` is a second key accepted on invokes while the key is rotated.
    """
    endpoint = _Endpoint(functions, signing_key, signing_key_fallback)

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
        received = dict(scope["headers"])  # ASGI lower-cases header names
        v1, v2, tp = (received.get(name.encode()) for name in (V1_HEADER, V2_HEADER, TRACEPARENT_HEADER))
        status, headers, body = await endpoint.answer_async(
            scope["method"],
            b"".join(chunks),
            v1 and v1.decode("latin-1"),
            v2 and v2.decode("latin-1"),
            tp and tp.decode("latin-1"),
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


def serve_wsgi(
    functions: Iterable[Function], signing_key: str, signing_key_fallback: str | None = None
) -> Callable[..., Iterable[bytes]]:
    """Return a WSGI app answering the engine's signed invokes (``async def`` handlers in ``asyncio.run``).

    ``signing_key_fallback`` is a second key accepted on invokes while the key is rotated.
    """
    endpoint = _Endpoint(functions, signing_key, signing_key_fallback)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(min(length, MAX_BODY + 1)) if length > 0 else b""
        status, headers, payload = endpoint.answer(
            environ["REQUEST_METHOD"],
            body,
            environ.get("HTTP_X_DURABLE_SIGNATURE"),
            environ.get("HTTP_X_DURABLE_SIGNATURE_V2"),
            environ.get("HTTP_TRACEPARENT"),
        )
        start_response(f"{status} {HTTPStatus(status).phrase}", headers)
        return [payload]

    return app
