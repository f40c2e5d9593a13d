"""Flow-control arithmetic: scope keys, concurrency gates, rate-limit and throttle windows, debounce.

Pure functions over integers (epoch milliseconds); the engine keeps the state in Postgres, locked per
(function, option, key) while an ingest decides, so these decisions are exact across processes.

- A key path missing from the event's data (or null there) scopes the event under the fallback key
  ``""``: every such event of that function shares one scope. The event is never refused for it.
- ``rateLimit`` is a sliding window: a run may start if fewer than ``limit`` runs started in the last
  ``period``.
- ``throttle`` reserves start times first come, first served: a new run starts at the earliest time
  ≥ the requested one, and ≥ every earlier reservation (FIFO), at which the ``period`` ending there
  holds fewer than ``limit`` starts.
"""

from __future__ import annotations

from typing import Any

from durable.core.options import key_value

FALLBACK_KEY = ""
GATE_SEPARATOR = "\x1f"


def scope_key(option: dict[str, Any] | None, data: object) -> str:
    """The scope an option applies to for this event: its key's value, or the fallback key."""
    if not option or "key" not in option:
        return FALLBACK_KEY
    value = key_value(option["key"], data)
    return FALLBACK_KEY if value is None else value


def gate(function_id: str, config: dict[str, Any], data: object) -> tuple[str | None, int | None]:
    """The concurrency gate (name, limit) of a run, or (None, None) without a concurrency option."""
    concurrency = config.get("concurrency")
    if not concurrency:
        return None, None
    return function_id + GATE_SEPARATOR + scope_key(concurrency, data), int(concurrency["limit"])


def rate_limit(stamps: list[int], now_ms: int, limit: int, period_ms: int) -> tuple[bool, list[int]]:
    """Whether a run may start now, and the window's start times afterwards."""
    recent = [s for s in stamps if s > now_ms - period_ms]
    if len(recent) >= limit:
        return False, recent
    return True, [*recent, now_ms]


def throttle_slot(stamps: list[int], earliest_ms: int, limit: int, period_ms: int) -> tuple[int, list[int]]:
    """The start time reserved for a new run, and the reservations afterwards (the last `limit`)."""
    slot = max([earliest_ms, *stamps])
    if len(stamps) >= limit and stamps[-limit] > slot - period_ms:
        slot = stamps[-limit] + period_ms
    return slot, [*stamps, slot][-limit:]


def debounce_due(first_ms: int, now_ms: int, period_ms: int, timeout_ms: int | None) -> int:
    """When a debounced run starts: `period` after the latest event, capped at `timeout` after the first."""
    due = now_ms + period_ms
    if timeout_ms is not None:
        due = min(due, first_ms + timeout_ms)
    return due


IDEMPOTENCY_MS = 24 * 3600 * 1000
"""How long an idempotency key holds (per function)."""

HELD_MS = 32_503_680_000_000
"""The due time of a run held by a paused function (3000-01-01T00:00:00Z): resume makes it due now."""

_ABSENT = object()


def idempotency_key(config: dict[str, Any], event: dict[str, Any]) -> str | None:
    """The idempotency key of a new run: the function's `idempotency` path read from the event's data,
    else the event's own `idempotencyKey`; None when neither gives one (no check)."""
    path = config.get("idempotency")
    if path:
        return key_value(path, event.get("data"))
    key = event.get("idempotencyKey")
    return key if isinstance(key, str) else None


def fresh_key(first_at: int | None, now_ms: int) -> bool:
    """Whether an idempotency key first used at `first_at` may start a run again."""
    return first_at is None or first_at <= now_ms - IDEMPOTENCY_MS


def cancel_match(path: str | None, data: object) -> tuple[bool, dict[str, Any] | None]:
    """The subset of a cancelling event's data for a cancelOn `match` path and the run's own event data:
    (True, {"order": {"id": "o1"}}) for "order.id"; (True, None) without a path (any event); (False,
    None) when the run's data has nothing at the path (no event can match)."""
    if path is None:
        return True, None
    value: Any = data
    parts = path.split(".")
    for part in parts:
        if not isinstance(value, dict) or part not in value:
            return False, None
        value = value[part]
    if value is None:
        return False, None
    for part in reversed(parts):
        value = {part: value}
    return True, value
