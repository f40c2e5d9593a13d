"""The app's answer to an invoke: exactly one op, parsed into the TypedDicts of ``durable.types``.

The closed set (DESIGN §3)::

    {"op": "step",  "id": str, "data": any}                      data required, may be null
    {"op": "sleep", "id": str, "until": iso}                      -> SleepOp.until_ms
    {"op": "wait",  "id": str, "event": str, "match": {…}|null, "until": iso}
    {"op": "done",  "data": any}                                  data defaults to null
    {"op": "error", "id": str|null, "message": str, "retryable": bool}
                                                                  defaults: null, "error", true

and the composition extension (docs/protocol.md, "Composition")::

    {"op": "invoke", "id": str, "function": str, "data": {…}, "until": iso|null}   data defaults to {}
    {"op": "send",   "id": str, "events": [event, …]}                 1-100 events, as POST /e takes them
    {"op": "parallel", "ops": [op, …]}     2-1000 step / error (with an id) / invoke / send ops, distinct ids

and checkpointing (docs/protocol.md, "Checkpointing")::

    {"op": "checkpoint", "steps": [{"id": str, "data": any}, …], "then": op|null}
                                           1-1000 steps, distinct ids; then is any op but step and checkpoint

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
from durable.core.events import parse_event
from durable.core.jsonvalue import parse_json, refuse_nul
from durable.errors import InvalidInput
from durable.types import (
    CheckpointOp,
    CheckpointStep,
    DoneOp,
    ErrorOp,
    InvokeOp,
    Op,
    ParallelOp,
    SendOp,
    SleepOp,
    StepOp,
    WaitOp,
)

MAX_ID_LENGTH = 256
MAX_SEND = 100
MAX_PARALLEL = 1000
MAX_CHECKPOINT = 1000
_OPS = ("step", "sleep", "wait", "done", "error", "invoke", "send", "parallel", "checkpoint")
_IN_PARALLEL = ("step", "error", "invoke", "send")
_AFTER_CHECKPOINT = ("sleep", "wait", "done", "error", "invoke", "send", "parallel")
_FIELDS: dict[str, tuple[str, ...]] = {
    "step": ("op", "id", "data"),
    "sleep": ("op", "id", "until"),
    "wait": ("op", "id", "event", "match", "until"),
    "done": ("op", "data"),
    "error": ("op", "id", "message", "retryable"),
    "invoke": ("op", "id", "function", "data", "until"),
    "send": ("op", "id", "events"),
    "parallel": ("op", "ops"),
    "checkpoint": ("op", "steps", "then"),
}
_EXPECTED = "expected step, sleep, wait, done, error, invoke, send, parallel or checkpoint"
_ISO = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_op(raw: bytes) -> Op:
    """Parse an answer body into one op, or raise :class:`InvalidInput` naming the problem."""
    body = parse_json(raw)
    if isinstance(body, dict) and body.get("op") == "checkpoint":
        return _checkpoint(body)
    return _any(body)


def _any(body: object, allowed: tuple[str, ...] = _OPS, where: str = "") -> Op:
    if isinstance(body, dict) and body.get("op") == "parallel" and "parallel" in allowed:
        return _parallel(body, where)
    return _one(body, allowed, where)


def _one(body: object, allowed: tuple[str, ...] = _OPS, where: str = "") -> Op:
    if not isinstance(body, dict):
        raise InvalidInput(f"{where or 'answer: '}must be a JSON object with an 'op' field, got {show(body)}")
    op = body.get("op")
    if op is None:
        raise InvalidInput(f"{where or 'answer '}has no 'op' field ({_EXPECTED})")
    if op not in _OPS:
        raise InvalidInput(f"{where}unknown op {show(op)} ({_EXPECTED})")
    if op not in allowed:
        if allowed is _AFTER_CHECKPOINT:
            raise InvalidInput(
                f"{where}a {op} op cannot end a checkpoint (then is one of {', '.join(allowed)}, or null; "
                "steps belong in checkpoint.steps)"
            )
        raise InvalidInput(
            f"{where}a {op} op cannot be part of a parallel answer (only {', '.join(allowed)}; "
            "a run parks on one sleep or wait at a time)"
        )
    unknown = [key for key in body if key not in _FIELDS[op]]
    if unknown:
        fields = ", ".join(_FIELDS[op][1:])
        raise InvalidInput(f"{where}{op}: unknown field {show(unknown[0])} (a {op} op has {fields})")
    if op == "step":
        return _step(body)
    if op == "sleep":
        return _sleep(body)
    if op == "wait":
        return _wait(body)
    if op == "done":
        return _done(body)
    if op == "invoke":
        return _invoke(body)
    if op == "send":
        return _send(body)
    return _error(body)


def _checkpoint(body: dict[str, Any]) -> CheckpointOp:
    unknown = [key for key in body if key not in _FIELDS["checkpoint"]]
    if unknown:
        raise InvalidInput(f"checkpoint: unknown field {show(unknown[0])} (a checkpoint op has steps, then)")
    items = body.get("steps")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_CHECKPOINT:
        raise InvalidInput(
            f"checkpoint.steps: must be a list of 1 to {MAX_CHECKPOINT} {{id, data}} objects, got {show(items)}"
        )
    steps: list[CheckpointStep] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        where = f"checkpoint.steps[{index}]"
        if not isinstance(item, dict):
            raise InvalidInput(f"{where}: must be an object {{id, data}}, got {show(item)}")
        unknown = [key for key in item if key not in ("id", "data")]
        if unknown:
            raise InvalidInput(
                f"{where}: unknown field {show(unknown[0])} (a checkpointed step has id, data)"
            )
        if "data" not in item:
            raise InvalidInput(f"{where}.data: missing (send null when the step returned nothing)")
        step_id = _step_id(item, where)
        if step_id in seen:
            raise InvalidInput(f"{where}: step id {show(step_id)} appears twice")
        seen.add(step_id)
        steps.append({"id": step_id, "data": item["data"]})
    if "then" not in body:
        raise InvalidInput(
            "checkpoint.then: missing (the op that stopped the checkpoint, or null for a bound)"
        )
    then = None if body["then"] is None else _any(body["then"], _AFTER_CHECKPOINT, "checkpoint.then: ")
    named: list[Any] = [] if then is None else [o.get("id") for o in then.get("ops", [then])]  # type: ignore[attr-defined]
    again = next((i for i in named if i in seen), None)
    if again is not None:
        raise InvalidInput(f"checkpoint.then: step id {show(again)} is also in checkpoint.steps")
    return {"op": "checkpoint", "steps": steps, "then": then}  # type: ignore[typeddict-item]


def _parallel(body: dict[str, Any], within: str = "") -> ParallelOp:
    unknown = [key for key in body if key not in _FIELDS["parallel"]]
    if unknown:
        raise InvalidInput(f"{within}parallel: unknown field {show(unknown[0])} (a parallel op has ops)")
    items = body.get("ops")
    if not isinstance(items, list) or not 2 <= len(items) <= MAX_PARALLEL:
        raise InvalidInput(
            f"{within}parallel.ops: must be a list of 2 to {MAX_PARALLEL} ops, got {show(items)}"
        )
    ops: list[Any] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        where = f"{within}parallel.ops[{index}]: "
        one = _one(item, _IN_PARALLEL, where)
        step_id = one.get("id")
        if not isinstance(step_id, str):
            raise InvalidInput(f"{where}an error in a parallel answer must name its step (id)")
        if step_id in seen:
            raise InvalidInput(f"{where}step id {show(step_id)} appears twice")
        seen.add(step_id)
        ops.append(one)
    return {"op": "parallel", "ops": ops}


def _invoke(body: dict[str, Any]) -> InvokeOp:
    step_id = _step_id(body, "invoke")
    function = body.get("function")
    if not isinstance(function, str) or not function or len(function) > MAX_ID_LENGTH:
        raise InvalidInput(
            f"invoke.function: must be a function id (a non-empty string), got {show(function)}"
        )
    data = body.get("data")
    if data is None:
        data = {}
    elif not isinstance(data, dict):
        raise InvalidInput(f"invoke.data: must be a JSON object (the child's event.data), got {show(data)}")
    refuse_nul({"function": function, "data": data}, "invoke")
    if "until" not in body:
        raise InvalidInput("invoke.until: missing (an ISO 8601 timestamp, or null for no timeout)")
    until = None if body["until"] is None else parse_timestamp(body["until"], "invoke.until")
    return {"op": "invoke", "id": step_id, "function": function, "data": data, "until_ms": until}


def _send(body: dict[str, Any]) -> SendOp:
    step_id = _step_id(body, "send")
    items = body.get("events")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_SEND:
        raise InvalidInput(f"send.events: must be a list of 1 to {MAX_SEND} events, got {show(items)}")
    events = [parse_event(item, f"send.events[{index}].") for index, item in enumerate(items)]
    return {"op": "send", "id": step_id, "events": events}


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
