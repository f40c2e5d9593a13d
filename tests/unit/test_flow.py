"""Flow-control arithmetic: windows hold their limits for any arrival pattern."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from durable.core.flow import FALLBACK_KEY, debounce_due, gate, rate_limit, scope_key, throttle_slot


def test_scope_key_reads_the_path_or_falls_back() -> None:
    assert scope_key({"limit": 1, "key": "user.id"}, {"user": {"id": "u1"}}) == "u1"
    assert scope_key({"limit": 1, "key": "user.id"}, {"user": {}}) == FALLBACK_KEY
    assert scope_key({"limit": 1, "key": "n"}, {"n": 7}) == "7"
    assert scope_key({"limit": 1}, {"n": 7}) == FALLBACK_KEY
    assert scope_key(None, {}) == FALLBACK_KEY


def test_gate_names_function_and_key() -> None:
    assert gate("fn", {}, {}) == (None, None)
    name, limit = gate("fn", {"concurrency": {"limit": 3, "key": "t"}}, {"t": "a"})
    other, _ = gate("fn", {"concurrency": {"limit": 3, "key": "t"}}, {"t": "b"})
    assert limit == 3 and name != other and name is not None and name.startswith("fn")


def test_rate_limit_is_a_sliding_window() -> None:
    stamps: list[int] = []
    decisions = []
    for now in (0, 10, 20, 30, 999, 1000, 1010, 1011):
        ok, stamps = rate_limit(stamps, now, 3, 1000)
        decisions.append(ok)
    assert decisions == [True, True, True, False, False, True, True, False]


@given(st.lists(st.integers(0, 5000), min_size=1, max_size=60), st.integers(1, 5), st.integers(1, 700))
def test_rate_limit_never_exceeds_limit_in_any_window(arrivals: list[int], limit: int, period: int) -> None:
    stamps: list[int] = []
    accepted = []
    for now in sorted(arrivals):
        ok, stamps = rate_limit(stamps, now, limit, period)
        if ok:
            accepted.append(now)
    for start in accepted:
        assert sum(1 for a in accepted if start <= a < start + period) <= limit


@given(st.lists(st.integers(0, 5000), min_size=1, max_size=60), st.integers(1, 5), st.integers(1, 700))
def test_throttle_slots_are_fifo_and_never_exceed_limit(arrivals: list[int], limit: int, period: int) -> None:
    stamps: list[int] = []
    slots = []
    for now in sorted(arrivals):
        slot, stamps = throttle_slot(stamps, now, limit, period)
        assert slot >= now
        slots.append(slot)
    assert slots == sorted(slots)  # first come, first served
    for start in slots:
        assert sum(1 for s in slots if start <= s < start + period) <= limit


def test_throttle_spreads_a_burst() -> None:
    stamps: list[int] = []
    slots = []
    for _ in range(5):
        slot, stamps = throttle_slot(stamps, 0, 2, 1000)
        slots.append(slot)
    assert slots == [0, 0, 1000, 1000, 2000]


def test_debounce_moves_with_each_event_up_to_the_timeout() -> None:
    assert debounce_due(0, 0, 100, None) == 100
    assert debounce_due(0, 250, 100, None) == 350
    assert debounce_due(0, 250, 100, 300) == 300
