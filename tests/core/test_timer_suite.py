"""Port of erts/emulator/test/timer_bif_SUITE.erl (docs/semantics.md §6, §12.3).

Python differences: times are seconds (Erlang: ms), so upstream's 1000 ms is 1.0;
`start_timer` delivers `TimerMsg(ref, msg)` (Erlang: {timeout, TRef, Msg});
`cancel_timer`/`read_timer` return the remaining seconds (rounded to ms, §6.5) or None
where Erlang returns an integer or false; a bad time is `InvalidTimeout`, a bad ref or
destination `BadArgument` (Erlang: badarg). Floats are valid times in Python (4.5 s), so
upstream's `4.5` error case has no analogue. The memory checks of upstream (bif-timer
allocator) are replaced by `read_timer` returning None once a timer is gone. Tests with
long timers run on virtual time.
"""

from __future__ import annotations

from typing import Any

import pytest

import beamlet
from beamlet import (
    ANY,
    KILL,
    Atom,
    BadArgument,
    Down,
    InvalidTimeout,
    Ref,
    TimerMsg,
)
from beamlet.testing import assert_receive, refute_receive

SHORT_TIMEOUT = 5.0  # upstream ?SHORT_TIMEOUT, 5000 ms


async def _get(timeout: float, msg: Any) -> str:
    """Upstream get/2: `ok` if `msg` arrives within `timeout`, else `no_message`."""
    got = await beamlet.receive(msg, timeout=timeout, default=None)
    return "no_message" if got is None else "ok"


async def _get_msg() -> Any:
    """Upstream get_msg/0: any message, or `empty`."""
    return await beamlet.receive(timeout=0, default="empty")


async def _collect(last: Any) -> list[Any]:
    msgs = []
    while True:
        m = await beamlet.receive(timeout=10)
        msgs.append(m)
        if m == last:
            return msgs


@pytest.mark.virtual_time
async def test_start_timer_1() -> None:
    """start_timer_1 (§6): start_timer delivers {timeout, Ref, Msg}; afterwards the timer
    is gone; a cancelled timer reports its remaining time and never fires."""
    me = beamlet.self()
    ref1 = beamlet.start_timer(1.0, me, "plopp")
    assert await _get(1.1, TimerMsg(ref1, "plopp")) == "ok"
    assert beamlet.read_timer(ref1) is None
    assert beamlet.cancel_timer(ref1) is None
    assert beamlet.read_timer(ref1) is None

    ref2 = beamlet.start_timer(1.0, me, "plapp")
    left2 = beamlet.cancel_timer(ref2)
    assert left2 is not None and 0.9 < left2 <= 1.0
    assert await _get_msg() == "empty"
    assert beamlet.cancel_timer(ref2) is None

    ref3 = beamlet.start_timer(1.0, me, "plopp")
    assert await _get(0.9, TimerMsg(ref3, "plopp")) == "no_message"


@pytest.mark.virtual_time
async def test_send_after_1() -> None:
    """send_after_1 (§6): send_after delivers the bare message; the timer is then gone."""
    ref3 = beamlet.send_after(1.0, beamlet.self(), "plipp")
    assert await _get(1.5, "plipp") == "ok"
    assert beamlet.read_timer(ref3) is None


@pytest.mark.virtual_time
async def test_send_after_2() -> None:
    """send_after_2 (§6.2): timers to one destination deliver in expiry order, not in
    creation order."""
    me = beamlet.self()
    beamlet.send_after(5.0, me, "last")
    beamlet.send_after(0, me, "a0")
    beamlet.send_after(0.2, me, "a2")
    beamlet.send_after(0.1, me, "a1")
    beamlet.send_after(0.5, me, "a5")
    beamlet.send_after(0.3, me, "a3")
    beamlet.send_after(0.4, me, "a4")
    assert await _collect("last") == ["a0", "a1", "a2", "a3", "a4", "a5", "last"]


@pytest.mark.virtual_time
async def test_send_after_3() -> None:
    """send_after_3 (§6.2): expiry order holds for timers 1 ms apart. (Same-time timers
    have no guaranteed order, §6.2; not tested.)"""
    me = beamlet.self()
    beamlet.send_after(0.100, me, "b1")
    beamlet.send_after(0.101, me, "b2")
    beamlet.send_after(0.102, me, "b3")
    beamlet.send_after(0.103, me, "last")
    assert await _collect("last") == ["b1", "b2", "b3", "last"]


async def test_cancel_timer_1() -> None:
    """cancel_timer_1 (§6): cancelling an unknown ref returns false (None)."""
    assert beamlet.cancel_timer(beamlet.make_ref()) is None


