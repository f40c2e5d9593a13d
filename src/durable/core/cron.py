"""Cron schedules: parse a ``trigger.cron`` expression and find its next occurrence.

Accepted: 5 fields (``minute hour day-of-month month day-of-week``) or 6 fields with seconds
first (``"*/20 * * * * *"``), separated by spaces or tabs, optionally preceded by
``TZ=<IANA zone> `` (or ``CRON_TZ=``), e.g. ``"TZ=Europe/Amsterdam 0 9 * * mon-fri"``. Field
syntax is croniter's: ``*``, lists, ranges, steps, month and weekday names, ``L``, ``W``, ``#``
and ``?``. Refused: any other field count, an unknown zone, ``@daily``-style aliases,
croniter's hashed/random ``H``/``R`` values (occurrences must be identical in every process), and
expressions that never occur (``0 0 30 2 *``), and expressions longer than :data:`MAX_LENGTH`
characters or with more than :data:`MAX_LIST_ITEMS` items in one field's list. Those bounds keep
validation cheap (it runs on the event loop that also answers the API): croniter expands a list in
quadratic time, so one 600 KB minute list once held the loop for 21 s. No sane schedule needs more:
every value of the widest field (0-59) listed one by one is 170 characters, and a longer list repeats.

Occurrences are computed in the schedule's zone (UTC by default), on wall-clock time:

- spring forward: a time that does not exist that day (02:30 in Amsterdam on the last Sunday of
  March) fires once, at the moment the clocks jump (03:00 CEST);
- fall back: a time that occurs twice (02:30 on the last Sunday of October) fires once, at its
  first occurrence, unless the schedule fires every hour (its hour field is ``*``), in which case
  it fires in both passes, since those are distinct hours of real time.

``next_after`` returns the first occurrence strictly after a given instant, which is what makes
catch-up after downtime impossible: the scheduler asks for the next occurrence after *now*.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# croniter ships no type information; everything used from it stays inside this module.
from croniter import CroniterBadDateError, CroniterError, croniter  # type: ignore[import-untyped]

from durable.core._text import show
from durable.errors import InvalidInput

_TZ_PREFIX = re.compile(r"(?:CRON_)?TZ=(\S+)\s+(.*)", re.DOTALL | re.IGNORECASE)
_HASHED = re.compile(r"[hr](?:\([0-9]+-[0-9]+\))?(?:/[0-9]+)?", re.IGNORECASE)
_FIELD_CHARS = re.compile(r"[0-9A-Za-z*,/?#-]+")
_HINT = 'use 5 fields "m h dom mon dow" or 6 with seconds first, e.g. "0 3 * * *" or "*/20 * * * * *"'
# 2000-01-01T00:00:00Z: a leap year start, so a schedule that occurs at all occurs soon after it.
_PROBE_MS = 946_684_800_000
_MAX_SKIPS = 1_000
MAX_LENGTH = 256
"""Longest cron expression accepted, ``TZ=`` prefix included."""
MAX_LIST_ITEMS = 60
"""Most comma-separated items in one field: the size of the widest field's range (0-59)."""


@dataclass(frozen=True)
class Cron:
    """A validated schedule. ``fields`` are as written, seconds first when ``has_seconds``."""

    expr: str
    tz: str
    fields: tuple[str, ...]
    has_seconds: bool


def parse_cron(expr: object, field: str) -> Cron:
    """Validate a cron expression, or raise :class:`InvalidInput` naming ``field``."""
    if not isinstance(expr, str) or not expr.strip():
        raise InvalidInput(f"{field}: must be a cron expression string, got {show(expr)} ({_HINT})")
    if len(expr) > MAX_LENGTH:
        raise InvalidInput(
            f"{field}: the cron expression is {len(expr)} characters; at most {MAX_LENGTH} are accepted"
        )
    parsed = _parse(expr)
    if isinstance(parsed, str):
        raise InvalidInput(f"{field}: {parsed}")
    return parsed


@lru_cache(maxsize=1024)
def _parse(expr: str) -> Cron | str:
    """parse_cron without the type and size checks: the schedule, or what is wrong with it. Cached by
    expression, since a sync validates each schedule and then stores it, apps sync the same schedules at
    every start, and probing a rare schedule for its next occurrence costs milliseconds."""
    text = expr.strip()
    tz = "UTC"
    prefixed = _TZ_PREFIX.fullmatch(text)
    if prefixed is not None:
        tz, text = prefixed.group(1), prefixed.group(2)
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            return f"unknown time zone {show(tz)} (use an IANA name such as 'Europe/Amsterdam')"
    elif text.upper().startswith(("TZ=", "CRON_TZ=")):
        return f"{show(expr)} has a time zone but no schedule ({_HINT})"
    fields = tuple(re.split(r"[ \t]+", text))
    if text.startswith("@"):
        return f"aliases like {show(text)} are not supported ({_HINT})"
    if len(fields) not in (5, 6):
        return f"{show(expr)} has {len(fields)} fields ({_HINT})"
    for part in fields:
        if not _FIELD_CHARS.fullmatch(part):
            return f"{show(expr)}: invalid field {show(part)} ({_HINT})"
        if part.count(",") >= MAX_LIST_ITEMS:
            return (
                f"{show(expr)}: the field {show(part)} lists {part.count(',') + 1} items; "
                f"at most {MAX_LIST_ITEMS} are accepted (use a range or a step, e.g. 0-59 or */5)"
            )
        if any(_HASHED.fullmatch(item) for item in part.split(",")):
            return f"{show(expr)}: hashed or random values like {show(part)} are not supported"
    cron = Cron(expr=expr, tz=tz, fields=fields, has_seconds=len(fields) == 6)
    try:
        croniter.expand(" ".join(fields), second_at_beginning=cron.has_seconds)
    except (CroniterError, ValueError) as exc:
        return f"invalid cron expression {show(expr)}: {exc}"
    try:
        next_after(cron, _PROBE_MS)
    except CroniterBadDateError:
        return f"cron expression {show(expr)} never occurs"
    except (CroniterError, ValueError) as exc:
        return f"invalid cron expression {show(expr)}: {exc}"
    return cron


def next_after(cron: Cron, after_ms: int) -> int:
    """Epoch milliseconds of the first occurrence of ``cron`` strictly after ``after_ms``."""
    zone = ZoneInfo(cron.tz)
    # Occurrences fall on whole seconds, so the first one after the whole second at or before
    # after_ms is also the first one after after_ms itself.
    start = datetime.fromtimestamp(after_ms // 1000, tz=zone)
    schedule = croniter(" ".join(cron.fields), start, second_at_beginning=cron.has_seconds)
    every_hour = cron.fields[2 if cron.has_seconds else 1] == "*"
    for _ in range(_MAX_SKIPS):
        moment: datetime = schedule.get_next(datetime)
        if every_hour or not _second_pass(moment):
            return int(moment.timestamp()) * 1000
    raise CroniterBadDateError(f"no occurrence of {cron.expr!r} after {after_ms}")


def _second_pass(moment: datetime) -> bool:
    """True for the later of two instants that share one wall-clock time (clocks went back)."""
    return moment.fold == 1 and moment.utcoffset() != moment.replace(fold=0).utcoffset()
