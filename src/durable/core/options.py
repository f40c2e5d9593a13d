"""``POST /fn/sync``: validate an app's function list and normalise its options.

Body: ``{url, functions: [...]}``. ``url`` is the app's http(s) callback URL. Each function::

    {id, name?, trigger, retries?, concurrency?, priority?, throttle?, rateLimit?, debounce?, batch?}

- ``id``: 1-128 characters, ``[A-Za-z0-9][A-Za-z0-9_.:-]*``, unique in the list.
- ``name``: display name, a non-empty string of at most 256 characters; defaults to ``id``.
- ``trigger``: ``{event: name}`` or ``{cron: expr}`` (see :mod:`durable.core.cron`).
- ``retries``: 0-20; ``None`` when absent (the engine then uses ``DURABLE_MAX_ATTEMPTS``).
- ``concurrency {limit, key?}``, ``throttle {limit, period, key?}``, ``rateLimit {limit, period,
  key?}``, ``debounce {period, key?, timeout?}`` (``timeout`` ≥ ``period``), ``batch {maxSize
  1-1000, timeout, key?}``; limits are 1-100000 and every duration is positive.
- ``priority``: an integer -1000..1000 or ``{key}``, the priority read from ``event.data``.
- ``key``: a dotted path into ``event.data``: ``"tenantId"``, ``"user.id"``.
- Composition (docs/protocol.md): ``trigger: null`` (started only by invoke), ``onFailure`` (the id of a
  function of the same sync, not the function itself), ``cancelOn [{event, match?: key path,
  timeout?}]`` (1-10 entries), ``idempotency`` (a key path), ``singleton {mode: skip|cancel, key?}``.

The result keeps the JSON shape with durations as integer milliseconds
(``"throttle": {"limit": 1, "period": 60000}``); an option that was not given is ``None``, and an
optional ``key``/``timeout`` that was not given is absent from its option.

Combinations refused, naming both sides:

- ``batch`` with ``debounce``: a batch already collects a burst into one run, and a debounce keeps
  only its last event, so together one would silently discard the other's events.
- ``batch`` with ``rateLimit``: the limit counts events that would each start a run; in a batch
  they do not, and dropping events out of a batch would lose data without a trace.
- ``batch`` with ``priority {key}``: a batch holds many events, so there is no one value to read.
- ``batch`` or ``debounce`` with a cron trigger: a cron occurrence is a single run, not an event
  stream. (``rateLimit`` with ``debounce`` is allowed: the limit applies to the runs started.)

Every message starts with ``function 'ID': `` (``functions[3]: `` while the id itself is not yet
valid), then the field path: ``function 'onboarding': throttle.period: invalid duration 'abc' …``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict
from urllib.parse import urlsplit

from durable.core._text import show
from durable.core.cron import parse_cron
from durable.core.durations import parse_duration
from durable.errors import InvalidInput

MAX_FUNCTIONS = 1000
MAX_LIMIT = 100_000
MAX_RETRIES = 20
PRIORITY_RANGE = (-1000, 1000)
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
_KEY_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z_][A-Za-z0-9_-]*)*")
_FUNCTION_KEYS = (
    "id", "name", "trigger", "retries", "concurrency", "priority",
    "throttle", "rateLimit", "debounce", "batch", "onFailure", "cancelOn", "idempotency", "singleton",
)  # fmt: skip
MAX_CANCEL_ON = 10
_MISSING = object()


class Trigger(TypedDict, total=False):
    """Exactly one of the two keys is present."""

    event: str
    cron: str


class Concurrency(TypedDict):
    limit: int
    key: NotRequired[str]


class Limit(TypedDict):
    """``throttle`` and ``rateLimit``: ``limit`` per ``period`` milliseconds."""

    limit: int
    period: int
    key: NotRequired[str]


class Debounce(TypedDict):
    period: int
    key: NotRequired[str]
    timeout: NotRequired[int]


class Batch(TypedDict):
    maxSize: int
    timeout: int
    key: NotRequired[str]


class PriorityKey(TypedDict):
    key: str


class CancelOn(TypedDict):
    """An event that cancels the run: ``match`` is a key path compared with the run's own event."""

    event: str
    match: NotRequired[str]
    timeout: NotRequired[int]


class Singleton(TypedDict):
    mode: str  # "skip" | "cancel"
    key: NotRequired[str]


