"""Function definitions: the ``function`` decorator, option validation and durations (pure, no I/O)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable, Sequence
from typing import Any, Literal, Required, TypedDict

Duration = str | int | dt.timedelta
# (event, step): an event dict (or durable_sdk.Event), a Step (annotated AsyncStep or SyncStep)
Handler = Callable[[Any, Any], Any]
MAX_FAILURE_ID = 120  # a function id is at most 128 characters, and ``<id>:failure`` must be one too
MAX_CANCEL_ON = 10
MAX_CHECKPOINT_STEPS = 1000  # the engine refuses a checkpoint of more steps
MAX_CHECKPOINT_BYTES = 4 * 1024 * 1024  # an answer over 4 MiB is refused: so would a checkpoint be


class CancelOn(TypedDict, total=False):
    """One ``cancel_on`` entry: an event named ``event`` cancels the active run.

    With ``match`` (a dotted key path into ``event.data``), only an event whose data has the same value
    there as the run's triggering event; ``timeout`` bounds how long after the run's start it applies.
    """

    event: Required[str]
    match: str
    timeout: Duration


class Singleton(TypedDict, total=False):
    """The ``singleton`` option: at most one active run per value of ``key`` (or per function).

    ``mode="skip"`` skips a new event while a run is active; ``mode="cancel"`` cancels the active run
    and starts the new one.
    """

    key: str
    mode: Required[Literal["skip", "cancel"]]


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """The bounds of checkpointing, the ``checkpoint`` option of :func:`function` (``True`` means these
    defaults, ``False`` turns checkpointing off).

    With checkpointing on, consecutive new ``step.run`` steps execute in one invoke and are answered
    together (docs/protocol.md, "Checkpointing"). After each step the invoke stops once ``max_steps``
    steps executed (default 100, at most 1000), their results reach ``max_bytes`` (the UTF-8 length of
    each result's JSON, summed; default 1 MiB, at most 4 MiB) or ``max_ms`` milliseconds passed since
    the invoke arrived (monotonic; default 1000). Every step executed in an invoke whose answer is lost
    executes again on the next attempt: the bounds cap what one lost answer costs.
    """

    max_steps: int = 100
    max_bytes: int = 1_048_576
    max_ms: int = 1000

    def __post_init__(self) -> None:
        limits = {"max_steps": MAX_CHECKPOINT_STEPS, "max_bytes": MAX_CHECKPOINT_BYTES, "max_ms": None}
        for field, maximum in limits.items():
            value = getattr(self, field)
            if (
                not isinstance(value, int)
                or isinstance(value, bool)
                or value < 1
                or (maximum is not None and value > maximum)
            ):
                bound = "a positive integer" if maximum is None else f"an integer from 1 to {maximum}"
                raise ValueError(f"Checkpoint.{field} must be {bound}, got {value!r}")


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

    def __init__(
        self,
        handler: Handler,
        id: str,
        wire: dict[str, Any],
        failure: Function | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> None:
        self.handler = handler
        self.id = id
        self.wire = wire  # the definition as sent by sync: camelCase keys, values as the user wrote them
        self.failure = failure  # the on_failure handler, served and synced as function ``<id>:failure``
        self.checkpoint = checkpoint  # the bounds of checkpointing, None when off; never synced

    def __repr__(self) -> str:
        return f"<durable_sdk.Function {self.id!r}>"


def function(
    id: str,
    trigger: dict[str, str] | None,
    name: str | None = None,
    retries: int | None = None,
    concurrency: dict[str, Any] | None = None,
    priority: int | dict[str, Any] | None = None,
    throttle: dict[str, Any] | None = None,
    rate_limit: dict[str, Any] | None = None,
    debounce: dict[str, Any] | None = None,
    batch: dict[str, Any] | None = None,
    on_failure: Handler | None = None,
    cancel_on: Sequence[CancelOn] | None = None,
    idempotency: str | None = None,
    singleton: Singleton | None = None,
    checkpoint: bool | Checkpoint = True,
) -> Callable[[Handler], Function]:
    """Declare a durable function; decorates an ``async def`` or ``def`` handler taking ``(event, step)``.

    ``trigger`` is ``{"event": name}``, ``{"cron": expr}`` or None (the function then starts only
    through ``step.invoke``). ``on_failure`` is a handler ``(event, step)`` run once when a run fails for
    good, with ``event["data"]`` = ``{"runId", "functionId", "error", "event"}``; it is synced as the
    function ``<id>:failure``. ``cancel_on``, ``idempotency`` and ``singleton`` are described in
    ``docs/protocol.md`` ("Composition"). ``checkpoint`` (on by default) runs consecutive new steps in
    one invoke within the bounds of a :class:`Checkpoint`; ``False`` answers one step per invoke. It is
    the SDK's own behaviour: ``sync`` does not send it (the failure handler gets the same setting).
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
    if cancel_on is not None:
        wire["cancelOn"] = check.cancel_on(cancel_on)
    if idempotency is not None:
        wire["idempotency"] = check.key_path("idempotency", idempotency)
    if singleton is not None:
        wire["singleton"] = check.singleton(singleton)
    bounds = check.checkpoint(checkpoint)
    failure = None
    if on_failure is not None:
        check.on_failure(on_failure)
        failure_id = f"{id}:failure"
        failure_wire = {"id": failure_id, "name": f"{name or id} (failure)", "trigger": None}
        failure = Function(on_failure, failure_id, failure_wire, checkpoint=bounds)
        wire["onFailure"] = failure_id

    def decorate(handler: Handler) -> Function:
        if not callable(handler):
            raise ValueError(f"function {id!r}: the handler must be callable")
        return Function(handler, id, wire, failure, bounds)

    return decorate


class _Checker:
    """Validates one function's options; every error names the function and the field."""

    def __init__(self, function_id: str) -> None:
        self.function_id = function_id

    def fail(self, field: str, problem: str) -> ValueError:
        return ValueError(f"function {self.function_id!r}: {field}: {problem}")

    def trigger(self, trigger: object) -> dict[str, str] | None:
        if trigger is None:
            return None
        if not isinstance(trigger, dict) or len(trigger) != 1 or not {"event", "cron"} & trigger.keys():
            raise self.fail(
                "trigger", f'must be {{"event": name}}, {{"cron": expr}} or None, got {trigger!r}'
            )
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

    def key_path(self, field: str, value: object) -> str:
        if not isinstance(value, str) or not _KEY.fullmatch(value):
            raise self.fail(field, f"must be a dotted path into event.data, got {value!r}")
        return value

    def duration(self, field: str, value: object) -> int | str:
        """A positive duration, kept as written (a ``timedelta`` becomes milliseconds)."""
        try:
            ms = parse_duration(value)
        except ValueError as exc:
            raise self.fail(field, str(exc)) from None
        if ms <= 0:
            raise self.fail(field, f"must be a positive duration, got {value!r}")
        return value if isinstance(value, str | int) else ms

    def on_failure(self, handler: object) -> None:
        if isinstance(handler, Function):
            raise self.fail("on_failure", f"must be a handler (event, step), not the function {handler.id!r}")
        if not callable(handler):
            raise self.fail("on_failure", f"must be a handler (event, step), got {handler!r}")
        if len(self.function_id) > MAX_FAILURE_ID:
            raise self.fail(
                "on_failure",
                f"the function id must be at most {MAX_FAILURE_ID} characters, so that "
                f"'<id>:failure' is a valid function id (it has {len(self.function_id)})",
            )

    def checkpoint(self, value: object) -> Checkpoint | None:
        """``True``: the default bounds; ``False``: off (None); a :class:`Checkpoint`: its bounds."""
        if value is True:
            return Checkpoint()
        if value is False:
            return None
        if not isinstance(value, Checkpoint):
            raise self.fail(
                "checkpoint",
                f"must be True, False or a durable_sdk.Checkpoint(...) of bounds, got {value!r}",
            )
        return value

    def cancel_on(self, entries: object) -> list[dict[str, Any]]:
        if isinstance(entries, dict | str) or not isinstance(entries, Sequence) or not entries:
            raise self.fail(
                "cancel_on", f'must be a non-empty list of {{"event": name, ...}}, got {entries!r}'
            )
        if len(entries) > MAX_CANCEL_ON:
            raise self.fail("cancel_on", f"at most {MAX_CANCEL_ON} entries (got {len(entries)})")
        wire = []
        for index, entry in enumerate(entries):
            field = f"cancel_on[{index}]"
            if not isinstance(entry, dict):
                raise self.fail(field, f"must be a dict {{event, match?, timeout?}}, got {entry!r}")
            for unknown in sorted(entry.keys() - {"event", "match", "timeout"}):
                raise self.fail(
                    f"{field}.{unknown}", "unknown option (expected ['event', 'match', 'timeout'])"
                )
            item: dict[str, Any] = {"event": self.text(f"{field}.event", entry.get("event"))}
            if entry.get("match") is not None:
                item["match"] = self.key_path(f"{field}.match", entry["match"])
            if entry.get("timeout") is not None:
                item["timeout"] = self.duration(f"{field}.timeout", entry["timeout"])
            wire.append(item)
        return wire

    def singleton(self, value: object) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(
                "singleton", f'must be a dict {{"mode": "skip" | "cancel", "key"?}}, got {value!r}'
            )
        for unknown in sorted(value.keys() - {"key", "mode"}):
            raise self.fail(f"singleton.{unknown}", "unknown option (expected ['key', 'mode'])")
        if value.get("mode") not in ("skip", "cancel"):
            raise self.fail("singleton.mode", f'must be "skip" or "cancel", got {value.get("mode")!r}')
        wire: dict[str, Any] = {"mode": value["mode"]}
        if "key" in value:
            wire["key"] = self.key_path("singleton.key", value["key"])
        return wire

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
                wire[sub] = self.key_path(path, item)
            else:  # period, timeout
                wire[sub] = self.duration(path, item)
        return wire
