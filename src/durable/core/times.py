"""Timestamps as the API writes them: ISO 8601 in UTC with a `Z` (`2026-07-05T09:00:00.000Z`)."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(value: datetime | None) -> str | None:
    """A database timestamp for the API (microseconds kept), or None."""
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def iso_ms(ms: int) -> str:
    """Epoch milliseconds as ISO 8601 with milliseconds, the form the SDKs send."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