class FunctionDef(TypedDict):
    id: str
    name: str
    trigger: Trigger  # {} for a function started only by invoke (trigger: null)
    retries: int | None
    concurrency: Concurrency | None
    priority: int | PriorityKey | None
    throttle: Limit | None
    rateLimit: Limit | None
    debounce: Debounce | None
    batch: Batch | None
    onFailure: str | None
    cancelOn: list[CancelOn] | None
    idempotency: str | None
    singleton: Singleton | None


@dataclass(frozen=True)
class SyncRequest:
    url: str
    functions: list[FunctionDef]


def parse_sync(body: object) -> SyncRequest:
    """Validate a decoded ``POST /fn/sync`` body, or raise :class:`InvalidInput` naming the field."""
    if not isinstance(body, dict):
        raise InvalidInput(f"body must be an object {{url, functions}}, got {show(body)}")
    _no_unknown(body, ("url", "functions"), "body")
    url = _url(body.get("url"))
    items = body.get("functions")
    if not isinstance(items, list):
        raise InvalidInput(f"functions: must be a list (may be empty), got {show(items)}")
    if len(items) > MAX_FUNCTIONS:
        raise InvalidInput(f"functions: at most {MAX_FUNCTIONS} functions (got {len(items)})")
    functions: list[FunctionDef] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        function = _function(item, index)
        if function["id"] in seen:
            raise InvalidInput(
                f"function '{function['id']}': id: duplicate (also functions[{seen[function['id']]}])"
            )
        seen[function["id"]] = index
        functions.append(function)
    for function in functions:
        handler = function["onFailure"]
        if handler is not None and handler not in seen:
            raise InvalidInput(
                f"function '{function['id']}': onFailure: names no function of this sync ({show(handler)})"
            )
        if handler == function["id"]:
            raise InvalidInput(f"function '{function['id']}': onFailure: cannot name the function itself")
    return SyncRequest(url=url, functions=functions)