@pytest.mark.parametrize("fn", [beamlet.start_timer, beamlet.send_after])
async def test_start_timer_e_send_after_e(fn: Any) -> None:
    """start_timer_e / send_after_e (§6): negative, too large (2^64 ms) or non-numeric
    times and bad destinations raise badarg; nothing is started. (The remote-pid case
    needs a second node.)"""
    me = beamlet.self()
    for bad in (
        -4,
        -0.001,
        2**64 / 1000,
        2**32 / 1000,
        float("nan"),
        float("inf"),
        "a",
        None,
        True,
    ):
        with pytest.raises(InvalidTimeout):
            fn(bad, me, "hej")
    for bad_dest in ([me], 42, 1.5, b"x", ("a", "b", "c")):
        with pytest.raises(BadArgument):
            fn(1.0, bad_dest, "hej")
    await refute_receive(ANY, timeout=0.05)


async def test_timer_max_time_accepted() -> None:
    """§6: the largest accepted time is 2^32 - 1 ms (Python: 4294967.295 s)."""
    ref = beamlet.send_after((2**32 - 1) / 1000, beamlet.self(), "hej")
    left = beamlet.cancel_timer(ref)
    assert left is not None and left > 4294967


async def test_cancel_timer_e() -> None:
    """cancel_timer_e (§6): a non-ref argument raises badarg."""
    for bad in (1, beamlet.self(), "a", Atom("a"), None):
        with pytest.raises(BadArgument):
            beamlet.cancel_timer(bad)  # type: ignore[arg-type]


@pytest.mark.virtual_time
@pytest.mark.parametrize("fn", [beamlet.start_timer, beamlet.send_after])
async def test_start_timer_big_send_after_big(fn: Any) -> None:
    """start_timer_big / send_after_big (§6): a 2^31 ms timer can be set; 200 ms later
    cancel_timer reports 200 ms less (give or take)."""
    big = 2**31 / 1000
    r = fn(big, beamlet.self(), "hej")
    await beamlet.sleep(0.2)
    left = beamlet.cancel_timer(r)
    assert left is not None
    assert 0.2 <= round(big - left, 3) < 10


async def test_read_timer_trivial() -> None:
    """read_timer_trivial (§6): an unknown ref gives false (None); non-refs raise."""
    assert beamlet.read_timer(beamlet.make_ref()) is None
    for bad in (42, 423497834744444444457667444444, beamlet.self(), "ab", Atom("ab")):
        with pytest.raises(BadArgument):
            beamlet.read_timer(bad)  # type: ignore[arg-type]


@pytest.mark.virtual_time
async def test_read_timer() -> None:
    """read_timer (§6, §6.5): read_timer and a following cancel_timer agree (to the ms),
    the timer is then gone, and the remaining time reflects the elapsed 200 ms."""
    big = 2**31 / 1000
    r = beamlet.send_after(big, beamlet.self(), "hej_hopp")
    await beamlet.sleep(0.2)
    left = beamlet.read_timer(r)
    left2 = beamlet.cancel_timer(r)
    assert left is not None and left2 is not None
    assert left == left2 or round(left - left2, 3) == 0.001
    assert beamlet.read_timer(r) is None
    assert 0.2 <= round(big - left, 3) < 10
    assert left == round(left, 3)  # whole milliseconds (§6.5)


async def _quick() -> None:
    return None


def _down_of(ref: Ref) -> Any:
    return lambda m: isinstance(m, Down) and m.ref == ref


@pytest.mark.virtual_time
async def test_cleanup() -> None:
    """cleanup (§6.1): a timer to a dead pid is never active; a timer to a pid is
    cancelled when the pid dies; cancelled and expired timers are gone."""
    # Timer on a dead process.
    p1, m1 = beamlet.spawn_monitor(_quick)
    await assert_receive(_down_of(m1))
    t1 = beamlet.start_timer(SHORT_TIMEOUT * 2, p1, "hej")
    t2 = beamlet.send_after(SHORT_TIMEOUT * 2, p1, "hej")
    assert beamlet.read_timer(t1) is None
    assert beamlet.read_timer(t2) is None

    # The process dies before the timeout.
    async def sleeper(t: float) -> None:
        await beamlet.sleep(t)

    p2, m2 = beamlet.spawn_monitor(sleeper, SHORT_TIMEOUT / 10)
    t3 = beamlet.start_timer(SHORT_TIMEOUT * 2, p2, "hej")
    t4 = beamlet.send_after(SHORT_TIMEOUT * 2, p2, "hej")
    assert isinstance(beamlet.read_timer(t3), float)
    assert isinstance(beamlet.read_timer(t4), float)
    await assert_receive(_down_of(m2))
    assert beamlet.read_timer(t3) is None
    assert beamlet.read_timer(t4) is None

    # Cancel.
    p3 = beamlet.spawn(sleeper, SHORT_TIMEOUT * 4)
    t5 = beamlet.start_timer(SHORT_TIMEOUT * 2, p3, "hej")
    t6 = beamlet.send_after(SHORT_TIMEOUT * 2, p3, "hej")
    assert isinstance(beamlet.cancel_timer(t5), float)
    assert isinstance(beamlet.cancel_timer(t6), float)
    assert beamlet.read_timer(t5) is None
    assert beamlet.read_timer(t6) is None
    beamlet.exit(p3, KILL)

    # Timeout.
    ref = beamlet.make_ref()
    me = beamlet.self()
    t7 = beamlet.start_timer(SHORT_TIMEOUT + 0.001, me, ref)
    t8 = beamlet.send_after(SHORT_TIMEOUT + 0.001, me, ref)
    assert isinstance(beamlet.read_timer(t7), float)
    assert isinstance(beamlet.read_timer(t8), float)
    await assert_receive(TimerMsg(t7, ref), timeout=10)
    await assert_receive(ref, timeout=10)
    assert beamlet.read_timer(t7) is None
    assert beamlet.read_timer(t8) is None


