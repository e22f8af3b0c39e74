"""Port of erts/emulator/test/after_SUITE.erl (docs/semantics.md §2.4, §6.3, §12.3):
t_after, receive_after, receive_after_big, receive_after_errors, receive_var_zero,
receive_zero, multi_timeout.

Python differences: `receive Pattern -> ... after T -> ... end` is
`await receive(pattern, timeout=T_seconds)`, raising TimeoutError or returning `default=`
when T elapses; `receive after T -> ... end` (no clauses) is `await beamlet.sleep(T)`.
An invalid timeout raises `InvalidTimeout` (Erlang: error timeout_value). Python times
are seconds and may be floats, so upstream's `0.0` and `3.14` error cases (not integers)
are valid here; NaN, infinity, negative and too-large values are the errors. Long waits
run on virtual time, so the elapsed-time checks are exact.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import beamlet
from beamlet import ANY, InvalidTimeout
from beamlet.testing import assert_receive


@pytest.mark.virtual_time
async def test_t_after() -> None:
    """t_after (§2.4.4): `receive after 60 s` returns after 60 s, neither early nor late,
    while another process keeps waking up every 100 ms."""

    async def frequent_process() -> None:
        while True:
            await beamlet.sleep(0.1)

    beamlet.spawn(frequent_process)
    loop = asyncio.get_running_loop()
    before = loop.time()
    await beamlet.sleep(60.0)
    elapsed = loop.time() - before
    assert 60.0 <= elapsed <= 60.0 * 1.001


@pytest.mark.virtual_time
async def test_receive_after() -> None:
    """receive_after (§2.4.4): `receive after N` for N = 5000, 2500, ..., 1 ms returns (no
    hang) after N; with a clause, the after branch runs when nothing matches."""
    loop = asyncio.get_running_loop()
    n = 5000
    while True:
        t0 = loop.time()
        await beamlet.sleep(n / 1000)
        assert loop.time() - t0 >= n / 1000 - 1e-9  # float clock arithmetic
        t0 = loop.time()
        assert await beamlet.receive("never", timeout=n / 1000, default="after") == "after"
        assert loop.time() - t0 >= n / 1000 - 1e-9  # float clock arithmetic
        if n == 1:
            break
        n //= 2


async def _receive_after_big(timeout_ms: int) -> None:
    me = beamlet.self()

    async def sender() -> None:
        beamlet.send(me, "here_is_a_message")

    await asyncio.sleep(0)  # sleep-ok: erlang:yield()
    beamlet.spawn(sender)
    got = await beamlet.receive("here_is_a_message", timeout=timeout_ms / 1000, default=None)
    assert got == "here_is_a_message"  # the timeout could be set; the message came first


async def test_receive_after_big() -> None:
    """receive_after_big (§2.4.5): 32-bit timeouts (0xf7654321, 0xf7999977 ms, about 48
    days) are accepted."""
    await _receive_after_big(0xF7654321)
    await _receive_after_big(0xF7999977)
    await _receive_after_big(0xFFFFFFFF)  # the largest valid timeout (receive_after_32bit)


BAD_TIMEOUTS: list[Any] = [
    -1 / 1000,  # -1 ms
    -0.000001,
    0x100000000 / 1000,  # 2^32 ms: one past the limit
    392347129847294724972398472984729847129874,
    0x3FFFFFFFFFFFFFFF / 1000,
    0xFFFFFFFFFFFFFFFF / 1000,
    -0x100000000 / 1000,
    -3891278094774921784123987129848,
    "xxx",
    float("nan"),
    float("inf"),
    True,  # a bool is not a number of seconds
    [1],
]


@pytest.mark.parametrize("timeout", BAD_TIMEOUTS, ids=[repr(t)[:24] for t in BAD_TIMEOUTS])
async def test_receive_after_errors(timeout: Any) -> None:
    """receive_after_errors (§2.4.5): an invalid timeout raises timeout_value (Python:
    InvalidTimeout), with a clause, without one (receive/sleep), and for try_after; the
    mailbox is not touched."""
    me = beamlet.self()
    beamlet.send(me, "bystander")
    with pytest.raises(InvalidTimeout):
        await beamlet.receive("mission", timeout=timeout)
    with pytest.raises(InvalidTimeout):
        await beamlet.receive(timeout=timeout)
    with pytest.raises(InvalidTimeout):
        await beamlet.sleep(timeout)
    assert await beamlet.receive(timeout=0) == "bystander"


def zero() -> int:
    return 0


async def test_receive_var_zero() -> None:
    """receive_var_zero (§2.4.2): `after Z` with Z = 0 computed at run time polls once and
    leaves the mailbox (x, y) untouched; the next plain receive gets x."""
    me = beamlet.self()
    beamlet.send(me, "x")
    beamlet.send(me, "y")
    z = zero()
    assert await beamlet.receive("z", timeout=z, default="timeout") == "timeout"
    await beamlet.sleep(z)  # receive after Z -> timeout end
    beamlet.send(me, "w")
    assert await beamlet.receive() == "x"
    assert [await beamlet.receive(timeout=0) for _ in range(2)] == ["y", "w"]


async def test_receive_zero() -> None:
    """receive_zero (§2.4.2, §6.3): `after 0`, with and without clauses, leaves the
    mailbox untouched and in order."""
    me = beamlet.self()
    beamlet.send(me, "x")
    beamlet.send(me, "y")
    with pytest.raises(TimeoutError):
        await beamlet.receive("z", timeout=0)
    beamlet.send(me, "w")
    await beamlet.sleep(0)
    assert await beamlet.receive() == "x"
    assert [await beamlet.receive(timeout=0) for _ in range(2)] == ["y", "w"]


async def test_sleep_zero_yields() -> None:
    """§2.4.2, §6.3: `sleep(0)` (`receive after 0 -> ok end`) does not block, but it
    yields as `asyncio.sleep(0)` does: a process made runnable before it runs first, and
    the mailbox stays untouched."""
    me = beamlet.self()
    beamlet.send(me, "mine")

    async def other() -> None:
        beamlet.send(me, "other ran")

    beamlet.spawn(other)
    await beamlet.sleep(0)
    assert await beamlet.receive(timeout=0) == "mine"
    assert await beamlet.receive(timeout=0) == "other ran"


@pytest.mark.virtual_time
async def test_sleep_zero_keeps_the_clock() -> None:
    """`sleep(0)` arms no timer: on virtual time it takes no time at all."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for _ in range(10):
        await beamlet.sleep(0)
    assert loop.time() == t0


