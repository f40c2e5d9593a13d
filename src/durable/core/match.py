"""``wait_for_event`` matching: is ``match`` a subset of an event's ``data``?

- ``None`` matches everything, and so does ``{}``.
- Otherwise ``data`` must be an object holding every key of ``match``. Where ``match`` holds an
  object, the value in ``data`` must be an object matching it recursively (a subset again); any
  other value must equal the value in ``data`` exactly.
- Equality is JSON equality, not Python's: numbers compare by value (``1`` equals ``1.0``), but a
  boolean never equals a number (``true`` is not ``1``), and arrays compare element by element
  with the same rule (arrays and the objects inside them must be equal, not subsets).
- A number compares by the decimal value its JSON text says, as Postgres keeps it: the float
  ``1.0808639105687894e+17`` is the JSON number 108086391056878940 (what jsonb stores and gives back,
  read as an integer), not the binary value 108086391056878944 Python would compare. So a match decoded
  from a request equals the same value read back from the store.

Ingest finds the candidates it checks here through an index built on these rules (migration 0013,
docs/architecture.md "Matching events to waits and cancels"): a match is found by one (path, value) of
its own, which matching data must hold with an equal value. A rule that lets unequal values match (or
a match succeed without such a value) must change that fingerprint too.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

_EXACT_FLOAT = 2**53  # below this every integral float is the integer its text says


def matches(match: dict[str, Any] | None, data: object) -> bool:
    """True when ``match`` is ``None`` or a (recursive) subset of ``data``."""
    if match is None:
        return True
    if not match:
        return True
    if not isinstance(data, dict):
        return False
    for key, expected in match.items():
        if key not in data:
            return False
        actual = data[key]
        if isinstance(expected, dict):
            if not isinstance(actual, dict) or not matches(expected, actual):
                return False
        elif not json_equal(expected, actual):
            return False
    return True


def json_equal(left: object, right: object) -> bool:
    """Equality of two decoded JSON values, keeping booleans apart from numbers."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, (int, float)) and isinstance(right, (int, float)):
        return _decimal(left) == _decimal(right)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(json_equal, left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    if type(left) is not type(right):
        return False
    return left == right


def _decimal(number: int | float) -> int | float:
    """The value of the number's JSON text: an integral float beyond 2^53 as the integer it prints as."""
    if isinstance(number, float) and abs(number) >= _EXACT_FLOAT and number.is_integer():
        return int(Decimal(repr(number)))
    return number
