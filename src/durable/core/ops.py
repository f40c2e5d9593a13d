"""The app's answer to an invoke: exactly one op, parsed into the TypedDicts of ``durable.types``.

The closed set (DESIGN §3)::

    {"op": "step",  "id": str, "data": any}                      data required, may be null
    {"op": "sleep", "id": str, "until": iso}                      -> SleepOp.until_ms
    {"op": "wait",  "id": str, "event": str, "match": {…}|null, "until": iso}
    {"op": "done",  "data": any}                                  data defaults to null
    {"op": "error", "id": str|null, "message": str, "retryable": bool}
                                                                  defaults: null, "error", true

``until`` is an RFC 3339 timestamp with a ``Z`` or ``±hh:mm`` offset, with or without a fraction
(``2026-07-05T09:00:00.000Z``, ``2026-07-05T11:00:00+02:00``); fractions finer than a millisecond
are truncated. Step ids are non-empty strings of at most 256 characters; ids, event names and
match values hold no NUL character (Postgres cannot store one). Any other field is
refused by name, as is anything else malformed: the message becomes the run's error text, so it
says which op, which field and what was expected.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from durable.core._text import show
from durable.core.jsonvalue import parse_json, refuse_nul
from durable.errors import InvalidInput
from durable.types import DoneOp, ErrorOp, Op, SleepOp, StepOp, WaitOp

MAX_ID_LENGTH = 256
_OPS = ("step", "sleep", "wait", "done", "error")
_FIELDS: dict[str, tuple[str, ...]] = {
    "step": ("op", "id", "data"),
    "sleep": ("op", "id", "until"),
    "wait": ("op", "id", "event", "match", "until"),
    "done": ("op", "data"),
    "error": ("op", "id", "message", "retryable"),
}
_EXPECTED = "expected step, sleep, wait, done or error"
_ISO = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_op(raw: bytes) -> Op:
    """Parse an answer body into one op, or raise :class:`InvalidInput` naming the problem."""
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise InvalidInput(f"answer must be a JSON object with an 'op' field, got {show(body)}")
    op = body.get("op")
    if op is None:
        raise InvalidInput(f"answer has no 'op' field ({_EXPECTED})")
    if op not in _OPS:
        raise InvalidInput(f"unknown op {show(op)} ({_EXPECTED})")
    unknown = [key for key in body if key not in _FIELDS[op]]
    if unknown:
        allowed = ", ".join(_FIELDS[op][1:])
        raise InvalidInput(f"{op}: unknown field {show(unknown[0])} (a {op} op has {allowed})")
    if op == "step":
        return _step(body)
    if op == "sleep":
        return _sleep(body)
    if op == "wait":
        return _wait(body)
    if op == "done":
        return _done(body)
    return _error(body)


def parse_timestamp(value: object, field: str) -> int:
    """Epoch milliseconds of an RFC 3339 timestamp such as ``2026-07-05T09:00:00.000Z``."""
    hint = 'an ISO-8601 timestamp with a zone, e.g. "2026-07-05T09:00:00.000Z"'
    if not isinstance(value, str):
        raise InvalidInput(f"{field}: must be {hint}, got {show(value)}")
    found = _ISO.fullmatch(value)
    if found is None:
        raise InvalidInput(f"{field}: {show(value)} is not {hint}")
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = found.groups()
    if not zulu and (int(off_h) > 23 or int(off_m) > 59):
        raise InvalidInput(f"{field}: {show(value)} is not a valid timestamp (offset out of range)")
    try:
        offset = timedelta(0) if zulu else timedelta(hours=int(off_h), minutes=int(off_m))
        zone = timezone(-offset if sign == "-" else offset)
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=zone)
    except ValueError as exc:
        raise InvalidInput(f"{field}: {show(value)} is not a valid timestamp ({exc})") from None
    millis = int((fraction or "0")[:3].ljust(3, "0"))
    return (moment - _EPOCH) // timedelta(milliseconds=1) + millis


def _step(body: dict[str, Any]) -> StepOp:
    if "data" not in body:
        raise InvalidInput("step.data: missing (send null when the step returned nothing)")
    return {"op": "step", "id": _step_id(body, "step"), "data": body["data"]}


def _sleep(body: dict[str, Any]) -> SleepOp:
    step_id = _step_id(body, "sleep")
    return {"op": "sleep", "id": step_id, "until_ms": _until(body, "sleep")}


def _wait(body: dict[str, Any]) -> WaitOp:
    step_id = _step_id(body, "wait")
    event = body.get("event")
    if not isinstance(event, str) or not event:
        raise InvalidInput(f"wait.event: must be a non-empty event name, got {show(event)}")
    if len(event) > MAX_ID_LENGTH:
        raise InvalidInput(f"wait.event: must be at most {MAX_ID_LENGTH} characters")
    match = body.get("match")
    if match is not None and not isinstance(match, dict):
        raise InvalidInput(f"wait.match: must be an object or null, got {show(match)}")
    refuse_nul({"event": event, "match": match}, "wait")
    return {
        "op": "wait",
        "id": step_id,
        "event": event,
        "match": match,
        "until_ms": _until(body, "wait"),
    }


def _done(body: dict[str, Any]) -> DoneOp:
    return {"op": "done", "data": body.get("data")}


def _error(body: dict[str, Any]) -> ErrorOp:
    step_id = body.get("id")
    if step_id is not None:
        step_id = _step_id(body, "error")
    message = body.get("message", "error")
    if not isinstance(message, str):
        raise InvalidInput(f"error.message: must be a string, got {show(message)}")
    retryable = body.get("retryable", True)
    if not isinstance(retryable, bool):
        raise InvalidInput(f"error.retryable: must be true or false, got {show(retryable)}")
    # The app's own text is kept as its error; a NUL (which Postgres cannot store) is shown escaped.
    message = message.replace("\x00", "\\u0000") or "error"
    return {"op": "error", "id": step_id, "message": message, "retryable": retryable}


def _step_id(body: dict[str, Any], op: str) -> str:
    step_id = body.get("id")
    if not isinstance(step_id, str) or not step_id:
        raise InvalidInput(f"{op}.id: must be a non-empty string, got {show(step_id)}")
    if len(step_id) > MAX_ID_LENGTH:
        raise InvalidInput(f"{op}.id: must be at most {MAX_ID_LENGTH} characters")
    refuse_nul(step_id, f"{op}.id")
    return step_id


def _until(body: dict[str, Any], op: str) -> int:
    if "until" not in body:
        raise InvalidInput(f'{op}.until: missing (e.g. "2026-07-05T09:00:00.000Z")')
    return parse_timestamp(body["until"], f"{op}.until")