def key_value(path: str, data: object) -> str | None:
    """The value at dotted ``path`` in ``data`` as a string, or ``None`` when missing or null.

    Strings are returned as they are; other values as canonical JSON (sorted keys, integral floats
    as integers), so ``{"id": 7}`` and ``{"id": 7.0}`` share a key.
    """
    value = data
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(_canonical(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def priority_of(priority: int | PriorityKey | None, data: object) -> int:
    """The run priority for an event: the option's integer, or the integer at its key, else 0.

    A key that is missing or not an integer gives 0; values are clamped to -1000..1000.
    """
    if priority is None:
        return 0
    if isinstance(priority, int):
        return priority
    value = data
    for part in priority["key"].split("."):
        if not isinstance(value, dict) or part not in value:
            return 0
        value = value[part]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        return 0
    return max(PRIORITY_RANGE[0], min(PRIORITY_RANGE[1], value))


def _function(item: object, index: int) -> FunctionDef:
    where = f"functions[{index}]"
    if not isinstance(item, dict):
        raise InvalidInput(f"{where}: must be an object {{id, trigger, …}}, got {show(item)}")
    fid = item.get("id")
    if not isinstance(fid, str) or not _ID.fullmatch(fid):
        raise InvalidInput(
            f"{where}: id: must be 1-128 characters of letters, digits and _ . : - "
            f"starting with a letter or digit, got {show(fid)}"
        )
    where = f"function '{fid}'"
    _no_unknown(item, _FUNCTION_KEYS, where)
    name = item.get("name")
    if name is None:
        name = fid
    elif not isinstance(name, str) or not name or len(name) > 256:
        raise InvalidInput(f"{where}: name: must be a non-empty string of at most 256 characters")
    function: FunctionDef = {
        "id": fid,
        "name": name,
        "trigger": _trigger(item.get("trigger", _MISSING), where),
        "retries": _optional_int(item.get("retries"), f"{where}: retries", 0, MAX_RETRIES),
        "concurrency": _concurrency(item.get("concurrency"), where),
        "priority": _priority(item.get("priority"), where),
        "throttle": _limit(item.get("throttle"), where, "throttle"),
        "rateLimit": _limit(item.get("rateLimit"), where, "rateLimit"),
        "debounce": _debounce(item.get("debounce"), where),
        "batch": _batch(item.get("batch"), where),
        "onFailure": _on_failure(item.get("onFailure"), where),
        "cancelOn": _cancel_on(item.get("cancelOn"), where),
        "idempotency": _optional_key_path(item.get("idempotency"), f"{where}: idempotency"),
        "singleton": _singleton(item.get("singleton"), where),
    }
    _compatible(function, where)
    return function


def _compatible(function: FunctionDef, where: str) -> None:
    if function["batch"] is not None:
        if function["debounce"] is not None:
            raise InvalidInput(
                f"{where}: batch and debounce cannot be combined "
                "(a debounce keeps only the last event of a burst; a batch keeps them all)"
            )
        if function["rateLimit"] is not None:
            raise InvalidInput(
                f"{where}: batch and rateLimit cannot be combined "
                "(rateLimit drops events; use throttle or concurrency to pace batches)"
            )
        if isinstance(function["priority"], dict):
            raise InvalidInput(
                f"{where}: batch and priority.key cannot be combined "
                "(a batch holds many events; use an integer priority)"
            )
    if function["debounce"] is not None and function["throttle"] is not None:
        raise InvalidInput(
            f"{where}: debounce and throttle cannot be combined "
            "(a debounce moves its start with every event, so no start slot can be reserved; "
            "use concurrency to pace debounced runs)"
        )
    if "cron" in function["trigger"]:
        present = [name for name in ("batch", "debounce") if function.get(name) is not None]
        if present:
            raise InvalidInput(
                f"{where}: {present[0]} cannot be used with trigger.cron "
                "(each cron occurrence starts exactly one run)"
            )


def _trigger(value: object, where: str) -> Trigger:
    hint = '{"event": "order.paid"}, {"cron": "0 3 * * *"} or null (started only by invoke)'
    if value is None:
        return {}
    if value is _MISSING:
        raise InvalidInput(f"{where}: trigger: must be {hint}, got nothing (the field is missing)")
    if not isinstance(value, dict):
        raise InvalidInput(f"{where}: trigger: must be {hint}, got {show(value)}")
    _no_unknown(value, ("event", "cron"), f"{where}: trigger")
    if ("event" in value) == ("cron" in value):
        raise InvalidInput(f"{where}: trigger: needs exactly one of event or cron ({hint})")
    if "cron" in value:
        parse_cron(value["cron"], f"{where}: trigger.cron")
        return {"cron": value["cron"].strip()}
    event = value["event"]
    if not isinstance(event, str) or not event or len(event) > 256:
        raise InvalidInput(
            f"{where}: trigger.event: must be a non-empty event name of at most 256 characters, "
            f"got {show(event)}"
        )
    return {"event": event}


def _on_failure(value: object, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise InvalidInput(
            f"{where}: onFailure: must be the id of a function of this sync, got {show(value)}"
        )
    return value


def _cancel_on(value: object, where: str) -> list[CancelOn] | None:
    if value is None:
        return None
    hint = '[{"event": "order.cancelled", "match": "orderId", "timeout": "7d"}]'
    if not isinstance(value, list) or not value:
        raise InvalidInput(f"{where}: cancelOn: must be a non-empty list like {hint}, got {show(value)}")
    if len(value) > MAX_CANCEL_ON:
        raise InvalidInput(f"{where}: cancelOn: at most {MAX_CANCEL_ON} entries (got {len(value)})")
    result: list[CancelOn] = []
    for i, entry in enumerate(value):
        field = f"{where}: cancelOn[{i}]"
        if not isinstance(entry, dict):
            raise InvalidInput(f"{field}: must be an object {{event, match?, timeout?}}, got {show(entry)}")
        _no_unknown(entry, ("event", "match", "timeout"), field)
        event = entry.get("event")
        if not isinstance(event, str) or not event or len(event) > 256:
            raise InvalidInput(f"{field}.event: must be a non-empty event name of at most 256 characters")
        item: CancelOn = {"event": event}
        if entry.get("match") is not None:
            item["match"] = _key_path(entry["match"], f"{field}.match")
        if entry.get("timeout") is not None:
            item["timeout"] = _period(entry, where, f"cancelOn[{i}]", "timeout")
        result.append(item)
    return result


def _optional_key_path(value: object, field: str) -> str | None:
    return None if value is None else _key_path(value, field)


def _singleton(value: object, where: str) -> Singleton | None:
    option = _option(value, where, "singleton", ("key", "mode"))
    if option is None:
        return None
    mode = option.get("mode")
    if mode not in ("skip", "cancel"):
        raise InvalidInput(f'{where}: singleton.mode: must be "skip" or "cancel", got {show(mode)}')
    result: Singleton = {"mode": mode}
    _copy_key(option, result, where, "singleton")
    return result


def _concurrency(value: object, where: str) -> Concurrency | None:
    option = _option(value, where, "concurrency", ("limit", "key"))
    if option is None:
        return None
    result: Concurrency = {"limit": _limit_count(option, where, "concurrency")}
    _copy_key(option, result, where, "concurrency")
    return result


def _priority(value: object, where: str) -> int | PriorityKey | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return _optional_int(value, f"{where}: priority", *PRIORITY_RANGE)
    if not isinstance(value, dict):
        raise InvalidInput(f"{where}: priority: must be an integer -1000..1000 or {{key}}, got {show(value)}")
    _no_unknown(value, ("key",), f"{where}: priority")
    if "key" not in value:
        raise InvalidInput(f"{where}: priority.key: missing (a dotted path into event.data)")
    return {"key": _key_path(value["key"], f"{where}: priority.key")}


def _limit(value: object, where: str, name: str) -> Limit | None:
    option = _option(value, where, name, ("limit", "period", "key"))
    if option is None:
        return None
    result: Limit = {
        "limit": _limit_count(option, where, name),
        "period": _period(option, where, name, "period"),
    }
    _copy_key(option, result, where, name)
    return result


def _debounce(value: object, where: str) -> Debounce | None:
    option = _option(value, where, "debounce", ("period", "key", "timeout"))
    if option is None:
        return None
    result: Debounce = {"period": _period(option, where, "debounce", "period")}
    _copy_key(option, result, where, "debounce")
    if option.get("timeout") is not None:
        timeout = _period(option, where, "debounce", "timeout")
        if timeout < result["period"]:
            raise InvalidInput(f"{where}: debounce.timeout: must be at least debounce.period")
        result["timeout"] = timeout
    return result


def _batch(value: object, where: str) -> Batch | None:
    option = _option(value, where, "batch", ("maxSize", "timeout", "key"))
    if option is None:
        return None
    max_size = _optional_int(option.get("maxSize"), f"{where}: batch.maxSize", 1, 1000)
    if max_size is None:
        raise InvalidInput(f"{where}: batch.maxSize: missing (an integer 1..1000)")
    result: Batch = {"maxSize": max_size, "timeout": _period(option, where, "batch", "timeout")}
    _copy_key(option, result, where, "batch")
    return result


def _option(value: object, where: str, name: str, keys: tuple[str, ...]) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput(f"{where}: {name}: must be an object {{{', '.join(keys)}}}, got {show(value)}")
    _no_unknown(value, keys, f"{where}: {name}")
    return value


def _limit_count(option: dict[str, Any], where: str, name: str) -> int:
    limit = _optional_int(option.get("limit"), f"{where}: {name}.limit", 1, MAX_LIMIT)
    if limit is None:
        raise InvalidInput(f"{where}: {name}.limit: missing (an integer 1..{MAX_LIMIT})")
    return limit


def _period(option: dict[str, Any], where: str, name: str, field: str) -> int:
    path = f"{where}: {name}.{field}"
    if option.get(field) is None:
        raise InvalidInput(f'{path}: missing (a duration such as "30s")')
    ms = parse_duration(option[field], path)
    if ms == 0:
        raise InvalidInput(f"{path}: must be longer than zero")
    return ms


def _copy_key(option: dict[str, Any], result: Any, where: str, name: str) -> None:
    if option.get("key") is not None:
        result["key"] = _key_path(option["key"], f"{where}: {name}.key")


def _key_path(value: object, field: str) -> str:
    if not isinstance(value, str) or len(value) > 256 or not _KEY_PATH.fullmatch(value):
        raise InvalidInput(
            f'{field}: must be a dotted path into event.data such as "tenantId" or "user.id", '
            f"got {show(value)}"
        )
    return value


def _optional_int(value: object, field: str, low: int, high: int) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidInput(f"{field}: must be an integer {low}..{high}, got {show(value)}")
    return value


def _no_unknown(value: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in value:
        if key not in allowed:
            raise InvalidInput(f"{where}: unknown field {show(key)} (expected {', '.join(allowed)})")


def _url(value: object) -> str:
    problem = f"url: must be the app's http(s) URL, got {show(value)}"
    if not isinstance(value, str) or len(value) > 2048 or any(c.isspace() for c in value):
        raise InvalidInput(problem)
    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        raise InvalidInput(problem) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise InvalidInput(problem)
    return value


def _canonical(value: object) -> object:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, list):
        return [_canonical(item) for item in value]
    if isinstance(value, dict):
        return {key: _canonical(item) for key, item in value.items()}
    return value
