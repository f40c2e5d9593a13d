"""Function definitions: the ``function`` decorator, option validation and durations (pure, no I/O)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

Duration = str | int | dt.timedelta
Handler = Callable[[dict[str, Any], Any], Any]

_UNIT_MS = {"w": 604_800_000, "d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1_000, "ms": 1}
_DURATION = re.compile(r"(?:\d+(?:ms|[wdhms]))+")
_PART = re.compile(r"(\d+)(ms|[wdhms])")
_KEY = re.compile(r"[^.\s]+(?:\.[^.\s]+)*")


def parse_duration(value: object) -> int:
    """Return ``value`` in milliseconds: ``"500ms"``, ``"1h30m"``, ``int`` ms or a ``timedelta``."""
    if isinstance(value, dt.timedelta) and value >= dt.timedelta(0):
        return value // dt.timedelta(milliseconds=1)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and _DURATION.fullmatch(value):
        return sum(int(n) * _UNIT_MS[unit] for n, unit in _PART.findall(value))
    raise ValueError(f"invalid duration {value!r}")


def iso_ms(epoch_ms: int) -> str:
    """Format epoch milliseconds as ISO-8601 UTC with milliseconds: ``2026-07-05T09:00:00.000Z``."""
    moment = dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=epoch_ms)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{epoch_ms % 1000:03d}Z"


class Function:
    """A handler with its trigger and options, made by :func:`function`; pass it to ``serve`` and ``sync``."""

    def __init__(self, handler: Handler, id: str, wire: dict[str, Any]) -> None:
        self.handler = handler
        self.id = id
        self.wire = wire  # the definition as sent by sync: camelCase keys, values as the user wrote them

    def __repr__(self) -> str:
        return f"<durable_sdk.Function {self.id!r}>"


def function(
    id: str,
    trigger: dict[str, str],
    name: str | None = None,
    retries: int | None = None,
    concurrency: dict[str, Any] | None = None,
    priority: int | dict[str, Any] | None = None,
    throttle: dict[str, Any] | None = None,
    rate_limit: dict[str, Any] | None = None,
    debounce: dict[str, Any] | None = None,
    batch: dict[str, Any] | None = None,
) -> Callable[[Handler], Function]:
    """Declare a durable function; decorates an ``async def`` or ``def`` handler taking ``(event, step)``.

    Every option is checked here: a bad one raises ``ValueError`` naming the function and the field.
    """
    if not isinstance(id, str) or not id.strip():
        raise ValueError(f"function id must be a non-empty string, got {id!r}")
    check = _Checker(id)
    wire: dict[str, Any] = {"id": id, "trigger": check.trigger(trigger)}
    if name is not None:
        wire["name"] = check.text("name", name)
    if retries is not None:
        wire["retries"] = check.integer("retries", retries, minimum=0)
    specs = {  # field -> (wire key, required fields, optional fields)
        "concurrency": ("concurrency", {"limit"}, {"key"}),
        "throttle": ("throttle", {"limit", "period"}, {"key"}),
        "rate_limit": ("rateLimit", {"limit", "period"}, {"key"}),
        "debounce": ("debounce", {"period"}, {"key", "timeout"}),
        "batch": ("batch", {"max_size", "timeout"}, {"key"}),
    }
    given = {
        "concurrency": concurrency,
        "throttle": throttle,
        "rate_limit": rate_limit,
        "debounce": debounce,
        "batch": batch,
    }
    for field, value in given.items():
        if value is not None:
            wire_key, required, optional = specs[field]
            wire[wire_key] = check.option(field, value, required, optional)
    if priority is not None:
        if isinstance(priority, dict):
            wire["priority"] = check.option("priority", priority, {"key"}, set())
        else:
            wire["priority"] = check.integer("priority", priority)

    def decorate(handler: Handler) -> Function:
        if not callable(handler):
            raise ValueError(f"function {id!r}: the handler must be callable")
        return Function(handler, id, wire)

    return decorate


class _Checker:
    """Validates one function's options; every error names the function and the field."""

    def __init__(self, function_id: str) -> None:
        self.function_id = function_id

    def fail(self, field: str, problem: str) -> ValueError:
        return ValueError(f"function {self.function_id!r}: {field}: {problem}")

    def trigger(self, trigger: object) -> dict[str, str]:
        if not isinstance(trigger, dict) or len(trigger) != 1 or not {"event", "cron"} & trigger.keys():
            raise self.fail("trigger", f'must be {{"event": name}} or {{"cron": expr}}, got {trigger!r}')
        kind, value = next(iter(trigger.items()))
        return {kind: self.text(f"trigger.{kind}", value)}

    def text(self, field: str, value: object) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(field, f"must be a non-empty string, got {value!r}")
        return value

    def integer(self, field: str, value: object, minimum: int | None = None) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or (minimum is not None and value < minimum):
            bound = f" >= {minimum}" if minimum is not None else ""
            raise self.fail(field, f"must be an integer{bound}, got {value!r}")
        return value

    def option(self, field: str, value: object, required: set[str], optional: set[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(field, f"must be a dict, got {value!r}")
        value = dict(value)
        if "maxSize" in value and "max_size" not in value:
            value["max_size"] = value.pop("maxSize")
        for unknown in sorted(value.keys() - required - optional):
            raise self.fail(f"{field}.{unknown}", f"unknown option (expected {sorted(required | optional)})")
        for missing in sorted(required - value.keys()):
            raise self.fail(f"{field}.{missing}", "is required")
        wire: dict[str, Any] = {}
        for sub, item in value.items():
            path = f"{field}.{sub}"
            if sub in ("limit", "max_size"):
                wire["maxSize" if sub == "max_size" else sub] = self.integer(path, item, minimum=1)
            elif sub == "key":
                if not isinstance(item, str) or not _KEY.fullmatch(item):
                    raise self.fail(path, f"must be a dotted path into event.data, got {item!r}")
                wire[sub] = item
            else:  # period, timeout
                try:
                    ms = parse_duration(item)
                except ValueError as exc:
                    raise self.fail(path, str(exc)) from None
                if ms <= 0:
                    raise self.fail(path, f"must be a positive duration, got {item!r}")
                wire[sub] = ms if isinstance(item, dt.timedelta) else item
        return wire
