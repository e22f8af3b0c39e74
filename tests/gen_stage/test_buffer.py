"""The producer buffer: ports of elixir-lang/gen_stage test/gen_stage/buffer_test.exs
(docs/gen_stage.md G5), named after the upstream tests. `Buffer.take` returns
`(counter_left, events, markers)` or None where upstream returns `{ok, ...}` / `empty`."""

from __future__ import annotations

import math

from beamlet.gen_stage import Buffer


def test_estimate_size_does_not_count_permanent_events_in_size_estimate() -> None:
    b = Buffer(10)
    b.store_temporary(["temp1", "temp2"], "first")
    assert b.store_permanent_unless_empty("perm3")
    assert b.store_permanent_unless_empty("perm4")
    assert b.estimate_size() == 2


def test_store_temporary_first_discards_excess_events_when_buffer_is_full() -> None:
    b = Buffer(3)
    assert b.store_temporary(["a", "b", "c"], "first") == (0, [])
    assert b.store_temporary(["d", "e", "f"], "first") == (3, [])
    assert b.estimate_size() == 3
    assert b.take(3) == (0, ["a", "b", "c"], [])


def test_store_temporary_first_handles_infinity_buffer_size() -> None:
    b = Buffer(math.inf)
    assert b.store_temporary(list(range(1, 1001)), "first") == (0, [])
    assert b.estimate_size() == 1000


def test_store_temporary_last_keeps_last_events_when_buffer_overflows() -> None:
    b = Buffer(3)
    assert b.store_temporary(["a", "b", "c"], "last") == (0, [])
    assert b.store_temporary(["d", "e", "f"], "last") == (3, [])
    assert b.take(3) == (0, ["d", "e", "f"], [])


def test_store_temporary_last_emits_permanent_events_when_displaced_by_new_temporaries() -> None:
    b = Buffer(3)
    b.store_temporary(["temp1", "temp2"], "last")
    b.store_permanent_unless_empty("perm3")
    b.store_permanent_unless_empty("perm4")
    excess, perms = b.store_temporary(["temp5", "temp6", "temp7"], "last")
    assert excess == 2
    assert perms == ["perm3", "perm4"]


def test_store_temporary_last_partial_overflow_fires_markers_it_passes() -> None:
    b = Buffer(3)
    b.store_temporary(["t1", "t2"], "last")
    b.store_permanent_unless_empty("p")
    assert b.store_temporary(["t3", "t4"], "last") == (1, [])  # t1 goes; p still behind t2
    assert b.take(1) == (0, ["t2"], ["p"])


def test_store_permanent_unless_empty_returns_empty_when_buffer_is_empty() -> None:
    assert Buffer(10).store_permanent_unless_empty("perm1") is False


def test_take_count_or_until_permanent_returns_empty_when_buffer_is_empty() -> None:
    assert Buffer(10).take(5) is None


def test_take_count_or_until_permanent_takes_temporaries_in_fifo_order_stopping_at_permanent() -> (
    None
):
    b = Buffer(10)
    b.store_temporary(["temp1", "temp2"], "first")
    b.store_permanent_unless_empty("perm3")
    b.store_temporary(["temp4"], "first")
    assert b.take(5) == (3, ["temp1", "temp2"], ["perm3"])


def test_take_count_or_until_permanent_maintains_fifo_order_for_permanents_at_same_position() -> (
    None
):
    b = Buffer(10)
    b.store_temporary(["temp1", "temp2"], "first")
    for p in ("perm3", "perm4", "perm5"):
        b.store_permanent_unless_empty(p)
    assert b.take(5) == (3, ["temp1", "temp2"], ["perm3", "perm4", "perm5"])


def test_take_count_or_until_permanent_interleaves_temporary_and_permanent_events_correctly() -> (
    None
):
    b = Buffer(10)
    b.store_temporary(["temp1", "temp2"], "first")
    b.store_permanent_unless_empty("perm3")
    b.store_permanent_unless_empty("perm4")
    b.store_temporary(["temp5", "temp6", "temp7"], "first")
    b.store_permanent_unless_empty("perm8")
    b.store_permanent_unless_empty("perm9")
    b.store_temporary(["temp10"], "first")
    b.store_permanent_unless_empty("perm11")
    assert b.take(3)[1:] == (["temp1", "temp2"], ["perm3", "perm4"])
    assert b.take(4)[1:] == (["temp5", "temp6", "temp7"], ["perm8", "perm9"])
    assert b.take(2)[1:] == (["temp10"], ["perm11"])