@pytest.mark.virtual_time
async def test_cleanup_creator_death_does_not_cancel() -> None:
    """§6.1: the creator's death does not cancel a timer; only the destination's does."""
    me = beamlet.self()

    async def creator() -> None:
        ref = beamlet.send_after(1.0, me, "from_the_dead")
        beamlet.send(me, ("timer", ref))

    c, m = beamlet.spawn_monitor(creator)
    _, tref = await assert_receive(("timer", ANY))
    await assert_receive(_down_of(m))
    assert isinstance(beamlet.read_timer(tref), float)
    await assert_receive("from_the_dead", timeout=2)
    assert beamlet.read_timer(tref) is None
    assert not beamlet.is_alive(c)


@pytest.mark.virtual_time
async def test_registered_process() -> None:
    """registered_process (§6): a timer to a name resolves it at expiry, so a name
    registered after the timer was started still gets the message; cancelling works
    before."""
    name = "timer_bif_SUITE"
    # Cancel.
    t1 = beamlet.start_timer(SHORT_TIMEOUT + 0.001, name, "hej")
    t2 = beamlet.send_after(SHORT_TIMEOUT + 0.001, name, "hej")
    assert beamlet.whereis(name) is None
    assert isinstance(beamlet.cancel_timer(t1), float)
    assert isinstance(beamlet.cancel_timer(t2), float)
    assert beamlet.read_timer(t1) is None
    assert beamlet.read_timer(t2) is None
    # Register after start.
    ref1 = beamlet.make_ref()
    t3 = beamlet.start_timer(SHORT_TIMEOUT + 0.001, name, ref1)
    t4 = beamlet.send_after(SHORT_TIMEOUT + 0.001, name, ref1)
    assert beamlet.whereis(name) is None
    assert isinstance(beamlet.read_timer(t3), float)
    assert isinstance(beamlet.read_timer(t4), float)
    beamlet.register(name, beamlet.self())
    await assert_receive(TimerMsg(t3, ref1), timeout=10)
    await assert_receive(ref1, timeout=10)
    # Register before start.
    ref2 = beamlet.make_ref()
    t5 = beamlet.start_timer(SHORT_TIMEOUT + 0.001, name, ref2)
    t6 = beamlet.send_after(SHORT_TIMEOUT + 0.001, name, ref2)
    assert isinstance(beamlet.read_timer(t5), float)
    assert isinstance(beamlet.read_timer(t6), float)
    await assert_receive(TimerMsg(t5, ref2), timeout=10)
    await assert_receive(ref2, timeout=10)
    beamlet.unregister(name)


@pytest.mark.virtual_time
async def test_registered_process_name_unregistered_at_expiry() -> None:
    """§6 (verified on OTP 25): a timer to a name nobody holds at expiry is dropped
    without an error, in the timer's creator or anywhere else."""
    ref = beamlet.send_after(1.0, "timer_bif_nobody", "hej")
    await refute_receive(ANY, timeout=2.0)
    assert beamlet.read_timer(ref) is None
    assert beamlet.is_alive(beamlet.self())


@pytest.mark.virtual_time
async def test_cancel_expired_timer_leaves_message() -> None:
    """§6 (verified): cancel_timer of an expired timer returns false (None) and does not
    remove its message from the mailbox."""
    ref = beamlet.send_after(0, beamlet.self(), "tick")
    beamlet.send_after(0.01, beamlet.self(), "sync")
    await assert_receive("sync")  # expiry order (§6.2): "tick" is queued by now
    assert beamlet.cancel_timer(ref) is None
    assert await beamlet.receive("tick", timeout=0, default=None) == "tick"