@pytest.mark.virtual_time
async def test_multi_timeout() -> None:
    """multi_timeout (§2.4.4, §6.3): messages arriving while a process sleeps in
    `receive after 100 s` do not wake or confuse it; they stay queued, in order."""

    async def timeout_g() -> None:
        await beamlet.receive("a")
        await beamlet.sleep(100)

    p = beamlet.spawn(timeout_g)
    ref = beamlet.monitor(p)
    beamlet.send(p, "a")
    beamlet.send(p, "b")
    await beamlet.sleep(1)
    beamlet.send(p, "c")
    await beamlet.sleep(1)
    beamlet.send(p, "d")
    info = beamlet.process_info(p)
    assert info is not None and info.message_queue_len == 3
    down = await assert_receive(ANY, timeout=200)
    assert isinstance(down, beamlet.Down) and down.ref == ref
    assert down.reason == beamlet.NORMAL
    loop = asyncio.get_running_loop()
    assert loop.time() >= 100


@pytest.mark.virtual_time
async def test_receive_after_timer_starts_at_entry() -> None:
    """§2.4.5: the `after` timer starts when the receive is entered, not per message:
    non-matching messages arriving every 300 ms do not extend a 1 s timeout."""
    me = beamlet.self()

    async def chatter() -> None:
        for i in range(10):
            await beamlet.sleep(0.3)
            beamlet.send(me, ("noise", i))

    beamlet.spawn(chatter)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    assert await beamlet.receive("never", timeout=1.0, default="after") == "after"
    assert 1.0 - 1e-9 <= loop.time() - t0 < 1.3
    assert [await beamlet.receive(timeout=0) for _ in range(3)] == [("noise", i) for i in range(3)]
