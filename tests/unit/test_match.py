"""core.match: subset matching of wait_for_event."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from durable.core.match import json_equal, matches

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)
json_objects = st.dictionaries(st.text(max_size=5), json_values, max_size=5)


@pytest.mark.parametrize("data", [None, 1, "x", [], {}, {"a": 1}])
def test_none_matches_anything(data: object) -> None:
    assert matches(None, data)


def test_empty_match_matches_anything() -> None:
    assert matches({}, {"a": 1})
    assert matches({}, "not an object")


@pytest.mark.parametrize(
    ("match", "data", "expected"),
    [
        ({"orderId": "o1"}, {"orderId": "o1", "amount": 5}, True),
        ({"orderId": "o1"}, {"orderId": "o2"}, False),
        ({"orderId": "o1"}, {}, False),
        ({"orderId": None}, {}, False),
        ({"orderId": None}, {"orderId": None}, True),
        ({"a": 1}, "string data", False),
        ({"a": 1}, None, False),
        ({"a": 1}, [{"a": 1}], False),
        ({"user": {"id": "u1"}}, {"user": {"id": "u1", "name": "x"}}, True),
        ({"user": {"id": "u1"}}, {"user": {"id": "u2", "name": "x"}}, False),
        ({"user": {"id": "u1"}}, {"user": "u1"}, False),
        ({"a": {"b": {"c": 1}}}, {"a": {"b": {"c": 1, "d": 2}, "e": 3}}, True),
        ({"a": {}}, {"a": {"anything": 1}}, True),
        ({"a": {}}, {"a": 1}, False),
        ({"n": 1}, {"n": 1.0}, True),
        ({"n": 1.0}, {"n": 1}, True),
        ({"n": True}, {"n": 1}, False),
        ({"n": 1}, {"n": True}, False),
        ({"n": 0}, {"n": False}, False),
        ({"n": False}, {"n": False}, True),
        ({"n": "1"}, {"n": 1}, False),
        ({"tags": [1, 2]}, {"tags": [1, 2]}, True),
        ({"tags": [1, 2]}, {"tags": [1, 2, 3]}, False),
        ({"tags": [1, 2]}, {"tags": [2, 1]}, False),
        ({"tags": [1]}, {"tags": [True]}, False),
        ({"tags": [{"a": 1}]}, {"tags": [{"a": 1, "b": 2}]}, False),
        ({"tags": [{"a": 1}]}, {"tags": [{"a": 1.0}]}, True),
    ],
)
def test_matches(match: dict[str, Any], data: object, expected: bool) -> None:
    assert matches(match, data) is expected


@given(json_objects)
def test_reflexive(value: dict[str, Any]) -> None:
    assert matches(value, value)


@given(json_objects, json_objects)
def test_adding_keys_to_the_data_keeps_a_match(match: dict[str, Any], extra: dict[str, Any]) -> None:
    assert matches(match, {**extra, **match})


@given(json_values)
def test_json_equal_is_reflexive(value: object) -> None:
    assert json_equal(value, value)


@given(json_values, json_values)
def test_json_equal_is_symmetric(a: object, b: object) -> None:
    assert json_equal(a, b) == json_equal(b, a)


def test_numbers_compare_by_the_value_of_their_json_text() -> None:
    # jsonb keeps 1.0808639105687894e+17 as 108086391056878940 and gives it back as that integer
    assert matches({"n": 1.0808639105687894e17}, {"n": 108086391056878940})
    assert not matches({"n": 1.0808639105687894e17}, {"n": 108086391056878944})  # the float's binary value
    assert not matches({"n": float(2**62)}, {"n": 2**62})  # 4.611686018427388e18 is not 2**62
    assert matches({"n": 2**62}, {"n": 2**62}) and matches({"n": 1}, {"n": 1.0})
