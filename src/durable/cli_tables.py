"""Plain-text output of the CLI's client commands: aligned tables and `key: value` blocks.

No dependency: a table is a header row and data rows of strings, each column as wide as its widest
cell, separated by two spaces, the last column never padded (so no line ends in spaces). A cell shows
one line: control characters (newlines, tabs, escape sequences from stored data) become spaces, and a
cell longer than `MAX_CELL` characters is cut with an ellipsis. An empty value shows as ``-``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

MAX_CELL = 60
EMPTY = "-"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


def cell(value: object, limit: int = MAX_CELL) -> str:
    """One value as a one-line cell: strings as they are, None as ``-``, anything else as compact JSON."""
    if value is None or value == "":
        return EMPTY
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, int | float):
        text = str(value)
    else:
        text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "), sort_keys=False)
    text = _CONTROL.sub(" ", text).strip()
    if not text:
        return EMPTY
    if len(text) > limit:
        return text[: max(limit - 1, 1)] + "…"
    return text


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Aligned columns under upper-case headers; every row must have one cell per header."""
    for index, row in enumerate(rows):
        if len(row) != len(headers):
            raise ValueError(f"row {index} has {len(row)} cells, expected {len(headers)}")
    lines = [[header.upper() for header in headers]] + [[cell(value) for value in row] for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]
    out = []
    for line in lines:
        padded = [text.ljust(widths[i]) for i, text in enumerate(line[:-1])] + [line[-1]]
        out.append("  ".join(padded).rstrip())
    return "\n".join(out)


def fields(pairs: Sequence[tuple[str, object]]) -> str:
    """`label: value` lines with the values aligned; long values are kept whole (up to 500 characters)."""
    width = max((len(label) for label, _ in pairs), default=0)
    return "\n".join(f"{(label + ':').ljust(width + 1)} {cell(value, 500)}" for label, value in pairs)


def duration_ms(value: object) -> str:
    """Milliseconds as a short human duration: ``850ms``, ``3.1s``, ``2m05s``, ``4h10m``."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return EMPTY
    ms = int(value)
    if ms < 1000:
        return f"{ms}ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f}s"
    minutes, seconds = divmod(ms // 1000, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    return f"{hours // 24}d{hours % 24:02d}h"


def timestamp(value: object) -> str:
    """An ISO 8601 time from the API as ``2026-07-05 09:00:00`` (UTC, to the second)."""
    if not isinstance(value, str) or len(value) < 19:
        return cell(value)
    return value[:10] + " " + value[11:19]


def options(function: Mapping[str, Any]) -> str:
    """A function's flow-control options (every key but id, name, trigger and paused) as `key=value`."""
    skip = {"id", "name", "trigger", "paused"}
    parts = [
        f"{key}={cell(value, 200)}"
        for key, value in function.items()
        if key not in skip and value is not None
    ]
    return ", ".join(parts)


def trigger(value: object) -> str:
    """``event order.paid``, ``cron 0 3 * * *``, or ``-`` (invoked only)."""
    if isinstance(value, Mapping):
        if value.get("event"):
            return f"event {value['event']}"
        if value.get("cron"):
            return f"cron {value['cron']}"
    return EMPTY
