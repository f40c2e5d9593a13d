"""What step calls put on the wire, checked before they are answered: a ``send_event`` batch, an
invoke memo's error, and the JSON every answer is encoded as."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Required, TypedDict, cast

from ._errors import InvokeError, InvokeReason, NonRetryableError
from ._options import Function

MAX_SENT_EVENTS = 100  # per send_event step: the engine refuses a send op with more
EVENT_KEYS = ("name", "data", "id", "ts", "idempotencyKey")
INVOKE_REASONS = ("failed", "timeout", "cancelled", "not_found")


class SentEvent(TypedDict, total=False):
    """An event for ``step.send_event`` and ``Client.send_many``, as ``POST /e`` takes it.

    ``name`` is required; ``data`` is an object (default ``{}``); an ``id`` makes the send idempotent;
    ``ts`` is epoch milliseconds; with ``idempotencyKey`` each function it triggers runs at most once
    per key per 24 h.
    """

    name: Required[str]
    data: dict[str, Any]
    id: str
    ts: int
    idempotencyKey: str


def encode(value: Any) -> bytes:
    """Serialise compactly as UTF-8 JSON; raises ``TypeError``/``ValueError`` for non-JSON values."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def check_json(what: str, value: Any) -> None:
    try:
        encode(value)
    except (TypeError, ValueError) as exc:
        raise NonRetryableError(f"{what} is not JSON-serialisable: {exc}") from None


def sent_events(step_id: str, events: object) -> list[dict[str, Any]]:
    """Check ``step.send_event``'s events and give them their wire form: always a list."""
    where = f"step.send_event({step_id!r})"
    items = [events] if isinstance(events, Mapping) else events
    if isinstance(items, str | bytes) or not isinstance(items, Sequence) or not items:
        raise NonRetryableError(f"{where}: events must be an event dict or a non-empty list of them")
    if len(items) > MAX_SENT_EVENTS:
        raise NonRetryableError(f"{where}: at most {MAX_SENT_EVENTS} events per step (got {len(items)})")
    batch = []
    for index, item in enumerate(items):
        field = f"{where}: events[{index}]" if items is events else f"{where}: event"
        if not isinstance(item, Mapping):
            raise NonRetryableError(f"{field} must be a dict {{name, data?, id?, ts?}}, got {item!r}")
        unknown = sorted(set(item) - set(EVENT_KEYS))
        if unknown:
            raise NonRetryableError(f"{field}: unknown field {unknown[0]!r} (expected {list(EVENT_KEYS)})")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise NonRetryableError(f"{field}.name must be a non-empty string, got {name!r}")
        data = {} if item.get("data") is None else item["data"]
        if not isinstance(data, Mapping):
            raise NonRetryableError(f"{field}.data must be a dict, got {data!r}")
        event = {key: item[key] for key in EVENT_KEYS if item.get(key) is not None}
        batch.append({**event, "data": dict(data)})
    check_json(f"{where}: events", batch)
    return batch


def invoke_error(error: Any, step_id: str, function: Function | str) -> InvokeError:
    """The :class:`InvokeError` for an invoke memo's ``error``."""
    fields = error if isinstance(error, dict) else {}
    message = fields.get("message")
    reason = fields.get("reason")
    function_id = fields.get("functionId")
    if not isinstance(function_id, str):
        function_id = function.id if isinstance(function, Function) else str(function)
    run_id = fields.get("runId")
    return InvokeError(
        message if isinstance(message, str) else f"step {step_id!r}: the invoked run did not complete",
        cast(InvokeReason, reason) if reason in INVOKE_REASONS else "failed",
        run_id if isinstance(run_id, str) else None,
        function_id,
    )
