"""JSON in and out of the store: what Postgres can hold exactly, and the one decoder of every body.

Every JSON value round-trips exactly (DESIGN.md §8.8), so what cannot be stored exactly is refused by
name instead of being changed:

- integers outside ``-2**63 … 2**64-1``: the decoder would turn them into doubles (silent rounding);
- strings (or object keys) with a NUL character (U+0000): Postgres's jsonb and text cannot hold it;
- nesting deeper than :data:`MAX_DEPTH` levels: more than the encoder writes.

``parse_json`` decodes a body (the integer and nesting rules apply to all of it); ``to_json_text`` is
the JSON text the store keeps for a value, or an ``InvalidInput`` saying which value and why.
"""

from __future__ import annotations

import json
import re

import orjson

from durable.core._text import show
from durable.errors import InvalidInput

MAX_DEPTH = 254
"""Deepest nesting stored: orjson's encoder stops at 255 levels."""
MIN_INT = -(2**63)
MAX_INT = 2**64 - 1

# A run of 19 or more digits may be an integer beyond 64 bits (2**63 has 19 digits); only then is the
# body parsed a second time with a check on every integer.
_LONG_DIGITS = re.compile(rb"[0-9]{19}")
# An escaped NUL in encoded JSON: `\u0000` behind an even number of backslashes (a string holding a
# literal backslash followed by "u0000" encodes as `\\u0000`).
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def parse_json(raw: bytes) -> object:
    """Decode a request or answer body, or raise ``InvalidInput`` naming the problem."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"malformed JSON: {exc}") from None
    # Only a body with more than MAX_DEPTH brackets can be that deep; then the C encoder finds out
    # (it refuses exactly the values deeper than MAX_DEPTH) far faster than a walk in Python would.
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and not _encodable(value):
        raise InvalidInput(f"JSON is nested deeper than {MAX_DEPTH} levels, more than Durable stores")
    if _LONG_DIGITS.search(raw):
        try:
            json.loads(raw, parse_int=_exact_int)  # raises on the first integer that would be rounded
        except RecursionError:
            raise InvalidInput(
                f"JSON is nested deeper than {MAX_DEPTH} levels, more than Durable stores"
            ) from None
    return value


def _encodable(value: object) -> bool:
    try:
        orjson.dumps(value)
    except orjson.JSONEncodeError:
        return False
    return True


def _exact_int(literal: str) -> int:
    value = int(literal)
    if not MIN_INT <= value <= MAX_INT:
        raise InvalidInput(
            f"integer {show(value)} is outside the range Durable stores exactly (-2^63 to 2^64-1); "
            "send it as a string"
        )
    return value


def depth(value: object) -> int:
    """Nesting depth of a decoded value: 0 for a scalar, 1 for a flat list or object."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
            deepest = max(deepest, level + 1)
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
            deepest = max(deepest, level + 1)
    return deepest


def to_json_text(value: object, what: str) -> str:
    """The JSON text stored for `value`, or ``InvalidInput("<what> contains …")`` if the store cannot
    hold it exactly. `what` names the value for the message, e.g. ``"step 'charge': result"``."""
    try:
        text = orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        if depth(value) > MAX_DEPTH:
            raise InvalidInput(
                f"{what} is nested deeper than {MAX_DEPTH} levels, more than Durable stores"
            ) from None
        raise InvalidInput(f"{what} cannot be stored as JSON: {exc}") from None
    if b"\\u0000" in text and _NUL_ESCAPE.search(text):
        raise InvalidInput(f"{what} contains a NUL character (U+0000), which Postgres cannot store")
    return text.decode()


def refuse_nul(value: object, where: str) -> None:
    """Raise ``InvalidInput`` naming the first string (or key) of `value` with a NUL character."""
    # The walk below costs about a second on a 4 MiB body of small values, on the event loop; the C
    # encoder tells in milliseconds whether there is any NUL at all, so the walk runs only to name it.
    try:
        text = orjson.dumps(value)
    except orjson.JSONEncodeError:
        text = b"\\u0000"  # not encodable (too deep, non-string keys): let the walk decide
    if not (b"\\u0000" in text and _NUL_ESCAPE.search(text)):
        return
    stack: list[tuple[object, str]] = [(value, where)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise InvalidInput(f"{path}: contains a NUL character (U+0000), which Postgres cannot store")
        elif isinstance(item, dict):
            for key, child in item.items():
                if "\x00" in key:
                    raise InvalidInput(
                        f"{path}: a key contains a NUL character (U+0000), which Postgres cannot store"
                    )
                stack.append((child, f"{path}.{key}"))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{i}]") for i, child in enumerate(item))
