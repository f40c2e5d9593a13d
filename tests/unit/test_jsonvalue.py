"""What the store can hold exactly: integers, NUL characters, nesting (core/jsonvalue.py)."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from durable.core.jsonvalue import MAX_DEPTH, depth, parse_json, refuse_nul, to_json_text
from durable.errors import InvalidInput

TEXT = st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)))
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda children: st.lists(children) | st.dictionaries(TEXT, children),
    max_leaves=30,
)


def nested(levels: int) -> object:
    value: object = 1
    for _ in range(levels):
        value = [value]
    return value


@given(JSON)
def test_every_storable_value_round_trips(value: object) -> None:
    text = to_json_text(value, "v")
    assert orjson.loads(text) == value
    assert parse_json(text.encode()) == value


@given(TEXT, TEXT)
def test_a_nul_anywhere_in_a_string_is_refused(before: str, after: str) -> None:
    with pytest.raises(InvalidInput, match=r"step 'x': result contains a NUL character \(U\+0000\)"):
        to_json_text({"k": [1, before + "\x00" + after]}, "step 'x': result")


def test_a_nul_in_a_key_is_refused() -> None:
    with pytest.raises(InvalidInput, match="NUL"):
        to_json_text({"a\x00b": 1}, "v")
    with pytest.raises(InvalidInput, match=r"body.a: a key contains a NUL"):
        refuse_nul({"a": {"k\x00": 1}}, "body")


@pytest.mark.parametrize("text", ["\\u0000", "\\\\u0000", "a\\u0000\\", "\\"])
def test_backslashes_that_only_look_like_a_nul_are_kept(text: str) -> None:
    assert orjson.loads(to_json_text([text], "v")) == [text]
    refuse_nul([text], "v")


def test_refuse_nul_names_the_path() -> None:
    with pytest.raises(InvalidInput, match=r"^event.data.items\[1\]: contains a NUL"):
        refuse_nul({"items": ["ok", "b\x00d"]}, "event.data")


def test_nesting_up_to_the_limit_is_stored_and_beyond_is_refused() -> None:
    assert depth(nested(MAX_DEPTH)) == MAX_DEPTH
    assert orjson.loads(to_json_text(nested(MAX_DEPTH), "v")) == nested(MAX_DEPTH)
    with pytest.raises(InvalidInput, match=f"step 'deep': result is nested deeper than {MAX_DEPTH} levels"):
        to_json_text(nested(MAX_DEPTH + 1), "step 'deep': result")
    raw = json.dumps(nested(300)).encode()
    with pytest.raises(InvalidInput, match="nested deeper than"):
        parse_json(raw)
    assert parse_json(json.dumps(nested(200)).encode()) == nested(200)


@pytest.mark.parametrize("number", [2**64, -(2**63) - 1, 10**30, -(10**40)])
def test_integers_that_would_be_rounded_are_refused(number: int) -> None:
    with pytest.raises(InvalidInput, match="outside the range Durable stores exactly"):
        parse_json(json.dumps({"n": [number]}).encode())


@pytest.mark.parametrize("number", [2**64 - 1, -(2**63), 2**63, 9_999_999_999_999_999_999])
def test_64_bit_integers_are_kept_exactly(number: int) -> None:
    assert parse_json(json.dumps({"n": number}).encode()) == {"n": number}


def test_long_digit_runs_inside_strings_and_floats_are_fine() -> None:
    assert parse_json(b'{"id": "123456789012345678901234567890", "f": 1.5e300}') == {
        "id": "123456789012345678901234567890",
        "f": 1.5e300,
    }
    assert parse_json(b"[0.12345678901234567890123]") == [0.12345678901234568]


@pytest.mark.parametrize("raw", [b"{", b"[1,]", b"NaN", b'"\\ud800"', b"1e400"])
def test_malformed_json_is_refused(raw: bytes) -> None:
    with pytest.raises(InvalidInput, match="malformed JSON"):
        parse_json(raw)
