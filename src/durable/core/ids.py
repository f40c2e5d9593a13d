"""Identifiers and secrets.

``new_id()`` makes the ids of events, runs, steps and jobs: 26 characters of lowercase Crockford
base32 (``0-9a-z`` without ``i l o u``), the layout of a ULID: 10 characters of a 48-bit
millisecond Unix timestamp, then 16 characters of 80 random bits from :mod:`secrets`. Ids made in
a later millisecond sort after earlier ones as plain strings (also under the C and the usual
glibc or ICU collations of Postgres: only lowercase letters and digits). Within one process, ids are
monotonic: an id made in the same (or an earlier) millisecond as the previous one increments its
random part, so ids made in sequence sort in that sequence (runs created by one ingest list in event
order). Lowercase because ids appear in URLs and logs.

``new_app_id()`` is ``"app_"`` followed by a new id, so an app id says what it is at a glance.
``new_signing_key()`` is ``"dur_sk_"`` followed by 32 hex characters (128 random bits).
"""

from __future__ import annotations

import secrets
import time

ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_MAX_TIMESTAMP = (1 << 48) - 1


_last = (0, 0)  # (ms, random) of the previous id made by this process without an explicit time


def new_id(now_ms: int | None = None) -> str:
    """A new time-sortable id; ``now_ms`` (epoch milliseconds) defaults to the current time."""
    global _last
    if now_ms is not None:
        if not 0 <= now_ms <= _MAX_TIMESTAMP:
            raise ValueError(f"timestamp out of range for an id: {now_ms}")
        return _encode(now_ms, 10) + _encode(secrets.randbits(80), 16)
    ms, rand = time.time_ns() // 1_000_000, secrets.randbits(80)
    last_ms, last_rand = _last
    if ms <= last_ms and last_rand + 1 < 1 << 80:
        ms, rand = last_ms, last_rand + 1  # same millisecond (or a clock step back): keep the order
    _last = (ms, rand)
    return _encode(ms, 10) + _encode(rand, 16)


def id_timestamp_ms(value: str) -> int:
    """The epoch milliseconds encoded in the first 10 characters of an id made by :func:`new_id`."""
    ms = 0
    for char in value[:10].lower():
        ms = ms * 32 + ALPHABET.index(char)
    return ms


def new_app_id() -> str:
    """A new app id: ``"app_"`` + :func:`new_id`."""
    return "app_" + new_id()


def new_signing_key() -> str:
    """A new signing key: ``"dur_sk_"`` + 32 lowercase hex characters."""
    return "dur_sk_" + secrets.token_hex(16)


def _encode(number: int, length: int) -> str:
    chars = []
    for _ in range(length):
        number, digit = divmod(number, 32)
        chars.append(ALPHABET[digit])
    return "".join(reversed(chars))
