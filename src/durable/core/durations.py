"""Durations: the ``"500ms"``, ``"90s"``, ``"1h30m"`` strings of function options.

A duration is either a non-negative integer number of milliseconds or a string of one or more
``<digits><unit>`` parts, units ``w d h m s ms``, written largest unit first with no unit twice
and no whitespace: ``"1w2d"``, ``"1h30m"``, ``"2m500ms"``. Every part counts, so ``"0s"`` is zero.
Whether zero is allowed is the caller's rule (an option's period must be positive).

The upper bound (:data:`MAX_DURATION_MS`, 365 days) keeps every stored value far inside a
Postgres ``bigint`` and the timestamps derived from it inside the year 9999.
"""

from __future__ import annotations

import re

from durable.core._text import show as _show
from durable.errors import InvalidInput

MAX_DURATION_MS = 365 * 24 * 3_600_000

# Largest first: this order is also the order a string must follow.
_UNITS: tuple[tuple[str, int], ...] = (
    ("w", 7 * 24 * 3_600_000),
    ("d", 24 * 3_600_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
)
_UNIT_MS = dict(_UNITS)
_RANK = {unit: rank for rank, (unit, _) in enumerate(_UNITS)}
# "ms" is listed before "m" so that "500ms" is never read as "500m" followed by junk.
_PART = re.compile(r"([0-9]{1,15})(ms|w|d|h|m|s)")
_HINT = '(use e.g. "500ms", "90s", "5m", "1h30m" or integer milliseconds)'


def parse_duration(value: object, field: str) -> int:
    """Return ``value`` in milliseconds, or raise :class:`InvalidInput` naming ``field``."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise InvalidInput(f"{field}: duration must not be negative (got {value})")
        return _bounded(value, field)
    if not isinstance(value, str):
        raise InvalidInput(f"{field}: must be a duration, got {_show(value)} {_HINT}")
    total = 0
    position = 0
    last_rank = -1
    while position < len(value):
        part = _PART.match(value, position)
        if part is None:
            raise InvalidInput(f"{field}: invalid duration {_show(value)} {_HINT}")
        digits, unit = part.groups()
        if _RANK[unit] <= last_rank:
            raise InvalidInput(
                f"{field}: invalid duration {_show(value)}: units must go from largest to smallest, "
                f"each at most once {_HINT}"
            )
        last_rank = _RANK[unit]
        total += int(digits) * _UNIT_MS[unit]
        position = part.end()
    if position == 0:
        raise InvalidInput(f"{field}: invalid duration {_show(value)} {_HINT}")
    return _bounded(total, field)


def format_duration(ms: int) -> str:
    """Render ``ms`` as the shortest string :func:`parse_duration` reads back: ``5400000`` → ``"1h30m"``."""
    if ms < 0:
        raise ValueError(f"negative duration: {ms}")
    if ms == 0:
        return "0ms"
    parts: list[str] = []
    rest = ms
    for unit, size in _UNITS:
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def _bounded(ms: int, field: str) -> int:
    if ms > MAX_DURATION_MS:
        raise InvalidInput(f"{field}: duration must be at most 365d (got {format_duration(ms)})")
    return ms
