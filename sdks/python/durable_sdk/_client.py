"""The management client: ``sync`` the function set and ``send`` events to the engine."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterable
from typing import Any

from . import _step
from ._errors import DurableError, SignatureError
from ._options import Function
from ._serve import index
from ._signing import V1_HEADER, V2_HEADER, new_nonce, sign, sign_v2, verify, verify_v2
from ._wire import SentEvent, encode

MAX_IDEMPOTENCY_KEY = 256  # characters; the engine refuses a longer idempotencyKey


class Client:
    """Talks to the engine at ``base_url`` as the app ``app_id``, signing every request with ``signing_key``.

    ``app_url`` is where the engine reaches the app served by :func:`serve`; ``sync`` needs it.
    Requests carry signatures v2 and v1 (for engines from before v2). An answer must carry a valid v2
    signature from the engine bound to the request's nonce, or, from an engine that sends only v1, a
    valid v1 one; either may be made with ``signing_key`` or ``signing_key_fallback`` (while the key
    is rotated). Every method raises :class:`DurableError` when the engine is unreachable, answers
    non-2xx, or answers without a valid signature.
    """

    def __init__(
        self,
        base_url: str,
        app_id: str,
        signing_key: str,
        app_url: str | None = None,
        timeout: float = 10,
        signing_key_fallback: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.app_id = app_id
        self.signing_key = signing_key
        self.signing_key_fallback = signing_key_fallback
        self.app_url = app_url
        self.timeout = timeout

    def sync(self, functions: Iterable[Function]) -> Any:
        """Make ``functions`` the app's whole function set in the engine; returns the engine's answer."""
        if not self.app_url:
            raise ValueError("Client.sync needs app_url: where the engine reaches your app")
        wire = [function.wire for function in index(functions).values()]
        return self._post("/fn/sync", {"url": self.app_url, "functions": wire})

    def send(
        self,
        name: str,
        data: dict[str, Any] | None = None,
        id: str | None = None,
        ts: int | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> list[str]:
        """Send one event and return its id; an ``id`` makes the send idempotent, ``ts`` is epoch ms.

        With ``idempotency_key``, each function the event triggers runs at most once per key per 24 h
        (unless the function has an ``idempotency`` option of its own).
        """
        return self._ids(self._post("/e", _event(name, data, id, ts, idempotency_key)))

    def send_many(self, events: Iterable[SentEvent | dict[str, Any]]) -> list[str]:
        """Send events ``{name, data?, id?, ts?, idempotencyKey?}`` all-or-nothing; returns their ids."""
        batch = [
            _event(e.get("name"), e.get("data"), e.get("id"), e.get("ts"), e.get("idempotencyKey"))
            for e in events
        ]
        return self._ids(self._post("/e", batch))

    def _check_answer(
        self, path: str, status: int, answer: bytes, v1: str | None, v2: str | None, nonce: str
    ) -> None:
        """Accept the engine's answer only if signed by the engine for this request (v2) or, from an
        engine that sends no v2 header, with a valid v1 signature."""
        keys = [self.signing_key] + ([self.signing_key_fallback] if self.signing_key_fallback else [])
        if v2 is not None:
            try:
                verify_v2(answer, keys, v2, "engine", _step._now_ms(), reply_to=nonce)
            except SignatureError as exc:
                raise DurableError(f"POST {path}: the engine's answer: {exc}", status) from None
        elif not any(verify(answer, key, v1) for key in keys):
            problem = "wrong" if v1 else "missing"
            raise DurableError(f"POST {path}: the answer has a {problem} {V1_HEADER}", status)

    def _ids(self, answer: Any) -> list[str]:
        ids = answer.get("ids") if isinstance(answer, dict) else None
        if not isinstance(ids, list):
            raise DurableError(f"unexpected answer from the engine: {answer!r}")
        return [str(event_id) for event_id in ids]

    def _post(self, path: str, payload: Any) -> Any:
        body = encode(payload)
        nonce = new_nonce()
        request = urllib.request.Request(
            self.base_url + path,
            data=body,
            method="POST",
            headers={
                "content-type": "application/json",
                "x-durable-app": self.app_id,
                V2_HEADER: sign_v2(body, self.signing_key, "app", _step._now_ms(), nonce),
                V1_HEADER: sign(body, self.signing_key),
                "user-agent": "durable-sdk-python",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status, answer = response.status, response.read()
                v1, v2 = response.headers[V1_HEADER], response.headers[V2_HEADER]
        except urllib.error.HTTPError as exc:
            with exc:
                raise DurableError(f"POST {path}: {exc.code} {_message(exc.read())}", exc.code) from None
        except (urllib.error.URLError, OSError) as exc:
            raise DurableError(f"POST {path}: cannot reach the engine at {self.base_url}: {exc}") from exc
        self._check_answer(path, status, answer, v1, v2, nonce)
        try:
            return json.loads(answer)
        except ValueError as exc:
            raise DurableError(f"POST {path}: the answer is not JSON ({exc})", status) from None


def _event(name: Any, data: Any, id: Any, ts: Any, idempotency_key: Any = None) -> dict[str, Any]:
    if not isinstance(name, str) or not name:
        raise ValueError(f"event name must be a non-empty string, got {name!r}")
    event: dict[str, Any] = {"name": name, "data": {} if data is None else data}
    if id is not None:
        event["id"] = id
    if ts is not None:
        event["ts"] = ts
    if idempotency_key is not None:
        if not isinstance(idempotency_key, str) or not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
            raise ValueError(
                f"idempotency_key must be a string of 1 to {MAX_IDEMPOTENCY_KEY} characters, "
                f"got {idempotency_key!r}"
            )
        event["idempotencyKey"] = idempotency_key
    return event


def _message(body: bytes) -> str:
    """The engine's ``{"error": ...}`` message, or the raw body."""
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, dict):
        error = error.get("message", error)
    return str(error) if error else body.decode(errors="replace")[:500]
