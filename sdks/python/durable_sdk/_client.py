"""The management client: ``sync`` the function set and ``send`` events to the engine."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterable
from typing import Any

from ._errors import DurableError
from ._options import Function
from ._serve import index
from ._signing import sign, verify
from ._step import encode


class Client:
    """Talks to the engine at ``base_url`` as the app ``app_id``, signing every request with ``signing_key``.

    ``app_url`` is where the engine reaches the app served by :func:`serve`; ``sync`` needs it.
    Every method raises :class:`DurableError` when the engine is unreachable, answers non-2xx, or
    answers without a valid signature.
    """

    def __init__(
        self, base_url: str, app_id: str, signing_key: str, app_url: str | None = None, timeout: float = 10
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.app_id = app_id
        self.signing_key = signing_key
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
    ) -> list[str]:
        """Send one event and return its id; an ``id`` makes the send idempotent, ``ts`` is epoch ms."""
        return self._ids(self._post("/e", _event(name, data, id, ts)))

    def send_many(self, events: Iterable[dict[str, Any]]) -> list[str]:
        """Send events ``{name, data?, id?, ts?}`` all-or-nothing; returns their ids in order."""
        batch = [_event(e.get("name"), e.get("data"), e.get("id"), e.get("ts")) for e in events]
        return self._ids(self._post("/e", batch))

    def _ids(self, answer: Any) -> list[str]:
        ids = answer.get("ids") if isinstance(answer, dict) else None
        if not isinstance(ids, list):
            raise DurableError(f"unexpected answer from the engine: {answer!r}")
        return [str(event_id) for event_id in ids]

    def _post(self, path: str, payload: Any) -> Any:
        body = encode(payload)
        request = urllib.request.Request(
            self.base_url + path,
            data=body,
            method="POST",
            headers={
                "content-type": "application/json",
                "x-durable-app": self.app_id,
                "x-durable-signature": sign(body, self.signing_key),
                "user-agent": "durable-sdk-python",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status, answer = response.status, response.read()
                signature = response.headers["x-durable-signature"]
        except urllib.error.HTTPError as exc:
            with exc:
                raise DurableError(f"POST {path}: {exc.code} {_message(exc.read())}", exc.code) from None
        except (urllib.error.URLError, OSError) as exc:
            raise DurableError(f"POST {path}: cannot reach the engine at {self.base_url}: {exc}") from exc
        if not verify(answer, self.signing_key, signature):
            raise DurableError(
                f"POST {path}: the answer has a {'wrong' if signature else 'missing'} x-durable-signature",
                status,
            )
        try:
            return json.loads(answer)
        except ValueError as exc:
            raise DurableError(f"POST {path}: the answer is not JSON ({exc})", status) from None


def _event(name: Any, data: Any, id: Any, ts: Any) -> dict[str, Any]:
    if not isinstance(name, str) or not name:
        raise ValueError(f"event name must be a non-empty string, got {name!r}")
    event: dict[str, Any] = {"name": name, "data": {} if data is None else data}
    if id is not None:
        event["id"] = id
    if ts is not None:
        event["ts"] = ts
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
