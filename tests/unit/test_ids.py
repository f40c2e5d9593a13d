"""core.ids: time-sortable ids, app ids and signing keys."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from durable.core.ids import (
    ALPHABET,
    id_timestamp_ms,
    new_app_id,
    new_id,
    new_signing_key,
)

MAX_MS = (1 << 48) - 1


def test_shape() -> None:
    value = new_id()
    assert len(value) == 26
    assert set(value) <= set(ALPHABET)
    assert not set("ilou") & set(value)


def test_ids_are_unique() -> None:
    assert len({new_id(1_700_000_000_000) for _ in range(10_000)}) == 10_000


def test_timestamp_is_encoded_first() -> None:
    assert new_id(0).startswith("0000000000")
    assert new_id(MAX_MS).startswith("7zzzzzzzzz")
    assert id_timestamp_ms(new_id(1_767_225_600_000)) == 1_767_225_600_000


def test_default_time_is_now() -> None:
    before = time.time_ns() // 1_000_000
    stamp = id_timestamp_ms(new_id())
    after = time.time_ns() // 1_000_000
    assert before <= stamp <= after


def test_out_of_range_time_is_refused() -> None:
    for bad in (-1, MAX_MS + 1):
        with pytest.raises(ValueError):
            new_id(bad)


@given(st.integers(0, MAX_MS), st.integers(0, MAX_MS))
def test_ids_sort_by_time(a: int, b: int) -> None:
    if a < b:
        assert new_id(a) < new_id(b)
    elif a > b:
        assert new_id(a) > new_id(b)
    else:
        assert new_id(a)[:10] == new_id(b)[:10]


@given(st.integers(0, MAX_MS))
def test_timestamp_round_trips(ms: int) -> None:
    assert id_timestamp_ms(new_id(ms)) == ms


def test_app_id() -> None:
    value = new_app_id()
    assert re.fullmatch(r"app_[0-9a-hjkmnp-tv-z]{26}", value)
    assert new_app_id() != value


def test_signing_key() -> None:
    key = new_signing_key()
    assert re.fullmatch(r"dur_sk_[0-9a-f]{32}", key)
    assert new_signing_key() != key
