"""core.backoff: exponential backoff with equal jitter."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from durable.core.backoff import CAP_MS, backoff_ms, unreachable_backoff_ms


@pytest.mark.parametrize(
    ("attempt", "low", "high"),
    [
        (1, 500, 999),
        (2, 1000, 1999),
        (3, 2000, 3999),
        (4, 4000, 7999),
        (9, 128_000, 255_999),
        (10, 150_000, 299_999),
        (50, 150_000, 299_999),
    ],
)
def test_bounds(attempt: int, low: int, high: int) -> None:
    assert backoff_ms(attempt, rand=lambda: 0.0) == low
    assert backoff_ms(attempt, rand=lambda: 0.999_999_99) == high


def test_half_way() -> None:
    assert backoff_ms(1, rand=lambda: 0.5) == 750


def test_default_randomness_stays_in_range() -> None:
    delays = {backoff_ms(3) for _ in range(200)}
    assert all(2000 <= d < 4000 for d in delays)
    assert len(delays) > 1


@pytest.mark.parametrize("attempt", [0, -1])
def test_attempts_are_one_based(attempt: int) -> None:
    with pytest.raises(ValueError):
        backoff_ms(attempt)


@given(st.integers(1, 10_000), st.floats(0, 1, exclude_max=True))
def test_never_exceeds_cap_and_never_shrinks(attempt: int, r: float) -> None:
    delay = backoff_ms(attempt, rand=lambda: r)
    assert 500 <= delay < CAP_MS
    assert backoff_ms(attempt + 1, rand=lambda: 0.0) >= backoff_ms(attempt, rand=lambda: 0.0)


@pytest.mark.parametrize(
    ("tries", "low", "high"),
    [
        (1, 1000, 1999),
        (2, 2000, 3999),
        (3, 4000, 7999),
        (4, 8000, 15_999),
        (5, 15_000, 29_999),
        (60, 15_000, 29_999),
    ],
)
def test_unreachable_backoff_starts_near_1s_and_is_capped_at_30s(tries: int, low: int, high: int) -> None:
    assert unreachable_backoff_ms(tries, rand=lambda: 0.0) == low
    assert unreachable_backoff_ms(tries, rand=lambda: 0.999_999_99) == high
    with pytest.raises(ValueError):
        unreachable_backoff_ms(0)
