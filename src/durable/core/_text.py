"""Small helpers that quote user values inside error messages."""

from __future__ import annotations

_MAX_SHOWN = 40


def show(value: object) -> str:
    """Render a user value for a message, cut short so a huge value cannot flood a log line."""
    if isinstance(value, str):
        text = value if len(value) <= _MAX_SHOWN else value[:_MAX_SHOWN] + "…"
        return "'" + text.replace("\x00", "\\u0000") + "'"  # a message must itself be storable
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        text = repr(value)
        return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "…"
    return f"an {json_type(value)}" if json_type(value) in ("object", "array") else json_type(value)


def json_type(value: object) -> str:
    """The JSON name of a decoded value's type: object, array, string, number, boolean, null."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return type(value).__name__
