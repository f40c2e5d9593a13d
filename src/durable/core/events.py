"""Incoming events (``POST /e``).

A body is one event object or a non-empty list of at most :data:`MAX_EVENTS_PER_REQUEST` of them;
a list is all-or-nothing, so the first bad event refuses the whole request. An event is
``{name, data?, id?, ts?}``:

- ``name``: non-empty string of at most 256 characters;
- ``data``: a JSON object, ``{}`` when absent (``null`` counts as absent);
- ``id``: optional non-empty string of at most 256 characters (the idempotency key);
- ``ts``: optional integer epoch milliseconds, from 0 up to the end of year 9999;
- ``idempotencyKey``: optional non-empty string of at most 256 characters: at most one run per key per
  function it triggers per 24 h (a function's own ``idempotency`` option takes precedence).

Any other key is refused by name. Messages name the field; in a list they name the index too:
``events[2].name: must be a non-empty string``.
"""

from __future__ import annotations

from typing import Any

from durable.core._text import show
from durable.core.jsonvalue import refuse_nul
from durable.errors import InvalidInput
from durable.types import EventIn

MAX_EVENTS_PER_REQUEST = 1000
MAX_NAME_LENGTH = 256
MAX_TS_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
_KEYS = ("name", "data", "id", "ts", "idempotencyKey")


def parse_events(body: object) -> tuple[list[EventIn], bool]:
    """Validate a decoded ``POST /e`` body; the flag says whether the body was a list."""
    if isinstance(body, list):
        if not body:
            raise InvalidInput("events: the list must not be empty")
        if len(body) > MAX_EVENTS_PER_REQUEST:
            raise InvalidInput(
                f"events: at most {MAX_EVENTS_PER_REQUEST} events per request (got {len(body)})"
            )
        return [parse_event(item, f"events[{index}].") for index, item in enumerate(body)], True
    if isinstance(body, dict):
        return [parse_event(body, "")], False
    raise InvalidInput(f"body must be an event object or a non-empty list of events, got {show(body)}")


def parse_event(item: object, prefix: str = "") -> EventIn:
    """Validate one event; ``prefix`` (``"events[2]."``) starts every field name in a message."""
    where = prefix[:-1] if prefix else "event"
    if not isinstance(item, dict):
        raise InvalidInput(f"{where}: must be an object {{name, data, id?, ts?}}, got {show(item)}")
    unknown = [key for key in item if key not in _KEYS]
    if unknown:
        raise InvalidInput(
            f"{where}: unknown field {show(unknown[0])} (an event has name, data, id, ts and idempotencyKey)"
        )
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"{prefix}name: must be a non-empty string, got {show(name)}")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(f"{prefix}name: must be at most {MAX_NAME_LENGTH} characters")
    data: Any = item.get("data")
    if data is None:
        data = {}
    elif not isinstance(data, dict):
        raise InvalidInput(f"{prefix}data: must be a JSON object, got {show(data)}")
    event_id = _optional_text(item, "id", prefix)
    key = _optional_text(item, "idempotencyKey", prefix)
    ts = item.get("ts")
    if ts is not None and (not isinstance(ts, int) or isinstance(ts, bool) or not 0 <= ts <= MAX_TS_MS):
        raise InvalidInput(f"{prefix}ts: must be integer epoch milliseconds, got {show(ts)}")
    refuse_nul({"name": name, "id": event_id, "idempotencyKey": key, "data": data}, where)
    event: EventIn = {"id": event_id, "name": name, "data": data, "ts": ts}
    if key is not None:
        event["idempotencyKey"] = key
    return event


def _optional_text(item: dict[str, Any], field: str, prefix: str) -> str | None:
    value = item.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{prefix}{field}: must be a non-empty string, got {show(value)}")
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidInput(f"{prefix}{field}: must be at most {MAX_NAME_LENGTH} characters")
    return value
